"""Checks that stay red while a data fault lasts: each partition against a fixed baseline profile.

A performance check on scores fails once when a service's latency starts arriving in seconds,
then passes: the rolling features absorb the change within a day while the data stays wrong. The
checks here judge the raw partition against the drift baseline profile of the partitions the model
was trained on (``build_drift_baseline_asset`` of the raw asset), service by service, so a unit
change, a x3 latency or a x12 error rate fails on every partition it lasts and passes again the
first partition the data is back. The statistics live in ``core/baseline_quality.py``.

Both checks fail at WARN or ERROR severity and never block: the data may be real (a launch can
triple traffic), so a failing partition is shown, alerted and explained, never quarantined.
"""

import math
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import dagster as dg

from aiops_assets.baselines import reference_partition_count
from aiops_assets.check_history import check_execution_pages, evaluation_of
from aiops_assets.checks.drift import check_against_baseline
from aiops_assets.core.baseline_quality import (
    BaselineQualityReport,
    BaselineTolerances,
    Comparison,
    LabelColumnHealth,
    compare_with_baseline,
    label_column_health,
)
from aiops_assets.core.drift import BaselineProfile
from aiops_assets.core.features import LABEL
from aiops_assets.core.label_health import NORMAL_ALERT_FACTOR, LabelHealth, assess_labels
from aiops_assets.core.markdown import md_text
from aiops_assets.core.models import ALERT
from aiops_assets.core.store import ArtifactRef, ArtifactStore
from aiops_assets.io import asset_ref_name, partition_frame
from aiops_assets.keys import BASELINE_QUALITY_CHECK_NAME, LABEL_HEALTH_CHECK_NAME
from aiops_assets.metadata import table_metadata
from aiops_assets.resources import ArtifactStoreResource

_SEVERITY = {"warn": dg.AssetCheckSeverity.WARN, "error": dg.AssetCheckSeverity.ERROR}
# How many of a check's executions are read back to find the previous partition's result.
_HISTORY_PAGE = 100


def build_baseline_quality_checks(
    asset: dg.AssetsDefinition | dg.AssetSpec,
    baseline: dg.AssetsDefinition | dg.AssetSpec,
    *,
    tolerances: BaselineTolerances | None = None,
    columns: Sequence[str] | None = None,
    name: str = BASELINE_QUALITY_CHECK_NAME,
) -> list[dg.AssetChecksDefinition]:
    """A check of each partition of ``asset`` against a fixed baseline profile, per service.

    Every service's level, spread and rows are compared with its own slice of the profile
    ``baseline`` stores.

    The check fails when a service's median, interquartile range or row count is beyond its
    tolerance factor (``BaselineTolerances``; by default x2.25, x4 and x2 either way) or when a
    service of the baseline has no rows. A probable unit change (a median factor near x1000,
    x0.001, ...) or a missing service fails at ERROR, anything else at WARN; the check never
    blocks. Its metadata says per service and column what is off, e.g. ``checkout
    latency_p99_ms median x0.001 vs baseline (0.048 vs 48.2) (probable unit change)``:

    - ``summary`` (markdown), ``headline`` (the worst three in one line), ``comparisons`` (a
      table of every comparison), ``findings`` (JSON: the failed ones, with ``since``, the
      first partition of the run of partitions each has failed in);
    - ``drifted_slices`` (``service=checkout, ...``, the key ``checks.drift.drifted_slices``
      reads), ``slice_verdicts`` (``{service: ok|warn|error}``), ``failed_comparisons`` and, per
      service, ``median_factor/service=<name>/<column>`` (plotted by the UI).

    Args:
        asset: The checked asset; its IO manager must load a DataFrame (or, for our artifact IO
            manager, a dict of one partition's DataFrame).
        baseline: An asset whose value is an ``ArtifactRef`` to a ``BaselineProfile`` of the
            same asset's reference partitions (see ``build_drift_baseline_asset``): a fixed
            reference, so a lasting fault keeps failing.
        tolerances: The factors; default ``BaselineTolerances()``.
        columns: The numeric columns judged; default every one the baseline profiles.
        name: The check's name.

    Example:
        >>> baseline = build_drift_baseline_asset(metrics, name="metrics_baseline")  # doctest: +SKIP
        >>> checks = build_baseline_quality_checks(metrics, baseline)  # doctest: +SKIP
    """
    settings = tolerances if tolerances is not None else BaselineTolerances()
    selected = list(columns) if columns is not None else None
    partitions_def = asset.partitions_def
    check_key = dg.AssetCheckKey(asset.key, name)

    def judge(
        context: dg.AssetCheckExecutionContext,
        profile: BaselineProfile,
        baseline_ref: ArtifactRef,
        current: Any,
    ) -> dg.AssetCheckResult:
        try:
            report = compare_with_baseline(profile, current, settings, columns=selected)
        except ValueError as error:
            raise dg.Failure(description=f"{check_key.to_user_string()}: {error}") from error
        previous = previous_partition_metadata(context, check_key, partitions_def)
        since = _failing_since(report, previous, _partition(context))
        if not report.passed:
            context.log.warning(f"{_subject(context, asset)}: {report.headline()}")
        return baseline_quality_result(
            report, baseline_sha256=baseline_ref.sha256, tolerances=settings, since=since
        )

    description = (
        f"Each service's level, spread and rows against the fixed baseline "
        f"{baseline.key.to_user_string()}: fails on every partition a data fault lasts"
    )
    return [
        check_against_baseline(
            asset,
            baseline,
            name=name,
            description=description,
            purpose="baseline quality checks",
            judge=judge,
        )
    ]


