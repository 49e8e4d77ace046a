"""``monitoring_report``: per partition, the drift, quality and performance of the last days.

The UI plots each check's numbers against the time they were recorded, which for a replay or a
backfill is minutes apart and for a re-run day twice. This asset lays the latest verdict of each
day out by partition day, as a ``MetadataValue.table`` and a markdown report with a chart, so
"since when does it drift?" reads off one page. It reads the check history through
``aiops_assets.check_history``, the one place the plugin reads it.
"""

from collections.abc import Iterable, Sequence
from typing import Any

import dagster as dg

from aiops_assets.check_history import check_execution_pages, evaluation_of
from aiops_assets.core import monitoring_report as report
from aiops_assets.metadata import table_metadata

DEFAULT_PARTITIONS = 14
# Bumped when the report's layout changes (a new column, another reading of a verdict).
REPORT_CODE_VERSION = "monitoring_report-1"


class MonitoringReportConfig(dg.Config):
    """How far back the report looks."""

    partitions: int = DEFAULT_PARTITIONS


def build_monitoring_report_asset(
    partitions_def: dg.TimeWindowPartitionsDefinition,
    *,
    scores_key: dg.AssetKey,
    drift_checks: Sequence[dg.AssetCheckKey],
    quality_checks: Sequence[dg.AssetCheckKey],
    performance_check: dg.AssetCheckKey,
    automation_condition: dg.AutomationCondition | None = None,
    freshness_policy: dg.FreshnessPolicy | None = None,
    name: str = "monitoring_report",
) -> dg.AssetsDefinition:
    """The report asset, partitioned like the scores it follows.

    It depends on ``scores_key`` without loading it: what it reads are the checks' verdicts,
    recorded when the scores' run ended. ``automation_condition`` lets the automation sensor
    materialize it once that run is over (a job that ran it beside the checks could run it first).
    """

    @dg.asset(
        name=name,
        partitions_def=partitions_def,
        deps=[scores_key],
        code_version=REPORT_CODE_VERSION,
        group_name="aiops",
        kinds={"markdown"},
        automation_condition=automation_condition,
        freshness_policy=freshness_policy,
        description=(
            "Drift, quality and performance of the last days, by partition day: a table and a "
            "chart of each day's latest check verdicts (the UI's own plots are by run time)."
        ),
    )
    def monitoring_report(
        context: dg.AssetExecutionContext, config: MonitoringReportConfig
    ) -> dg.MaterializeResult:
        if config.partitions < 1:
            raise dg.Failure(f"partitions must be 1 or more; got {config.partitions}")
        window = report_window(partitions_def, context.partition_key, config.partitions)
        days = day_reports(
            context.instance, window, drift_checks, quality_checks, performance_check
        )
        return dg.MaterializeResult(metadata=report_metadata(days, context))

    return monitoring_report


def report_window(
    partitions_def: dg.TimeWindowPartitionsDefinition, partition_key: str, count: int
) -> list[str]:
    """The ``count`` partitions ending with ``partition_key``, oldest first."""
    keys = list(partitions_def.get_partition_keys())
    end = keys.index(partition_key) + 1 if partition_key in keys else len(keys)
    return keys[max(0, end - count) : end]


def latest_verdicts(
    instance: dg.DagsterInstance, check_key: dg.AssetCheckKey, partitions: Iterable[str]
) -> dict[str, report.CheckVerdict]:
    """The latest completed evaluation of ``check_key`` on each of ``partitions``.

    Newest first, so the first one read for a partition is its latest (a re-run day counts
    once, as its re-run); reading stops once every partition has one.
    """
    wanted = set(partitions)
    found: dict[str, report.CheckVerdict] = {}
    for records in check_execution_pages(instance, check_key):
        for record in records:
            partition = record.partition
            evaluation = evaluation_of(record)
            if partition not in wanted or partition in found or evaluation is None:
                continue
            found[partition] = report.CheckVerdict(
                check=f"{check_key.asset_key.to_user_string()}.{check_key.name}",
                passed=bool(evaluation.passed),
                severity=str(getattr(evaluation.severity, "value", evaluation.severity)),
                metadata={key: _plain(value) for key, value in evaluation.metadata.items()},
            )
        if len(found) == len(wanted):
            break
    return found


def _plain(value: Any) -> Any:
    return getattr(value, "value", value)


def day_reports(
    instance: dg.DagsterInstance,
    window: Sequence[str],
    drift_checks: Sequence[dg.AssetCheckKey],
    quality_checks: Sequence[dg.AssetCheckKey],
    performance_check: dg.AssetCheckKey,
) -> list[report.DayReport]:
    """One `DayReport` per partition of ``window``, in order."""

    def verdicts(keys: Sequence[dg.AssetCheckKey]) -> list[dict[str, report.CheckVerdict]]:
        return [latest_verdicts(instance, key, window) for key in keys]

    drift, quality = verdicts(drift_checks), verdicts(quality_checks)
    performance = latest_verdicts(instance, performance_check, window)
    return [
        report.DayReport(
            partition=day,
            drift=[found[day] for found in drift if day in found],
            quality=[found[day] for found in quality if day in found],
            performance=performance.get(day),
        )
        for day in window
    ]


def report_metadata(
    days: Sequence[report.DayReport], context: dg.AssetExecutionContext
) -> dict[str, Any]:
    """The table, the markdown report (with its chart when matplotlib is installed) and this
    day's numbers as floats."""
    title = f"Monitoring, {days[0].partition} to {days[-1].partition}" if days else "Monitoring"
    try:
        png: bytes | None = report.render_png(days)
    except report.PlotsUnavailable as error:
        context.log.info(f"no chart: {error}")
        png = None
    today = days[-1].row() if days else {}
    return {
        "by_partition": table_metadata([day.row() for day in days], report.COLUMNS),
        "report": dg.MetadataValue.md(report.markdown(days, title=title, png=png)),
        "partitions": dg.MetadataValue.int(len(days)),
        **{
            name: dg.MetadataValue.float(float(today[name]))
            for name in ("drift_max_effect", "f1", "false_alarm_rate")
            if today.get(name) is not None
        },
    }
