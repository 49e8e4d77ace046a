"""The seeded scenario generator: realistic telemetry for a set of services, with known incidents.

A :class:`Scenario` (dates, services, seed, incident rate, events) fully determines the data, and
every service-day draws from its own seeded random stream, so a daily partition generated alone is
bit-identical to the same day inside a range, on any machine. Events are the changes a pipeline
must notice: a bad config deploy (:class:`ConfigChange`), an upstream bug that drops values
(:class:`NullInjection`) and a leak-like trend (:class:`SlowDrift`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, ClassVar, Final, TypeAlias

import numpy as np
import numpy.typing as npt
import pandas as pd

from aiops_assets.core.telemetry.contract import (
    GENERATED_METRICS,
    LABEL,
    SERVICE,
    TIMESTAMP,
    BoolArray,
    FloatArray,
    IntArray,
    canonical_telemetry,
)

__all__ = [
    "DEFAULT_SERVICES",
    "ConfigChange",
    "NullInjection",
    "Scenario",
    "ScenarioEvent",
    "SlowDrift",
    "default_scenario",
    "generate",
    "generate_day",
]

DEFAULT_SERVICES: Final = ("checkout", "payments", "search", "catalog", "auth", "gateway")
_MINUTES_PER_DAY: Final = 24 * 60
_OUTPUT_DECIMALS: Final = 4
"""Generated values are rounded so a last-bit difference in a CPU's exp/sin cannot change a snapshot
hash across machines (rounding is monotone, so the metric invariants survive it)."""
_MIN_LATENCY_MS: Final = 0.05
_INCIDENT_MINUTES: Final = (15, 90)
_PERCENT_COLUMNS: Final = frozenset({"cpu_pct", "memory_pct"})


def _require_plain_date(value: object, what: str) -> None:
    # datetime is a date subclass, but comparing it with a date raises, and a time of day would be
    # silently ignored by the day arithmetic: refuse it up front.
    if not isinstance(value, date) or isinstance(value, datetime):
        raise ValueError(f"{what} must be a datetime.date (not a datetime), got {value!r}")


def _require_generated_metric(column: str, what: str) -> None:
    if column not in GENERATED_METRICS:
        raise ValueError(f"{what}: unknown metric {column!r}; choose from {GENERATED_METRICS}")


def _kwargs_from_dict(
    data: Mapping[str, Any], kind: str, converters: Mapping[str, Callable[[Any], Any]]
) -> dict[str, Any]:
    """Shared strict decoding: a typo in a stored scenario must fail, not fall back to a default."""
    if data.get("kind", kind) != kind:
        raise ValueError(f"expected kind {kind!r}, got {data.get('kind')!r}")
    unknown = sorted(set(data) - set(converters) - {"kind"})
    if unknown:
        raise ValueError(f"{kind}: unknown keys {unknown}")
    return {name: convert(data[name]) for name, convert in converters.items() if name in data}


@dataclass(frozen=True)
class ConfigChange:
    """A bad configuration deploy: the service's latency p50 and p99 are multiplied by
    ``latency_factor`` from ``day`` (inclusive) to the end of the scenario.

    Not labeled as an incident: it is a change a drift check and the incident correlator should
    attribute, not an anomaly a detector is trained to flag.
    """

    kind: ClassVar[str] = "config_change"
    day: date
    service: str
    latency_factor: float = 1.8

    def __post_init__(self) -> None:
        _require_plain_date(self.day, "ConfigChange.day")
        if not (math.isfinite(self.latency_factor) and self.latency_factor > 0):
            raise ValueError(f"ConfigChange.latency_factor must be > 0, got {self.latency_factor}")

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "day": self.day.isoformat(),
            "service": self.service,
            "latency_factor": float(self.latency_factor),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ConfigChange:
        return cls(
            **_kwargs_from_dict(
                data,
                cls.kind,
                {"day": date.fromisoformat, "service": str, "latency_factor": float},
            )
        )


@dataclass(frozen=True)
class NullInjection:
    """An upstream bug on one day: ``fraction`` of the service's rows lose ``columns`` (NaN).

    The same rows lose all listed columns, as when a collector drops part of a payload. Not labeled:
    a quality check should catch it.
    """

    kind: ClassVar[str] = "null_injection"
    day: date
    service: str
    columns: tuple[str, ...] = ("latency_p99_ms", "cpu_pct")
    fraction: float = 0.3

    def __post_init__(self) -> None:
        _require_plain_date(self.day, "NullInjection.day")
        if not self.columns or len(set(self.columns)) != len(self.columns):
            raise ValueError(
                f"NullInjection.columns must be distinct and non-empty: {self.columns}"
            )
        for column in self.columns:
            _require_generated_metric(column, "NullInjection.columns")
        if not 0.0 <= self.fraction <= 1.0:
            raise ValueError(f"NullInjection.fraction must be in [0, 1], got {self.fraction}")

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "day": self.day.isoformat(),
            "service": self.service,
            "columns": list(self.columns),
            "fraction": float(self.fraction),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> NullInjection:
        return cls(
            **_kwargs_from_dict(
                data,
                cls.kind,
                {
                    "day": date.fromisoformat,
                    "service": str,
                    "columns": lambda columns: tuple(str(column) for column in columns),
                    "fraction": float,
                },
            )
        )


@dataclass(frozen=True)
class SlowDrift:
    """A leak-like trend: from ``start_day`` on, ``column`` grows by ``per_day_factor`` per day.

    Growth compounds continuously with time (``(1 + per_day_factor) ** elapsed_days`` per row), so
    there is no step at midnight for a detector to latch onto; values are clipped to the column's
    valid range (0..100 for percentages, and the ordering invariants for rates and latencies).
    """

    kind: ClassVar[str] = "slow_drift"
    start_day: date
    service: str
    column: str = "memory_pct"
    per_day_factor: float = 0.04

    def __post_init__(self) -> None:
        _require_plain_date(self.start_day, "SlowDrift.start_day")
        _require_generated_metric(self.column, "SlowDrift.column")
        if not (math.isfinite(self.per_day_factor) and self.per_day_factor > -1.0):
            raise ValueError(f"SlowDrift.per_day_factor must be > -1, got {self.per_day_factor}")

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "start_day": self.start_day.isoformat(),
            "service": self.service,
            "column": self.column,
            "per_day_factor": float(self.per_day_factor),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SlowDrift:
        return cls(
            **_kwargs_from_dict(
                data,
                cls.kind,
                {
                    "start_day": date.fromisoformat,
                    "service": str,
                    "column": str,
                    "per_day_factor": float,
                },
            )
        )


ScenarioEvent: TypeAlias = ConfigChange | NullInjection | SlowDrift
_EVENT_TYPES: Final[dict[str, type[ConfigChange] | type[NullInjection] | type[SlowDrift]]] = {
    ConfigChange.kind: ConfigChange,
    NullInjection.kind: NullInjection,
    SlowDrift.kind: SlowDrift,
}


def _event_from_dict(data: Mapping[str, Any]) -> ScenarioEvent:
    kind = data.get("kind")
    if kind not in _EVENT_TYPES:
        raise ValueError(
            f"unknown scenario event kind {kind!r}; expected one of {sorted(_EVENT_TYPES)}"
        )
    return _EVENT_TYPES[kind].from_dict(data)


@dataclass(frozen=True)
class Scenario:
    """Everything that determines generated telemetry; equal scenarios give bit-identical data.

    Events whose day falls outside ``[start, end)`` are simply inactive, so a shortened scenario
    (e.g. ``default_scenario(days=3)``) stays valid.
    """

    start: date
    days: int
    services: tuple[str, ...]
    seed: int
    step_minutes: int = 5
    incidents_per_service_day: float = 0.35
    events: tuple[ScenarioEvent, ...] = ()

    def __post_init__(self) -> None:
        _require_plain_date(self.start, "Scenario.start")
        if isinstance(self.days, bool) or not isinstance(self.days, int) or self.days < 1:
            raise ValueError(f"Scenario.days must be a positive int, got {self.days!r}")
        if not self.services or len(set(self.services)) != len(self.services):
            raise ValueError(f"Scenario.services must be distinct and non-empty: {self.services!r}")
        if not all(isinstance(service, str) and service.strip() for service in self.services):
            raise ValueError(f"Scenario.services must be non-empty strings: {self.services!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ValueError(f"Scenario.seed must be a non-negative int, got {self.seed!r}")
        if (
            isinstance(self.step_minutes, bool)
            or not isinstance(self.step_minutes, int)
            or self.step_minutes < 1
            or _MINUTES_PER_DAY % self.step_minutes
        ):
            raise ValueError(
                f"Scenario.step_minutes must be a positive divisor of 1440, got {self.step_minutes!r}"
            )
        rate = self.incidents_per_service_day
        if not (math.isfinite(rate) and rate >= 0):
            raise ValueError(f"Scenario.incidents_per_service_day must be >= 0, got {rate!r}")
        for event in self.events:
            if not isinstance(event, ConfigChange | NullInjection | SlowDrift):
                raise ValueError(f"Scenario.events: not a scenario event: {event!r}")
            if event.service not in self.services:
                raise ValueError(
                    f"Scenario.events: {event!r} names service {event.service!r}, "
                    f"which is not in {self.services!r}"
                )

    @property
    def end(self) -> date:
        """Exclusive end date, so ``[start, end)`` composes with daily partitions."""
        return self.start + timedelta(days=self.days)

    @property
    def day_list(self) -> list[date]:
        return [self.start + timedelta(days=offset) for offset in range(self.days)]

    @property
    def rows_per_service_day(self) -> int:
        return _MINUTES_PER_DAY // self.step_minutes

    def to_dict(self) -> dict[str, Any]:
        return {
            "start": self.start.isoformat(),
            "days": self.days,
            "services": list(self.services),
            "seed": self.seed,
            "step_minutes": self.step_minutes,
            "incidents_per_service_day": float(self.incidents_per_service_day),
            "events": [event.to_dict() for event in self.events],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Scenario:
        return cls(
            **_kwargs_from_dict(
                data,
                "scenario",
                {
                    "start": date.fromisoformat,
                    "days": int,
                    "services": lambda services: tuple(str(service) for service in services),
                    "seed": int,
                    "step_minutes": int,
                    "incidents_per_service_day": float,
                    "events": lambda events: tuple(_event_from_dict(event) for event in events),
                },
            )
        )


def default_scenario(
    start: date = date(2026, 1, 5), days: int = 14, seed: int = 20260105
) -> Scenario:
    """The reference scenario: six services, one of each scenario event.

    ``payments`` gets a bad config on day 9, ``search`` loses 30 % of its p99/CPU values on day 6,
    and ``catalog``'s memory starts leaking on day 3 - early enough that a drift check has a clean
    baseline before each event and enough days after it to see the effect.
    """
    return Scenario(
        start=start,
        days=days,
        services=DEFAULT_SERVICES,
        seed=seed,
        events=(
            ConfigChange(day=start + timedelta(days=9), service="payments"),
            NullInjection(day=start + timedelta(days=6), service="search"),
            SlowDrift(start_day=start + timedelta(days=3), service="catalog"),
        ),
    )


def generate(
    scenario: Scenario, start: date | None = None, end: date | None = None
) -> pd.DataFrame:
    """Telemetry for the days ``[start, end)`` (default: the whole scenario), one canonical frame.

    Built from :func:`generate_day`, so any range equals the concatenation of its daily partitions.
    """
    first_day = scenario.start if start is None else start
    stop_day = scenario.end if end is None else end
    _require_plain_date(first_day, "start")
    _require_plain_date(stop_day, "end")
    if not scenario.start <= first_day < stop_day <= scenario.end:
        raise ValueError(
            f"range [{first_day}, {stop_day}) is empty or outside the scenario "
            f"[{scenario.start}, {scenario.end})"
        )
    days = [first_day + timedelta(days=offset) for offset in range((stop_day - first_day).days)]
    frames = [generate_day(scenario, day) for day in days]
    return canonical_telemetry(pd.concat(frames, ignore_index=True))


def generate_day(scenario: Scenario, day: date) -> pd.DataFrame:
    """The canonical telemetry frame for one UTC day of the scenario.

    A pure function of ``(scenario, day)``: every service-day draws from its own random stream
    seeded by ``(scenario.seed, service index, day ordinal)``, and slow components are functions of
    absolute time, so a daily partition can be (re)materialized alone, in any order, on any machine,
    and still match the same day generated as part of a range bit for bit.
    """
    _require_plain_date(day, "day")
    if not scenario.start <= day < scenario.end:
        raise ValueError(f"day {day} is outside the scenario [{scenario.start}, {scenario.end})")
    services_in_output_order = sorted(
        range(len(scenario.services)), key=scenario.services.__getitem__
    )
    service_days = [
        _generate_service_day(scenario, index, day) for index in services_in_output_order
    ]
    services = [scenario.services[i] for i in services_in_output_order]
    return canonical_telemetry(_time_major_frame(scenario, day, services, service_days))


def _time_major_frame(
    scenario: Scenario, day: date, services: list[str], service_days: list[_ServiceDay]
) -> pd.DataFrame:
    """One day's rows of every service, time-major with services in name order.

    Stacked as (service, time) and raveled transposed, which is already the canonical row order.
    """
    rows = scenario.rows_per_service_day
    step = np.timedelta64(scenario.step_minutes * 60_000_000, "us")
    day_timestamps = np.datetime64(day.isoformat(), "us") + np.arange(rows) * step
    service_count = len(service_days)
    return pd.DataFrame(
        {
            TIMESTAMP: np.repeat(day_timestamps, service_count),
            SERVICE: pd.Series(np.tile(np.array(services, dtype=object), rows), dtype=object),
            **{
                metric: np.stack([metrics[metric] for metrics, _ in service_days]).T.ravel()
                for metric in GENERATED_METRICS
            },
            LABEL: np.stack([labels for _, labels in service_days]).T.ravel(),
        }
    )


@dataclass(frozen=True)
class _ServiceProfile:
    """Per-service constants, drawn from ``(seed, service index)`` so they are the same every day."""

    base_request_rate: float
    base_latency_ms: float
    tail_extra: float
    error_fraction: float
    cpu_idle_pct: float
    cpu_busy_pct: float
    memory_base_pct: float
    memory_wave_phases: tuple[float, float]
    peak_hour_utc: float
    weekend_factor: float


_MEMORY_WAVES: Final = ((3.0, 1847), (2.0, 4951))
"""(amplitude in percentage points, period in minutes): incommensurate with a day, so memory wanders
slowly and continuously across midnight instead of repeating daily."""


def _service_profile(seed: int, service_index: int) -> _ServiceProfile:
    rng = np.random.default_rng(np.random.SeedSequence([seed, service_index]))
    return _ServiceProfile(
        base_request_rate=float(np.exp(rng.uniform(np.log(50.0), np.log(800.0)))),
        base_latency_ms=float(rng.uniform(8.0, 60.0)),
        tail_extra=float(rng.uniform(1.0, 2.5)),
        error_fraction=float(rng.uniform(0.001, 0.005)),
        cpu_idle_pct=float(rng.uniform(5.0, 15.0)),
        cpu_busy_pct=float(rng.uniform(45.0, 70.0)),
        memory_base_pct=float(rng.uniform(35.0, 60.0)),
        memory_wave_phases=(float(rng.uniform(0, 2 * np.pi)), float(rng.uniform(0, 2 * np.pi))),
        peak_hour_utc=float(rng.uniform(13.5, 16.5)),
        weekend_factor=float(rng.uniform(0.65, 0.75)),
    )


def _ar1(rng: np.random.Generator, rows: int, *, persistence: float, sd: float) -> FloatArray:
    """Stationary AR(1) noise: telemetry noise is autocorrelated, not white, minute to minute.

    The recursion runs on Python floats (a few hundred steps): plain IEEE multiply-adds give the
    same bits on every machine, and it avoids importing scipy.signal (over a second) for one filter.
    """
    innovations = rng.standard_normal(rows) * (sd * math.sqrt(1.0 - persistence**2))
    level = float(innovations[0]) / math.sqrt(1.0 - persistence**2)  # start in the stationary law
    path = [level]
    for innovation in innovations[1:].tolist():
        level = persistence * level + innovation
        path.append(level)
    return np.asarray(path, dtype=np.float64)


_ServiceDay: TypeAlias = tuple[dict[str, FloatArray], npt.NDArray[np.int8]]
"""One service's metrics for one day, and its incident labels."""