_COMPARISON_COLUMNS = [
    ("service", "string"),
    ("column", "string"),
    ("statistic", "string"),
    ("baseline", "float"),
    ("current", "float"),
    ("factor", "string"),
    ("tolerance", "string"),
    ("verdict", "string"),
]


def baseline_quality_result(
    report: BaselineQualityReport,
    *,
    baseline_sha256: str,
    tolerances: BaselineTolerances,
    since: Mapping[str, str] | None = None,
) -> dg.AssetCheckResult:
    """The check's result for one partition's report; ``since`` maps a finding key to the
    first partition of its run of failures."""
    since = since or {}
    findings = [
        {**item.to_dict(report.slice_column), "since": since.get(item.key)}
        for item in report.failures
    ]
    return dg.AssetCheckResult(
        passed=report.passed,
        severity=_SEVERITY.get(report.verdict, dg.AssetCheckSeverity.WARN),
        metadata={
            "summary": dg.MetadataValue.md(report.to_markdown(since)),
            "headline": dg.MetadataValue.text(report.headline()),
            "verdict": dg.MetadataValue.text(report.verdict),
            "comparisons": table_metadata(
                [_comparison_row(report, item) for item in report.comparisons],
                _COMPARISON_COLUMNS,
            ),
            "findings": dg.MetadataValue.json(findings),
            "failed_comparisons": dg.MetadataValue.float(float(len(findings))),
            "drifted_slices": dg.MetadataValue.text(
                ", ".join(report.slice_label(value) for value in report.failed_slices())
            ),
            "slice_verdicts": dg.MetadataValue.json(report.slice_verdicts()),
            "new_slices": dg.MetadataValue.text(", ".join(report.new_slices)),
            "tolerances": dg.MetadataValue.json(tolerances.to_dict()),
            "baseline_sha256": dg.MetadataValue.text(baseline_sha256),
            **_factor_metadata(report),
        },
    )


def _comparison_row(report: BaselineQualityReport, item: Comparison) -> dict[str, Any]:
    return {
        "service": report.slice_label(item.slice),
        "column": item.column or "",
        "statistic": item.statistic,
        "baseline": float(item.reference),
        "current": float(item.current),
        "factor": "" if item.factor is None else f"x{item.factor:.4g}",
        "tolerance": f"x{item.tolerance:.3g}",
        "verdict": ("unit change" if item.unit_change else "failed" if item.failed else "ok"),
    }


