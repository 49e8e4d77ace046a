"""Running the example DAGs in-process and reading what their runs left behind."""

from __future__ import annotations

from typing import Any

from aiops_assets.airflow.config import ProviderConfig


def dags() -> dict[str, Any]:
    from aiops_assets.airflow.example_dags import reference_pipeline

    return {
        "daily": reference_pipeline.aiops_reference_daily,
        "train": reference_pipeline.aiops_reference_train,
        "rollback": reference_pipeline.aiops_reference_rollback,
    }


def run(dag: Any, **conf: str) -> dict[str, str]:
    """``dag.test()`` with ``conf``; the state of each task instance of the run, by task id."""
    run = dag.test(run_conf=conf)
    return {ti.task_id: str(ti.state) for ti in run.get_task_instances()}


def run_at(dag: Any, logical_date: Any) -> dict[str, str]:
    """A run as the scheduler would make it at ``logical_date``, with the ``day`` param empty.

    The empty conf is explicit: in one process, ``dag.test()`` keeps the last run's conf in the
    DAG's params (a scheduler's fresh task processes do not).
    """
    run = dag.test(logical_date=logical_date, run_conf={"day": ""})
    return {ti.task_id: str(ti.state) for ti in run.get_task_instances()}


def asset_events(name: str) -> list[dict[str, Any]]:
    """The extras of an asset's events, oldest first, from the metadata database."""
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        rows = session.execute(
            select(AssetEvent.extra)
            .join(AssetModel, AssetModel.id == AssetEvent.asset_id)
            .where(AssetModel.name == f"aiops.{name}")
            .order_by(AssetEvent.id)
        ).scalars()
        return [dict(row or {}) for row in rows]


def queued_dags(name: str) -> set[str]:
    """The DAGs the scheduler would start for the asset's new events (the asset queue)."""
    from airflow.models.asset import AssetDagRunQueue, AssetModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        rows = session.execute(
            select(AssetDagRunQueue.target_dag_id)
            .join(AssetModel, AssetModel.id == AssetDagRunQueue.asset_id)
            .where(AssetModel.name == f"aiops.{name}")
        ).scalars()
        return set(rows)


def config() -> ProviderConfig:
    return ProviderConfig.from_env()
