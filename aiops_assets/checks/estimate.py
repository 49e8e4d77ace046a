"""Labels that arrive late, for the performance check: where they come from, when they are
mature, and the label-free estimate reported until then.

A partition's labels are *mature* once its window ended ``delay`` ago (by the pipeline's clock).
Before that the performance check does not pretend to judge: it reports an **estimate**, marked as
one in its metadata (``label_status: estimate``) and description, from what needs no labels —

- the alert rate against the false-alarm budget (plus the holdout's incident rate: even if every
  incident row were caught, the other alerts would still exceed the budget);
- the score distribution's shift against the ``score_baseline`` profile (the drift check's test);
- the expected precision, recall and F1 from calibrated scores (NannyML's CBPE,
  ``core/cbpe.py``), calibrated by isotonic regression on the serving version's holdout.

An estimate is never recorded in the ledger (a version does not become "known good" on an
estimate), its severity is WARN, and the rollback sensor ignores it unless told otherwise.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import dagster as dg
import pandas as pd

from aiops_assets.checks.judge import PerformanceLimits
from aiops_assets.core.cbpe import (
    CalibrationUnavailable,
    Calibrator,
    estimate_performance,
    fit_calibrator,
)
from aiops_assets.core.delayed_labels import join_incident_labels, labels_mature
from aiops_assets.core.drift import BaselineProfile, evaluate_drift
from aiops_assets.core.features import LABEL, SERVICE, TIMESTAMP
from aiops_assets.core.ledger import Ledger, ModelVersion
from aiops_assets.core.markdown import md_text
from aiops_assets.core.models import ALERT, HOLDOUT, SCORE, SPLIT
from aiops_assets.core.registry import load_model
from aiops_assets.core.store import ArtifactStore
from aiops_assets.metadata import float_metrics, latest_materialization_metadata

LABEL_STATUS = "label_status"
ESTIMATE = "estimate"
MATURE = "mature"


def _utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class DelayedLabels:
    """Where the performance check's labels come from and how long they take to mature.

    Attributes:
        delay: How long after a partition's window ends its labels are complete.
        windows: Loads the incident windows (columns service, start, end) joined to the rows
            by service and time; None keeps the scores' own ``label`` column (the telemetry's).
        now: The pipeline's clock (fixed for the demo and tests, live in production).
        score_baseline: The asset whose latest profile the estimate's score shift is tested
            against; None leaves the shift out.

    Until a partition's labels mature, ``build_performance_check`` judges it on a label-free
    estimate (``label_status: estimate``); ``build_rejudge_on_mature_labels_sensor`` judges it
    again once they have.

    Example:
        >>> labels = DelayedLabels(delay=timedelta(days=2), windows=load_incidents)  # doctest: +SKIP
        >>> check = build_performance_check(scores, labels=labels)  # doctest: +SKIP
    """

    delay: timedelta = timedelta(0)
    windows: Callable[[], pd.DataFrame] | None = None
    now: Callable[[], datetime] = field(default=_utc_now)
    score_baseline: dg.AssetKey | None = None

    def __post_init__(self) -> None:
        if self.delay < timedelta(0):
            raise ValueError(f"the label delay must not be negative, got {self.delay}")

    def matures_at(self, partitions_def: Any, partition: str | None) -> datetime | None:
        """When this partition's labels are mature; None when it has no time window."""
        end = _partition_end(partitions_def, partition)
        return None if end is None else end + self.delay

    def is_mature(self, partitions_def: Any, partition: str | None) -> bool:
        """A partition without a time window (or no partition) cannot wait: it is judged."""
        end = _partition_end(partitions_def, partition)
        return end is None or labels_mature(end, self.delay, self.now())

    def labeled(self, scores: pd.DataFrame) -> pd.DataFrame:
        """``scores`` with ``label`` from the incident windows, when a source is configured."""
        if self.windows is None:
            return scores
        return scores.assign(
            **{LABEL: join_incident_labels(scores[TIMESTAMP], scores[SERVICE], self.windows())}
        )


