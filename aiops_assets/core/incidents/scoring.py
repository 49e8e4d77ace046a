"""The prior: timing, lineage, drift and drift-performance correlation of each change.

These say which changes *could* explain a drop; they order suspects only among equal measured
evidence (``evidence.py``). The NannyML-style correlation ranker is kept here as the yardstick."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import numpy as np

from aiops_assets.core.incidents.records import (
    Change,
    DriftPoint,
    IncidentWindow,
    PerformancePoint,
    Suspect,
    _sorted_performance,
)

# Kinds whose change can alter feature values even when the log does not say which features:
# they get half the strongest drift of the failing partition, because "something in the data
# path changed and the data did move" is evidence, but weaker than a named feature moving.
_DATA_PATH_KINDS = frozenset({"data", "feature_set", "code", "config", "environment"})
_COMPONENTS = ("effect", "proximity", "lineage", "correlation")
_MIN_ALIGNED_POINTS = 4
# A derived asset's refresh computed from new upstream data counts half (``_upstream_refresh``).
DERIVED_REFRESH_FACTOR = 0.5


@dataclass(frozen=True)
class ScoringWeights:
    """How much each kind of evidence counts; the defaults favour "the data moved" over timing.

    Drift effect is the most direct evidence that a change reached the model's inputs, so it
    weighs most; timing is strong but every change in the window shares it; lineage only says
    how many places a change had to propagate through; correlation needs history and is noisy
    on ten partitions, so it confirms rather than decides.
    """

    effect: float = 0.4
    proximity: float = 0.25
    lineage: float = 0.15
    correlation: float = 0.2
    proximity_half_life_hours: float = 24.0
    max_lag: int = 2

    def __post_init__(self) -> None:
        for name in _COMPONENTS:
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(
                    f"ScoringWeights.{name} must be a finite number >= 0, got {value!r}"
                )
        if not (
            math.isfinite(self.proximity_half_life_hours) and self.proximity_half_life_hours > 0
        ):
            raise ValueError(
                "ScoringWeights.proximity_half_life_hours must be > 0, "
                f"got {self.proximity_half_life_hours!r}"
            )
        if self.max_lag < 0:
            raise ValueError(f"ScoringWeights.max_lag must be >= 0, got {self.max_lag!r}")

    @property
    def total(self) -> float:
        """The highest score a suspect can reach, so callers can normalise or bound scores."""
        return self.effect + self.proximity + self.lineage + self.correlation


DEFAULT_WEIGHTS = ScoringWeights()


def _change_features(change: Change) -> tuple[str, ...]:
    # Environment capsules record the features a package touches in details (the change-log
    # capture knows them from the preprocessing code), not in Change.features.
    extra = change.details.get("features", ()) if isinstance(change.details, Mapping) else ()
    if isinstance(extra, str):
        extra = (extra,)
    return tuple(dict.fromkeys([*change.features, *(str(f) for f in extra)]))


def _is_rollback(change: Change) -> bool:
    details = change.details if isinstance(change.details, Mapping) else {}
    # The change-log capture records the ledger's alias kind ("assign", "promote", "rollback")
    # in details["kind"] and the versions in before/after; hand-written changes may only say so
    # in the summary or give from/to versions.
    if details.get("kind") == "rollback" or details.get("rollback") is True:
        return True
    if "rollback" in change.summary.lower() or "roll back" in change.summary.lower():
        return True
    to_v = details.get("to_version", change.after)
    from_v = details.get("from_version", change.before)
    return isinstance(to_v, int) and isinstance(from_v, int) and to_v < from_v


SERVING_ALIASES = ("champion",)
# Changes that decide how a model version is built; a model-producing run that contains one is
# where a bad version got its difference (the model's own bytes changing is the consequence).
_BUILD_KINDS = ("config", "code", "feature_set", "environment", "threshold")


def _is_serving_alias(change: Change) -> bool:
    details = change.details if isinstance(change.details, Mapping) else {}
    alias = details.get("alias") or (
        change.subject.rsplit(":", 1)[-1] if ":" in change.subject else None
    )
    return alias is None or alias in SERVING_ALIASES


def _producing_runs(changes: Sequence[Change], window: IncidentWindow) -> set[str]:
    """The runs that registered or promoted the failing version (its alias changes' runs)."""
    failing = window.first_bad.model_version
    if failing is None:
        return set()
    runs = set()
    for change in changes:
        details = change.details if isinstance(change.details, Mapping) else {}
        if change.kind == "alias" and details.get("to_version") == failing and change.run_id:
            runs.add(change.run_id)
    return runs


def _in_window(change: Change, window: IncidentWindow) -> bool:
    last_good = window.last_good
    return last_good is not None and last_good.at < change.at <= window.first_bad.at


def _in_failing_partitions(change: Change, window: IncidentWindow) -> bool:
    if change.partition is None:
        return False
    if window.last_good is None:
        return change.partition == window.first_bad.partition
    return window.last_good.partition < change.partition <= window.first_bad.partition


def _candidate_changes(
    changes: Sequence[Change], window: IncidentWindow, lookback: timedelta
) -> list[Change]:
    first_bad = window.first_bad
    out = []
    for change in changes:
        in_time = _in_window(change, window) or (
            first_bad.at - lookback <= change.at <= first_bad.at
        )
        if not (in_time or _in_failing_partitions(change, window)):
            continue
        # Rolling back after the failure is the response to the incident, not its cause.
        if change.kind == "alias" and change.at > first_bad.at and _is_rollback(change):
            continue
        # A challenger or shadow alias does not change what is served.
        if change.kind == "alias" and not _is_serving_alias(change):
            continue
        out.append(change)
    return out


def _finite(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _squash(effect: float) -> float:
    # Drift effects (PSI, standardised shifts) are unbounded; e/(e+1) keeps their order, maps
    # 1.0 to 0.5, and stops one enormous effect from drowning the other components.
    e = abs(effect)
    return e / (e + 1.0)


def _drift_by_feature_partition(drift: Sequence[DriftPoint]) -> dict[tuple[str, str], DriftPoint]:
    out: dict[tuple[str, str], DriftPoint] = {}
    for point in drift:
        if _finite(point.effect) is None:
            continue
        key = (point.feature, point.partition)
        kept = out.get(key)
        if kept is None or abs(point.effect) > abs(kept.effect):
            out[key] = point
    return out


@dataclass(frozen=True)
class _Evidence:
    value: float
    why: str


def _effect(
    change: Change,
    features: tuple[str, ...],
    window: IncidentWindow,
    drift: Mapping[tuple[str, str], DriftPoint],
) -> _Evidence:
    partition = window.first_bad.partition
    if features:
        measured = [(drift[(f, partition)], f) for f in features if (f, partition) in drift]
        if not measured:
            return _Evidence(0.0, f"no drift measured on its features in {partition}")
        point, feature = max(measured, key=lambda pair: abs(pair[0].effect))
        value = _squash(point.effect)
        return _Evidence(value, f"drift effect {value:.2f} on {feature} in {partition}")
    if change.kind in _DATA_PATH_KINDS:
        drifted = [p for (_, part), p in drift.items() if part == partition and p.drifted]
        if not drifted:
            return _Evidence(0.0, f"no feature drifted in {partition}")
        point = max(drifted, key=lambda p: abs(p.effect))
        value = 0.5 * _squash(point.effect)
        return _Evidence(
            value,
            f"drift effect {value:.2f} (half of {point.feature}'s, the features it touches "
            f"are not recorded) in {partition}",
        )
    if change.kind == "alias" and _put_failing_version_in_service(change, window):
        return _Evidence(
            1.0,
            f"effect 1.00: it put v{window.first_bad.model_version}, the failing version, "
            "into service",
        )
    return _Evidence(0.0, f"drift effect 0.00 ({change.kind} change touches no features)")


def _with_derived(features: tuple[str, ...], drift_features: Sequence[str]) -> tuple[str, ...]:
    """A change that names a raw column touches the features computed from it too
    (``latency_p99_ms`` touches ``latency_p99_ms__mean_1h``), so their drift is its evidence."""
    derived = [
        name
        for name in drift_features
        if name not in features and any(name.startswith(f"{column}__") for column in features)
    ]
    return (*features, *derived)


def _put_failing_version_in_service(change: Change, window: IncidentWindow) -> bool:
    failing = window.first_bad.model_version
    details = change.details if isinstance(change.details, Mapping) else {}
    if failing is None or details.get("to_version") != failing:
        return False
    # If the last good evaluation already ran this version, the model did not change across
    # the boundary; an old promotion of it cannot explain the new failure.
    last_good = window.last_good
    return last_good is None or last_good.model_version != failing


def _format_hours(hours: float) -> str:
    return f"{hours:.0f} h" if hours < 48 else f"{hours / 24:.1f} days"


def _passing_evaluations_since(change: Change, performance: Sequence[PerformancePoint]) -> int:
    """Evaluations that passed after a change and could have seen it: evidence it was harmless.

    Counting evaluations instead of hours keeps the evidence right when days are replayed in
    minutes (a backfill, a rehearsal): there the clock says everything is recent, but three
    passing evaluations after a change still say it did not break the model.
    """
    return sum(
        1
        for point in performance
        if point.passed
        and point.at > change.at
        and (change.partition is None or point.partition >= change.partition)
    )


def _proximity(
    change: Change,
    window: IncidentWindow,
    half_life_hours: float,
    performance: Sequence[PerformancePoint] = (),
) -> _Evidence:
    first_bad = window.first_bad
    hours = (first_bad.at - change.at).total_seconds() / 3600.0
    if _in_window(change, window):
        # Between two evaluations nothing tells a change at 01:00 from one at 23:00 apart.
        return _Evidence(
            1.0,
            f"proximity 1.00: between the last passing and the first failing evaluation "
            f"({_format_hours(hours)} before the latter)",
        )
    if change.partition == first_bad.partition and hours >= 0:
        return _Evidence(
            1.0,
            f"proximity 1.00: it landed in the failing partition {first_bad.partition}, "
            f"{_format_hours(hours)} before its evaluation",
        )
    value = 0.5 ** (abs(hours) / half_life_hours)
    side = "before" if hours >= 0 else "after"
    survived = _passing_evaluations_since(change, performance)
    if survived and 0.5**survived < value:
        return _Evidence(
            0.5**survived,
            f"proximity {0.5**survived:.2f}: {survived} passing evaluation(s) after it "
            f"({_format_hours(abs(hours))} {side} the first failing one)",
        )
    return _Evidence(
        value,
        f"proximity {value:.2f}: {_format_hours(abs(hours))} {side} the first failing evaluation",
    )


def _lineage(change: Change) -> _Evidence:
    distance = change.lineage_distance
    if distance is None:
        return _Evidence(0.5, "lineage 0.50: distance to the model unknown")
    if distance < 0:
        # Downstream of the model: it cannot have changed what the model saw.
        return _Evidence(0.0, f"lineage 0.00: {-distance} hop(s) downstream of the model")
    value = 1.0 / (1.0 + distance)
    where = "at the model itself" if distance == 0 else f"{distance} hop(s) upstream"
    return _Evidence(value, f"lineage {value:.2f}: {where}")


def _metric_series(
    performance: Sequence[PerformancePoint], metric: str
) -> tuple[list[str], list[float | None]]:
    points = _sorted_performance(performance)
    return [p.partition for p in points], [_finite(p.metrics.get(metric)) for p in points]


def _pearson(x: Sequence[float], y: Sequence[float]) -> float:
    if len(x) < _MIN_ALIGNED_POINTS:
        return 0.0
    xs, ys = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if np.ptp(xs) == 0 or np.ptp(ys) == 0:
        return 0.0
    with np.errstate(all="ignore"):
        r = float(np.corrcoef(xs, ys)[0, 1])
    return r if math.isfinite(r) else 0.0


def _lagged_correlation(
    feature: str,
    partitions: Sequence[str],
    values: Sequence[float | None],
    drift: Mapping[tuple[str, str], DriftPoint],
    lag: int,
) -> float:
    xs: list[float] = []
    ys: list[float] = []
    for i in range(len(partitions) - lag):
        point = drift.get((feature, partitions[i]))
        y = values[i + lag]
        if point is None or y is None:
            continue
        xs.append(abs(point.effect))
        ys.append(y)
    return _pearson(xs, ys)


def _correlation(
    features: tuple[str, ...],
    partitions: Sequence[str],
    values: Sequence[float | None],
    drift: Mapping[tuple[str, str], DriftPoint],
    max_lag: int,
) -> _Evidence:
    if not features:
        return _Evidence(0.0, "no drift-performance correlation (no features recorded)")
    best = (0.0, 0, features[0])
    for feature in features:
        for lag in range(max_lag + 1):
            r = abs(_lagged_correlation(feature, partitions, values, drift, lag))
            if r > best[0]:
                best = (r, lag, feature)
    value, lag, feature = best
    if value == 0.0:
        return _Evidence(0.0, "no drift-performance correlation (too little history)")
    return _Evidence(value, f"drift-performance correlation {value:.2f} on {feature} at lag {lag}")


def _sort_key(suspect: Suspect) -> tuple[float, float, str, str]:
    return (
        -suspect.score,
        -suspect.components["proximity"],
        suspect.change.subject,
        suspect.change.at.isoformat(),
    )


def score_suspects(
    changes: Sequence[Change],
    performance: Sequence[PerformancePoint],
    drift: Sequence[DriftPoint],
    window: IncidentWindow,
    *,
    weights: ScoringWeights = DEFAULT_WEIGHTS,
    metric: str = "f1",
    lookback: timedelta = timedelta(days=3),
) -> list[Suspect]:
    """Rank the changes that could explain ``window`` by four independent kinds of evidence.

    No single signal is reliable: timing blames whatever deployed last, drift blames whatever
    is noisy, correlation needs history. A weighted sum with every component shown lets the
    strong evidence win while the explanation keeps the weak evidence visible.
    """
    drift_map = _drift_by_feature_partition(drift)
    partitions, values = _metric_series(performance, metric)
    candidates = _candidate_changes(changes, window, lookback)
    producing = _producing_runs(changes, window)
    build_changes = [
        change
        for change in candidates
        if change.kind in _BUILD_KINDS and change.run_id in producing
    ]
    drift_features = sorted({feature for feature, _ in drift_map})
    # New data from a run that also changed how the asset is computed is that change's effect.
    decided: dict[tuple[str | None, str], str] = {
        (change.run_id, change.subject): change.kind
        for change in candidates
        if change.kind in _BUILD_KINDS and change.kind != "threshold" and change.run_id
    }
    suspects = []
    for change in candidates:
        features = _with_derived(_change_features(change), drift_features)
        effect = _effect(change, features, window, drift_map)
        failing = window.first_bad.model_version
        if change in build_changes:
            effect = _Evidence(
                1.0,
                f"effect 1.00: it changed how v{failing}, the failing version, was built "
                f"(run {str(change.run_id)[:8]})",
            )
        elif change.kind == "data" and (change.run_id, change.subject) in decided:
            effect = _Evidence(
                effect.value / 2,
                f"{effect.why}, halved: the {decided[(change.run_id, change.subject)]} change "
                "in the same run explains this new data",
            )
        elif change.kind == "alias" and effect.value == 1.0 and build_changes:
            effect = _Evidence(
                0.5,
                f"effect 0.50: it put v{failing}, the failing version, into service; the "
                "change that made that version different is ranked with it",
            )
        evidence = {
            "effect": effect,
            "proximity": _proximity(change, window, weights.proximity_half_life_hours, performance),
            "lineage": _lineage(change),
            "correlation": _correlation(features, partitions, values, drift_map, weights.max_lag),
        }
        components = {name: min(1.0, max(0.0, e.value)) for name, e in evidence.items()}
        score = sum(getattr(weights, name) * components[name] for name in _COMPONENTS)
        explanation = "; ".join(e.why for e in evidence.values()) + "."
        upstream = _upstream_refresh(change, candidates, decided)
        if upstream is not None:
            score *= DERIVED_REFRESH_FACTOR
            explanation += (
                f" Halved: its new data was computed, by unchanged code, from {upstream.summary}."
            )
        suspects.append(Suspect(change, score, components, explanation))
    return sorted(suspects, key=_sort_key)


def _upstream_refresh(
    change: Change, candidates: Sequence[Change], decided: Mapping[tuple[str | None, str], str]
) -> Change | None:
    """The new data further upstream, in the same partition, that a refresh was computed from.

    A derived asset that got new data while its own code, config and flags stayed the same only
    passed its upstream's change on: blaming it would send the person on call to the wrong
    place, however close to the model it sits."""
    if change.kind != "data" or change.partition is None or change.lineage_distance is None:
        return None
    if (change.run_id, change.subject) in decided:
        return None
    upstream = [
        other
        for other in candidates
        if other.kind == "data"
        and other.partition == change.partition
        and other.lineage_distance is not None
        and other.lineage_distance > change.lineage_distance
    ]
    return max(upstream, key=lambda other: other.lineage_distance or 0, default=None)


def correlation_ranker_baseline(
    performance: Sequence[PerformancePoint],
    drift: Sequence[DriftPoint],
    *,
    metric: str = "f1",
) -> list[tuple[str, float]]:
    """NannyML's CorrelationRanker, kept as the yardstick the engine must beat.

    It ranks features by how well their per-partition drift tracks the performance gap; it
    cannot blame a change with no features (an alias or threshold change), nor tell a feature
    that drifts every week from one that moved once, right at the failure.
    """
    points = _sorted_performance(performance)
    passing = [v for p in points if p.passed and (v := _finite(p.metrics.get(metric))) is not None]
    reference = float(np.mean(passing)) if passing else 0.0
    gap = {
        p.partition: reference - v
        for p in points
        if (v := _finite(p.metrics.get(metric))) is not None
    }
    drift_map = _drift_by_feature_partition(drift)
    features = sorted({feature for feature, _ in drift_map})
    ranked = []
    for feature in features:
        pairs = [
            (abs(drift_map[(feature, part)].effect), g)
            for part, g in gap.items()
            if (feature, part) in drift_map
        ]
        r = _pearson([x for x, _ in pairs], [y for _, y in pairs])
        ranked.append((feature, abs(r)))
    return sorted(ranked, key=lambda pair: (-pair[1], pair[0]))