def _generate_service_day(scenario: Scenario, service_index: int, day: date) -> _ServiceDay:
    service = scenario.services[service_index]
    rows = scenario.rows_per_service_day
    minute_of_day = np.arange(rows, dtype=np.int64) * scenario.step_minutes
    # Separate streams for normal behaviour, incidents and events: changing the incident rate or
    # adding an event leaves the underlying noise identical, so a with/without comparison isolates
    # exactly the effect being studied.
    base_stream, incident_stream, event_stream = np.random.SeedSequence(
        [scenario.seed, service_index, day.toordinal()]
    ).spawn(3)
    normal = _normal_metrics(
        _service_profile(scenario.seed, service_index),
        np.random.default_rng(base_stream),
        day,
        minute_of_day,
    )
    in_incident, p50_multiplier, p99_multiplier, error_multiplier, cpu_boost = _incidents(
        np.random.default_rng(incident_stream), scenario, rows
    )
    metrics: dict[str, FloatArray] = {
        "request_rate": normal["request_rate"],
        "error_rate": normal["error_rate"] * error_multiplier,
        "latency_p50_ms": normal["latency_p50_ms"] * p50_multiplier,
        "latency_p99_ms": normal["latency_p99_ms"] * p99_multiplier,
        "cpu_pct": normal["cpu_pct"] + cpu_boost,
        "memory_pct": normal["memory_pct"],
    }
    for event in scenario.events:
        if event.service == service:
            _apply_change(event, day, minute_of_day, metrics)
    metrics = _enforce_invariants(metrics)
    metrics = {name: np.round(values, _OUTPUT_DECIMALS) for name, values in metrics.items()}
    event_rng = np.random.default_rng(event_stream)
    for event in scenario.events:
        if isinstance(event, NullInjection) and event.service == service and event.day == day:
            _drop_values(event, event_rng, rows, metrics)
    return metrics, in_incident.astype(np.int8)


