"""The example DAG file parses, and neither it nor the provider brings Dagster in."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from aiops_assets.airflow.dags import DAILY_DAG, ROLLBACK_DAG, TRAIN_DAG
from aiops_assets_tests.airflow.conftest import EXAMPLE_DAGS


def test_the_example_dags_parse_without_import_errors(airflow_db: Path) -> None:
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(EXAMPLE_DAGS))
    assert bag.import_errors == {}
    assert set(bag.dag_ids) == {DAILY_DAG, TRAIN_DAG, ROLLBACK_DAG}
    daily = bag.get_dag(DAILY_DAG)
    assert daily is not None
    assert {task.task_id for task in daily.tasks} == {
        "telemetry_snapshot",
        "features",
        "drift_check",
        "anomaly_scores",
        "request_retraining",
        "request_rollback",
        "monitoring_report",
    }
    outlets = {task.task_id: [asset.uri for asset in task.outlets] for task in daily.tasks}
    assert outlets["telemetry_snapshot"] == ["aiops://reference/telemetry_snapshot"]
    assert outlets["request_retraining"] == ["aiops://reference/retrain_request"]
    assert outlets["monitoring_report"] == ["aiops://reference/monitoring_report"]
    for dag_id in (TRAIN_DAG, ROLLBACK_DAG):  # the champion changes there: so does its baseline
        dag = bag.get_dag(dag_id)
        assert dag is not None and "score_baseline" in {task.task_id for task in dag.tasks}


@pytest.mark.subprocess
def test_the_dag_file_and_the_provider_load_no_dagster_module() -> None:
    script = (
        "import sys\n"
        "import aiops_assets.airflow.example_dags.reference_pipeline\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0].startswith('dagster')))\n"
    )
    output = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    )
    assert output.stdout.strip().splitlines()[-1] == "[]", output.stdout
