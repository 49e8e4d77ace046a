"""Model-performance check: the served model's alerts against newly labeled data, per partition.

Drift says the world moved; this check says the model got worse at its job. It compares each day's
alerts with that day's labels, against what the same model version achieved on its holdout when it
was registered. The false-alarm rate is judged every day (a quiet day still shows a model that
pages too often); F1 only on days with enough labeled anomalies to mean something. Each outcome is
also recorded against the model version in the ledger: that record is what makes a version
"known good", the version a rollback may return to.
"""

import base64
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import dagster as dg

from aiops_assets.changelog import drift_history
from aiops_assets.checks import estimate as label_estimate
from aiops_assets.checks.drift import drifted_slices
from aiops_assets.checks.estimate import DelayedLabels
from aiops_assets.checks.judge import PerformanceLimits, _judge, _measure, _Verdict
from aiops_assets.core.features import LABEL, SERVICE
from aiops_assets.core.incident_plot import PlotsUnavailable, render_incident_png
from aiops_assets.core.incidents import PerformancePoint, asset_links
from aiops_assets.core.ledger import Ledger, ModelVersion
from aiops_assets.core.markdown import md_text
from aiops_assets.core.models import ALERT
from aiops_assets.core.registry import MODEL_NAME
from aiops_assets.core.rollout import MODEL_VERSION_COLUMN
from aiops_assets.core.store import ArtifactStore
from aiops_assets.diagnosis import DiagnosisOptions, diagnose
from aiops_assets.io import partition_frame
from aiops_assets.keys import PERFORMANCE_CHECK_NAME
from aiops_assets.metadata import float_metrics, latest_materialization_metadata
from aiops_assets.resources import ArtifactStoreResource, LedgerResource

# How far back a failure's incident report reads changes and evaluations.
INCIDENT_HISTORY = timedelta(days=30)


def build_performance_check(
    scores_asset: dg.AssetsDefinition | dg.AssetSpec,
    *,
    model_name: str = MODEL_NAME,
    f1_tolerance: float = PerformanceLimits.f1_tolerance,
    false_alarm_tolerance: float = PerformanceLimits.false_alarm_tolerance,
    false_alarm_budget: float = PerformanceLimits.false_alarm_budget,
    min_positives: int = PerformanceLimits.min_positives,
    name: str = PERFORMANCE_CHECK_NAME,
    incident_lineage: dg.Definitions | None = None,
    drift_checks: Sequence[dg.AssetCheckKey] = (),
    incident_replays: int = 0,
    labels: DelayedLabels | None = None,
) -> dg.AssetChecksDefinition:
    """An ERROR check per partition of ``scores_asset``: whether the serving model regressed.

    The scores asset's value must be a frame with ``alert`` (0/1) and ``label`` (0/1) columns, and
    its materialization must carry ``model_sha256`` metadata naming the registered version that
    produced it. It fails when the day's false-alarm rate exceeds the version's holdout rate by
    more than ``false_alarm_tolerance`` or the absolute ``false_alarm_budget`` (the share of normal
    rows an on-call team accepts being paged for, whatever the model promised), or, on a day with
    at least ``min_positives`` labeled anomalies, when F1 falls more than ``f1_tolerance`` below
    the holdout F1. The check does not block: a regression is a reason to roll back
    (``rollback_on_regression``), not to stop scoring.

    With ``incident_lineage`` (definitions holding the assets upstream of the scores and their
    checks), a failure also carries an ``incident_report``: the changes upstream of the model
    before this evaluation, ranked as likely causes (``core/incidents.py``), so the person paged
    by the failure sees "what changed?" on the same page. The lineage is given when the check is
    built because a run sees only the part of the graph it selected.

    Args:
        scores_asset: The asset holding the served model's alerts and the labels.
        model_name: The registered model whose versions produced the scores.
        f1_tolerance: How far below its holdout F1 a version may fall on a judged day.
        false_alarm_tolerance: How far above its holdout false-alarm rate a version may go.
        false_alarm_budget: The absolute false-alarm rate the on-call team accepts.
        min_positives: Labeled anomalies a day needs before its F1 is judged at all.
        name: The check's name.
        incident_lineage: The definitions whose lineage the incident report walks (every asset
            and check but this one will do); None leaves failures without a report.
        drift_checks: The drift checks whose history the incident report correlates.
        incident_replays: Counterfactual replays the failure's report may run (each re-runs the
            partition's features and scores, a few seconds). 0, the default, keeps a failing
            check fast; ``aiops incident`` replays, and its results are cached for the next read.
        labels: Labels that arrive late (``checks/estimate.py``): their own source of incident
            windows and their maturity delay. A partition whose labels are not mature yet gets a
            label-free estimate (WARN, ``label_status: estimate``, not recorded in the ledger)
            instead of a verdict; this also makes the check require ``artifact_store``. None,
            the default, judges every partition's own ``label`` column at once.

    Example:
        >>> check = build_performance_check(  # doctest: +SKIP
        ...     anomaly_scores, model_name="anomaly_detector", false_alarm_budget=0.02
        ... )
    """
    limits = PerformanceLimits(
        f1_tolerance, false_alarm_tolerance, false_alarm_budget, min_positives
    )
    judge = _PerformanceJudge(
        scores_asset.key,
        model_name,
        name,
        limits,
        incident_lineage,
        tuple(drift_checks),
        incident_replays,
        labels,
        scores_asset.partitions_def,
    )
    description = (
        f"The serving {model_name} against this partition's labels: false-alarm rate "
        f"within +{false_alarm_tolerance} of its holdout and at most "
        f"{false_alarm_budget}, F1 within -{f1_tolerance} of its holdout"
    )
    if labels is not None:
        return _delayed_label_check(scores_asset, name, description, judge)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", dg.PreviewWarning)

        @dg.asset_check(
            asset=scores_asset.key,
            name=name,
            partitions_def=scores_asset.partitions_def,
            description=description,
        )
        def performance_check(
            context: dg.AssetCheckExecutionContext, ledger: LedgerResource, frame: Any
        ) -> dg.AssetCheckResult:
            return judge.evaluate(context, ledger.get_ledger(), frame)

    return performance_check


