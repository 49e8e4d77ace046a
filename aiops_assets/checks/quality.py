"""Data-quality asset checks from Great Expectations 1.x suites.

Two ways to use a suite:

- :func:`build_quality_checks` makes standalone asset checks for any asset whose value is a pandas
  DataFrame (ours or a host project's), partitioned with the asset. The ERROR check is blocking, so
  downstream assets of a failing partition do not run in the same run; the WARN check never blocks.
- :class:`QualityGate` runs the same suite *inside* an asset, before its output is stored. The
  reference snapshot uses it, because only a gate inside the asset can keep a failing snapshot from
  ever becoming the partition's current version (it is quarantined instead).

Both report per expectation (passed, observed value, unexpected count and percentage, a sample of
failing rows and the implicated slices) as a table, plus a markdown summary, plus float metadata
the UI plots over time.
"""

import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import dagster as dg
import pandas as pd

from aiops_assets.core.quality import (
    QualitySuite,
    Severity,
    SuiteReport,
    load_suite,
    validate_frame,
    window_parameters,
)
from aiops_assets.io import partition_frame
from aiops_assets.metadata import partition_window, table_metadata

_DAGSTER_SEVERITY = {
    Severity.ERROR: dg.AssetCheckSeverity.ERROR,
    Severity.WARN: dg.AssetCheckSeverity.WARN,
}


