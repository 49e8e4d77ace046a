"""One drift evaluation, top to bottom: statistics, FDR, effect floors, persistence, verdicts.

A feature *drifts* when its test is significant after Benjamini-Hochberg across all features and
its effect size reaches the policy's floor (raised by calibration when the profile carries it);
drift is an ERROR when the effect is large or the drift persists. A profile with slices also
judges each slice against its own reference. The result records the policy hash that decided it
and renders as a short report.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

from aiops_assets.core.drift._common import (
    VERDICTS,
    DataLike,
    Kind,
    Role,
    Verdict,
    columns_of,
    split_rows,
)
from aiops_assets.core.drift.policy import (
    DriftPolicy,
    KindPolicy,
    benjamini_hochberg,
    load_policy,
    persistence_met,
)
from aiops_assets.core.drift.profiles import BaselineProfile, FeatureProfile, slice_workers
from aiops_assets.core.drift.statistics import FeatureStatistics, compute_statistics
from aiops_assets.core.markdown import md_code, md_text


def evaluate_drift(
    reference: BaselineProfile,
    current: DataLike | BaselineProfile,
    policy: DriftPolicy | None = None,
    *,
    previous: Sequence[Mapping[str, str]] = (),
    workers: int | None = None,
) -> DriftResult:
    """Test every profiled feature of ``current`` for drift and apply the alert policy.

    A feature *drifts* when its test is significant after Benjamini-Hochberg across all features
    (q < alpha) and its effect size reaches the warn threshold. It is an ERROR when the effect also
    reaches the error threshold, or when the drift is persistent (``required`` of the last
    ``window`` partitions drifted, ``previous`` being the earlier partitions' `feature_verdicts`,
    oldest first); otherwise a WARN. Thresholds are the policy's floors, raised to the calibrated
    ``mean + sigma * std`` when calibration is enabled and the profile carries it. The overall
    verdict is the worst feature verdict.
    """
    policy = policy or load_policy()
    statistics = compute_statistics(reference, current, workers=workers)
    names = list(statistics)
    q_values = benjamini_hochberg([statistics[name].p_value for name in names])
    items = [
        _judge_feature(statistics[name], q_value, reference.feature(name), policy, previous)
        for name, q_value in zip(names, q_values, strict=True)
    ]
    worst = max((VERDICTS.index(item.verdict) for item in items), default=0)
    drifted_items = sorted(
        (item for item in items if item.verdict != "ok"),
        key=lambda item: (-VERDICTS.index(item.verdict), -item.effect, item.feature),
    )
    return DriftResult(
        features=tuple(items),
        verdict=VERDICTS[worst],
        drifted=tuple(item.feature for item in drifted_items),
        policy_sha256=policy.sha256,
        policy_name=policy.name,
        policy_version=policy.version,
        alpha=policy.alpha,
    )


def _judge_feature(
    stats: FeatureStatistics,
    q_value: float,
    feature: FeatureProfile,
    policy: DriftPolicy,
    previous: Sequence[Mapping[str, str]],
) -> FeatureDrift:
    """One feature's verdict: significant, beyond the effect floor, and how bad or how lasting."""
    kind_policy = policy.kinds[stats.kind]
    effect = stats.metrics[kind_policy.effect]
    warn_threshold, error_threshold, calibrated = _thresholds(feature, kind_policy, policy)
    drifted = bool(q_value < policy.alpha) and effect >= warn_threshold
    # Lasting drift escalates only from a share of the error threshold on: real telemetry wanders
    # a little every day, and "a little, for days" is a WARN a person reads, not a page.
    escalates = effect >= policy.persistence_escalate_at * error_threshold
    persistent = (
        drifted
        and escalates
        and persistence_met(
            [partition.get(stats.name) for partition in previous],
            drifted,
            window=policy.persistence_window,
            required=policy.persistence_required,
        )
    )
    verdict: Verdict = "ok"
    if drifted:
        verdict = "error" if effect >= error_threshold or persistent else "warn"
    return FeatureDrift(
        feature=stats.name,
        kind=stats.kind,
        role=stats.role,
        mode=stats.mode,
        test=stats.test,
        statistic=stats.statistic,
        p_value=stats.p_value,
        q_value=float(q_value),
        effect_name=kind_policy.effect,
        effect=float(effect),
        score_name=kind_policy.score,
        score=float(stats.metrics[kind_policy.score]),
        warn_threshold=float(warn_threshold),
        error_threshold=float(error_threshold),
        calibrated=calibrated,
        persistent=persistent,
        verdict=verdict,
        reference_count=stats.reference_count,
        current_count=stats.current_count,
        metrics=dict(stats.metrics),
    )


