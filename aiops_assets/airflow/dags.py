"""The reference pipeline as three Airflow 3 DAGs on the task SDK.

``aiops_reference_daily`` (one day: snapshot -> features -> drift check and scores with the
performance and prediction-drift checks -> the loop's requests, and the monitoring report of the
last days), ``aiops_reference_train``
(scheduled on the retraining request: drift baseline -> training set -> candidate -> promotion
gate -> score baseline) and ``aiops_reference_rollback`` (scheduled on the rollback request:
rollback -> incident report and score baseline).
Every task's outlet event
carries the step's data version, code version and check results in its ``extra``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

import pendulum
from airflow.sdk import (
    DAG,
    Asset,
    CronDataIntervalTimetable,
    Param,
    dag,
    get_current_context,
    task,
)
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

from aiops_assets.airflow import assets
from aiops_assets.airflow.config import ProviderConfig
from aiops_assets.airflow.loop import PriorRequest, retrain_request, rollback_request
from aiops_assets.airflow.records import StepFailed, StepResult, StepSkipped
from aiops_assets.airflow.steps_baseline import score_baseline_step
from aiops_assets.airflow.steps_data import (
    drift_baseline_step,
    drift_step,
    features_step,
    score_step,
    snapshot_step,
)
from aiops_assets.airflow.steps_incident import incident_step
from aiops_assets.airflow.steps_model import (
    candidate_step,
    champion_gate_step,
    rollback_step,
    training_set_step,
)
from aiops_assets.airflow.steps_report import monitoring_report_step
from aiops_assets.core.pipeline.scoring import PERFORMANCE_CHECK_NAME
from aiops_assets.core.pipeline.training import TrainingSetSettings
from aiops_assets.core.registry import CHAMPION, MODEL_NAME

DAILY_DAG = "aiops_reference_daily"
TRAIN_DAG = "aiops_reference_train"
ROLLBACK_DAG = "aiops_reference_rollback"
TAGS = ["aiops"]

ConfigFactory = Callable[[], ProviderConfig]


def _run(step: Callable[[], StepResult], outlet: Asset) -> dict[str, Any]:
    """Run a step; its lineage goes on the outlet's event, its refusal is one line, not a trace."""
    try:
        result = step()
    except StepSkipped as skipped:
        raise AirflowSkipException(str(skipped)) from None
    except StepFailed as failed:
        raise AirflowFailException(str(failed)) from None
    extra = result.extra()
    get_current_context()["outlet_events"][outlet].extra = extra
    return extra


def _day(config: ProviderConfig) -> str:
    """The day a run covers: the ``day`` param, else the first day of the run's data interval
    (the daily timetable's run at midnight covers the day that just ended)."""
    context = get_current_context()
    day = str(context["params"].get("day") or "")
    if day:
        return day
    start = context.get("data_interval_start") or context["logical_date"]
    return pendulum.instance(start).strftime("%Y-%m-%d")


def _run_id() -> str:
    return str(get_current_context()["run_id"])


def _prior(asset: Asset) -> list[PriorRequest]:
    """The asset's earlier events: the loop's memory of what it already requested."""
    events = get_current_context()["inlet_events"][asset]
    return [PriorRequest.from_extra(event.extra or {}, _epoch(event.timestamp)) for event in events]


def _epoch(value: datetime) -> float:
    return float(value.timestamp())


def _request(decide: Callable[[], dict[str, Any]], outlet: Asset) -> dict[str, Any]:
    try:
        extra = decide()
    except StepSkipped as skipped:
        raise AirflowSkipException(str(skipped)) from None
    get_current_context()["outlet_events"][outlet].extra = extra
    return extra


def _triggering_extra(asset: Asset) -> Mapping[str, Any]:
    """The newest event of ``asset`` that triggered this run (empty for a manual run)."""
    events = get_current_context()["triggering_asset_events"][asset]
    return dict(events[-1].extra or {}) if events else {}


