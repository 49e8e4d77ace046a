from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aiops_assets.core.features import (
    FeatureSetSpec,
    compute_features,
    model_input_columns,
    probe_point_in_time,
)

SPEC = FeatureSetSpec(windows=("30min", "2h"))


def _telemetry(
    rows: int = 96, services: tuple[str, ...] = ("api", "db"), seed: int = 0
) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    timestamps = pd.date_range("2026-01-05", periods=rows, freq="5min").astype("datetime64[us]")
    frames = []
    for index, service in enumerate(services):
        request_rate = 100.0 * (index + 1) + rng.normal(0, 5, rows)
        frames.append(
            pd.DataFrame(
                {
                    "timestamp": timestamps,
                    "service": pd.Series([service] * rows, dtype=object),
                    "cpu_pct": 40 + rng.normal(0, 3, rows),
                    "request_rate": request_rate,
                    "error_rate": np.abs(rng.normal(0.2, 0.05, rows)),
                    "label": np.zeros(rows, dtype="int8"),
                }
            )
        )
    return pd.concat(frames, ignore_index=True)


def test_features_cover_every_metric_window_and_ratio() -> None:
    features = compute_features(_telemetry(), SPEC)
    for metric in ("cpu_pct", "request_rate", "error_rate"):
        for window in SPEC.windows:
            for kind in ("mean", "std", "z"):
                assert f"{metric}__{kind}_{window}" in features
        assert f"{metric}__dz" in features
    assert "ratio__error_ratio" in features
    assert list(features.columns[:3]) == ["timestamp", "service", "label"]
    assert len(features) == len(_telemetry())
    assert set(model_input_columns(features)) == {
        column for column in features.columns if "__z_" in column
    } | {"ratio__error_ratio"}


def test_the_z_score_measures_a_spike_against_the_rows_before_it() -> None:
    telemetry = _telemetry()
    spike_at = telemetry.index[(telemetry["service"] == "api")][60]
    telemetry.loc[spike_at, "cpu_pct"] = 95.0
    features = compute_features(telemetry, SPEC)
    spike = features[
        (features["service"] == "api")
        & (features["timestamp"] == telemetry.loc[spike_at, "timestamp"])
    ]
    assert float(spike["cpu_pct__z_2h"].iloc[0]) > 10
    others = features[(features["service"] == "api")]["cpu_pct__z_2h"].drop(spike.index)
    assert others.abs().max() < 6


def test_the_output_window_selects_rows_but_history_still_feeds_them() -> None:
    telemetry = _telemetry(rows=288)
    start = pd.Timestamp("2026-01-05 12:00")
    windowed = compute_features(telemetry, SPEC, output_start=start)
    full = compute_features(telemetry, SPEC)
    assert windowed["timestamp"].min() == start
    pd.testing.assert_frame_equal(windowed, full[full["timestamp"] >= start].reset_index(drop=True))


def test_a_flat_series_that_jumps_is_flagged_not_undefined() -> None:
    telemetry = _telemetry(services=("flat",))
    telemetry["cpu_pct"] = 10.0
    telemetry.loc[80, "cpu_pct"] = 11.0
    features = compute_features(telemetry, SPEC)
    jump_z = float(features["cpu_pct__z_30min"].to_numpy()[80])
    assert np.isfinite(jump_z)
    assert jump_z > 1000


def test_gaps_are_respected_by_time_windows() -> None:
    telemetry = _telemetry(services=("api",))
    with_gap = telemetry.drop(index=range(40, 70)).reset_index(drop=True)
    features = compute_features(with_gap, SPEC)
    after_gap = features.iloc[40]
    # Thirty rows (2.5 h) are missing, so the 30-minute window after the gap holds one row only and
    # has no spread yet; a step-count window would wrongly reach back across the gap.
    assert np.isnan(after_gap["cpu_pct__std_30min"])


def test_duplicate_rows_and_missing_columns_are_refused() -> None:
    telemetry = _telemetry()
    with pytest.raises(ValueError, match="duplicate"):
        compute_features(pd.concat([telemetry, telemetry.iloc[:1]]), SPEC)
    with pytest.raises(ValueError, match="'service'"):
        compute_features(telemetry.drop(columns=["service"]), SPEC)
    with pytest.raises(ValueError, match="needs metric columns"):
        compute_features(telemetry, FeatureSetSpec(metrics=("memory_pct",)))


