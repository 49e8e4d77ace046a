"""The cause families and the decoys, each drawn from a seed: service, column, magnitude, day.

A draw says what is planted and how a report names it (``Predicate``s over the suspects' changes,
checked against the change log the pipeline records), and which drift features it touches (for
the feature rankers). A decoy never shares (kind, subject, partition) with the truth: it moves to
the day before, or another kind of decoy is drawn.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from aiops_assets.core.features import FeatureSetSpec, Ratio
from aiops_assets.core.telemetry import DEFAULT_SERVICES, GENERATED_METRICS
from aiops_assets_tests.incident_lab.faults import (
    CODE_VERSIONS,
    CONFIG_KINDS,
    DATA_KINDS,
    current_code_version,
)
from aiops_assets_tests.incident_lab.spec import (
    DAYS,
    FIRST_INCIDENT_DAY,
    Fault,
    IncidentSpec,
    Predicate,
    partition,
)

SNAPSHOT = "telemetry_snapshot"
LabelCounts = Callable[[int], Mapping[str, int]]
"""Labeled anomalous rows per service on a day of the base history."""


@dataclass(frozen=True)
class Draw:
    """What a family's draw needs: a generator, and the base history's labels."""

    rng: np.random.Generator
    labels: LabelCounts

    def pick(self, options: Sequence[Any]) -> Any:
        return options[int(self.rng.integers(len(options)))]

    def uniform(self, low: float, high: float, digits: int = 3) -> float:
        return round(float(self.rng.uniform(low, high)), digits)

    def service(self, exclude: Sequence[str] = ()) -> str:
        return str(self.pick([s for s in DEFAULT_SERVICES if s not in exclude] or DEFAULT_SERVICES))

    def cause_day(self) -> int:
        return int(self.pick([FIRST_INCIDENT_DAY, FIRST_INCIDENT_DAY + 1]))


def _globs(columns: Sequence[str]) -> tuple[str, ...]:
    return tuple(f"{column}__*" for column in columns)


def _since(day: int) -> tuple[str, ...]:
    """Partitions from ``day`` on: a fault that persists is the cause on every day it lasts."""
    return tuple(partition(d) for d in range(day, DAYS))


def _data_truth(day: int, service: str | None) -> tuple[Predicate, ...]:
    return (Predicate("data", SNAPSHOT, _since(day), service),)


Family = Callable[[Draw], tuple[Fault, int]]
"""A family's draw: the cause, and the day the performance check should fail."""


_COLLECTOR_UNITS = {
    # A collector release that reports latencies in seconds and utilisation as fractions.
    "seconds_and_fractions": {
        "latency_p50_ms": 0.001,
        "latency_p99_ms": 0.001,
        "cpu_pct": 0.01,
        "memory_pct": 0.01,
    },
    # ... in microseconds and fractions.
    "microseconds_and_fractions": {
        "latency_p50_ms": 1000.0,
        "latency_p99_ms": 1000.0,
        "cpu_pct": 0.01,
        "memory_pct": 0.01,
    },
    # ... latencies in seconds and rates per minute.
    "seconds_and_per_minute": {
        "latency_p50_ms": 0.001,
        "latency_p99_ms": 0.001,
        "request_rate": 60.0,
        "error_rate": 60.0,
    },
}


def unit_change(draw: Draw) -> tuple[Fault, int]:
    """A collector release on one service changes the units it reports (latency in seconds or
    microseconds, with other columns), rolled out instance by instance over a few hours; a
    latency-only change fails no check of the scale-free detector, so it never pages."""
    service, day = draw.service(), draw.cause_day()
    release = str(draw.pick(list(_COLLECTOR_UNITS)))
    factors = dict(_COLLECTOR_UNITS[release])
    params = {
        "service": service,
        "release": release,
        "factors": factors,
        "at_hour": draw.uniform(0.0, 14.0, 1),
        "rollout_hours": draw.uniform(2.0, 8.0, 1),
    }
    fault = Fault("unit_change", day, params, _data_truth(day, service), _globs(sorted(factors)))
    return fault, day