def _score_baseline_task(config_factory: ConfigFactory) -> Any:
    """The ``score_baseline`` task, in the DAG being defined (the train and rollback DAGs)."""

    @task(outlets=[assets.SCORE_BASELINE])
    def score_baseline() -> dict[str, Any]:
        conf = config_factory()
        return _run(lambda: score_baseline_step(conf), assets.SCORE_BASELINE)

    return score_baseline()


def build_daily_dag(config_factory: ConfigFactory = ProviderConfig.from_env) -> DAG:
    config = config_factory()

    @dag(
        dag_id=DAILY_DAG,
        # Data intervals, not trigger times: the run after midnight covers the day that ended.
        schedule=CronDataIntervalTimetable("@daily", timezone="UTC"),
        start_date=pendulum.datetime(config.start.year, config.start.month, config.start.day),
        catchup=False,
        tags=TAGS,
        params={"day": Param("", type="string", description="YYYY-MM-DD; empty: the run's day")},
        doc_md=__doc__,
    )
    def aiops_reference_daily() -> None:
        @task(outlets=[assets.SNAPSHOT])
        def telemetry_snapshot() -> dict[str, Any]:
            conf = config_factory()
            return _run(lambda: snapshot_step(conf, _day(conf)), assets.SNAPSHOT)

        @task(outlets=[assets.FEATURES])
        def features() -> dict[str, Any]:
            conf = config_factory()
            return _run(lambda: features_step(conf, _day(conf)), assets.FEATURES)

        @task(outlets=[assets.FEATURES_DRIFT])
        def drift_check() -> dict[str, Any]:
            conf = config_factory()
            return _run(lambda: drift_step(conf, _day(conf), _run_id()), assets.FEATURES_DRIFT)

        @task(outlets=[assets.SCORES])
        def anomaly_scores() -> dict[str, Any]:
            conf = config_factory()
            return _run(lambda: score_step(conf, _day(conf), _run_id()), assets.SCORES)

        @task(inlets=[assets.RETRAIN_REQUEST], outlets=[assets.RETRAIN_REQUEST])
        def request_retraining(drift: Any) -> dict[str, Any]:
            conf = config_factory()
            return _request(
                lambda: retrain_request(
                    _day(conf),
                    drift["checks"]["drift"],
                    _prior(assets.RETRAIN_REQUEST),
                    now=time.time(),
                    cooldown_seconds=conf.retrain_cooldown_seconds,
                ),
                assets.RETRAIN_REQUEST,
            )

        @task(inlets=[assets.ROLLBACK_REQUEST], outlets=[assets.ROLLBACK_REQUEST])
        def request_rollback(scores: Any) -> dict[str, Any]:
            conf = config_factory()
            champion = conf.ledger().get_alias(MODEL_NAME, CHAMPION)
            return _request(
                lambda: rollback_request(
                    _day(conf),
                    scores["checks"][PERFORMANCE_CHECK_NAME],
                    champion,
                    _prior(assets.ROLLBACK_REQUEST),
                ),
                assets.ROLLBACK_REQUEST,
            )

        # After the day's checks, whatever they decided (a skipped scoring still has a report).
        @task(outlets=[assets.MONITORING_REPORT], trigger_rule="all_done")
        def monitoring_report() -> dict[str, Any]:
            conf = config_factory()
            return _run(lambda: monitoring_report_step(conf, _day(conf)), assets.MONITORING_REPORT)

        snapshot = telemetry_snapshot()
        day_features = features()
        snapshot >> day_features
        drift = drift_check()
        scores = anomaly_scores()
        day_features >> [drift, scores]
        request_retraining(drift)
        request_rollback(scores)
        [snapshot, drift, scores] >> monitoring_report()

    return aiops_reference_daily()