def _factor_metadata(report: BaselineQualityReport) -> dict[str, dg.MetadataValue]:
    """Each service's median factor per column: floats the UI plots over partitions."""
    return {
        f"median_factor/{report.slice_label(item.slice)}/{item.column}": dg.MetadataValue.float(
            float(item.factor)
        )
        for item in report.comparisons
        if item.statistic == "median" and item.factor is not None
    }


def _failing_since(
    report: BaselineQualityReport, previous: Mapping[str, Any], partition: str | None
) -> dict[str, str]:
    """Each failure's first partition: the previous partition's, when it failed the same way."""
    if partition is None:
        return {}
    before: dict[str, str] = {}
    value = previous.get("findings")
    for finding in getattr(value, "value", None) or []:
        if isinstance(finding, dict) and finding.get("since"):
            key = "/".join(
                [
                    str(finding.get("slice")),
                    str(finding.get("column") or "-"),
                    str(finding.get("statistic")),
                ]
            )
            before[key] = str(finding["since"])
    return {item.key: before.get(item.key, partition) for item in report.failures}


def build_label_health_checks(
    asset: dg.AssetsDefinition | dg.AssetSpec,
    baseline: dg.AssetsDefinition | dg.AssetSpec,
    *,
    label: str = LABEL,
    quiet_partitions: int = 3,
    name: str = LABEL_HEALTH_CHECK_NAME,
) -> list[dg.AssetChecksDefinition]:
    """A check of each partition's labels against the label's baseline profile.

    It fails at ERROR when labels are missing (NaN) or outside {0, 1}, and at WARN when every
    label is 1 (the baseline's positive rate is below one half) or every label is 0 for
    ``quiet_partitions`` partitions in a row while the baseline had both values: a label
    pipeline that broke. One quiet partition is no evidence (on generated telemetry one day in
    eight has no incident at all); the run length is read from this check's result on the
    previous partition, so partitions are best checked in order. Never blocking.

    Metadata: ``summary``, ``problems``, ``positive_labels``, ``positive_rate``,
    ``baseline_positive_rate``, ``missing_labels``, ``invalid_labels``,
    ``constant_partitions`` (the run so far) and ``positives_by_slice``.

    Args:
        asset: The checked asset (a DataFrame per partition holding ``label``).
        baseline: The baseline profile asset of the same asset, profiling ``label`` as a label.
        label: The 0/1 label column.
        quiet_partitions: How many all-zero partitions in a row fail.
        name: The check's name.

    Example:
        >>> checks = build_label_health_checks(features, features_baseline)  # doctest: +SKIP
    """
    if quiet_partitions < 1:
        raise ValueError(f"quiet_partitions must be at least 1, got {quiet_partitions}")
    partitions_def = asset.partitions_def
    check_key = dg.AssetCheckKey(asset.key, name)

    def judge(
        context: dg.AssetCheckExecutionContext,
        profile: BaselineProfile,
        baseline_ref: ArtifactRef,
        current: Any,
    ) -> dg.AssetCheckResult:
        if label not in current.columns:
            raise dg.Failure(
                description=f"{check_key.to_user_string()}: the partition has no column {label!r}"
            )
        previous = previous_partition_metadata(context, check_key, partitions_def)
        run = getattr(previous.get("constant_partitions"), "value", 0) or 0
        health = label_column_health(
            current,
            label,
            _label_profile(profile, label),
            previous_constant_partitions=int(run),
            quiet_partitions=quiet_partitions,
            slice_column=profile.slice_column,
        )
        if not health.passed:
            context.log.warning(f"{_subject(context, asset)}: {'; '.join(health.problems)}")
        return label_health_result(health)

    description = (
        f"Labels missing, outside {{0, 1}} or constant where {baseline.key.to_user_string()} varied"
    )
    return [
        check_against_baseline(
            asset,
            baseline,
            name=name,
            description=description,
            purpose="label health checks",
            judge=judge,
        )
    ]


