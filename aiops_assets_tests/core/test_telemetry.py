"""Behaviour of the telemetry sources through their public functions.

The generator is checked for the properties the pipeline depends on (determinism per daily
partition, the frame contract, visible scenario events, labeled incidents); the loaders for the
promise that bad input fails with a message naming the file, the column and the exact rows.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import math
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aiops_assets.core.telemetry import (
    GENERATED_METRICS,
    LABEL,
    SERVICE,
    TIMESTAMP,
    ConfigChange,
    NullInjection,
    Scenario,
    SlowDrift,
    TelemetryFormatError,
    canonical_telemetry,
    default_scenario,
    generate,
    generate_day,
    load_directory,
    load_nab,
    metric_columns,
)

ROWS_PER_DAY = 288
START = date(2026, 1, 5)


@pytest.fixture(scope="module")
def default_frame() -> pd.DataFrame:
    return generate(default_scenario())


def frame_hash(frame: pd.DataFrame) -> int:
    return int(pd.util.hash_pandas_object(frame).sum())


def service_rows(frame: pd.DataFrame, service: str) -> pd.DataFrame:
    return frame[frame[SERVICE] == service].reset_index(drop=True)


def day_of(frame: pd.DataFrame) -> pd.Series:
    return frame[TIMESTAMP].dt.date


def without_events(scenario: Scenario) -> Scenario:
    return dataclasses.replace(scenario, events=())


def assert_contract(frame: pd.DataFrame) -> None:
    metrics = metric_columns(frame)
    assert list(frame.columns) == [TIMESTAMP, SERVICE, *metrics, LABEL]
    assert metrics == sorted(metrics) and metrics
    assert frame[TIMESTAMP].dtype == np.dtype("datetime64[us]")
    assert frame[SERVICE].dtype == np.dtype(object)
    assert all(type(service) is str for service in frame[SERVICE])
    assert all(frame[metric].dtype == np.float64 for metric in metrics)
    assert frame[LABEL].dtype == np.int8
    assert set(frame[LABEL].unique()) <= {0, 1}
    assert isinstance(frame.index, pd.RangeIndex) and frame.index.start == 0
    keys = frame[[TIMESTAMP, SERVICE]]
    assert not keys.duplicated().any()
    sorted_keys = keys.sort_values([TIMESTAMP, SERVICE], ignore_index=True)
    pd.testing.assert_frame_equal(keys, sorted_keys)


# --------------------------------------------------------------------------------------------
# Generator: determinism and the frame contract
# --------------------------------------------------------------------------------------------


def test_generate_day_is_deterministic() -> None:
    scenario = default_scenario()
    first = generate_day(scenario, START + timedelta(days=6))
    second = generate_day(scenario, START + timedelta(days=6))
    pd.testing.assert_frame_equal(first, second)
    assert frame_hash(first) == frame_hash(second)


def test_generate_day_is_bit_identical_in_a_fresh_process() -> None:
    day = START + timedelta(days=9)
    program = (
        "import datetime, pandas as pd\n"
        "from aiops_assets.core.telemetry import default_scenario, generate_day\n"
        f"frame = generate_day(default_scenario(), datetime.date.fromisoformat('{day}'))\n"
        "print(int(pd.util.hash_pandas_object(frame).sum()))\n"
    )
    project_root = Path(__file__).parents[2]
    completed = subprocess.run(
        [sys.executable, "-c", program],
        capture_output=True,
        text=True,
        check=True,
        cwd=project_root,
        env={**os.environ, "PYTHONHASHSEED": "12345", "PYTHONPATH": str(project_root)},
    )
    assert int(completed.stdout.strip()) == frame_hash(generate_day(default_scenario(), day))


def test_a_day_generated_alone_equals_its_slice_of_a_range(default_frame: pd.DataFrame) -> None:
    scenario = default_scenario()
    for day in (START, START + timedelta(days=6), START + timedelta(days=13)):
        alone = generate_day(scenario, day)
        sliced = default_frame[day_of(default_frame) == day].reset_index(drop=True)
        pd.testing.assert_frame_equal(alone, sliced)
        assert frame_hash(alone) == frame_hash(sliced)
    middle = generate(scenario, START + timedelta(days=4), START + timedelta(days=7))
    expected = default_frame[
        day_of(default_frame).between(START + timedelta(days=4), START + timedelta(days=6))
    ].reset_index(drop=True)
    pd.testing.assert_frame_equal(middle, expected)


# How fast the default scenario generates is measured by benchmarks/bench_core_pipeline.py
# ("generate telemetry"), not asserted in a test: a loaded CI machine once took 1.93 s where a
# test allowed 0.5 s.
def test_generated_frame_meets_the_contract(default_frame: pd.DataFrame) -> None:
    assert_contract(default_frame)
    scenario = default_scenario()
    assert metric_columns(default_frame) == sorted(GENERATED_METRICS)
    assert len(default_frame) == scenario.days * len(scenario.services) * ROWS_PER_DAY
    assert sorted(default_frame[SERVICE].unique()) == sorted(scenario.services)
    steps = service_rows(default_frame, "checkout")[TIMESTAMP].diff().dropna().unique()
    assert list(steps) == [pd.Timedelta(minutes=5)]
    assert default_frame[TIMESTAMP].min() == pd.Timestamp(START)
    assert default_frame[TIMESTAMP].max() == pd.Timestamp(scenario.end) - pd.Timedelta(minutes=5)


def check_metric_invariants(frame: pd.DataFrame) -> None:
    def both_present(first: str, second: str) -> pd.DataFrame:
        return frame[[first, second]].dropna()

    rates = both_present("error_rate", "request_rate")
    assert (rates["error_rate"] <= rates["request_rate"]).all()
    assert (rates["error_rate"] >= 0).all()
    latencies = both_present("latency_p50_ms", "latency_p99_ms")
    assert (latencies["latency_p99_ms"] >= latencies["latency_p50_ms"]).all()
    assert (frame["latency_p50_ms"].dropna() > 0).all()
    for percent in ("cpu_pct", "memory_pct"):
        assert frame[percent].dropna().between(0, 100).all()


def test_generated_values_respect_metric_invariants(default_frame: pd.DataFrame) -> None:
    check_metric_invariants(default_frame)


@settings(max_examples=15, deadline=None)
@given(
    seed=st.integers(0, 2**63),
    step_minutes=st.sampled_from([1, 5, 15, 60]),
    incidents=st.floats(0, 6),
    drift_column=st.sampled_from(GENERATED_METRICS),
    drift_factor=st.floats(-0.9, 3.0),
    latency_factor=st.floats(0.05, 20.0),
)
def test_invariants_hold_for_any_seed_and_extreme_events(
    seed: int,
    step_minutes: int,
    incidents: float,
    drift_column: str,
    drift_factor: float,
    latency_factor: float,
) -> None:
    scenario = Scenario(
        start=START,
        days=2,
        services=("a", "b"),
        seed=seed,
        step_minutes=step_minutes,
        incidents_per_service_day=incidents,
        events=(
            SlowDrift(START, "a", column=drift_column, per_day_factor=drift_factor),
            ConfigChange(START + timedelta(days=1), "a", latency_factor=latency_factor),
        ),
    )
    frame = generate(scenario)
    assert_contract(frame)
    check_metric_invariants(frame)
    assert len(frame) == 2 * 2 * (1440 // step_minutes)
    assert not frame[metric_columns(frame)].isna().any().any()


# --------------------------------------------------------------------------------------------
# Generator: realism, scenario events and incidents
# --------------------------------------------------------------------------------------------


def test_request_rate_follows_daily_and_weekly_cycles(default_frame: pd.DataFrame) -> None:
    normal = default_frame[default_frame[LABEL] == 0]
    hour = normal[TIMESTAMP].dt.hour
    weekend = normal[TIMESTAMP].dt.day_of_week >= 5
    for service, rows in normal.groupby(SERVICE):
        rate = rows["request_rate"]
        night = rate[hour[rows.index].between(1, 4)].mean()
        afternoon = rate[hour[rows.index].between(13, 16)].mean()
        assert afternoon > 2.5 * night, service
        weekday_mean = rate[~weekend[rows.index]].mean()
        weekend_mean = rate[weekend[rows.index]].mean()
        assert 0.6 < weekend_mean / weekday_mean < 0.8, service
    per_service_mean = normal.groupby(SERVICE)["request_rate"].mean()
    assert per_service_mean.max() > 3 * per_service_mean.min()
    error_share = normal["error_rate"].sum() / normal["request_rate"].sum()
    assert 0.001 < error_share < 0.01


def test_config_change_multiplies_payments_latency_from_its_day() -> None:
    scenario = default_scenario()
    change_day = START + timedelta(days=9)
    payments = service_rows(generate(scenario), "payments")
    normal = payments[payments[LABEL] == 0]
    after = day_of(normal) >= change_day
    ratio = (
        normal.loc[after, "latency_p50_ms"].median() / normal.loc[~after, "latency_p50_ms"].median()
    )
    assert ratio == pytest.approx(1.8, rel=0.15)

    baseline = service_rows(generate(without_events(scenario)), "payments")
    exact_ratio = payments["latency_p99_ms"] / baseline["latency_p99_ms"]
    changed = day_of(payments) >= change_day
    np.testing.assert_allclose(exact_ratio[changed], 1.8, rtol=1e-5)
    np.testing.assert_allclose(exact_ratio[~changed], 1.0, rtol=1e-12)


def test_null_injection_blanks_a_fraction_of_search_on_its_day_only(
    default_frame: pd.DataFrame,
) -> None:
    null_day = START + timedelta(days=6)
    missing = default_frame[metric_columns(default_frame)].isna()
    affected = default_frame.loc[missing.any(axis="columns")]
    assert set(affected[SERVICE]) == {"search"}
    assert set(day_of(affected)) == {null_day}
    assert set(missing.columns[missing.any()]) == {"latency_p99_ms", "cpu_pct"}
    expected_rows = round(0.3 * ROWS_PER_DAY)
    assert missing["latency_p99_ms"].sum() == expected_rows
    pd.testing.assert_series_equal(missing["latency_p99_ms"], missing["cpu_pct"], check_names=False)


def test_slow_drift_raises_catalog_memory_smoothly() -> None:
    scenario = default_scenario()
    drift_start = START + timedelta(days=3)
    catalog = service_rows(generate(scenario), "catalog")
    baseline = service_rows(generate(without_events(scenario)), "catalog")

    elapsed_days = (catalog[TIMESTAMP] - pd.Timestamp(drift_start)) / pd.Timedelta(days=1)
    expected_growth = np.where(elapsed_days >= 0, 1.04**elapsed_days, 1.0)
    unclipped = catalog["memory_pct"] < 100
    np.testing.assert_allclose(
        (catalog["memory_pct"] / baseline["memory_pct"])[unclipped],
        expected_growth[unclipped],
        rtol=1e-5,
    )
    daily_mean = catalog.groupby(day_of(catalog))["memory_pct"].mean()
    before = daily_mean[daily_mean.index < drift_start].mean()
    assert daily_mean.iloc[-2:].mean() > 1.3 * before
    drift_days = daily_mean[daily_mean.index >= drift_start]
    slope = np.polyfit(np.arange(len(drift_days)), drift_days.to_numpy(), 1)[0]
    assert slope > 1.0
    for service in ("checkout", "auth", "gateway"):
        other = service_rows(generate(scenario), service)
        other_daily = other.groupby(day_of(other))["memory_pct"].mean()
        assert other_daily.iloc[-2:].mean() < 1.15 * other_daily.iloc[:3].mean()


def test_scenario_events_are_not_labeled_as_incidents(default_frame: pd.DataFrame) -> None:
    unlabeled = generate(without_events(default_scenario()))
    pd.testing.assert_series_equal(default_frame[LABEL], unlabeled[LABEL])


def test_incidents_are_labeled_and_visibly_anomalous(default_frame: pd.DataFrame) -> None:
    baseline = generate(without_events(default_scenario()))
    assert baseline[LABEL].sum() > 0
    for service, rows in baseline.groupby(SERVICE):
        incident = rows[rows[LABEL] == 1]
        normal = rows[rows[LABEL] == 0]
        if incident.empty:
            continue
        assert incident["latency_p99_ms"].mean() > 2.5 * normal["latency_p99_ms"].mean(), service
        assert incident["latency_p50_ms"].mean() > 1.8 * normal["latency_p50_ms"].mean(), service
        incident_error_share = (incident["error_rate"] / incident["request_rate"]).mean()
        normal_error_share = (normal["error_rate"] / normal["request_rate"]).mean()
        assert incident_error_share > 8 * normal_error_share, service
        assert incident["cpu_pct"].mean() > normal["cpu_pct"].mean() + 15, service


def test_incidents_last_between_15_and_90_minutes(default_frame: pd.DataFrame) -> None:
    run_lengths: list[int] = []
    for _, rows in default_frame.groupby([SERVICE, day_of(default_frame)]):
        labels = np.concatenate([[0], rows[LABEL].to_numpy(), [0]])
        edges = np.diff(labels)
        run_lengths.extend(np.flatnonzero(edges == -1) - np.flatnonzero(edges == 1))
    assert run_lengths
    assert min(run_lengths) >= 3  # 15 minutes at a 5-minute step
    # A run longer than 90 minutes can only come from two overlapping incidents.
    assert max(run_lengths) <= 36
    assert np.median(run_lengths) <= 18


def test_incident_rate_zero_means_no_labels_and_same_base_noise() -> None:
    scenario = without_events(default_scenario(days=3))
    quiet = generate(dataclasses.replace(scenario, incidents_per_service_day=0.0))
    noisy = generate(scenario)
    assert quiet[LABEL].sum() == 0
    normal_rows = noisy[LABEL] == 0
    pd.testing.assert_frame_equal(quiet[normal_rows], noisy[normal_rows])


# --------------------------------------------------------------------------------------------
# Scenario objects
# --------------------------------------------------------------------------------------------


def test_scenario_round_trips_through_json() -> None:
    scenario = dataclasses.replace(
        default_scenario(),
        events=(
            *default_scenario().events,
            NullInjection(START, "auth", columns=("cpu_pct",), fraction=0.5),
            SlowDrift(START, "gateway", column="latency_p99_ms", per_day_factor=-0.1),
        ),
    )
    as_json = json.dumps(scenario.to_dict())
    restored = Scenario.from_dict(json.loads(as_json))
    assert restored == scenario
    assert json.dumps(restored.to_dict()) == as_json
    for event in scenario.events:
        assert type(event).from_dict(json.loads(json.dumps(event.to_dict()))) == event


def test_default_scenario_shape_and_short_variants() -> None:
    scenario = default_scenario()
    assert len(scenario.services) == 6
    assert scenario.end == START + timedelta(days=14)
    assert scenario.day_list[0] == START and len(scenario.day_list) == 14
    (config_change,) = [event for event in scenario.events if isinstance(event, ConfigChange)]
    (null_injection,) = [event for event in scenario.events if isinstance(event, NullInjection)]
    (slow_drift,) = [event for event in scenario.events if isinstance(event, SlowDrift)]
    assert (config_change.day, config_change.service) == (START + timedelta(days=9), "payments")
    assert (null_injection.day, null_injection.service) == (START + timedelta(days=6), "search")
    assert (slow_drift.start_day, slow_drift.service) == (START + timedelta(days=3), "catalog")

    short = generate(default_scenario(days=3))
    assert len(short) == 3 * 6 * ROWS_PER_DAY
    assert not short[metric_columns(short)].isna().any().any()


def test_generate_rejects_days_outside_the_scenario() -> None:
    scenario = default_scenario(days=3)
    with pytest.raises(ValueError, match="outside the scenario"):
        generate_day(scenario, START + timedelta(days=3))
    with pytest.raises(ValueError, match="outside the scenario"):
        generate_day(scenario, START - timedelta(days=1))
    with pytest.raises(ValueError):
        generate(scenario, START, START + timedelta(days=4))
    with pytest.raises(ValueError):
        generate(scenario, START + timedelta(days=1), START + timedelta(days=1))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"days": 0}, "days"),
        ({"services": ()}, "services"),
        ({"services": ("a", "a")}, "services"),
        ({"step_minutes": 7}, "step_minutes"),
        ({"seed": -1}, "seed"),
        ({"incidents_per_service_day": -0.5}, "incidents_per_service_day"),
        ({"events": (ConfigChange(START, "unknown-service"),)}, "unknown-service"),
    ],
)
def test_invalid_scenarios_are_rejected(change: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        dataclasses.replace(default_scenario(), **change)  # type: ignore[arg-type]


def test_invalid_events_are_rejected() -> None:
    with pytest.raises(ValueError, match="fraction"):
        NullInjection(START, "search", fraction=1.5)
    with pytest.raises(ValueError, match="unknown metric"):
        SlowDrift(START, "catalog", column="disk_pct")
    with pytest.raises(ValueError, match="not a datetime"):
        ConfigChange(datetime(2026, 1, 5, 12), "payments")
    with pytest.raises(ValueError, match="unknown keys"):
        ConfigChange.from_dict({"day": "2026-01-05", "service": "x", "latency_factr": 2.0})


# --------------------------------------------------------------------------------------------
# canonical_telemetry
# --------------------------------------------------------------------------------------------


def test_canonical_telemetry_converts_orders_and_sorts() -> None:
    messy = pd.DataFrame(
        {
            "zeta": [3, 1, 2],
            LABEL: [True, False, False],
            SERVICE: pd.array(["b", "a", "a"], dtype="str"),
            TIMESTAMP: pd.to_datetime(
                ["2026-01-05 01:05", "2026-01-05 01:05", "2026-01-05 01:00"]
            ).tz_localize("Europe/Paris"),
            "alpha": ["1.5", "", "NaN"],
        },
        index=[10, 20, 30],
    )
    result = canonical_telemetry(messy)
    assert_contract(result)
    assert list(result.columns) == [TIMESTAMP, SERVICE, "alpha", "zeta", LABEL]
    assert list(result[TIMESTAMP]) == [
        pd.Timestamp("2026-01-05 00:00"),
        pd.Timestamp("2026-01-05 00:05"),
        pd.Timestamp("2026-01-05 00:05"),
    ]
    assert list(result[SERVICE]) == ["a", "a", "b"]
    assert list(result["zeta"]) == [2.0, 1.0, 3.0]
    assert result["alpha"].isna().tolist() == [True, True, False]
    assert list(result[LABEL]) == [0, 0, 1]


def test_canonical_telemetry_fills_missing_label_with_zero_and_is_idempotent() -> None:
    frame = pd.DataFrame(
        {TIMESTAMP: pd.to_datetime(["2026-01-05"]), SERVICE: ["a"], "value": [1.0]}
    )
    result = canonical_telemetry(frame)
    assert list(result[LABEL]) == [0] and result[LABEL].dtype == np.int8
    pd.testing.assert_frame_equal(canonical_telemetry(result), result)
    generated = generate_day(default_scenario(days=1), START)
    pd.testing.assert_frame_equal(canonical_telemetry(generated), generated)


def test_canonical_telemetry_does_not_modify_its_input() -> None:
    frame = pd.DataFrame(
        {TIMESTAMP: ["2026-01-05T01:00", "2026-01-05T00:00"], SERVICE: ["a", "a"], "v": [1, 2]}
    )
    snapshot = frame.copy()
    canonical_telemetry(frame)
    pd.testing.assert_frame_equal(frame, snapshot)


def valid_frame(rows: int = 8) -> pd.DataFrame:
    return pd.DataFrame(
        {
            TIMESTAMP: pd.date_range("2026-01-05", periods=rows, freq="5min"),
            SERVICE: ["svc"] * rows,
            "cpu_pct": np.arange(rows, dtype=float),
            LABEL: [0] * rows,
        }
    )


def with_cell(frame: pd.DataFrame, column: str, rows: list[int], value: Any) -> pd.DataFrame:
    changed = frame.copy()
    changed[column] = changed[column].astype(object)
    for row in rows:
        changed.at[row, column] = value
    return changed


@pytest.mark.parametrize(
    ("frame", "expected"),
    [
        (valid_frame().drop(columns=[TIMESTAMP]), ["missing column 'timestamp'"]),
        (valid_frame().drop(columns=[SERVICE]), ["missing column 'service'"]),
        (valid_frame().drop(columns=["cpu_pct"]), ["no metric columns"]),
        (
            with_cell(valid_frame(), "cpu_pct", [1, 4], "abc"),
            ["'cpu_pct'", "row 1: 'abc'", "row 4"],
        ),
        (with_cell(valid_frame(), "cpu_pct", [2], math.inf), ["'cpu_pct'", "row 2: inf"]),
        (with_cell(valid_frame(), LABEL, [3], 2), ["'label'", "row 3: 2"]),
        (with_cell(valid_frame(), LABEL, [5], None), ["'label'", "row 5: None"]),
        (with_cell(valid_frame(), SERVICE, [0], ""), ["'service'", "row 0: ''"]),
        (
            with_cell(valid_frame(), TIMESTAMP, [6], "yesterday"),
            ["'timestamp'", "row 6: 'yesterday'"],
        ),
        (
            with_cell(valid_frame(), TIMESTAMP, [7], pd.Timestamp("2026-01-05 00:10")),
            ["'service', 'timestamp'", "row 2 and row 7", "'svc'", "2026-01-05 00:10:00"],
        ),
        (
            with_cell(valid_frame(), TIMESTAMP, [3], pd.Timestamp("2026-01-05 00:15", tz="UTC")),
            ["'timestamp'", "mixed time zones", "row 3: Timestamp('2026-01-05 00:15:00+0000'"],
        ),
    ],
)
def test_canonical_telemetry_names_column_and_rows_of_violations(
    frame: pd.DataFrame, expected: list[str]
) -> None:
    with pytest.raises(TelemetryFormatError) as caught:
        canonical_telemetry(frame)
    for fragment in expected:
        assert fragment in str(caught.value)


def test_error_messages_list_at_most_five_rows() -> None:
    frame = with_cell(valid_frame(rows=12), "cpu_pct", list(range(1, 9)), "x")
    with pytest.raises(TelemetryFormatError) as caught:
        canonical_telemetry(frame)
    message = str(caught.value)
    assert re.findall(r"row \d+", message) == [f"row {row}" for row in range(1, 6)]
    assert "8 row(s)" in message and "(and 3 more)" in message


# --------------------------------------------------------------------------------------------
# load_directory
# --------------------------------------------------------------------------------------------


def write_text(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_load_directory_combines_csv_and_parquet(tmp_path: Path) -> None:
    write_text(
        tmp_path / "web.csv",
        "timestamp,service,cpu_pct,label\n"
        "2026-01-05T01:00:00+01:00,web,10.5,0\n"
        "\n"
        "2026-01-05T00:05:00Z,web,,1\n"
        "2026-01-05T00:10:00+00:00,web,12,0\n",
    )
    pd.DataFrame(
        {
            TIMESTAMP: pd.to_datetime(["2026-01-04 19:00", "2026-01-04 19:05"]).tz_localize(
                "America/New_York"
            ),
            "memory_pct": [40.0, None],
            "cpu_pct": [1, 2],
        }
    ).to_parquet(tmp_path / "db.parquet")
    write_text(tmp_path / "notes.txt", "not telemetry")
    (tmp_path / "archive").mkdir()
    write_text(tmp_path / "archive" / "old.csv", "garbage")

    frame = load_directory(tmp_path)
    assert_contract(frame)
    assert list(frame.columns) == [TIMESTAMP, SERVICE, "cpu_pct", "memory_pct", LABEL]
    expected = pd.DataFrame(
        {
            TIMESTAMP: pd.to_datetime(
                [
                    "2026-01-05 00:00",
                    "2026-01-05 00:00",
                    "2026-01-05 00:05",
                    "2026-01-05 00:05",
                    "2026-01-05 00:10",
                ]
            ).astype("datetime64[us]"),
            SERVICE: pd.Series(["db", "web", "db", "web", "web"], dtype=object),
            "cpu_pct": [1.0, 10.5, 2.0, np.nan, 12.0],
            "memory_pct": [40.0, np.nan, np.nan, np.nan, np.nan],
            LABEL: np.array([0, 0, 0, 1, 0], dtype=np.int8),
        }
    )
    pd.testing.assert_frame_equal(frame, expected)

    window = load_directory(
        tmp_path,
        start=datetime(2026, 1, 5, 0, 5, tzinfo=UTC),
        end=datetime(2026, 1, 5, 1, 10, tzinfo=timezone(timedelta(hours=1))),
    )
    pd.testing.assert_frame_equal(window, expected.iloc[2:4].reset_index(drop=True))


def test_load_directory_keeps_a_timestamp_index_written_by_pandas(tmp_path: Path) -> None:
    pd.DataFrame(
        {TIMESTAMP: pd.date_range("2026-01-05", periods=3, freq="5min"), "value": [1.0, 2.0, 3.0]}
    ).set_index(TIMESTAMP).to_parquet(tmp_path / "indexed.parquet")
    frame = load_directory(tmp_path)
    assert list(frame["value"]) == [1.0, 2.0, 3.0]
    assert set(frame[SERVICE]) == {"indexed"}


BAD_CSV_CASES = [
    pytest.param(
        "timestamp,service,cpu_pct\n2026-01-05,a,1\nnot-a-time,a,2\n2026-01-05 00:10,a,3\n13/01/2026,a,4\n",
        "'timestamp'",
        ["line 3: 'not-a-time'", "line 5: '13/01/2026'"],
        id="unparseable-timestamp",
    ),
    pytest.param(
        "timestamp,service,cpu_pct\n2026-01-05,a,1\n2026-01-05 00:05,a,12%\n2026-01-05 00:10,a,\n",
        "'cpu_pct'",
        ["line 3: '12%'"],
        id="non-numeric-metric",
    ),
    pytest.param(
        "timestamp,service,cpu_pct,label\n2026-01-05,a,1,0\n2026-01-05 00:05,a,2,yes\n"
        "2026-01-05 00:10,a,3,-1\n",
        "'label'",
        ["line 3: 'yes'", "line 4: '-1'"],
        id="label-not-0-or-1",
    ),
    pytest.param(
        "timestamp,service,cpu_pct\n2026-01-05T00:00:00Z,a,1\n2026-01-05T00:05Z,a,2\n"
        "2026-01-05T01:00:00+01:00,a,3\n",
        "'service', 'timestamp'",
        ["line 2 and", "line 4"],
        id="duplicate-service-timestamp",
    ),
    pytest.param(
        "time,service,cpu_pct\n2026-01-05,a,1\n",
        "'timestamp'",
        ["missing column"],
        id="no-timestamp-column",
    ),
    pytest.param(
        'timestamp,service,cpu_pct\n2026-01-05,a,1\n\n\n2026-01-05 00:05,a,"multi\nline"\n'
        "2026-01-05 00:10,a,oops\n",
        "'cpu_pct'",
        ["line 5: 'multi\\nline'", "line 7: 'oops'"],
        id="line-numbers-survive-blank-lines-and-quoted-newlines",
    ),
    pytest.param(
        "timestamp,service,cpu_pct\n2026-01-05,,1\n",
        "'service'",
        ["line 2: ''"],
        id="empty-service",
    ),
]


@pytest.mark.parametrize(("content", "column", "fragments"), BAD_CSV_CASES)
def test_load_directory_reports_file_column_and_lines(
    tmp_path: Path, content: str, column: str, fragments: list[str]
) -> None:
    write_text(tmp_path / "good.csv", "timestamp,service,cpu_pct\n2026-01-05,zz,1\n")
    bad_file = write_text(tmp_path / "broken.csv", content)
    with pytest.raises(TelemetryFormatError) as caught:
        load_directory(tmp_path)
    message = str(caught.value)
    assert str(bad_file) in message
    assert column in message
    for fragment in fragments:
        assert fragment in message


def test_load_directory_reports_parquet_rows_by_index(tmp_path: Path) -> None:
    bad_file = tmp_path / "api.parquet"
    pd.DataFrame(
        {
            TIMESTAMP: pd.date_range("2026-01-05", periods=4, freq="5min"),
            "latency_ms": ["1.5", "slow", "2", "n/a"],
            LABEL: [0, 1, 0, 3],
        }
    ).to_parquet(bad_file)
    with pytest.raises(TelemetryFormatError) as caught:
        load_directory(tmp_path)
    message = str(caught.value)
    assert str(bad_file) in message and "'latency_ms'" in message and "row 1: 'slow'" in message

    pd.DataFrame(
        {TIMESTAMP: pd.date_range("2026-01-05", periods=4, freq="5min"), LABEL: [0, 1, 0, 3]}
        | {"latency_ms": [1.0, 2.0, 3.0, 4.0]}
    ).to_parquet(bad_file)
    with pytest.raises(
        TelemetryFormatError, match=r"'label'.*row 3: np\.int64\(3\)|'label'.*row 3"
    ):
        load_directory(tmp_path)


def test_load_directory_names_both_files_of_a_cross_file_duplicate(tmp_path: Path) -> None:
    first = write_text(tmp_path / "a.csv", "timestamp,service,v\n2026-01-05,shared,1\n")
    second = write_text(
        tmp_path / "b.csv", "timestamp,service,v\n2026-01-05 00:05,shared,2\n2026-01-05,shared,3\n"
    )
    with pytest.raises(TelemetryFormatError) as caught:
        load_directory(tmp_path)
    message = str(caught.value)
    assert f"{first} line 2 and {second} line 3" in message
    assert "'service', 'timestamp'" in message


@pytest.mark.parametrize(
    ("file_name", "content", "fragment"),
    [
        ("corrupt.parquet", b"PAR1 this is not parquet", "cannot read Parquet"),
        ("ragged.csv", b"timestamp,v\n2026-01-05,1\n2026-01-06,1,2\n", "cannot read CSV"),
        ("latin1.csv", b"timestamp,v\n2026-01-05,\xe9\n", "cannot read CSV"),
        ("empty.csv", b"", "cannot read CSV"),
    ],
)
def test_load_directory_wraps_unreadable_files(
    tmp_path: Path, file_name: str, content: bytes, fragment: str
) -> None:
    (tmp_path / file_name).write_bytes(content)
    with pytest.raises(TelemetryFormatError) as caught:
        load_directory(tmp_path)
    assert str(tmp_path / file_name) in str(caught.value)
    assert fragment in str(caught.value)


@pytest.mark.parametrize(
    ("content", "fragments"),
    [
        pytest.param(
            b"timestamp,v\n2026-01-05,\xe9\n",
            ["not UTF-8 text", "byte(s) e9 at byte offset 23 (line 2)"],
            id="not-utf8",
        ),
        pytest.param(
            b"\xef\xbb\xbftimestamp,v\r\n2026-01-05,1\r\n2026-01-05 00:05,\xff\r\n",
            ["byte(s) ff at byte offset 47 (line 3)"],
            id="not-utf8-after-a-bom-and-crlf",
        ),
        pytest.param(b"", ["empty file (0 bytes)"], id="zero-bytes"),
        pytest.param(b"\n \r\n", ["empty file (only blank lines)"], id="blank-lines"),
        pytest.param(
            b'timestamp,v\n2026-01-05,"x\ny"\n\n2026-01-05 00:05,3,4\n',
            ["more fields than the header's 2", "on line 5 (3 field(s))"],
            id="more-fields-after-a-quoted-newline",
        ),
        pytest.param(
            b"timestamp,v,w\n2026-01-05,1,2\n2026-01-05 00:05,1\n2026-01-05 00:10\n",
            ["fewer fields than the header's 3", "in 2 row(s): line 3 (2 field(s)), line 4 (1"],
            id="fewer-fields",
        ),
        pytest.param(
            b'timestamp,v\n2026-01-05,1\n2026-01-05 00:05,"2\n2026-01-05 00:10,3\n',
            ["the double quote opened on line 3 is never closed"],
            id="unclosed-quote",
        ),
        pytest.param(
            b"timestamp,,v\n2026-01-05,1,2\n", ["position(s) [2]", "empty name"], id="unnamed"
        ),
        pytest.param(
            b"timestamp,host,v\n2026-01-05,x,1\n2026-01-05 00:05,y,2\n",
            ["column 'host': not a numeric column", "line 2: 'x', line 3: 'y'"],
            id="text-column",
        ),
        pytest.param(
            b"timestamp,service,v\n2026-01-05T00:00Z,a,1\n2026-01-05T00:00Z,b,1\n"
            b"2026-01-05T00:10Z,a,2\n2026-01-05T00:05Z,a,3\n2026-01-05T00:05Z,b,3\n",
            [
                "column 'timestamp': timestamps out of order within a service in 1 place(s)",
                "service 'a': line 5 (2026-01-05 00:05:00) comes after line 4 (2026-01-05 00:10:00)",
            ],
            id="out-of-order-within-a-service",
        ),
        pytest.param(
            b"timestamp,v\n2026-01-05T00:00Z,1\n2026-01-05 00:05,2\n2026-01-05T01:10+01:00,3\n",
            ["column 'timestamp': mixed time zones", "in 1 row(s): line 3: '2026-01-05 00:05'"],
            id="aware-and-naive",
        ),
    ],
)
def test_load_directory_names_the_place_of_structural_problems(
    tmp_path: Path, content: bytes, fragments: list[str]
) -> None:
    bad_file = tmp_path / "bad.csv"
    bad_file.write_bytes(content)
    with pytest.raises(TelemetryFormatError) as caught:
        load_directory(tmp_path)
    message = str(caught.value)
    assert str(bad_file) in message
    for fragment in fragments:
        assert fragment in message


def test_order_is_required_per_service_within_a_file_only(tmp_path: Path) -> None:
    # Interleaved services, files overlapping in time, and different UTC offsets are all fine.
    write_text(
        tmp_path / "a.csv",
        "timestamp,service,v\n2026-01-05T01:10+01:00,s,1\n2026-01-05T00:05Z,t,2\n"
        "2026-01-05T00:15Z,s,3\n",
    )
    write_text(tmp_path / "b.csv", "timestamp,service,v\n2026-01-05T00:00Z,s,4\n")
    frame = load_directory(tmp_path)
    assert_contract(frame)
    assert list(frame["v"]) == [4.0, 2.0, 1.0, 3.0]


def test_a_file_with_a_header_and_no_rows_is_empty_not_an_error(tmp_path: Path) -> None:
    write_text(tmp_path / "empty.csv", "timestamp,service,cpu_pct,label\n")
    pd.DataFrame(
        {
            TIMESTAMP: pd.Series([], dtype="datetime64[us, UTC]"),
            "cpu_pct": pd.Series([], dtype=float),
        }
    ).to_parquet(tmp_path / "empty.parquet")
    frame = load_directory(tmp_path)
    assert_contract(frame)
    assert frame.empty and metric_columns(frame) == ["cpu_pct"]


def test_load_directory_rejects_an_empty_or_missing_directory(tmp_path: Path) -> None:
    write_text(tmp_path / "readme.md", "no data here")
    with pytest.raises(TelemetryFormatError, match=r"no \*\.csv or \*\.parquet files"):
        load_directory(tmp_path)
    with pytest.raises(TelemetryFormatError, match="not a directory"):
        load_directory(tmp_path / "missing")


# --------------------------------------------------------------------------------------------
# Property-based parser tests
# --------------------------------------------------------------------------------------------

MISSING_TOKENS = {"", "nan", "+nan", "-nan", "na", "n/a", "null", "none"}


def is_number_or_missing(text: str) -> bool:
    if text.strip().lower() in MISSING_TOKENS:
        return True
    try:
        return math.isfinite(float(text))
    except ValueError:
        return False


@pytest.fixture
def scratch_directory() -> Iterator[Path]:
    """Fresh per-call directories for hypothesis examples (tmp_path is shared by all examples)."""
    with tempfile.TemporaryDirectory() as parent:
        yield Path(parent)


def fresh_directory(parent: Path) -> Path:
    return Path(tempfile.mkdtemp(dir=parent))


def write_csv_rows(path: Path, header: list[str], rows: list[list[str]]) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    values=st.lists(
        st.one_of(st.none(), st.floats(allow_nan=False, allow_infinity=False)),
        min_size=1,
        max_size=40,
    ),
    first=st.datetimes(min_value=datetime(1980, 1, 1), max_value=datetime(2100, 1, 1)),
)
def test_csv_values_round_trip_exactly(
    scratch_directory: Path, values: list[float | None], first: datetime
) -> None:
    directory = fresh_directory(scratch_directory)
    timestamps = [first + timedelta(minutes=5 * index) for index in range(len(values))]
    write_csv_rows(
        directory / "svc.csv",
        [TIMESTAMP, "value"],
        [
            [moment.isoformat(), "" if value is None else repr(value)]
            for moment, value in zip(timestamps, values, strict=True)
        ],
    )
    frame = load_directory(directory)
    assert list(frame[TIMESTAMP]) == [pd.Timestamp(moment) for moment in timestamps]
    loaded = frame["value"].tolist()
    for original, parsed in zip(values, loaded, strict=True):
        if original is None:
            assert math.isnan(parsed)
        else:
            assert parsed == original


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    instants=st.lists(
        st.datetimes(min_value=datetime(1990, 1, 1), max_value=datetime(2090, 1, 1)),
        min_size=1,
        max_size=20,
        unique=True,
    ),
    offsets=st.lists(st.integers(-14 * 4, 14 * 4), min_size=20, max_size=20),
)
def test_aware_timestamps_are_converted_to_naive_utc(
    scratch_directory: Path, instants: list[datetime], offsets: list[int]
) -> None:
    directory = fresh_directory(scratch_directory)
    # Loaders insist on recorded time order per service, so the file lists the instants in order,
    # each written with its own offset.
    written = [
        instant.replace(tzinfo=UTC).astimezone(timezone(timedelta(minutes=15 * offset))).isoformat()
        for instant, offset in zip(sorted(instants), offsets, strict=False)
    ]
    write_csv_rows(directory / "svc.csv", [TIMESTAMP, "v"], [[text, "1"] for text in written])
    frame = load_directory(directory)
    assert list(frame[TIMESTAMP]) == sorted(pd.Timestamp(instant) for instant in instants)


@settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    junk=st.text(
        alphabet=st.characters(codec="utf-8", exclude_characters="\x00"),
        min_size=1,
        max_size=20,
    ).filter(lambda text: not is_number_or_missing(text)),
    rows=st.integers(1, 30),
    data=st.data(),
)
def test_a_non_numeric_cell_is_reported_on_its_exact_line(
    scratch_directory: Path, junk: str, rows: int, data: st.DataObject
) -> None:
    directory = fresh_directory(scratch_directory)
    bad_row = data.draw(st.integers(0, rows - 1), label="bad_row")
    # Service names spanning two physical lines shift every later record by one line; the
    # reported line must be the physical line where the bad record starts.
    two_line_rows = data.draw(st.sets(st.integers(0, rows - 1)), label="two_line_rows")
    start = datetime(2026, 1, 5)
    records = [
        [
            (start + timedelta(minutes=5 * index)).isoformat(),
            "multi\nline" if index in two_line_rows else "svc",
            junk if index == bad_row else str(float(index)),
        ]
        for index in range(rows)
    ]
    path = directory / "metrics.csv"
    write_csv_rows(path, [TIMESTAMP, SERVICE, "cpu_pct"], records)
    expected_line = 2 + bad_row + sum(1 for index in two_line_rows if index < bad_row)
    with pytest.raises(TelemetryFormatError) as caught:
        load_directory(directory)
    message = str(caught.value)
    assert str(path) in message
    assert "'cpu_pct'" in message
    # Long raw values are shortened in the message; their start is always quoted.
    assert f"line {expected_line}: {repr(junk)[:40]}" in message
    assert "in 1 row(s)" in message


# --------------------------------------------------------------------------------------------
# load_nab
# --------------------------------------------------------------------------------------------


REAL_NAB_FILES = ["realKnownCause/nyc_taxi.csv", "realAWSCloudwatch/ec2_cpu_utilization_5f5533.csv"]


def test_load_nab_reads_real_files_with_windows_as_labels(nab_root: Path) -> None:
    frame = load_nab(nab_root, files=REAL_NAB_FILES)
    assert_contract(frame)
    assert metric_columns(frame) == ["value"]
    with (nab_root / "MANIFEST.tsv").open(newline="", encoding="utf-8") as handle:
        manifest = {row["path"]: row for row in csv.DictReader(handle, delimiter="\t")}
    windows = json.loads((nab_root / "labels" / "combined_windows.json").read_text())
    for key in REAL_NAB_FILES:
        rows = service_rows(frame, key.removesuffix(".csv"))
        assert len(rows) == int(manifest[f"data/{key}"]["rows"])

        raw = pd.read_csv(nab_root / "data" / key)
        raw_times = pd.to_datetime(raw["timestamp"])
        # Gaps and irregular steps are kept: exactly the recorded instants and values, in order.
        assert list(rows[TIMESTAMP]) == list(raw_times)
        np.testing.assert_array_equal(rows["value"].to_numpy(), raw["value"].to_numpy(dtype=float))
        modal_step = rows[TIMESTAMP].diff().mode().iloc[0]
        assert modal_step == pd.Timedelta(seconds=int(manifest[f"data/{key}"]["modal_step_s"]))

        inside = np.zeros(len(raw), dtype=bool)
        for window_start, window_end in windows[key]:
            inside |= (raw_times >= pd.Timestamp(window_start)) & (
                raw_times <= pd.Timestamp(window_end)
            )
        assert len(windows[key]) == int(manifest[f"data/{key}"]["n_windows"])
        assert inside.sum() > 0
        assert rows[LABEL].sum() == inside.sum()
        np.testing.assert_array_equal(rows[LABEL].to_numpy(), inside.astype(np.int8))


def test_load_nab_refuses_real_files_with_repeated_timestamps(nab_root: Path) -> None:
    key = "realKnownCause/machine_temperature_system_failure.csv"
    with pytest.raises(TelemetryFormatError) as caught:
        load_nab(nab_root, files=[key])
    message = str(caught.value)
    assert str(nab_root / "data" / key) in message
    assert "line 10139 and" in message and "line 10151" in message


def write_nab_tree(root: Path, windows: dict[str, list[list[str]]] | None) -> None:
    category = root / "data" / "realTest"
    category.mkdir(parents=True)
    write_text(
        category / "gappy.csv",
        "timestamp,value\n"
        "2014-04-10 07:00:00,1\n"
        "2014-04-10 07:05:00,2\n"
        "2014-04-10 07:15:00,3\n"
        "2014-04-10 09:00:00,4\n"
        "2014-04-10 09:07:00,5\n",
    )
    if windows is not None:
        (root / "labels").mkdir()
        write_text(root / "labels" / "combined_windows.json", json.dumps(windows))


def test_load_nab_labels_inclusive_windows_and_keeps_gaps(tmp_path: Path) -> None:
    write_nab_tree(
        tmp_path,
        {"realTest/gappy.csv": [["2014-04-10 07:05:00.000000", "2014-04-10 07:15:00.000000"]]},
    )
    frame = load_nab(tmp_path)
    assert_contract(frame)
    assert set(frame[SERVICE]) == {"realTest/gappy"}
    assert list(frame["value"]) == [1.0, 2.0, 3.0, 4.0, 5.0]
    assert list(frame[LABEL]) == [0, 1, 1, 0, 0]
    assert list(frame[TIMESTAMP].diff().dropna().dt.total_seconds()) == [300, 600, 6300, 420]

    window = load_nab(tmp_path, start=datetime(2014, 4, 10, 7, 5), end=datetime(2014, 4, 10, 9))
    assert list(window["value"]) == [2.0, 3.0]


def test_load_nab_requires_the_labels_file(tmp_path: Path) -> None:
    write_nab_tree(tmp_path, windows=None)
    with pytest.raises(TelemetryFormatError) as caught:
        load_nab(tmp_path)
    assert str(tmp_path / "labels" / "combined_windows.json") in str(caught.value)


def test_load_nab_requires_a_windows_entry_per_file(tmp_path: Path) -> None:
    write_nab_tree(tmp_path, {"realTest/other.csv": []})
    with pytest.raises(TelemetryFormatError) as caught:
        load_nab(tmp_path)
    message = str(caught.value)
    assert "combined_windows.json" in message and "'realTest/gappy.csv'" in message


def test_load_nab_rejects_unknown_files_and_bad_values(tmp_path: Path) -> None:
    write_nab_tree(tmp_path, {"realTest/gappy.csv": []})
    with pytest.raises(TelemetryFormatError, match="not found"):
        load_nab(tmp_path, files=["realTest/absent.csv"])
    bad_file = tmp_path / "data" / "realTest" / "gappy.csv"
    write_text(bad_file, "timestamp,value\n2014-04-10 07:00:00,1\n2014-04-10 07:05:00,n.a.\n")
    with pytest.raises(TelemetryFormatError) as caught:
        load_nab(tmp_path)
    message = str(caught.value)
    assert str(bad_file) in message and "'value'" in message and "line 3: 'n.a.'" in message