def _delayed_label_check(
    scores_asset: dg.AssetsDefinition | dg.AssetSpec,
    name: str,
    description: str,
    judge: "_PerformanceJudge",
) -> dg.AssetChecksDefinition:
    """The check with late labels: it also reads the store (holdout, score baseline)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", dg.PreviewWarning)

        @dg.asset_check(
            asset=scores_asset.key,
            name=name,
            partitions_def=scores_asset.partitions_def,
            description=f"{description}; a label-free estimate until the labels are mature",
        )
        def performance_check(
            context: dg.AssetCheckExecutionContext,
            ledger: LedgerResource,
            artifact_store: ArtifactStoreResource,
            frame: Any,
        ) -> dg.AssetCheckResult:
            return judge.evaluate(
                context, ledger.get_ledger(), frame, store=artifact_store.get_store()
            )

    return performance_check


def _summary(
    model_name: str,
    version: int,
    partition: str | None,
    verdict: _Verdict,
    limits: PerformanceLimits,
) -> str:
    outcome = "no regression" if verdict.passed else "; ".join(map(md_text, verdict.reasons))
    observed = verdict.observed
    f1_line = (
        f"- F1 {observed['f1']:.3f} (holdout {verdict.reference_f1:.3f}),"
        f" {verdict.labeled_anomalies} labeled anomalous rows\n"
        if verdict.judged_f1
        else f"- F1 not judged: {verdict.labeled_anomalies} labeled anomalous rows "
        f"(< {limits.min_positives})\n"
    )
    return (
        f"**{md_text(model_name)} v{version}** on {md_text(partition or 'this data')}: "
        f"{outcome}.\n\n"
        f"- false-alarm rate {observed['false_alarm_rate']:.4f} (holdout "
        f"{verdict.reference_far:.4f}, budget {limits.false_alarm_budget})\n" + f1_line
    )


def _slice_metadata(verdict: _Verdict) -> dict[str, dg.MetadataValue]:
    metadata: dict[str, dg.MetadataValue] = {
        f"false_alarm_rate/{SERVICE}={service}": dg.MetadataValue.float(far)
        for service, far in sorted(verdict.slices.items())
    }
    if verdict.implicated:
        metadata["implicated_slices"] = dg.MetadataValue.text(
            ", ".join(f"{SERVICE}={service}" for service in verdict.implicated)
        )
    return metadata


@dataclass(frozen=True)
class _PerformanceJudge:
    """One evaluation of the performance check: find the serving version, judge, record."""

    scores_key: dg.AssetKey
    model_name: str
    check_name: str
    limits: PerformanceLimits
    incident_lineage: dg.Definitions | None
    drift_checks: tuple[dg.AssetCheckKey, ...]
    incident_replays: int = 0
    labels: DelayedLabels | None = None
    partitions_def: dg.PartitionsDefinition | None = None

    def evaluate(
        self,
        context: dg.AssetCheckExecutionContext,
        registry: Ledger,
        frame: Any,
        *,
        store: ArtifactStore | None = None,
    ) -> dg.AssetCheckResult:
        day_scores = partition_frame(frame, context, purpose="performance checks")
        partition = context.partition_key if context.has_partition_key else None
        facts = latest_materialization_metadata(context.instance, self.scores_key, partition)
        version = self._serving_version(registry, facts, partition)
        if self.labels is not None:
            if store is not None and not self.labels.is_mature(self.partitions_def, partition):
                return self._estimate(context, registry, store, version, day_scores, partition)
            day_scores = self.labels.labeled(day_scores)
        # The champion answers for its own rows; a staged rollout's slice is measured apart
        # (the rollout sensor judges it), so a bad canary halts its rollout instead of rolling
        # back a champion that did nothing wrong.
        scores, rollout_metadata = _split_rollout(
            day_scores, facts, version.version, self.limits.min_positives
        )
        if len(scores) == 0:
            return self._nothing_to_answer_for(version, partition, rollout_metadata)
        verdict = _judge(scores, version.metrics, self.limits)
        registry.record_check(
            self.model_name,
            version.version,
            self.check_name,
            passed=verdict.passed,
            partition=partition,
            severity="ERROR",
            metrics=verdict.observed,
            run_id=context.run.run_id,
        )
        incident = (
            self._incident(context, registry, verdict, partition, version.version)
            if not verdict.passed and self.incident_lineage is not None
            else {}
        )
        summary = _summary(self.model_name, version.version, partition, verdict, self.limits)
        return dg.AssetCheckResult(
            passed=verdict.passed,
            severity=dg.AssetCheckSeverity.ERROR,
            metadata={
                **incident,
                **_slice_metadata(verdict),
                **float_metrics(verdict.observed),
                "model_version": dg.MetadataValue.int(version.version),
                "model_sha256": dg.MetadataValue.text(version.sha256),
                "holdout_false_alarm_rate": dg.MetadataValue.float(verdict.reference_far),
                "false_alarm_budget": dg.MetadataValue.float(self.limits.false_alarm_budget),
                "summary": dg.MetadataValue.md(summary),
                "rows": dg.MetadataValue.int(verdict.rows),
                **rollout_metadata,
                **self._mature_metadata(),
            },
        )

    def _mature_metadata(self) -> dict[str, dg.MetadataValue]:
        """With late labels configured, a judged result says its labels were mature."""
        if self.labels is None:
            return {}
        return {label_estimate.LABEL_STATUS: dg.MetadataValue.text(label_estimate.MATURE)}

    def _estimate(
        self,
        context: dg.AssetCheckExecutionContext,
        registry: Ledger,
        store: ArtifactStore,
        version: ModelVersion,
        day_scores: Any,
        partition: str | None,
    ) -> dg.AssetCheckResult:
        """The label-free estimate of a partition whose labels are not mature yet: WARN, marked
        as an estimate, and not recorded in the ledger."""
        assert self.labels is not None
        scores, rollout_metadata = _split_rollout(
            day_scores, {}, version.version, self.limits.min_positives
        )
        if len(scores) == 0:
            return self._nothing_to_answer_for(version, partition, rollout_metadata)
        matures_at = self.labels.matures_at(self.partitions_def, partition)
        result = label_estimate.estimate_for(
            context.instance, store, registry, version, scores, self.labels, self.limits
        )
        summary = label_estimate.estimate_summary(
            self.model_name, version.version, partition, result, matures_at
        )
        return dg.AssetCheckResult(
            passed=result.passed,
            severity=dg.AssetCheckSeverity.WARN,
            description=(
                f"Label-free estimate (labels mature at {matures_at}): "
                + ("no regression expected" if result.passed else "; ".join(result.reasons))
            ),
            metadata={
                **label_estimate.estimate_metadata(result, matures_at),
                **rollout_metadata,
                "model_version": dg.MetadataValue.int(version.version),
                "model_sha256": dg.MetadataValue.text(version.sha256),
                "false_alarm_budget": dg.MetadataValue.float(self.limits.false_alarm_budget),
                "summary": dg.MetadataValue.md(summary),
                "rows": dg.MetadataValue.int(len(scores)),
            },
        )

    def _serving_version(
        self, registry: Ledger, facts: dict[str, Any], partition: str | None
    ) -> ModelVersion:
        """The registered version that produced the scores; unknown scores cannot be judged."""
        sha256 = str(facts.get("model_sha256", ""))
        version = registry.find_version(self.model_name, sha256) if sha256 else None
        if version is None:
            raise dg.Failure(
                description=(
                    f"{self.scores_key.to_user_string()}[{partition}] was produced by model "
                    f"{sha256[:12] or '(unrecorded)'}, which the ledger does not know; cannot "
                    "judge its performance"
                )
            )
        return version

    def _nothing_to_answer_for(
        self,
        version: ModelVersion,
        partition: str | None,
        rollout_metadata: dict[str, dg.MetadataValue],
    ) -> dg.AssetCheckResult:
        """The last stage of a rollout: the new version scored every service, so the champion
        has nothing to answer for; the slice's numbers are still reported."""
        return dg.AssetCheckResult(
            passed=True,
            severity=dg.AssetCheckSeverity.ERROR,
            metadata={
                **rollout_metadata,
                "model_version": dg.MetadataValue.int(version.version),
                "model_sha256": dg.MetadataValue.text(version.sha256),
                "summary": dg.MetadataValue.md(
                    f"**{md_text(self.model_name)} v{version.version}** scored no rows of "
                    f"{md_text(partition or 'this data')}: a staged rollout's version served "
                    "every service; its slice is judged by the rollout."
                ),
                "rows": dg.MetadataValue.int(0),
            },
        )

    def _incident(
        self,
        context: dg.AssetCheckExecutionContext,
        registry: Ledger,
        verdict: _Verdict,
        partition: str | None,
        version: int,
    ) -> dict[str, dg.MetadataValue]:
        return _incident_metadata(
            context,
            registry,
            self.incident_lineage,
            self.scores_key,
            self.model_name,
            PerformancePoint(
                partition=partition or "",
                at=datetime.now(UTC),
                passed=False,
                metrics=verdict.observed,
                model_version=version,
                implicated=tuple(verdict.implicated),
            ),
            self.drift_checks,
            replays=self.incident_replays,
        )