def spikes(draw: Draw) -> tuple[Fault, int]:
    """Samples of one service where its latencies (and maybe errors) jump together."""
    service, day = draw.service(), draw.cause_day()
    columns = draw.pick(
        [
            ["latency_p50_ms", "latency_p99_ms"],
            ["latency_p50_ms", "latency_p99_ms", "error_rate"],
            ["error_rate", "latency_p99_ms"],
        ]
    )
    params = {
        "service": service,
        "columns": columns,
        "fraction": draw.uniform(0.03, 0.10),
        "factor": draw.uniform(3.0, 10.0, 2),
    }
    return Fault("spikes", day, params, _data_truth(day, service), _globs(columns)), day


def gradual(draw: Draw) -> tuple[Fault, int]:
    """A degradation that starts a day before the check should fail, and keeps ramping."""
    service, onset = draw.service(), draw.cause_day()
    columns = draw.pick([["error_rate"], ["error_rate", "latency_p50_ms", "latency_p99_ms"]])
    params = {"service": service, "columns": columns, "per_day": draw.uniform(8.0, 25.0, 2)}
    fault = Fault("gradual", onset, params, _data_truth(onset, service), _globs(columns))
    return fault, onset + 1


def _incident_day_and_services(draw: Draw, low: int, high: int) -> tuple[int, list[str]]:
    """A day with labeled anomalies (the check judges F1 on five rows or more) and ``low`` to
    ``high`` services drawn by their share of that day's anomalies."""
    days = [FIRST_INCIDENT_DAY, FIRST_INCIDENT_DAY + 1]
    totals = np.array([float(sum(draw.labels(d).values())) ** 2 for d in days])
    if totals.sum():
        day = int(days[int(draw.rng.choice(2, p=totals / totals.sum()))])
    else:
        day = draw.cause_day()
    counts = draw.labels(day)
    weights = np.array([float(counts.get(s, 0)) + 0.5 for s in DEFAULT_SERVICES])
    size = int(draw.rng.integers(low, high + 1))
    chosen = draw.rng.choice(DEFAULT_SERVICES, size=size, replace=False, p=weights / weights.sum())
    return day, sorted(str(s) for s in chosen)


def nulls(draw: Draw) -> tuple[Fault, int]:
    """A shared collector drops most payloads of several services on a day of incidents: the
    day is drawn by its labeled anomalies, the services by their share of them."""
    day, services = _incident_day_and_services(draw, 2, 4)
    size = int(draw.rng.integers(4, len(GENERATED_METRICS) + 1))
    columns = sorted(str(c) for c in draw.rng.choice(GENERATED_METRICS, size=size, replace=False))
    params = {"services": services, "columns": columns, "fraction": draw.uniform(0.8, 0.98)}
    truth = tuple(Predicate("data", SNAPSHOT, _since(day), service) for service in services)
    return Fault("nulls", day, params, truth, _globs(columns)), day


def missing_service(draw: Draw) -> tuple[Fault, int]:
    """One service's export stops arriving. A feature ranker has no feature to name for it."""
    service, day = draw.service(), draw.cause_day()
    return Fault("missing_service", day, {"service": service}, _data_truth(day, service)), day


def label_break(draw: Draw) -> tuple[Fault, int]:
    """Every label 0 from the cause day on, which is a day of real incidents the model flags."""
    day = draw.cause_day()
    params = {"incident_rate_factor": draw.uniform(1.5, 3.0, 2)}
    truth = (Predicate("labels", SNAPSHOT, _since(day)),)
    return Fault("label_break", day, params, truth, ("label",)), day


_PROFILES = {
    # The exporter profile for collectors that report per-instance rates, seconds and fractions.
    "seconds_profile": {
        "request_rate": 10.0,
        "error_rate": 10.0,
        "latency_p50_ms": 1000.0,
        "latency_p99_ms": 1000.0,
        "cpu_pct": 0.01,
        "memory_pct": 0.01,
    },
    "errors_per_10s": {"error_rate": 10.0},
    "fractions_profile": {
        "latency_p50_ms": 0.001,
        "latency_p99_ms": 0.001,
        "cpu_pct": 0.01,
        "memory_pct": 0.01,
    },
}


def config_change(draw: Draw) -> tuple[Fault, int]:
    """A wrong ``unit_scale`` entry for one service in the snapshot's run config: the deploy
    gave it another exporter's factors."""
    service, day = draw.service(), draw.cause_day()
    profile = str(draw.pick(list(_PROFILES)))
    factors = dict(_PROFILES[profile])
    params = {"service": service, "profile": profile, "factors": factors}
    truth = (Predicate("config", SNAPSHOT, (partition(day),)),)
    return Fault("config_change", day, params, truth, _globs(sorted(factors))), day