def build_train_dag(config_factory: ConfigFactory = ProviderConfig.from_env) -> DAG:
    config = config_factory()

    @dag(
        dag_id=TRAIN_DAG,
        schedule=[assets.RETRAIN_REQUEST],
        start_date=pendulum.datetime(config.start.year, config.start.month, config.start.day),
        catchup=False,
        tags=TAGS,
        params={"until": Param("", type="string", description="train on days up to this one")},
        doc_md=__doc__,
    )
    def aiops_reference_train() -> None:
        @task(outlets=[assets.DRIFT_BASELINE])
        def drift_baseline() -> dict[str, Any]:
            conf = config_factory()
            return _run(lambda: drift_baseline_step(conf), assets.DRIFT_BASELINE)

        @task(outlets=[assets.TRAINING_SET])
        def training_set() -> dict[str, Any]:
            conf = config_factory()
            params = get_current_context()["params"]
            until = str(params.get("until") or "") or str(
                _triggering_extra(assets.RETRAIN_REQUEST).get("until", "")
            )
            return _run(
                lambda: training_set_step(conf, _run_id(), TrainingSetSettings(until=until)),
                assets.TRAINING_SET,
            )

        @task(outlets=[assets.CANDIDATE])
        def candidate_model() -> dict[str, Any]:
            conf = config_factory()
            return _run(lambda: candidate_step(conf, _run_id()), assets.CANDIDATE)

        @task(outlets=[assets.CHAMPION])
        def champion_model() -> dict[str, Any]:
            conf = config_factory()
            return _run(lambda: champion_gate_step(conf, _run_id()), assets.CHAMPION)

        # Rebuilt after every gate decision: the champion it profiles may have changed.
        gated = drift_baseline() >> training_set() >> candidate_model() >> champion_model()
        gated >> _score_baseline_task(config_factory)

    return aiops_reference_train()


def build_rollback_dag(config_factory: ConfigFactory = ProviderConfig.from_env) -> DAG:
    config = config_factory()

    @dag(
        dag_id=ROLLBACK_DAG,
        schedule=[assets.ROLLBACK_REQUEST],
        start_date=pendulum.datetime(config.start.year, config.start.month, config.start.day),
        catchup=False,
        tags=TAGS,
        params={"reason": Param("", type="string", description="recorded with the rollback")},
        doc_md=__doc__,
    )
    def aiops_reference_rollback() -> None:
        @task(inlets=[assets.ROLLBACK_REQUEST], outlets=[assets.CHAMPION])
        def rollback() -> dict[str, Any]:
            conf = config_factory()
            reason = str(get_current_context()["params"].get("reason") or "") or str(
                _triggering_extra(assets.ROLLBACK_REQUEST).get("reason", "")
            )
            return _run(lambda: rollback_step(conf, _run_id(), reason), assets.CHAMPION)

        # Also when the rollback found no good version: the report says what changed.
        @task(outlets=[assets.INCIDENT_REPORT], trigger_rule="all_done")
        def incident_report() -> dict[str, Any]:
            conf = config_factory()
            return _run(lambda: incident_step(conf), assets.INCIDENT_REPORT)

        rolled_back = rollback()
        rolled_back >> incident_report()
        # The restored champion's scores are the prediction-drift reference again.
        rolled_back >> _score_baseline_task(config_factory)

    return aiops_reference_rollback()


def build_reference_dags(
    config_factory: ConfigFactory = ProviderConfig.from_env,
) -> dict[str, DAG]:
    """The three DAGs by id; a DAG file assigns them to module globals for the DAG processor."""
    return {
        DAILY_DAG: build_daily_dag(config_factory),
        TRAIN_DAG: build_train_dag(config_factory),
        ROLLBACK_DAG: build_rollback_dag(config_factory),
    }


__all__ = [
    "DAILY_DAG",
    "ROLLBACK_DAG",
    "TRAIN_DAG",
    "build_daily_dag",
    "build_reference_dags",
    "build_rollback_dag",
    "build_train_dag",
]