def _split_rollout(
    scores: Any, facts: dict[str, Any], champion: int, min_positives: int
) -> tuple[Any, dict[str, dg.MetadataValue]]:
    """The champion's rows, and the metrics of the staged rollout's active slice.

    The slice's numbers go out as ``rollout/<metric>`` floats with the rollout's id, stage and
    version, which is what the staged-rollout sensor reads; nothing is emitted when this
    partition was not scored under a rollout.
    """
    if MODEL_VERSION_COLUMN not in getattr(scores, "columns", ()):
        return scores, {}
    served = scores[MODEL_VERSION_COLUMN].to_numpy()
    own = scores[served == champion]
    rollout_id = int(facts.get("rollout_id") or 0)
    rollout_version = int(facts.get("rollout_version") or 0)
    slice_services = [str(service) for service in facts.get("rollout_slice") or ()]
    if not rollout_id or not rollout_version or not slice_services:
        return own, {}
    chosen = scores[
        (served == rollout_version) & scores[SERVICE].astype(str).isin(slice_services).to_numpy()
    ]
    metadata: dict[str, dg.MetadataValue] = {
        "rollout_id": dg.MetadataValue.int(rollout_id),
        "rollout_stage": dg.MetadataValue.text(str(facts.get("rollout_stage", ""))),
        "rollout_version": dg.MetadataValue.int(rollout_version),
        "rollout_slice": dg.MetadataValue.text(", ".join(slice_services)),
        "rollout/rows": dg.MetadataValue.float(float(len(chosen))),
    }
    if chosen.empty:
        return own, metadata
    measured = _measure(
        chosen[LABEL].to_numpy().astype("int8"),
        chosen[ALERT].to_numpy().astype("int8"),
        min_positives,
    )
    metadata.update(float_metrics(measured, prefix="rollout/"))
    return own, metadata