def broken_feature_set(variant: str) -> FeatureSetSpec:
    """A feature set with the production set's columns and another meaning: its error ratio is
    built from the wrong columns, or its windows want more samples than 5-minute data has (a
    set tuned on 1-minute data), so every rolling feature is missing."""
    if variant == "min_periods":
        return FeatureSetSpec(version=2, min_periods=300)
    numerator, denominator = _BROKEN_RATIOS[variant]
    return FeatureSetSpec(version=2, ratios=(Ratio("error_ratio", numerator, denominator),))


_BROKEN_RATIOS = {
    "inverted_ratio": ("request_rate", "error_rate"),
    "wrong_denominator": ("error_rate", "cpu_pct"),
    "latency_ratio": ("latency_p99_ms", "latency_p50_ms"),
}
_FEATURE_SET_GLOBS = {
    **dict.fromkeys(_BROKEN_RATIOS, ("ratio__error_ratio",)),
    "min_periods": ("*__mean_*", "*__std_*", "*__z_*", "*__dz"),
}


def feature_set_change(draw: Draw) -> tuple[Fault, int]:
    """A new flag version routes some or all services to a registered feature set that breaks
    their features (same columns, another meaning). A set whose rolling features all go missing
    hides anomalies, so it lands on a day of incidents, on the services that have them."""
    variant = str(draw.pick(list(_FEATURE_SET_GLOBS)))
    if variant == "min_periods":
        day, services = _incident_day_and_services(draw, 2, 4)
    else:
        day = draw.cause_day()
        count = int(draw.pick([1, 2, 3, len(DEFAULT_SERVICES)]))
        services = sorted(
            str(s) for s in draw.rng.choice(DEFAULT_SERVICES, size=count, replace=False)
        )
    version_id = broken_feature_set(variant).version_id
    params = {"variant": variant, "services": services, "version_id": version_id}
    truth = (
        Predicate("config", "flags"),
        Predicate("feature_set", "features", (partition(day),)),
        Predicate("feature_set", f"feature_set:{version_id}"),
    )
    return Fault("feature_set_change", day, params, truth, _FEATURE_SET_GLOBS[variant]), day


def code_change(draw: Draw) -> tuple[Fault, int]:
    """A refactor of the feature code, deployed as a new ``features`` code version."""
    day = draw.cause_day()
    variant = str(draw.pick(["clip", "ratio_percent"]))
    value = draw.uniform(1.5, 2.5, 2) if variant == "clip" else 100.0
    params = {"variant": variant, "value": value, "version": "features-3"}
    globs = ("*__z_*", "*__dz") if variant == "clip" else ("ratio__*",)
    truth = (Predicate("code", "features", (partition(day),)),)
    return Fault("code_change", day, params, truth, globs), day


def library_upgrade(draw: Draw) -> tuple[Fault, int]:
    day = draw.cause_day()
    methods = draw.pick([["mean"], ["std"], ["mean", "std"]])
    params = {"methods": methods, "minor_step": int(draw.pick([1, 2]))}
    globs = (*(f"*__{m}_*" for m in methods), "*__z_*")
    truth = (Predicate("environment", "features", (partition(day),)),)
    return Fault("library_upgrade", day, params, truth, globs), day


def bad_promotion(draw: Draw) -> tuple[Fault, int]:
    """A candidate trained with an alert budget far above what the team accepts, forced into
    service with ``aiops registry promote``; the version it gets is known once it is trained."""
    day = draw.cause_day()
    # ``alert_quantile`` is the share of train rows below the threshold: 1 - the alert rate.
    alert_rate = draw.uniform(0.04, 0.12)
    params = {
        "alert_rate": alert_rate,
        "alert_quantile": round(1.0 - alert_rate, 3),
        "seed": int(draw.rng.integers(1, 10_000)),
    }
    truth = (Predicate("alias", "anomaly_detector:champion"),)
    return Fault("bad_promotion", day, params, truth), day