def _normal_metrics(
    profile: _ServiceProfile, noise: np.random.Generator, day: date, minute_of_day: IntArray
) -> dict[str, FloatArray]:
    """The service's healthy behaviour: daily and weekly load, autocorrelated noise, memory waves.

    The draws from ``noise`` happen in a fixed order; reordering them changes every generated value.
    """
    rows = len(minute_of_day)
    hours = minute_of_day / 60.0
    daily_shape = 0.5 * (1.0 + np.cos(2.0 * np.pi * (hours - profile.peak_hour_utc) / 24.0))
    daily_load = 0.25 + 0.75 * daily_shape**1.5
    weekly_load = profile.weekend_factor if day.weekday() >= 5 else 1.0
    day_level = math.exp(noise.normal(0.0, 0.05))
    utilization = (
        daily_load * weekly_load * day_level * np.exp(_ar1(noise, rows, persistence=0.85, sd=0.08))
    )
    request_rate = profile.base_request_rate * utilization
    latency_p50 = (
        profile.base_latency_ms
        * (1.0 + 0.35 * utilization**2)
        * np.exp(_ar1(noise, rows, persistence=0.6, sd=0.06))
    )
    tail_factor = 1.2 + profile.tail_extra * np.exp(noise.normal(0.0, 0.25, rows))
    latency_p99 = latency_p50 * tail_factor
    error_rate = request_rate * profile.error_fraction * np.exp(noise.normal(0.0, 0.35, rows))
    cpu = (
        profile.cpu_idle_pct
        + (profile.cpu_busy_pct - profile.cpu_idle_pct) * utilization
        + _ar1(noise, rows, persistence=0.7, sd=2.0)
    )
    memory = _memory_pct(profile, noise, utilization, day, minute_of_day)  # the last draw
    return {
        "request_rate": request_rate,
        "error_rate": error_rate,
        "latency_p50_ms": latency_p50,
        "latency_p99_ms": latency_p99,
        "cpu_pct": cpu,
        "memory_pct": memory,
    }