def _lineage_store(lineage: dg.Definitions) -> ArtifactStore | None:
    """The artifact store of the lineage's resources, where the partitions to characterize are."""
    resource = (lineage.resources or {}).get("artifact_store")
    return resource.get_store() if isinstance(resource, ArtifactStoreResource) else None


def _incident_metadata(
    context: dg.AssetCheckExecutionContext,
    registry: Ledger,
    lineage: dg.Definitions | None,
    model_asset: dg.AssetKey,
    model_name: str,
    current: PerformancePoint,
    drift_checks: Sequence[dg.AssetCheckKey],
    *,
    replays: int = 0,
) -> dict[str, dg.MetadataValue]:
    """The incident report for this failure; a report that cannot be built never fails the check."""
    if lineage is None:
        return {}
    try:
        report = diagnose(
            context.instance,
            registry,
            lineage,
            _lineage_store(lineage),
            model_name=model_name,
            drift_checks=drift_checks,
            since=current.at - INCIDENT_HISTORY,
            options=DiagnosisOptions(
                max_replays=replays,
                metric="f1" if "f1" in current.metrics else "false_alarm_rate",
            ),
            pending=current,
        )
        drift = drift_history(
            context.instance, list(drift_checks), since=current.at - INCIDENT_HISTORY
        )
    except Exception as error:  # the report is a courtesy; the verdict must still be recorded
        context.log.warning(f"incident report not built: {error!r}")
        return {}
    if report is None or not report.suspects:
        return {}
    slices = ""
    try:  # a courtesy within a courtesy: the report stands without it
        drifted = drifted_slices(context.instance, drift_checks, current.partition or None)
    except Exception as error:
        context.log.warning(f"drifted slices not read: {error!r}")
        drifted = []
    if drifted:
        slices += (
            f"**Drifted slices:** {', '.join(map(md_text, drifted))} (the drift checks of this "
            "partition, each service against its own reference).\n\n"
        )
    metadata: dict[str, dg.MetadataValue] = {
        "incident_report": dg.MetadataValue.md(
            slices + report.markdown(top=5, links=asset_links(report, ""))
        ),
        "likely_cause": dg.MetadataValue.text(report.likely_cause()),
        # Machine-readable: the kind and subject of the suspect ranked first.
        "likely_cause_change": dg.MetadataValue.text(
            f"{report.suspects[0].change.kind} {report.suspects[0].change.subject}"
        ),
    }
    try:
        png = render_incident_png(report, drift, dpi=72)
    except PlotsUnavailable as error:  # the plots extra is not installed: say so where it would be
        metadata["incident_timeline"] = dg.MetadataValue.text(f"not drawn: {error}")
        return metadata
    except Exception as error:  # a missing picture must not cost the report
        context.log.warning(f"incident timeline not drawn: {error!r}")
        return metadata
    # Embedded as a data URI: the UI renders it inline on the check's page, with nothing to fetch.
    metadata["incident_timeline"] = dg.MetadataValue.md(
        f"![incident timeline: {md_text(report.metric)} and the most drifted features]"
        f"(data:image/png;base64,{base64.b64encode(png).decode('ascii')})"
    )
    return metadata