def _thresholds(
    feature: FeatureProfile, kind_policy: KindPolicy, policy: DriftPolicy
) -> tuple[float, float, bool]:
    """Warn and error thresholds: the policy's floors, raised to the calibrated ones if enabled."""
    warn_threshold, error_threshold = kind_policy.warn, kind_policy.error
    calibration = feature.calibration.get(kind_policy.effect)
    if not policy.calibration_enabled or calibration is None:
        return warn_threshold, error_threshold, False
    warn_threshold = max(warn_threshold, calibration.threshold(policy.calibration_sigma))
    if kind_policy.error_calibrated is not None:
        error_threshold = kind_policy.error_calibrated
    error_threshold = max(error_threshold, warn_threshold)
    return warn_threshold, error_threshold, True


def evaluate_slices(
    reference: BaselineProfile,
    current: DataLike | BaselineProfile,
    policy: DriftPolicy | None = None,
    *,
    previous: Sequence[Mapping[str, Mapping[str, str]]] = (),
    workers: int | None = None,
) -> dict[str, DriftResult]:
    """`evaluate_drift` for each slice the reference profiles and ``current`` holds rows of.

    Each slice's rows are tested against that slice's own profile (with its own calibration, and
    Benjamini-Hochberg across that slice's features), never against the pooled reference: a quiet
    service whose level is a thousandth of the busiest one would otherwise look drifted all the
    time. The overall verdict is `evaluate_drift`'s alone; this adds the per-slice ones.

    ``previous`` holds, oldest first, each earlier partition's ``{slice value: feature verdicts}``
    (only the drifted features are needed), for the policy's persistence within a slice. Empty
    when the reference has no slices or ``current`` lacks the slice column.
    """
    if not reference.slices:
        return {}
    policy = policy or load_policy()
    column = cast(str, reference.slice_column)
    parts: Mapping[str, DataLike | BaselineProfile]
    if isinstance(current, BaselineProfile):
        parts = current.slices
    elif column in columns_of(current):
        parts = split_rows(current, column, reference.names)
    else:
        return {}
    return {
        value: evaluate_drift(
            reference.slices[value],
            parts[value],
            policy,
            previous=[partition.get(value, {}) for partition in previous],
            workers=slice_workers(parts[value], workers),
        )
        for value in sorted(set(reference.slices) & set(parts))
    }


@dataclass(frozen=True)
class FeatureDrift:
    """One feature's drift evaluation: the test, its q-value, the effect size and the verdict."""

    feature: str
    kind: Kind
    role: Role
    mode: str
    test: str
    statistic: float
    p_value: float
    q_value: float
    effect_name: str
    effect: float
    score_name: str
    score: float
    warn_threshold: float
    error_threshold: float
    calibrated: bool
    persistent: bool
    verdict: Verdict
    reference_count: int
    current_count: int
    metrics: Mapping[str, float]

    def to_dict(self) -> dict[str, Any]:
        data = {name: getattr(self, name) for name in self.__dataclass_fields__}
        data["metrics"] = dict(self.metrics)
        return data


