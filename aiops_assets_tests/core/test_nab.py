"""The NAB scorer against NAB's own published numbers, its rules as properties, and the
pipeline's detector on NAB files (real ones from ../shared/data/nab, and small written ones)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aiops_assets.core import nab
from aiops_assets.core.telemetry import clock_repeats, load_nab

STANDARD = nab.CostProfile("standard", tp_weight=1.0, fp_weight=0.11, fn_weight=1.0)
LOW_FN = nab.CostProfile("reward_low_FN_rate", tp_weight=1.0, fp_weight=0.11, fn_weight=2.0)


# --------------------------------------------------------------------------------------------
# Against NAB's published results
# --------------------------------------------------------------------------------------------


def test_scorer_reproduces_numentas_published_per_file_scores(nab_root: Path) -> None:
    checks = nab.verify_scorer(nab_root)
    assert len(checks) == 6 * 3  # six files with per-row output, three profiles
    assert {check.profile for check in checks} == {
        "standard",
        "reward_low_FP_rate",
        "reward_low_FN_rate",
    }
    for check in checks:
        assert check.difference <= 1e-9, check.to_dict()
        assert check.counts_match, check.to_dict()
        # NAB's S(t) column: the same per-row split of the score, row by row.
        assert check.max_row_difference <= 1e-9, check.to_dict()


def test_subset_scoreboard_null_is_zero_and_matches_our_rescoring(nab_root: Path) -> None:
    files = nab.corpus_files(nab_root)
    board = nab.subset_scoreboard(nab_root, files)
    # Our null baseline is computed by our scorer; NAB's null detector's published per-file
    # scores must normalize to exactly 0 against it.
    for profile in ("standard", "reward_low_FP_rate", "reward_low_FN_rate"):
        assert board["scores"]["null"][profile] == pytest.approx(0.0, abs=1e-9)
    windows = json.loads((nab_root / "labels" / "combined_windows.json").read_text())
    assert board["windows"] == sum(len(windows[key]) for key in files)
    assert board["incomplete"] == {
        "random": [
            "realKnownCause/nyc_taxi.csv",
            "realKnownCause/rogue_agent_key_hold.csv",
            "realKnownCause/rogue_agent_key_updown.csv",
        ]
    }
    assert board["scores"]["numenta"]["standard"] > board["scores"]["windowedGaussian"]["standard"]

    # A detector with no result at all on the chosen files is listed, not silently dropped.
    only_taxi = nab.subset_scoreboard(nab_root, ["realKnownCause/nyc_taxi.csv"])
    assert only_taxi["incomplete"] == {"random": ["realKnownCause/nyc_taxi.csv"]}
    assert "random" not in only_taxi["scores"]

    # On the six files with per-row output, the scoreboard's number for Numenta equals the
    # normalization of our own re-scoring of those rows.
    checks = nab.verify_scorer(nab_root)
    row_files = sorted({check.file for check in checks})
    small = nab.subset_scoreboard(nab_root, row_files)
    for profile, profile_def in nab.load_profiles(nab_root).items():
        ours_raw = sum(check.ours.score for check in checks if check.profile == profile)
        ours = nab.normalized_score(ours_raw, small["null"][profile], small["windows"], profile_def)
        assert small["scores"]["numenta"][profile] == pytest.approx(ours, abs=1e-9)


# --------------------------------------------------------------------------------------------
# The scoring rules
# --------------------------------------------------------------------------------------------


def test_scaled_sigmoid_matches_nabs_documented_points() -> None:
    assert float(nab.scaled_sigmoid(-1.0)) == pytest.approx(0.98661, abs=1e-5)
    assert float(nab.scaled_sigmoid(-0.5)) == pytest.approx(0.84828, abs=1e-5)
    assert float(nab.scaled_sigmoid(0.0)) == 0.0
    assert float(nab.scaled_sigmoid(1.0)) == pytest.approx(-0.98661, abs=1e-5)
    assert float(nab.scaled_sigmoid(3.0)) == -1.0


@pytest.mark.parametrize(
    ("rows", "expected"), [(0, 0), (10, 1), (1000, 150), (4032, 604), (5000, 750), (22695, 750)]
)
def test_probationary_length_is_fifteen_percent_capped_at_750(rows: int, expected: int) -> None:
    assert nab.probationary_length(rows) == expected


def _series(rows: int) -> pd.DatetimeIndex:
    return pd.date_range("2014-04-01", periods=rows, freq="5min")


@st.composite
def scored_files(
    draw: st.DrawFn,
) -> tuple[pd.DatetimeIndex, list[tuple[pd.Timestamp, pd.Timestamp]], np.ndarray]:
    rows = draw(st.integers(min_value=40, max_value=400))
    times = _series(rows)
    cuts = sorted(draw(st.sets(st.integers(min_value=0, max_value=rows - 1), max_size=6)))
    windows = [(times[a], times[b]) for a, b in zip(cuts[0::2], cuts[1::2], strict=False)]
    alarms = np.array(draw(st.lists(st.booleans(), min_size=rows, max_size=rows)))
    return times, windows, alarms


@settings(max_examples=60, deadline=None)
@given(scored_files())
def test_score_is_the_sum_of_the_per_row_split(
    case: tuple[pd.DatetimeIndex, list[tuple[pd.Timestamp, pd.Timestamp]], np.ndarray],
) -> None:
    times, windows, alarms = case
    for profile in (STANDARD, LOW_FN):
        result = nab.score_detections(times, alarms, windows, profile)
        split = nab.row_contributions(times, alarms, windows, profile)
        assert result.score == pytest.approx(float(split.sum()), abs=1e-9)
        assert result.tp + result.tn + result.fp + result.fn == len(times) - (
            nab.probationary_length(len(times))
        )
        # Bounds: every counted window is worth between -fn and +tp; each alarm costs <= fp.
        assert result.score <= result.windows * profile.tp_weight + 1e-9
        assert (
            result.score
            >= -result.windows * profile.fn_weight - result.fp * profile.fp_weight - 1e-9
        )


@settings(max_examples=60, deadline=None)
@given(scored_files(), st.data())
def test_probationary_alarms_and_later_alarms_in_a_detected_window_change_nothing(
    case: tuple[pd.DatetimeIndex, list[tuple[pd.Timestamp, pd.Timestamp]], np.ndarray],
    data: st.DataObject,
) -> None:
    times, windows, alarms = case
    base = nab.score_detections(times, alarms, windows, STANDARD).score
    probation = nab.probationary_length(len(times))
    more = alarms.copy()
    more[:probation] = data.draw(st.lists(st.booleans(), min_size=probation, max_size=probation))
    assert nab.score_detections(times, more, windows, STANDARD).score == pytest.approx(base)
    for first, last in nab.window_spans(times, windows):
        hits = [row for row in range(max(first, probation), last + 1) if alarms[row]]
        if hits:
            later = alarms.copy()
            later[hits[0] : last + 1] = True
            assert nab.score_detections(times, later, windows, STANDARD).score == pytest.approx(
                base
            )


def test_earlier_detection_scores_more_and_a_far_false_positive_costs_fp_weight() -> None:
    times = _series(1000)  # probation: 150 rows
    window = [(times[500], times[599])]
    scores = []
    for row in (500, 550, 599):
        alarms = np.zeros(1000, dtype=bool)
        alarms[row] = True
        scores.append(nab.score_detections(times, alarms, window, STANDARD).score)
    assert scores[0] == pytest.approx(1.0)  # the window's first row earns exactly tp_weight
    assert scores[0] > scores[1] > scores[2] > 0
    stray = np.zeros(1000, dtype=bool)
    stray[300] = True  # before any window: the full false-positive cost, plus the missed window
    assert nab.score_detections(times, stray, window, STANDARD).score == pytest.approx(-1.11)
    just_after = np.zeros(1000, dtype=bool)
    just_after[601] = True  # right after the window: nearly free
    result = nab.score_detections(times, just_after, window, STANDARD)
    assert -1.11 < result.score < -1.0


def test_normalization_puts_null_at_zero_and_perfect_at_hundred() -> None:
    times = _series(2000)
    windows = [(times[400], times[499]), (times[1200], times[1299])]
    silent = nab.score_detections(times, np.zeros(2000, bool), windows, STANDARD).score
    perfect_alarms = np.zeros(2000, dtype=bool)
    perfect_alarms[[400, 1200]] = True
    perfect = nab.score_detections(times, perfect_alarms, windows, STANDARD).score
    assert silent == -2.0
    assert nab.normalized_score(silent, silent, 2, STANDARD) == 0.0
    assert nab.normalized_score(perfect, silent, 2, STANDARD) == pytest.approx(100.0)


def test_window_edges_between_rows_cover_exactly_the_rows_inside() -> None:
    times = pd.DatetimeIndex(["2014-04-10 07:00", "2014-04-10 07:05", "2014-04-10 09:00"])
    spans = nab.window_spans(
        times, [(pd.Timestamp("2014-04-10 07:01"), pd.Timestamp("2014-04-10 08:00"))]
    )
    assert spans == [(1, 1)]
    assert (
        nab.window_spans(
            times, [(pd.Timestamp("2014-04-10 07:10"), pd.Timestamp("2014-04-10 08:00"))]
        )
        == []
    )


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=50), min_size=0, max_size=60))
def test_clock_repeats_leave_a_strictly_increasing_clock(minutes: list[int]) -> None:
    times = pd.Series(pd.Timestamp("2014-03-09") + pd.to_timedelta(minutes, unit="min"))
    repeated = clock_repeats(times)
    kept = times[~repeated]
    assert kept.is_monotonic_increasing and kept.is_unique
    for position in np.flatnonzero(repeated):
        assert times.iloc[position] <= times.iloc[:position].max()
    if len(times):
        assert not repeated[0]


# --------------------------------------------------------------------------------------------
# The detector on NAB files
# --------------------------------------------------------------------------------------------


@settings(max_examples=100, deadline=None)
@given(
    st.lists(st.floats(min_value=-1e6, max_value=1e6), min_size=1, max_size=50),
    st.sampled_from([0.0, 0.05, 0.5]),
)
def test_spatial_anomalies_flag_values_beyond_every_earlier_value(
    values: list[float], tolerance: float
) -> None:
    flagged = nab.spatial_anomalies(values, tolerance)
    assert not flagged[0]
    for row in range(1, len(values)):
        high, low = max(values[:row]), min(values[:row])
        margin = tolerance * (high - low)
        expected = values[row] > high + margin or values[row] < low - margin
        assert flagged[row] == expected


def test_loader_drops_daylight_saving_repeats_only_when_asked(nab_root: Path) -> None:
    key = "realKnownCause/machine_temperature_system_failure.csv"
    frame = load_nab(nab_root, files=[key], drop_clock_repeats=True)
    raw = pd.read_csv(nab_root / "data" / key)
    repeated = clock_repeats(pd.Series(pd.to_datetime(raw["timestamp"])))
    assert repeated.sum() == 12
    assert len(frame) == len(raw) - 12
    assert frame["timestamp"].is_monotonic_increasing and frame["timestamp"].is_unique
    np.testing.assert_array_equal(frame["value"].to_numpy(), raw["value"].to_numpy()[~repeated])


def write_nab_file(root: Path, values: np.ndarray, windows: list[list[str]]) -> str:
    key = "realTest/synthetic.csv"
    (root / "data" / "realTest").mkdir(parents=True)
    (root / "labels").mkdir()
    times = _series(len(values))
    pd.DataFrame({"timestamp": times.strftime("%Y-%m-%d %H:%M:%S"), "value": values}).to_csv(
        root / "data" / key, index=False
    )
    (root / "labels" / "combined_windows.json").write_text(json.dumps({key: windows}))
    (root / "labels" / "scoring_profiles.json").write_text(
        json.dumps(
            {
                "standard": {
                    "CostMatrix": {
                        "tpWeight": 1.0,
                        "fnWeight": 1.0,
                        "fpWeight": 0.11,
                        "tnWeight": 1.0,
                    }
                }
            }
        )
    )
    return key


def test_detector_alarms_on_a_level_shift_and_never_sees_the_labels(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    rows = 4032  # NAB's usual two weeks of five-minute rows
    day = np.sin(np.arange(rows) * 2 * math.pi / 288)
    values = 50 + 5 * day + rng.normal(0, 1, rows)
    values[3000:] += 25  # an outage-like jump well after the probationary rows
    times = _series(rows)
    labeled = [[str(times[2950]), str(times[3100])]]
    elsewhere = [[str(times[1000]), str(times[1100])]]
    key = write_nab_file(tmp_path / "a", values, labeled)
    write_nab_file(tmp_path / "b", values, elsewhere)

    run_a = nab.run_file(tmp_path / "a", key)
    run_b = nab.run_file(tmp_path / "b", key)
    # Moving the windows changes the score but not one alarm: nothing the detector decides reads
    # them.
    assert run_a.alarms == run_b.alarms
    assert all(row >= nab.probationary_length(rows) for row in run_a.alarms)
    assert any(3000 <= row <= 3100 for row in run_a.alarms)
    assert run_a.scores["standard"].detected_windows == 1
    assert run_a.scores["standard"].score > 0.5
    assert run_b.scores["standard"].detected_windows == 0
    # The drift check stays quiet on the stationary stretch and alarms once the level moved.
    assert run_a.drift_alarms
    assert all(alarm.at >= times[3000] for alarm in run_a.drift_alarms)
    assert run_a.drift_alarms == run_b.drift_alarms