def label_health_result(health: LabelColumnHealth) -> dg.AssetCheckResult:
    rate = health.positives / health.rows if health.rows else 0.0
    baseline_rate = (
        {}
        if health.reference_rate is None
        else {"baseline_positive_rate": dg.MetadataValue.float(health.reference_rate)}
    )
    return dg.AssetCheckResult(
        passed=health.passed,
        severity=_SEVERITY.get(health.verdict, dg.AssetCheckSeverity.WARN),
        metadata={
            "summary": dg.MetadataValue.md(health.to_markdown()),
            "verdict": dg.MetadataValue.text(health.verdict),
            "problems": dg.MetadataValue.text("; ".join(health.problems)),
            "positive_labels": dg.MetadataValue.float(float(health.positives)),
            "positive_rate": dg.MetadataValue.float(rate),
            **baseline_rate,
            "missing_labels": dg.MetadataValue.int(health.missing),
            "invalid_labels": dg.MetadataValue.int(health.invalid),
            "constant_partitions": dg.MetadataValue.int(health.constant_partitions),
            "positives_by_slice": dg.MetadataValue.json(dict(health.positives_by_slice)),
        },
    )


def build_label_collapse_checks(
    asset: dg.AssetsDefinition | dg.AssetSpec,
    *,
    label: str = LABEL,
    alert: str = ALERT,
    reference_partitions: int | None = None,
    name: str = LABEL_HEALTH_CHECK_NAME,
) -> list[dg.AssetChecksDefinition]:
    """A check of each partition of a scores asset: whether its positive labels collapsed.

    That is: did the positive labels vanish while the model kept alerting as it did on the
    reference partitions?

    The reference is fixed: the first ``reference_partitions`` partitions of ``asset`` with a
    stored value, other than the checked one (a trailing window would learn a label break and
    pass); by default three days' worth (3 daily partitions, 72 hourly ones: three hours would
    hold too few alerts to judge by). Their precision (positives among alerts) makes a binomial
    tail for today's alerts (``core.label_health.assess_labels``): the check fails at WARN when
    today's positives are that improbable (p below ``COLLAPSE_P``) while the model alerts at
    most ``NORMAL_ALERT_FACTOR`` times its reference rate (a model alerting far more is a model
    problem, not a label one), or when the labels are mostly missing or all 1 where the
    reference varied. Never blocking. It reads the reference partitions from the artifact store
    (``ArtifactRefIOManager``), so ``asset`` must be stored through it.

    Metadata: ``summary``, ``problems``, ``p_value``, ``reference_precision``, ``alert_rate``,
    ``reference_alert_rate``, ``label_rate``, ``reference_label_rate``, ``reference_partitions``.

    Args:
        asset: The scores asset (a DataFrame per partition holding ``label`` and ``alert``).
        label: The 0/1 label column.
        alert: The 0/1 column saying whether the model alerted on the row.
        reference_partitions: How many first stored partitions are the reference; unset, three
            days' worth.
        name: The check's name.

    Example:
        >>> checks = build_label_collapse_checks(anomaly_scores)  # doctest: +SKIP
    """
    partitions_def = asset.partitions_def
    if reference_partitions is None:
        reference_partitions = reference_partition_count(partitions_def)
    if reference_partitions < 1:
        raise ValueError(f"reference_partitions must be at least 1, got {reference_partitions}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", dg.PreviewWarning)

        @dg.asset_check(
            asset=asset.key,
            name=name,
            partitions_def=partitions_def,
            blocking=False,
            description=(
                "Positive labels vanished while the model kept alerting as on the first "
                f"{reference_partitions} partitions (binomial tail on their precision)"
            ),
        )
        def label_collapse_check(
            context: dg.AssetCheckExecutionContext,
            artifact_store: ArtifactStoreResource,
            frame: Any,
        ) -> dg.AssetCheckResult:
            current = partition_frame(frame, context, purpose="label collapse checks")
            absent = [column for column in (label, alert) if column not in current.columns]
            if absent:
                raise dg.Failure(
                    description=f"{_subject(context, asset)}: the partition has no {absent}"
                )
            references = _reference_partitions(
                artifact_store.get_store(),
                asset.key,
                partitions_def,
                skip=_partition(context),
                wanted=reference_partitions,
                columns=(label, alert),
            )
            if not references:
                return dg.AssetCheckResult(
                    passed=True,
                    metadata={"summary": dg.MetadataValue.md("No reference partition yet.")},
                )
            health = assess_labels(
                current[label].to_numpy(dtype=float),
                current[alert].to_numpy(dtype=float),
                references,
                partition=_partition(context) or "",
            )
            failed = _labels_to_blame(health)
            if failed:
                context.log.warning(f"{_subject(context, asset)}: {health.words}")
            return _collapse_result(health, failed, sorted(references))

    return [label_collapse_check]