FAMILIES: dict[str, Family] = {
    "unit_change": unit_change,
    "spikes": spikes,
    "gradual": gradual,
    "nulls": nulls,
    "missing_service": missing_service,
    "label_break": label_break,
    "config_change": config_change,
    "feature_set_change": feature_set_change,
    "code_change": code_change,
    "library_upgrade": library_upgrade,
    "bad_promotion": bad_promotion,
}
# A missing service fails no performance check of the reference detector (it scores the rows it
# gets, and the labels leave with the rows), so it never becomes an incident: it runs only when
# asked for (``--families missing_service``), and every draw is redrawn until it gives up.
DEFAULT_FAMILIES = tuple(family for family in FAMILIES if family != "missing_service")


# --- decoys ------------------------------------------------------------------------------------

DECOY_KINDS = ("noop_config", "noop_deploy", "unrelated_change")


def _decoy(draw: Draw, kind: str, day: int, cause: Fault) -> Fault:
    params: dict[str, Any]
    if kind == "noop_config":
        column = str(draw.pick(GENERATED_METRICS))
        params = {"service": draw.service(), "factors": {column: 1.0}}
        predicate = Predicate("config", SNAPSHOT, (partition(day),))
        return Fault(kind, day, params, (predicate,), _globs([column]))
    if kind == "noop_deploy":
        asset = str(draw.pick(list(CODE_VERSIONS)))
        params = {"asset": asset, "version": f"{current_code_version(asset)}.{day}"}
        return Fault(kind, day, params, (Predicate("code", asset, (partition(day),)),))
    service = draw.service(exclude=cause_services(cause))
    params = {
        "service": service,
        "columns": ["request_rate"],
        "factor": draw.uniform(1.05, 1.15),
    }
    predicate = Predicate("data", SNAPSHOT, (partition(day),), service)
    return Fault(kind, day, params, (predicate,), _globs(["request_rate"]))


def cause_services(fault: Fault) -> tuple[str, ...]:
    """The services whose data or config a fault changes (none: every service's, or none)."""
    if fault.kind not in DATA_KINDS | CONFIG_KINDS:
        return ()
    if "services" in fault.params:
        return tuple(str(s) for s in fault.params["services"])
    return (str(fault.params["service"]),) if "service" in fault.params else ()


def _collides(decoy: Fault, cause: Fault) -> bool:
    """Whether some change could be taken for both (kind and subject alike, partitions overlap)."""
    for mine in decoy.predicates:
        for theirs in cause.predicates:
            if (mine.kind, mine.subject) != (theirs.kind, theirs.subject):
                continue
            if mine.partitions is None or theirs.partitions is None:
                return True
            if set(mine.partitions) & set(theirs.partitions):
                return True
    return False


def draw_decoys(draw: Draw, cause: Fault, fail_day: int) -> tuple[Fault, ...]:
    """0 to 2 decoys between the first incident day and the day the check should fail."""
    decoys: list[Fault] = []
    for _ in range(int(draw.pick([0, 1, 1, 2, 2]))):
        kinds = [str(k) for k in draw.rng.permutation(DECOY_KINDS)]
        day = int(draw.rng.integers(FIRST_INCIDENT_DAY, fail_day + 1))
        for kind in kinds:
            decoy = _placed(draw, kind, day, cause, decoys)
            if decoy is not None:
                decoys.append(decoy)
                break
    return tuple(decoys)


def _placed(draw: Draw, kind: str, day: int, cause: Fault, others: list[Fault]) -> Fault | None:
    """The decoy on ``day``, else on an earlier incident day, or None if it collides on each."""
    for candidate_day in range(day, FIRST_INCIDENT_DAY - 1, -1):
        decoy = _decoy(draw, kind, candidate_day, cause)
        if not _collides(decoy, cause) and not any(_collides(decoy, o) for o in others):
            return decoy
    return None


def draw_incident(
    family: str, seed: int, base_seed: int, attempt: int, labels: LabelCounts
) -> IncidentSpec:
    """The incident ``seed`` of ``family`` (``attempt`` > 0: a redraw after a fault that failed
    nothing), over the history of ``base_seed``."""
    if family not in FAMILIES:
        raise ValueError(f"unknown family {family!r}; choose from {', '.join(FAMILIES)}")
    draw = Draw(np.random.default_rng([seed, attempt]), labels)
    cause, fail_day = FAMILIES[family](draw)
    decoys = draw_decoys(draw, cause, fail_day)
    return IncidentSpec(
        family=family,
        seed=seed,
        base_seed=base_seed,
        attempt=attempt,
        cause=cause,
        decoys=decoys,
        last_day=min(fail_day + 1, DAYS - 1),
    )