def _memory_pct(
    profile: _ServiceProfile,
    noise: np.random.Generator,
    utilization: FloatArray,
    day: date,
    minute_of_day: IntArray,
) -> FloatArray:
    """Memory follows load a little and wanders with slow waves that run on across midnight."""
    absolute_minute = day.toordinal() * _MINUTES_PER_DAY + minute_of_day
    memory = (
        profile.memory_base_pct + 1.5 * utilization + noise.normal(0.0, 0.3, len(minute_of_day))
    )
    for (amplitude, period), phase in zip(_MEMORY_WAVES, profile.memory_wave_phases, strict=True):
        # Reduce the (huge) absolute minute exactly in integers before the sine, so precision does
        # not depend on how far the date is from the epoch.
        memory = memory + amplitude * np.sin(
            2.0 * np.pi * (absolute_minute % period) / period + phase
        )
    return memory


def _apply_change(
    event: ScenarioEvent, day: date, minute_of_day: IntArray, metrics: dict[str, FloatArray]
) -> None:
    """A config change or slow drift of this service, once it has started (in place)."""
    if isinstance(event, ConfigChange) and day >= event.day:
        metrics["latency_p50_ms"] = metrics["latency_p50_ms"] * event.latency_factor
        metrics["latency_p99_ms"] = metrics["latency_p99_ms"] * event.latency_factor
    elif isinstance(event, SlowDrift) and day >= event.start_day:
        elapsed_days = (day - event.start_day).days + minute_of_day / _MINUTES_PER_DAY
        grown = metrics[event.column] * (1.0 + event.per_day_factor) ** elapsed_days
        metrics[event.column] = _clip_to_valid_range(event.column, grown, metrics)


