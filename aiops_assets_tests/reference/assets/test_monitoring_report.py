"""``monitoring_report`` through ``dg.materialize``: its rows are partition days, each with the
drift, quality and performance its checks recorded for that day (the latest run of a re-run day).
"""

import base64
from typing import Any

import dagster as dg
import pytest

from aiops_assets.reference.assets.monitoring_report import build_monitoring_report_asset

DAYS = dg.DailyPartitionsDefinition(start_date="2026-04-01", end_date="2026-04-06")
# What each day's checks find; the test changes it between runs.
FINDINGS: dict[str, dict[str, Any]] = {}


@dg.asset(partitions_def=DAYS)
def scores() -> int:
    return 1


def _finding(context: dg.AssetCheckExecutionContext) -> dict[str, Any]:
    return FINDINGS[context.partition_key]


@dg.asset_check(asset=scores, name="drift", partitions_def=DAYS)
def drift(context: dg.AssetCheckExecutionContext) -> dg.AssetCheckResult:
    effect = _finding(context)["effect"]
    return dg.AssetCheckResult(
        passed=effect < 0.5,
        metadata={
            "score/latency": dg.MetadataValue.float(effect),
            "score/cpu": dg.MetadataValue.float(effect / 2),
            "drifted": dg.MetadataValue.text("latency" if effect >= 0.5 else ""),
        },
    )


@dg.asset_check(asset=scores, name="quality", partitions_def=DAYS)
def quality(context: dg.AssetCheckExecutionContext) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(
        passed=_finding(context)["quality"], severity=dg.AssetCheckSeverity.WARN
    )


@dg.asset_check(asset=scores, name="performance", partitions_def=DAYS)
def performance(context: dg.AssetCheckExecutionContext) -> dg.AssetCheckResult:
    f1 = _finding(context)["f1"]
    return dg.AssetCheckResult(
        passed=f1 >= 0.6,
        metadata={
            "f1": dg.MetadataValue.float(f1),
            "false_alarm_rate": dg.MetadataValue.float(1 - f1),
        },
    )


REPORT = build_monitoring_report_asset(
    DAYS,
    scores_key=scores.key,
    drift_checks=[drift.check_key],
    quality_checks=[quality.check_key],
    performance_check=performance.check_key,
)


def _score(instance: dg.DagsterInstance, day: str, **finding: Any) -> None:
    FINDINGS[day] = finding
    result = dg.materialize(
        [scores, drift, quality, performance], instance=instance, partition_key=day
    )
    assert result.success


def _report(instance: dg.DagsterInstance, day: str, partitions: int = 14) -> dict[str, Any]:
    result = dg.materialize(
        [REPORT],
        instance=instance,
        partition_key=day,
        run_config={"ops": {"monitoring_report": {"config": {"partitions": partitions}}}},
        # The report reads history; it does not load the scores.
        selection=[REPORT.key],
    )
    (event,) = result.get_asset_materialization_events()
    return dict(event.step_materialization_data.materialization.metadata)


def test_rows_are_partition_days_with_what_their_checks_recorded(
    instance: dg.DagsterInstance,
) -> None:
    _score(instance, "2026-04-01", effect=0.1, quality=True, f1=0.9)
    _score(instance, "2026-04-02", effect=0.8, quality=False, f1=0.4)
    _score(instance, "2026-04-03", effect=0.2, quality=True, f1=0.7)
    # The first day is re-scored after the others: its latest verdict replaces the first.
    _score(instance, "2026-04-01", effect=0.3, quality=True, f1=0.8)

    metadata = _report(instance, "2026-04-03")
    rows = [record.data for record in metadata["by_partition"].value.records]
    assert [row["partition"] for row in rows] == ["2026-04-01", "2026-04-02", "2026-04-03"]
    assert [row["drift"] for row in rows] == ["pass", "FAIL", "pass"]
    assert [row["drift_max_effect"] for row in rows] == [0.3, 0.8, 0.2]
    assert [row["drifted"] for row in rows] == ["", "latency", ""]
    assert [row["quality"] for row in rows] == ["pass", "WARN", "pass"]
    assert rows[1]["quality_failed"] == "scores.quality"
    assert [row["performance"] for row in rows] == ["pass", "FAIL", "pass"]
    assert [row["f1"] for row in rows] == [0.8, 0.4, 0.7]
    assert rows[0]["false_alarm_rate"] == pytest.approx(0.2)
    # This day's numbers as floats too, and the same table in the markdown report.
    assert metadata["f1"].value == pytest.approx(0.7)
    markdown = metadata["report"].value
    (line,) = [line for line in markdown.splitlines() if line.startswith("| 2026-04-02 |")]
    assert [cell.strip() for cell in line.strip("|").split("|")][:4] == [
        "2026-04-02",
        "FAIL",
        "0\\.8000",  # escaped: markdown would read a leading "0." as a list item
        "latency",
    ]


def test_the_window_ends_at_the_partition_and_days_without_checks_stay_empty(
    instance: dg.DagsterInstance,
) -> None:
    _score(instance, "2026-04-01", effect=0.1, quality=True, f1=0.9)
    _score(instance, "2026-04-04", effect=0.6, quality=True, f1=0.9)
    metadata = _report(instance, "2026-04-03", partitions=2)
    rows = [record.data for record in metadata["by_partition"].value.records]
    # Two days ending with the report's own: the fourth is the future, the first too old.
    assert [row["partition"] for row in rows] == ["2026-04-02", "2026-04-03"]
    assert all(row["drift"] == "" and row["performance"] == "" for row in rows)
    assert "f1" not in metadata


def test_the_chart_is_embedded_when_matplotlib_is_installed(
    instance: dg.DagsterInstance,
) -> None:
    pytest.importorskip("matplotlib", reason="the plots extra draws the chart")
    _score(instance, "2026-04-01", effect=0.1, quality=True, f1=0.9)
    markdown = _report(instance, "2026-04-01")["report"].value
    encoded = markdown.split("data:image/png;base64,", 1)[1].split(")", 1)[0]
    assert base64.b64decode(encoded).startswith(b"\x89PNG")
