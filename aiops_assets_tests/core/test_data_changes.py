"""Data-change characterization: what moved in a partition, per service and column."""

from __future__ import annotations

import json
import math
from datetime import date, timedelta
from functools import cache

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aiops_assets.core.data_changes import (
    KINDS,
    LAYERS,
    CharacterizationThresholds,
    DataCharacterization,
    Finding,
    characterize,
)
from aiops_assets.core.drift import build_profile, compute_statistics
from aiops_assets.core.features import FeatureSetSpec, compute_features
from aiops_assets.core.telemetry import (
    DEFAULT_SERVICES,
    GENERATED_METRICS,
    LABEL,
    SERVICE,
    TIMESTAMP,
    Scenario,
    generate_day,
)

START = date(2026, 1, 5)
# Seed 4 is one of the tuning seeds; its day 12 (a Saturday) is compared with the week before.
SEED = 4
CURRENT = 12
REFERENCE_DAYS = range(CURRENT - 7, CURRENT)


def _key(index: int) -> str:
    return (START + timedelta(days=index)).isoformat()


@cache
def _snapshot(index: int) -> pd.DataFrame:
    scenario = Scenario(start=START, days=16, services=DEFAULT_SERVICES, seed=SEED, events=())
    return generate_day(scenario, START + timedelta(days=index))


def _features_of(previous: pd.DataFrame, current: pd.DataFrame, index: int) -> pd.DataFrame:
    day = pd.Timestamp(START + timedelta(days=index))
    history = pd.concat([previous, current], ignore_index=True)
    return compute_features(
        history, FeatureSetSpec(), output_start=day, output_end=day + pd.Timedelta(days=1)
    )


@cache
def _features(index: int) -> pd.DataFrame:
    return _features_of(_snapshot(index - 1), _snapshot(index), index)


def _references(layer: str = "snapshot") -> dict[str, pd.DataFrame]:
    get = _snapshot if layer == "snapshot" else _features
    return {_key(i): get(i) for i in REFERENCE_DAYS}


def _snapshot_changes(
    current: pd.DataFrame, *, exclude_labeled: bool = True
) -> DataCharacterization:
    return characterize(
        current,
        _references(),
        layer="snapshot",
        partition=_key(CURRENT),
        exclude_labeled=exclude_labeled,
    )


def _scaled(service: str, column: str, factor: float) -> pd.DataFrame:
    frame = _snapshot(CURRENT).copy()
    frame.loc[frame[SERVICE] == service, column] *= factor
    return frame


def test_an_unchanged_day_has_no_findings_at_either_layer() -> None:
    for layer in LAYERS:
        get = _snapshot if layer == "snapshot" else _features
        result = characterize(
            get(CURRENT), _references(layer), layer=layer, partition=_key(CURRENT)
        )
        assert result.findings == (), result.headline()
        assert result.headline() == ""
        assert result.references == tuple(_key(i) for i in REFERENCE_DAYS)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    service=st.sampled_from(DEFAULT_SERVICES),
    column=st.sampled_from(GENERATED_METRICS),
    factor=st.sampled_from([1000.0, 0.001]),
)
def test_one_service_column_scaled_by_a_thousand_is_a_unit_change_there_only(
    service: str, column: str, factor: float
) -> None:
    result = _snapshot_changes(_scaled(service, column, factor))

    assert result.services() == [service]
    first = result.findings[0]
    assert (first.service, first.column, first.kind) == (service, column, "unit")
    assert first.ratio == pytest.approx(factor, rel=0.5)
    assert first.effect > 5
    assert "(probable unit change; measured x" in first.words
    since = result.headline(since=_key(CURRENT))
    assert since.startswith(f"{service} {column} x")
    assert f"since {_key(CURRENT)} (probable unit change" in since