def check_spec(
    name: str,
    asset_key: dg.AssetKey,
    *,
    partitions_def: dg.PartitionsDefinition | None,
    blocking: bool = False,
    description: str | None = None,
) -> dg.AssetCheckSpec:
    """An ``AssetCheckSpec`` partitioned like its asset.

    Partitioned checks are a preview feature in Dagster 1.13; they are the only way to record one
    result per partition, which is what a daily pipeline needs, so the preview notice is muted here.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", dg.PreviewWarning)
        return dg.AssetCheckSpec(
            name,
            asset=asset_key,
            blocking=blocking,
            description=description,
            partitions_def=partitions_def,
        )


def quality_check_name(suite: QualitySuite, severity: Severity) -> str:
    return f"{suite.name}_{severity.value.lower()}"


def partition_parameters(
    context: dg.AssetExecutionContext | dg.AssetCheckExecutionContext,
) -> dict[str, Any]:
    """Suite parameters describing the partition being checked (its time window, if any)."""
    try:
        start, end = partition_window(context)
    except Exception:  # unpartitioned, or not time-partitioned: there is no window to check
        return window_parameters(pd.Timestamp.min, pd.Timestamp.max)
    return window_parameters(start, end)


_REPORT_COLUMNS = [
    ("expectation", "string"),
    ("columns", "string"),
    ("severity", "string"),
    ("passed", "bool"),
    ("observed", "string"),
    ("unexpected_count", "int"),
    ("unexpected_percent", "float"),
    ("slices", "string"),
    ("failing_rows", "string"),
]


def report_metadata(report: SuiteReport, suite: QualitySuite, severity: Severity) -> dict[str, Any]:
    rows = report.table_rows(severity)
    failures = report.failures(severity)
    return {
        "summary": dg.MetadataValue.md(report.summary_markdown(severity)),
        "expectations": table_metadata(rows, _REPORT_COLUMNS),
        "failed_expectations": dg.MetadataValue.float(float(len(failures))),
        "unexpected_rows": dg.MetadataValue.float(float(sum(f.unexpected_count for f in failures))),
        "rows": dg.MetadataValue.int(report.rows),
        "suite": dg.MetadataValue.text(suite.version_id),
        "suite_sha256": dg.MetadataValue.text(suite.sha256),
        "implicated_slices": dg.MetadataValue.text(
            ", ".join(
                f"{name} ({count})" for name, count in report.implicated_slices(severity).items()
            )
        ),
    }


def check_result(
    report: SuiteReport,
    suite: QualitySuite,
    severity: Severity,
    *,
    asset_key: dg.AssetKey | None = None,
    extra_metadata: Mapping[str, Any] | None = None,
) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(
        asset_key=asset_key,
        check_name=quality_check_name(suite, severity),
        passed=report.passed(severity),
        severity=_DAGSTER_SEVERITY[severity],
        metadata={**report_metadata(report, suite, severity), **(extra_metadata or {})},
    )


def _resolve_suite(suite: QualitySuite | str | Path, default_severity: Severity) -> QualitySuite:
    if isinstance(suite, QualitySuite):
        return suite
    return load_suite(suite, default_severity=default_severity)


class QualityGate:
    """A suite run inside an asset: its check specs, and its evaluation of the asset's frame.

    Args:
        asset_key: The asset the checks belong to.
        suite: A :class:`QualitySuite` or the path of a suite file.
        partitions_def: The asset's partitions, so results are recorded per partition.
        blocking: Whether the ERROR check blocks downstream assets (WARN never does).
    """

    def __init__(
        self,
        asset_key: dg.AssetKey,
        suite: QualitySuite | str | Path,
        *,
        partitions_def: dg.PartitionsDefinition | None,
        blocking: bool = True,
    ) -> None:
        self.asset_key = asset_key
        self.suite = _resolve_suite(suite, Severity.ERROR)
        self.specs = [
            check_spec(
                quality_check_name(self.suite, severity),
                asset_key,
                partitions_def=partitions_def,
                blocking=blocking and severity is Severity.ERROR,
                description=f"{severity.value} expectations of suite {self.suite.version_id}",
            )
            for severity in self.suite.severities()
        ]

    def validate(self, frame: pd.DataFrame, context: dg.AssetExecutionContext) -> SuiteReport:
        return validate_frame(frame, self.suite, parameters=partition_parameters(context))

    def results(
        self, report: SuiteReport, extra_metadata: Mapping[str, Any] | None = None
    ) -> list[dg.AssetCheckResult]:
        """One result per severity, to yield from the asset body after (or instead of) its output."""
        return [
            check_result(report, self.suite, severity, extra_metadata=extra_metadata)
            for severity in self.suite.severities()
        ]


def build_quality_checks(
    asset: dg.AssetsDefinition | dg.AssetSpec,
    suite: QualitySuite | str | Path,
    *,
    severity: Severity | str = Severity.ERROR,
    blocking: bool = True,
) -> list[dg.AssetChecksDefinition]:
    """Asset checks that run a GE suite on an asset whose value is a pandas DataFrame.

    One check per severity present in the suite, named ``<suite>_error`` and ``<suite>_warn``,
    partitioned like the asset. Each runs only its own expectations, so the suite is evaluated once
    in total.

    Args:
        asset: The asset to check; its IO manager must load a DataFrame (or, for our artifact IO
            manager, a dict of one partition's DataFrame).
        suite: A :class:`QualitySuite` or the path of a suite YAML file.
        severity: Severity of suite entries that do not name one: ``"ERROR"`` or ``"WARN"``.
        blocking: Whether the ERROR check blocks downstream assets. WARN never blocks.

    Example:
        >>> checks = build_quality_checks(my_metrics_asset, "suites/metrics.yaml")  # doctest: +SKIP
        >>> defs = dg.Definitions(assets=[my_metrics_asset], asset_checks=checks)  # doctest: +SKIP
    """
    resolved = _resolve_suite(suite, Severity(str(severity).upper()))
    asset_key = asset.key
    partitions_def = asset.partitions_def
    checks = []
    for level in resolved.severities():
        checks.append(
            _build_one_check(
                asset_key,
                resolved.only(level),
                level,
                partitions_def,
                blocking and level is Severity.ERROR,
            )
        )
    return checks


def _build_one_check(
    asset_key: dg.AssetKey,
    suite: QualitySuite,
    severity: Severity,
    partitions_def: dg.PartitionsDefinition | None,
    blocking: bool,
) -> dg.AssetChecksDefinition:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", dg.PreviewWarning)

        @dg.asset_check(
            asset=asset_key,
            name=quality_check_name(suite, severity),
            blocking=blocking,
            partitions_def=partitions_def,
            description=f"{severity.value} expectations of suite {suite.version_id}",
        )
        def quality_check(
            context: dg.AssetCheckExecutionContext, frame: Any
        ) -> dg.AssetCheckResult:
            data = partition_frame(frame, context, purpose="quality checks")
            report = validate_frame(data, suite, parameters=partition_parameters(context))
            if not report.passed(severity):
                context.log.warning(
                    report.failure_message(severity, subject=_subject(asset_key, context))
                )
            return check_result(report, suite, severity)

    return quality_check


def _subject(asset_key: dg.AssetKey, context: dg.AssetCheckExecutionContext) -> str:
    partition = f"[{context.partition_key}]" if context.has_partition_key else ""
    return f"{asset_key.to_user_string()}{partition}"