def _partition_end(partitions_def: Any, partition: str | None) -> datetime | None:
    if partition is None or not isinstance(partitions_def, dg.TimeWindowPartitionsDefinition):
        return None
    return partitions_def.time_window_for_partition_key(partition).end


@dataclass(frozen=True)
class Estimate:
    """A label-free estimate of one partition: its numbers, why it fails, what it left out."""

    metrics: dict[str, float]
    reasons: list[str]
    notes: list[str]

    @property
    def passed(self) -> bool:
        return not self.reasons


def estimate_partition(
    scores: pd.DataFrame,
    holdout: dict[str, Any],
    limits: PerformanceLimits,
    *,
    calibrator: Calibrator | None,
    shift: Any | None,
    shift_missing: str = "no score baseline",
) -> Estimate:
    """The estimate of ``scores`` against the holdout's metrics and the limits; ``shift`` is the
    score feature's drift evaluation (``FeatureDrift``) or None."""
    metrics: dict[str, float] = {}
    reasons: list[str] = []
    notes: list[str] = []
    _alert_rate(scores, holdout, limits, metrics, reasons)
    if shift is None:
        notes.append(f"score shift not tested ({shift_missing})")
    else:
        metrics["score_shift"] = float(shift.score)
        metrics["score_shift_effect"] = float(shift.effect)
        if shift.verdict == "error":
            reasons.append(
                f"the score distribution shifted from the baseline ({shift.score_name} "
                f"{shift.score:.3f} >= {shift.error_threshold:.3f})"
            )
    if calibrator is None:
        notes.append("expected precision/recall not estimated (no calibration)")
    else:
        _expected(scores, holdout, limits, calibrator, metrics, reasons)
    return Estimate(metrics=metrics, reasons=reasons, notes=notes)


def _alert_rate(
    scores: pd.DataFrame,
    holdout: dict[str, Any],
    limits: PerformanceLimits,
    metrics: dict[str, float],
    reasons: list[str],
) -> None:
    alert_rate = float(scores[ALERT].mean()) if len(scores) else 0.0
    incident_rate = float(holdout.get("positive_rate", 0.0))
    ceiling = limits.false_alarm_budget + incident_rate
    metrics["alert_rate"] = alert_rate
    metrics["alert_rate_ceiling"] = ceiling
    if alert_rate > ceiling:
        reasons.append(
            f"alert rate {alert_rate:.4f} exceeds the budget {limits.false_alarm_budget} plus "
            f"the holdout's incident rate {incident_rate:.4f}"
        )


def _expected(
    scores: pd.DataFrame,
    holdout: dict[str, Any],
    limits: PerformanceLimits,
    calibrator: Calibrator,
    metrics: dict[str, float],
    reasons: list[str],
) -> None:
    expected = estimate_performance(calibrator, scores[SCORE].to_numpy(), scores[ALERT].to_numpy())
    metrics.update(expected.metrics())
    far = expected.false_alarm_rate
    if far > limits.false_alarm_budget:
        reasons.append(
            f"expected false-alarm rate {far:.4f} exceeds the budget {limits.false_alarm_budget}"
        )
    reference_f1 = float(holdout.get("f1", 0.0))
    if expected.positives >= limits.min_positives and (
        expected.f1 < reference_f1 - limits.f1_tolerance
    ):
        reasons.append(
            f"expected F1 {expected.f1:.3f} is more than {limits.f1_tolerance} below the "
            f"holdout's {reference_f1:.3f}"
        )


