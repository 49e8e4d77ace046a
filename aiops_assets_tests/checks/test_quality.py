"""build_quality_checks on an asset that is not ours: its own IO manager, its own columns."""

from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from aiops_assets.checks.quality import build_quality_checks
from aiops_assets.core.quality import Severity, load_suite

PARTITIONS = dg.DailyPartitionsDefinition(start_date="2026-02-01", end_date="2026-02-04")
BAD_DAY = "2026-02-02"

SUITE_YAML = """
name: queue_metrics
version: 3
slice_by: queue
row_id_columns: [queue, ts]
expectations:
  - {type: expect_column_values_to_be_between, kwargs: {column: depth, min_value: 0}, severity: ERROR}
  - {type: expect_column_values_to_be_between, kwargs: {column: ts, min_value: {$PARAMETER: partition_start}, max_value: {$PARAMETER: partition_end}, strict_max: true}}
  - {type: expect_column_values_to_not_be_null, kwargs: {column: lag_s, mostly: 0.9}, severity: WARN}
"""


@dg.asset(partitions_def=PARTITIONS)
def queue_metrics(context: dg.AssetExecutionContext) -> pd.DataFrame:
    start = context.partition_time_window.start.replace(tzinfo=None)
    frame = pd.DataFrame(
        {
            "ts": pd.date_range(start, periods=24, freq="h"),
            "queue": ["orders", "mail"] * 12,
            "depth": [float(i) for i in range(24)],
            "lag_s": [None] * 12 + [1.0] * 12,
        }
    )
    if context.partition_key == BAD_DAY:
        frame.loc[[3, 5], "depth"] = -7.0
    return frame


@dg.asset(partitions_def=PARTITIONS)
def queue_report(queue_metrics: pd.DataFrame) -> int:
    return len(queue_metrics)


@pytest.fixture
def suite_path(tmp_path: Path) -> Path:
    path = tmp_path / "queue_metrics.yaml"
    path.write_text(SUITE_YAML)
    return path


def _run(
    suite_path: Path, partition_key: str, instance: dg.DagsterInstance, **options: object
) -> dg.ExecuteInProcessResult:
    checks = build_quality_checks(queue_metrics, suite_path, **options)  # type: ignore[arg-type]
    return dg.materialize(
        [queue_metrics, queue_report, *checks],
        instance=instance,
        partition_key=partition_key,
        raise_on_error=False,
    )


def _materialized(result: dg.ExecuteInProcessResult) -> set[str]:
    return {
        event.asset_key.to_user_string()
        for event in result.get_asset_materialization_events()
        if event.asset_key is not None
    }


def test_one_check_per_severity_partitioned_like_the_asset(suite_path: Path) -> None:
    checks = build_quality_checks(queue_metrics, suite_path)
    specs = {spec.name: spec for check in checks for spec in check.check_specs}
    assert set(specs) == {"queue_metrics_error", "queue_metrics_warn"}
    assert specs["queue_metrics_error"].blocking and not specs["queue_metrics_warn"].blocking
    assert all(spec.partitions_def == PARTITIONS for spec in specs.values())
    # An entry without a severity takes the factory's default.
    warn_only = build_quality_checks(queue_metrics, suite_path, severity=Severity.WARN)
    assert {spec.name for check in warn_only for spec in check.check_specs} == {
        "queue_metrics_error",
        "queue_metrics_warn",
    }
    assert (
        len(load_suite(suite_path, default_severity=Severity.WARN).only(Severity.WARN).expectations)
        == 2
    )


def test_good_data_passes_and_downstream_runs(
    suite_path: Path, instance: dg.DagsterInstance
) -> None:
    result = _run(suite_path, "2026-02-01", instance)
    assert result.success
    evaluations = {e.check_name: e for e in result.get_asset_check_evaluations()}
    assert evaluations["queue_metrics_error"].passed
    assert evaluations["queue_metrics_error"].partition == "2026-02-01"
    # lag_s is half empty: a WARN failure, reported but not blocking.
    assert not evaluations["queue_metrics_warn"].passed
    assert evaluations["queue_metrics_warn"].severity == dg.AssetCheckSeverity.WARN
    materialized = _materialized(result)
    assert materialized == {"queue_metrics", "queue_report"}


def test_an_error_failure_blocks_downstream_and_reports_the_rows(
    suite_path: Path, instance: dg.DagsterInstance
) -> None:
    result = _run(suite_path, BAD_DAY, instance)
    assert not result.success
    evaluation = next(
        e for e in result.get_asset_check_evaluations() if e.check_name == "queue_metrics_error"
    )
    assert not evaluation.passed and evaluation.severity == dg.AssetCheckSeverity.ERROR
    metadata = evaluation.metadata
    assert metadata["failed_expectations"].value == 1.0
    assert metadata["unexpected_rows"].value == 2.0
    assert metadata["implicated_slices"].value == "queue=mail (2)"
    table = metadata["expectations"]
    assert isinstance(table, dg.TableMetadataValue)
    (failing,) = [record.data for record in table.value.records if not record.data["passed"]]
    assert failing["columns"] == "depth" and failing["unexpected_count"] == 2
    assert "2026-02-02T03:00:00" in str(failing["failing_rows"])
    assert "depth" in str(metadata["summary"].value)
    assert str(metadata["suite"].value).startswith("queue_metrics-v3-")
    materialized = _materialized(result)
    assert materialized == {"queue_metrics"}, "queue_report must not run on bad data"


def test_non_blocking_error_checks_let_downstream_run(
    suite_path: Path, instance: dg.DagsterInstance
) -> None:
    result = _run(suite_path, BAD_DAY, instance, blocking=False)
    materialized = _materialized(result)
    assert materialized == {"queue_metrics", "queue_report"}
    assert not next(
        e for e in result.get_asset_check_evaluations() if e.check_name == "queue_metrics_error"
    ).passed
