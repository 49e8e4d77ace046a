"""``alert_on_run_failure``: a failed run of a watched job becomes one ERROR alert linking it."""

from __future__ import annotations

import json
from pathlib import Path

import dagster as dg
import pytest

from aiops_assets.resources import AlertSinkResource
from aiops_assets.sensors.run_failure import build_alert_on_run_failure_sensor


@dg.op
def fetch_telemetry() -> None:
    raise dg.Failure(description="prometheus at 127.0.0.1:9090 refused the connection")


@dg.job
def nightly_ingest() -> None:
    fetch_telemetry()


def test_a_failed_run_is_alerted_with_its_partition_and_link(
    instance: dg.DagsterInstance, tmp_path: Path
) -> None:
    outbox = tmp_path / "alerts.jsonl"
    result = nightly_ingest.execute_in_process(
        instance=instance, raise_on_error=False, tags={"dagster/partition": "2026-03-09"}
    )
    assert not result.success
    sensor = build_alert_on_run_failure_sensor([nightly_ingest])
    context = dg.build_run_status_sensor_context(
        sensor_name=sensor.name,
        dagster_event=result.get_run_failure_event(),
        dagster_instance=instance,
        dagster_run=result.dagster_run,
        resources={
            "alert_sink": AlertSinkResource(outbox_path=str(outbox), ui_url="http://ui.example")
        },
    ).for_run_failure()
    sensor(context)
    [alert] = [json.loads(line) for line in outbox.read_text().splitlines()]
    assert (alert["kind"], alert["severity"]) == ("run_failed", "ERROR")
    assert alert["summary"].startswith(f"nightly_ingest[2026-03-09] run {result.run_id[:8]} failed")
    assert "step fetch_telemetry: prometheus at 127.0.0.1:9090 refused" in alert["summary"]
    assert alert["run_url"] == f"http://ui.example/runs/{result.run_id}"


def test_a_sensor_watching_no_job_is_refused() -> None:
    with pytest.raises(ValueError, match="name at least one job"):
        build_alert_on_run_failure_sensor([])