def holdout_calibrator(
    store: ArtifactStore,
    registry: Ledger,
    version: ModelVersion,
    labels: DelayedLabels,
) -> tuple[Calibrator | None, str]:
    """Isotonic calibration of the version's scores on its own holdout, and a note on it.

    The holdout is the version's training set (by hash) split ``holdout``; its labels are the
    label source's when one is configured, else the training set's. Without labels of both
    classes there is no calibration, and the note says so.
    """
    vouched = registry.vouched_version(version.model_name, sha256=version.sha256)
    if vouched is None or not version.training_set_version:
        return None, "no calibration: the serving version or its training set is unknown"
    training = store.get_frame(version.training_set_version)
    rows = training[training[SPLIT] == HOLDOUT] if SPLIT in training else training
    if rows.empty or (LABEL not in rows and labels.windows is None):
        return None, "no calibration: the holdout has no labels"
    rows = labels.labeled(rows)
    scores = load_model(store, vouched).score(rows)
    try:
        calibrator = fit_calibrator(scores, rows[LABEL].to_numpy())
    except CalibrationUnavailable as error:
        return None, f"no calibration: {error}"
    return calibrator, (
        f"calibrated on {calibrator.fitted_rows} holdout rows "
        f"({calibrator.fitted_positives} labeled anomalous) by isotonic regression"
    )


def score_shift(
    instance: dg.DagsterInstance, store: ArtifactStore, key: dg.AssetKey, scores: pd.DataFrame
) -> Any | None:
    """The score feature's drift evaluation against the latest ``key`` profile, or None."""
    facts = latest_materialization_metadata(instance, key)
    digest = str(facts.get("sha256", ""))
    if not digest:
        return None
    profile = BaselineProfile.from_bytes(store.get_bytes(digest))
    if SCORE not in profile.names:
        return None
    # The score only: the profile's label rate is exactly what is not known yet.
    return evaluate_drift(profile.select([SCORE]), scores[[SCORE]]).feature(SCORE)


def estimate_summary(
    model_name: str, version: int, partition: str | None, estimate: Estimate, matures_at: Any
) -> str:
    """The estimate's markdown: marked as an estimate in its first words."""
    outcome = (
        "no regression expected" if estimate.passed else "; ".join(map(md_text, estimate.reasons))
    )
    lines = [f"- {md_text(name)}: {value:.4f}" for name, value in sorted(estimate.metrics.items())]
    lines += [f"- {md_text(note)}" for note in estimate.notes]
    return (
        f"**ESTIMATE, labels not yet mature** (until {md_text(str(matures_at))}): "
        f"**{md_text(model_name)} v{version}** on {md_text(partition or 'this data')}: "
        f"{outcome}.\n\n" + "\n".join(lines) + "\n"
    )


def estimate_metadata(estimate: Estimate, matures_at: Any) -> dict[str, dg.MetadataValue]:
    return {
        **float_metrics(estimate.metrics),
        LABEL_STATUS: dg.MetadataValue.text(ESTIMATE),
        "labels_mature_at": dg.MetadataValue.text(str(matures_at)),
        "estimate_notes": dg.MetadataValue.text("; ".join(estimate.notes)),
    }


def estimate_for(
    instance: dg.DagsterInstance,
    store: ArtifactStore,
    registry: Ledger,
    version: ModelVersion,
    scores: pd.DataFrame,
    labels: DelayedLabels,
    limits: PerformanceLimits,
) -> Estimate:
    """The estimate with its inputs gathered; a part that cannot be computed is left out and
    named in the notes, never failing the check (the estimate is a courtesy until the labels
    come)."""
    try:
        calibrator, note = holdout_calibrator(store, registry, version, labels)
    except Exception as error:  # an unreadable holdout costs the CBPE part only
        calibrator, note = None, f"no calibration: {error}"
    shift, missing = None, "no score baseline"
    if labels.score_baseline is not None:
        try:
            shift = score_shift(instance, store, labels.score_baseline, scores)
        except Exception as error:  # likewise for the score baseline
            missing = str(error)
    result = estimate_partition(
        scores, version.metrics, limits, calibrator=calibrator, shift=shift, shift_missing=missing
    )
    result.notes.append(note)
    return result