def _reference_partitions(
    store: ArtifactStore,
    key: dg.AssetKey,
    partitions_def: dg.PartitionsDefinition | None,
    *,
    skip: str | None,
    wanted: int,
    columns: tuple[str, str],
) -> dict[str, tuple[Any, Any]]:
    """(labels, alerts) of the first ``wanted`` stored partitions but ``skip``."""
    if partitions_def is None:
        return {}
    found: dict[str, tuple[Any, Any]] = {}
    for partition in partitions_def.get_partition_keys():
        if partition == skip:
            continue
        ref = store.get_ref(asset_ref_name(key, partition))
        if ref is None:
            continue
        frame = store.get_frame(ref)
        if all(column in frame.columns for column in columns):
            labels, alerts = (frame[column].to_numpy(dtype=float) for column in columns)
            found[partition] = (labels, alerts)
        if len(found) == wanted:
            break
    return found


def _labels_to_blame(health: LabelHealth) -> bool:
    """Missing or constant labels, or a collapse of positives while alerting as usual."""
    if "missing" in health.problems or "constant" in health.problems:
        return True
    usual = health.reference_alert_rate > 0 and (
        health.alert_rate <= NORMAL_ALERT_FACTOR * health.reference_alert_rate
    )
    return "collapse" in health.problems and usual


def _collapse_result(
    health: LabelHealth, failed: bool, references: Sequence[str]
) -> dg.AssetCheckResult:
    floats = {
        "p_value": health.p_value,
        "reference_precision": health.reference_precision,
        "alert_rate": health.alert_rate,
        "reference_alert_rate": health.reference_alert_rate,
        "label_rate": health.label_rate,
        "reference_label_rate": health.reference_label_rate,
    }
    verdict = "WARN" if failed else "OK"
    return dg.AssetCheckResult(
        passed=not failed,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={
            "summary": dg.MetadataValue.md(f"**{verdict}**: {md_text(health.words)}."),
            "problems": dg.MetadataValue.text(", ".join(health.problems) if failed else ""),
            "reference_partitions": dg.MetadataValue.text(", ".join(references)),
            **{
                name: dg.MetadataValue.float(float(value))
                for name, value in floats.items()
                if value is not None and math.isfinite(value)
            },
        },
    )


def _label_profile(profile: BaselineProfile, label: str) -> Any:
    if label not in profile.names:
        return None
    feature = profile.feature(label)
    return feature if feature.kind == "binary" else None


def previous_partition_metadata(
    context: dg.AssetCheckExecutionContext,
    check_key: dg.AssetCheckKey,
    partitions_def: dg.PartitionsDefinition | None,
) -> Mapping[str, Any]:
    """The metadata of this check's latest evaluation of the partition just before this one;
    empty for the first partition, an unpartitioned asset or a partition never checked."""
    if partitions_def is None or not context.has_partition_key:
        return {}
    keys = list(partitions_def.get_partition_keys())
    if context.partition_key not in keys:
        return {}
    position = keys.index(context.partition_key)
    if position == 0:
        return {}
    wanted = keys[position - 1]
    for records in check_execution_pages(context.instance, check_key, page_size=_HISTORY_PAGE):
        for record in records:  # newest first
            if getattr(record, "partition", None) != wanted:
                continue
            evaluation = evaluation_of(record)
            if evaluation is not None:
                return dict(evaluation.metadata)
    return {}


def _partition(context: dg.AssetCheckExecutionContext) -> str | None:
    return context.partition_key if context.has_partition_key else None


def _subject(
    context: dg.AssetCheckExecutionContext, asset: dg.AssetsDefinition | dg.AssetSpec
) -> str:
    partition = _partition(context)
    return asset.key.to_user_string() + (f"[{partition}]" if partition else "")