def test_the_spec_version_changes_with_the_spec_and_round_trips() -> None:
    assert SPEC.version_id != FeatureSetSpec().version_id
    assert FeatureSetSpec.from_dict(SPEC.to_dict()) == SPEC
    assert FeatureSetSpec.from_dict(SPEC.to_dict()).version_id == SPEC.version_id
    assert SPEC.lookback == pd.Timedelta("2h")
    with pytest.raises(ValueError):
        FeatureSetSpec(windows=())


def test_features_are_deterministic() -> None:
    first = compute_features(_telemetry(seed=3), SPEC)
    second = compute_features(_telemetry(seed=3).sample(frac=1.0, random_state=1), SPEC)
    pd.testing.assert_frame_equal(first, second)


@settings(max_examples=40, deadline=None)
@given(
    cutoff=st.integers(min_value=1, max_value=94),
    new_value=st.one_of(st.floats(-1e6, 1e6, allow_nan=False), st.just(float("nan"))),
    column=st.sampled_from(["cpu_pct", "request_rate", "error_rate"]),
    service=st.sampled_from(["api", "db"]),
    data=st.data(),
)
def test_changing_a_future_row_never_changes_an_earlier_feature(
    cutoff: int, new_value: float, column: str, service: str, data: st.DataObject
) -> None:
    telemetry = _telemetry()
    baseline = compute_features(telemetry, SPEC)
    timestamps = np.sort(telemetry["timestamp"].unique())
    future_step = data.draw(st.integers(min_value=cutoff, max_value=len(timestamps) - 1))
    changed = telemetry.copy()
    target = (changed["service"] == service) & (changed["timestamp"] == timestamps[future_step])
    changed.loc[target, column] = new_value
    perturbed = compute_features(changed, SPEC)
    before = baseline["timestamp"] < timestamps[future_step]
    pd.testing.assert_frame_equal(baseline[before], perturbed[before])


@settings(max_examples=20, deadline=None)
@given(extra_rows=st.integers(min_value=1, max_value=30), seed=st.integers(0, 1000))
def test_appending_future_rows_never_changes_existing_features(extra_rows: int, seed: int) -> None:
    full = _telemetry(rows=96, seed=seed)
    cutoff = pd.Timestamp("2026-01-05") + pd.Timedelta(minutes=5 * (96 - extra_rows))
    truncated = full[full["timestamp"] < cutoff]
    on_truncated = compute_features(truncated, SPEC)
    on_full = compute_features(full, SPEC)
    pd.testing.assert_frame_equal(
        on_full[on_full["timestamp"] < cutoff].reset_index(drop=True), on_truncated
    )


def test_the_leakage_probe_passes_point_in_time_features() -> None:
    telemetry = _telemetry(rows=288)
    stored = compute_features(telemetry, SPEC)
    probe = probe_point_in_time(
        telemetry, stored, lambda history: compute_features(history, SPEC), seed=1
    )
    assert probe.passed
    assert len(probe.cutoffs) == 3 and probe.compared_rows > 0 and probe.compared_cells > 0


def test_the_leakage_probe_catches_a_feature_that_looks_ahead() -> None:
    def centered_mean(history: pd.DataFrame) -> pd.DataFrame:
        features = compute_features(history, SPEC)
        # A classic leak: a centered window averages the next rows too.
        features["cpu_pct__mean_30min"] = (
            history.sort_values(["timestamp", "service"])
            .groupby("service")["cpu_pct"]
            .transform(lambda values: values.rolling(7, center=True, min_periods=1).mean())
            .to_numpy()
        )
        return features

    telemetry = _telemetry(rows=288).sort_values(["timestamp", "service"]).reset_index(drop=True)
    stored = centered_mean(telemetry)
    probe = probe_point_in_time(telemetry, stored, centered_mean, seed=1)
    assert not probe.passed
    assert {mismatch["column"] for mismatch in probe.mismatches} == {"cpu_pct__mean_30min"}
    assert all(pd.Timestamp(m["timestamp"]) <= pd.Timestamp(m["cutoff"]) for m in probe.mismatches)