def test_latency_times_three_is_a_level_change_ranked_below_a_unit_change() -> None:
    frame = _scaled("checkout", "latency_p99_ms", 3.0)
    frame.loc[frame[SERVICE] == "search", "error_rate"] *= 1000.0
    result = _snapshot_changes(frame)

    kinds = {(f.service, f.column): f.kind for f in result.findings}
    assert kinds == {("checkout", "latency_p99_ms"): "level", ("search", "error_rate"): "unit"}
    assert result.services() == ["search", "checkout"]
    (level,) = result.for_service("checkout")
    assert level.ratio == pytest.approx(3.0, rel=0.2)
    assert level.words.startswith("checkout latency_p99_ms x")
    assert "(median" in level.words


def test_spikes_on_one_service_are_a_shift_of_the_drift_engines_size() -> None:
    frame = _snapshot(CURRENT).copy()
    rows = np.flatnonzero((frame[SERVICE] == "auth").to_numpy())
    spiked = np.random.default_rng(5).choice(rows, size=len(rows) // 10, replace=False)
    frame.loc[spiked, "latency_p99_ms"] *= 10.0
    reference_key = _key(CURRENT - 1)
    reference = _snapshot(CURRENT - 1)
    result = characterize(
        frame, {reference_key: reference}, layer="snapshot", partition=_key(CURRENT)
    )

    (shift,) = [f for f in result.for_service("auth") if f.column == "latency_p99_ms"]
    assert shift.kind == "shift" and shift.noise == 0.0  # one reference: the floor alone
    mine = reference[reference[SERVICE] == "auth"]
    now = frame[frame[SERVICE] == "auth"].drop(columns=[LABEL])
    unlabeled_ref = mine[mine[LABEL] == 0].drop(columns=[LABEL])
    unlabeled_now = now[frame.loc[now.index, LABEL] == 0]
    profile = build_profile(unlabeled_ref[["latency_p99_ms"]], mode="exact")
    expected = compute_statistics(profile, unlabeled_now[["latency_p99_ms"]])["latency_p99_ms"]
    distance = expected.metrics["wasserstein_normalized"]
    assert shift.effect * CharacterizationThresholds().shift == pytest.approx(distance, rel=1e-9)


def test_nulls_a_missing_and_a_new_service_are_named() -> None:
    frame = _snapshot(CURRENT).copy()
    frame = frame[frame[SERVICE] != "search"].reset_index(drop=True)
    payments = frame.index[frame[SERVICE] == "payments"].to_numpy()
    lost = np.random.default_rng(1).choice(payments, size=int(0.3 * len(payments)), replace=False)
    frame.loc[lost, "error_rate"] = np.nan
    newcomer = frame[frame[SERVICE] == "auth"].assign(**{SERVICE: "billing"})
    result = _snapshot_changes(pd.concat([frame, newcomer], ignore_index=True))

    by_kind = {f.kind: f for f in result.findings}
    assert set(by_kind) == {"missing_service", "new_service", "nulls"}
    assert by_kind["missing_service"].words == "search missing (0 rows, was 288)"
    assert by_kind["new_service"].service == "billing"
    nulls = by_kind["nulls"]
    assert (nulls.service, nulls.column) == ("payments", "error_rate")
    assert nulls.words == "payments error_rate nulls 0% -> 30%"
    assert nulls.after == pytest.approx(0.3, abs=0.01)


def test_rows_duplicates_a_stuck_column_and_a_shifted_clock() -> None:
    frame = _snapshot(CURRENT).copy()
    gateway = frame[frame[SERVICE] == "gateway"]
    frame = frame.drop(index=gateway.index[::2])  # half of gateway's rows
    catalog = frame[frame[SERVICE] == "catalog"]
    frame.loc[catalog.index, "cpu_pct"] = 42.0
    duplicated = frame[frame[SERVICE] == "auth"].head(40)
    result = _snapshot_changes(pd.concat([frame, duplicated], ignore_index=True))
    kinds = {(f.service, f.kind) for f in result.findings}
    assert {("gateway", "rows"), ("catalog", "constant"), ("auth", "duplicates")} <= kinds
    (rows,) = [f for f in result.for_service("gateway") if f.kind == "rows"]
    assert rows.words == "gateway rows 288 -> 144"

    late = _snapshot(CURRENT).assign(
        **{TIMESTAMP: _snapshot(CURRENT)[TIMESTAMP] + pd.Timedelta("2h")}
    )
    (clock,) = _snapshot_changes(late).findings
    assert (clock.kind, clock.service) == ("timestamps", None)  # every service: said once
    assert clock.words == "timestamps start 02:00 (was 00:00)"


def test_labeled_incident_rows_are_not_a_data_change() -> None:
    frame = _snapshot(CURRENT).copy()
    rows = frame[SERVICE] == "payments"
    window = frame.index[rows][100:118]  # 90 minutes of one service
    frame.loc[window, ["latency_p50_ms", "latency_p99_ms"]] *= 8.0
    frame.loc[window, LABEL] = 1

    assert _snapshot_changes(frame).findings == ()
    counted = _snapshot_changes(frame, exclude_labeled=False)
    assert "payments" in counted.services()


def test_features_show_a_unit_change_on_the_metrics_features() -> None:
    planted = _scaled("gateway", "latency_p50_ms", 0.001)
    current = _features_of(_snapshot(CURRENT - 1), planted, CURRENT)
    result = characterize(
        current, _references("features"), layer="features", partition=_key(CURRENT)
    )

    assert result.services() == ["gateway"]
    assert all(f.column and f.column.startswith("latency_p50_ms__") for f in result.findings)
    assert any(f.kind == "unit" for f in result.findings)


def test_a_column_every_reference_had_is_reported_absent() -> None:
    result = _snapshot_changes(_snapshot(CURRENT).drop(columns=["memory_pct"]))
    (absent,) = result.findings
    assert (absent.kind, absent.service, absent.column) == ("nulls", None, "memory_pct")
    assert absent.words == "memory_pct absent (every reference had it)"


def test_user_mistakes_are_one_line_errors() -> None:
    with pytest.raises(ValueError, match="at least one reference"):
        characterize(_snapshot(CURRENT), {}, layer="snapshot", partition="x")
    with pytest.raises(ValueError, match="layer must be one of"):
        characterize(_snapshot(CURRENT), _references(), layer="raw", partition="x")
    with pytest.raises(ValueError, match="no 'service' column"):
        characterize(
            _snapshot(CURRENT).drop(columns=[SERVICE]),
            _references(),
            layer="snapshot",
            partition="x",
        )
    with pytest.raises(ValueError, match="level must be > 1"):
        CharacterizationThresholds(level=0.5)
    with pytest.raises(ValueError, match="unknown finding kind"):
        Finding("snapshot", None, None, "weird", None, None, None, 1.0, 0.0, "")


_optional_float = st.none() | st.floats(allow_nan=False, allow_infinity=False, width=32)
_names = st.none() | st.text(min_size=1, max_size=12)
_findings = st.builds(
    Finding,
    layer=st.sampled_from(LAYERS),
    service=_names,
    column=_names,
    kind=st.sampled_from(KINDS),
    before=_optional_float,
    after=_optional_float,
    ratio=_optional_float,
    effect=st.floats(min_value=0, max_value=1e6),
    noise=st.floats(min_value=0, max_value=1e6),
    words=st.text(max_size=40),
)


@given(
    findings=st.lists(_findings, max_size=5),
    references=st.lists(st.text(max_size=10), max_size=3),
)
def test_characterizations_round_trip_through_json(
    findings: list[Finding], references: list[str]
) -> None:
    original = DataCharacterization(
        layer="features",
        partition="2026-02-11",
        references=tuple(references),
        findings=tuple(findings),
    )
    data = json.loads(json.dumps(original.to_dict(), allow_nan=False))
    assert DataCharacterization.from_dict(data) == original


def test_findings_drop_non_finite_numbers_in_json() -> None:
    finding = Finding("snapshot", "a", "b", "level", math.inf, 1.0, math.nan, 1.0, 0.0, "w")
    data = finding.to_dict()
    assert data["before"] is None and data["ratio"] is None
    json.dumps(data, allow_nan=False)