@dataclass(frozen=True)
class DriftResult:
    """Everything one drift evaluation decided, with the policy hash that decided it."""

    features: tuple[FeatureDrift, ...]
    verdict: Verdict
    drifted: tuple[str, ...]
    policy_sha256: str
    policy_name: str
    policy_version: int
    alpha: float

    def feature_verdicts(self) -> dict[str, Verdict]:
        """What the next partition's evaluation needs for persistence."""
        return {item.feature: item.verdict for item in self.features}

    def feature(self, name: str) -> FeatureDrift:
        for item in self.features:
            if item.feature == name:
                return item
        raise KeyError(name)

    def to_dict(self) -> dict[str, Any]:
        return {
            "verdict": self.verdict,
            "drifted": list(self.drifted),
            "policy_sha256": self.policy_sha256,
            "policy_name": self.policy_name,
            "policy_version": self.policy_version,
            "alpha": self.alpha,
            "features": [item.to_dict() for item in self.features],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DriftResult:
        return cls(
            features=tuple(FeatureDrift(**item) for item in data["features"]),
            verdict=data["verdict"],
            drifted=tuple(data["drifted"]),
            policy_sha256=str(data["policy_sha256"]),
            policy_name=str(data["policy_name"]),
            policy_version=int(data["policy_version"]),
            alpha=float(data["alpha"]),
        )

    def to_markdown(self, *, limit: int = 10) -> str:
        """A short report: the verdict, the drifted features by name, and their numbers."""
        lines = [
            f"**Drift: {self.verdict.upper()}**: {len(self.drifted)} of {len(self.features)} "
            f"features drifted (policy {md_code(self.policy_name)} v{self.policy_version}, "
            f"sha256 `{self.policy_sha256[:12]}`, FDR alpha {self.alpha:g})",
            "",
        ]
        if self.drifted:
            lines.append("Drifted: " + ", ".join(md_code(name) for name in self.drifted))
            lines.append("")
        shown = [self.feature(name) for name in self.drifted[:limit]]
        if not shown:
            lines.append("No feature drifted beyond the policy's thresholds.")
            return "\n".join(lines)
        lines.append(
            "| feature | verdict | test | statistic | p | q | effect | warn / error | score |"
        )
        lines.append("|---|---|---|---|---|---|---|---|---|")
        lines.extend(_markdown_row(item) for item in shown)
        hidden = len(self.drifted) - len(shown)
        if hidden > 0:
            lines.append(f"\n... and {hidden} more drifted features.")
        return "\n".join(lines)


def _markdown_row(item: FeatureDrift) -> str:
    return (
        f"| {md_code(item.feature, cell=True)} | "
        f"{md_text(item.verdict)}{' (persistent)' if item.persistent else ''}"
        f" | {md_text(item.test)} | {item.statistic:.4g} | {item.p_value:.3g} | "
        f"{item.q_value:.3g} | {md_text(item.effect_name)} {item.effect:.4g} | "
        f"{item.warn_threshold:.3g} / {item.error_threshold:.3g}"
        f"{' (calibrated)' if item.calibrated else ''} | "
        f"{md_text(item.score_name)} {item.score:.3g} |"
    )


def slices_markdown(results: Mapping[str, DriftResult], column: str, *, limit: int = 5) -> str:
    """A short section naming each drifted slice and its drifted features, worst first."""
    if not results:
        return ""
    drifted = sorted(
        (value for value, result in results.items() if result.verdict != "ok"),
        key=lambda value: (-VERDICTS.index(results[value].verdict), value),
    )
    lines = [
        f"**Per-{md_text(column)} slices** (each against its own reference): {len(drifted)} of "
        f"{len(results)} drifted" + (":" if drifted else ".")
    ]
    for value in drifted:
        result = results[value]
        names = ", ".join(md_code(name) for name in result.drifted[:limit])
        more = len(result.drifted) - limit
        lines.append(
            f"- {md_text(value)}: {result.verdict.upper()} "
            f"({names}{f', and {more} more' if more > 0 else ''})"
        )
    return "\n".join(lines)