def _drop_values(
    event: NullInjection, rng: np.random.Generator, rows: int, metrics: dict[str, FloatArray]
) -> None:
    """The same randomly chosen rows lose every column the injection names (in place)."""
    lost_rows = rng.choice(rows, size=math.floor(event.fraction * rows + 0.5), replace=False)
    for column in event.columns:
        metrics[column][lost_rows] = np.nan


def _incidents(
    rng: np.random.Generator, scenario: Scenario, rows: int
) -> tuple[BoolArray, FloatArray, FloatArray, FloatArray, FloatArray]:
    """Labeled incidents: Poisson count per service-day, each 15-90 minutes inside the day.

    Incidents never cross midnight, so a day stays independent of its neighbours. Overlapping
    incidents take the stronger effect instead of compounding into absurd values.
    """
    step = scenario.step_minutes
    shortest = max(1, math.ceil(_INCIDENT_MINUTES[0] / step))
    longest = min(rows, max(shortest, _INCIDENT_MINUTES[1] // step))
    in_incident = np.zeros(rows, dtype=bool)
    p50_multiplier = np.ones(rows)
    p99_multiplier = np.ones(rows)
    error_multiplier = np.ones(rows)
    cpu_boost = np.zeros(rows)
    for _ in range(int(rng.poisson(scenario.incidents_per_service_day))):
        length = min(int(rng.integers(shortest, longest + 1)), rows)
        first = int(rng.integers(0, rows - length + 1))
        window = slice(first, first + length)
        p50_factor = float(rng.uniform(2.0, 4.0))
        # p99 rises at least as much as p50, so p99 >= p50 holds during incidents too.
        p99_factor = float(rng.uniform(max(3.0, p50_factor), 8.0))
        in_incident[window] = True
        p50_multiplier[window] = np.maximum(p50_multiplier[window], p50_factor)
        p99_multiplier[window] = np.maximum(p99_multiplier[window], p99_factor)
        error_multiplier[window] = np.maximum(error_multiplier[window], rng.uniform(10.0, 40.0))
        cpu_boost[window] = np.maximum(cpu_boost[window], rng.uniform(20.0, 40.0))
    return in_incident, p50_multiplier, p99_multiplier, error_multiplier, cpu_boost


def _clip_to_valid_range(
    column: str, values: FloatArray, metrics: Mapping[str, FloatArray]
) -> FloatArray:
    """Keep a drifted column inside what its meaning allows, given the other metrics."""
    if column in _PERCENT_COLUMNS:
        return np.clip(values, 0.0, 100.0)
    if column == "request_rate":
        return np.maximum(values, metrics["error_rate"])
    if column == "error_rate":
        return np.clip(values, 0.0, metrics["request_rate"])
    if column == "latency_p50_ms":
        return np.clip(values, _MIN_LATENCY_MS, metrics["latency_p99_ms"])
    return np.maximum(values, metrics["latency_p50_ms"])


def _enforce_invariants(metrics: Mapping[str, FloatArray]) -> dict[str, FloatArray]:
    request_rate = np.maximum(metrics["request_rate"], 0.0)
    latency_p50 = np.maximum(metrics["latency_p50_ms"], _MIN_LATENCY_MS)
    return {
        "request_rate": request_rate,
        "error_rate": np.clip(metrics["error_rate"], 0.0, request_rate),
        "latency_p50_ms": latency_p50,
        "latency_p99_ms": np.maximum(metrics["latency_p99_ms"], latency_p50),
        "cpu_pct": np.clip(metrics["cpu_pct"], 0.0, 100.0),
        "memory_pct": np.clip(metrics["memory_pct"], 0.0, 100.0),
    }
