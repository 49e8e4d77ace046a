"""Scripted incident histories with a known cause, shared by the tests and the benchmark.

Ten daily partitions; the first failing evaluation is partition 2026-01-10 in the failing
scenarios. Each plants one cause among realistic decoys (daily data refreshes, an unrelated
package bump, a change deployed after the drop), so a change to the weights or the candidate
rules that breaks attribution shows in both ``test_incidents.py`` and
``benchmarks/incident_vs_baseline.py``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np

from aiops_assets.core.incidents import Change, DriftPoint, PerformancePoint

DAY0 = datetime(2026, 1, 3, tzinfo=UTC)
DAYS = 10
PARTITIONS = [(DAY0 + timedelta(days=i)).date().isoformat() for i in range(DAYS)]
FEATURES = (
    "checkout.cpu_pct__mean_1h",
    "checkout.latency_p99__mean_1h",
    "payments.error_rate__sum_1h",
    "payments.mem_pct__mean_1h",
    "search.latency_p99__rolling_std_6h",
    "search.error_rate__ewm_1h",
)
FIRST_BAD = 7  # partition 2026-01-10 is the first failing one


def at(day: int, hour: int = 0) -> datetime:
    return DAY0 + timedelta(days=day, hours=hour)


def evaluated_at(day: int) -> datetime:
    return at(day + 1, 2)


def performance(
    *, failing_from: int | None = FIRST_BAD, version: int | list[int] = 3, seed: int = 0
) -> list[PerformancePoint]:
    rng = np.random.default_rng(seed)
    versions = version if isinstance(version, list) else [version] * DAYS
    out = []
    for day, partition in enumerate(PARTITIONS):
        bad = failing_from is not None and day >= failing_from
        f1 = float(rng.uniform(0.40, 0.48) if bad else rng.uniform(0.88, 0.93))
        out.append(
            PerformancePoint(
                partition=partition,
                at=evaluated_at(day),
                passed=not bad,
                metrics={"f1": f1, "precision": f1 + 0.02},
                model_version=versions[day],
            )
        )
    return out


def drift(
    shifted: dict[str, float] | None = None, *, from_day: int = FIRST_BAD, seed: int = 1
) -> list[DriftPoint]:
    rng = np.random.default_rng(seed)
    shifted = shifted or {}
    out = []
    for day, partition in enumerate(PARTITIONS):
        for feature in FEATURES:
            effect = float(rng.uniform(0.02, 0.12))
            if feature in shifted and day >= from_day:
                effect += shifted[feature]
            out.append(DriftPoint(partition, feature, effect, drifted=effect > 0.5))
    return out


def routine_data_refreshes() -> list[Change]:
    return [
        Change(
            kind="data",
            subject="telemetry_snapshot",
            at=at(day + 1, 0),
            summary=f"data version for {partition}",
            partition=partition,
            lineage_distance=2,
        )
        for day, partition in enumerate(PARTITIONS)
    ]


@dataclass(frozen=True)
class Scenario:
    name: str
    cause: Change
    changes: list[Change]
    performance: list[PerformancePoint]
    drift: list[DriftPoint]


def config_change() -> Scenario:
    cause = Change(
        kind="config",
        subject="telemetry_snapshot",
        at=at(FIRST_BAD, 10),
        summary="checkout collector sampling interval 10s -> 60s",
        partition=PARTITIONS[FIRST_BAD],
        features=("checkout.cpu_pct__mean_1h", "checkout.latency_p99__mean_1h"),
        lineage_distance=2,
    )
    decoys = [
        Change(
            kind="environment",
            subject="capsule:anomaly_detector",
            at=at(FIRST_BAD - 2, 9),
            summary="python 3.11.9 -> 3.11.10",
            lineage_distance=0,
        ),
        Change(
            kind="code",
            subject="anomaly_scores_dashboard",
            at=at(FIRST_BAD + 1, 9),
            summary="code version dashboard-4 -> dashboard-5",
            partition=PARTITIONS[FIRST_BAD],
            lineage_distance=-1,
        ),
        Change(
            kind="alias",
            subject="anomaly_detector:champion",
            at=at(FIRST_BAD + 1, 6),
            summary="anomaly_detector:champion v3 -> v2 by oncall: f1 drop",
            partition=PARTITIONS[FIRST_BAD],
            before=3,
            after=2,
            details={"to_version": 2, "kind": "rollback"},
            lineage_distance=0,
        ),
    ]
    return Scenario(
        "config change",
        cause,
        [decoys[0], cause, decoys[1], decoys[2], *routine_data_refreshes()],
        performance(),
        drift({"checkout.cpu_pct__mean_1h": 2.5, "checkout.latency_p99__mean_1h": 1.8}),
    )


def null_injection() -> Scenario:
    cause = Change(
        kind="data",
        subject="telemetry_snapshot",
        at=at(FIRST_BAD + 1, 0),
        summary="null fraction of payments.mem_pct 0.00 -> 0.31",
        partition=PARTITIONS[FIRST_BAD],
        features=("payments.mem_pct__mean_1h", "payments.error_rate__sum_1h"),
        lineage_distance=2,
    )
    refreshes = [c for c in routine_data_refreshes() if c.partition != PARTITIONS[FIRST_BAD]]
    policy = Change(
        kind="policy",
        subject="drift_policy",
        at=at(FIRST_BAD, 15),
        summary="drift persistence 2 -> 3 partitions",
        lineage_distance=0,
    )
    threshold = Change(
        kind="threshold",
        subject="anomaly_detector:alert_budget",
        at=at(FIRST_BAD - 1, 11),
        summary="alert budget 40 -> 35 per day",
        lineage_distance=0,
    )
    return Scenario(
        "upstream null injection",
        cause,
        [policy, threshold, cause, *refreshes],
        performance(seed=4),
        drift({"payments.mem_pct__mean_1h": 3.0}),
    )


def library_upgrade() -> Scenario:
    cause = Change(
        kind="environment",
        subject="capsule:features",
        at=at(FIRST_BAD, 8),
        summary="pandas 2.2.3 -> 3.0.0",
        details={
            "packages": {"pandas": ["2.2.3", "3.0.0"]},
            "features": ["search.latency_p99__rolling_std_6h"],
        },
        lineage_distance=1,
    )
    unrelated_upgrade = Change(
        kind="environment",
        subject="capsule:dashboard",
        at=at(FIRST_BAD, 9),
        summary="plotly 5.24 -> 6.0",
        lineage_distance=None,
    )
    code = Change(
        kind="code",
        subject="model_training",
        at=at(FIRST_BAD - 2, 16),
        summary="code version training-7 -> training-8",
        lineage_distance=1,
    )
    return Scenario(
        "library upgrade",
        cause,
        [unrelated_upgrade, code, cause, *routine_data_refreshes()],
        performance(seed=9),
        drift({"search.latency_p99__rolling_std_6h": 1.6}, seed=7),
    )


def feature_set_change() -> Scenario:
    cause = Change(
        kind="feature_set",
        subject="features",
        at=at(FIRST_BAD, 11),
        summary="feature set v4 -> v5: error_rate__ewm_1h span 1h -> 6h",
        features=("search.error_rate__ewm_1h",),
        lineage_distance=1,
    )
    old_promotion = Change(
        kind="alias",
        subject="anomaly_detector:champion",
        at=at(FIRST_BAD - 2, 10),
        summary="champion v2 -> v3",
        details={"from_version": 2, "to_version": 3},
        lineage_distance=0,
    )
    return Scenario(
        "feature-set change",
        cause,
        [old_promotion, cause, *routine_data_refreshes()],
        performance(seed=12),
        drift({"search.error_rate__ewm_1h": 2.0}, seed=11),
    )


def promotion() -> Scenario:
    versions = [3] * FIRST_BAD + [4] * (DAYS - FIRST_BAD)
    cause = Change(
        kind="alias",
        subject="anomaly_detector:champion",
        at=at(FIRST_BAD, 12),
        summary="champion v3 -> v4",
        details={"from_version": 3, "to_version": 4},
        lineage_distance=0,
    )
    return Scenario(
        "promotion of a bad version",
        cause,
        [cause, *routine_data_refreshes()],
        performance(version=versions),
        drift(),
    )


SCENARIOS: tuple[Callable[[], Scenario], ...] = (
    config_change,
    null_injection,
    library_upgrade,
    feature_set_change,
    promotion,
)

# --- ranking -----------------------------------------------------------------------------------
