"""``core.nab_cv``: the cross-validated NAB evaluation. The protocol is checked for what makes
it honest (a category's choice never reads that category's labels), the cached scoring against
the public scorer and the runnable :class:`Pager`, and a small real-NAB smoke run (CI)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aiops_assets.core import nab, nab_cv
from aiops_assets.core.detectors import AlarmRule

ROWS = 900


def _write_file(root: Path, key: str, seed: int, jump_at: int) -> list[list[str]]:
    rng = np.random.default_rng(seed)
    times = pd.date_range("2014-04-01", periods=ROWS, freq="5min")
    values = 50 + 5 * np.sin(np.arange(ROWS) * 2 * math.pi / 288) + rng.normal(0, 1, ROWS)
    values[jump_at : jump_at + 30] += 30
    (root / "data" / key).parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame({"timestamp": times.strftime("%Y-%m-%d %H:%M:%S"), "value": values}).to_csv(
        root / "data" / key, index=False
    )
    return [[str(times[jump_at - 20]), str(times[jump_at + 20])]]


def write_corpus(root: Path, moved: bool = False) -> dict[str, list[list[str]]]:
    """Two categories of two files, no scoreboard and no scoring profiles: a user's own folder."""
    windows = {}
    for number, key in enumerate(["alpha/a1.csv", "alpha/a2.csv", "beta/b1.csv", "beta/b2.csv"]):
        windows[key] = _write_file(root, key, seed=number, jump_at=500 + 60 * number)
    if moved:  # beta's windows somewhere nothing happens
        times = pd.date_range("2014-04-01", periods=ROWS, freq="5min")
        for key in ("beta/b1.csv", "beta/b2.csv"):
            windows[key] = [[str(times[200]), str(times[240])]]
    (root / "labels").mkdir(exist_ok=True)
    (root / "labels" / "combined_windows.json").write_text(json.dumps(windows))
    return windows


def test_a_categorys_choice_never_reads_its_own_labels(tmp_path: Path) -> None:
    write_corpus(tmp_path / "as_labelled")
    write_corpus(tmp_path / "moved", moved=True)
    labelled = nab_cv.evaluate(tmp_path / "as_labelled")
    moved = nab_cv.evaluate(tmp_path / "moved")
    choices = "leave_one_category_out"
    # beta's choice is made on alpha alone, whose labels did not move.
    assert labelled["choices"][choices]["beta"] == moved["choices"][choices]["beta"]
    # ... while beta's score does move: the planted jumps are now false alarms.
    beta = labelled["per_category"]["beta"][choices]["standard"]
    assert moved["per_category"]["beta"][choices]["standard"] < beta
    assert labelled["headline"] == choices
    assert labelled["published"] == {}  # no scoreboard/: ours alone
    assert set(labelled["ours"][choices]) == {p.name for p in nab.DEFAULT_PROFILES}
    # The planted jumps are easy: every protocol finds most of them.
    for protocol in ("leave_one_category_out", "leave_one_file_out", "in_sample"):
        assert labelled["ours"][protocol]["standard"] > 50


def test_the_winner_as_a_pager_raises_the_alarms_that_were_scored(tmp_path: Path) -> None:
    windows = write_corpus(tmp_path)
    result = nab_cv.evaluate(tmp_path)
    winner = result["winner"]["standard"]
    candidate = nab_cv.Candidate(winner["stream"], winner["family"], AlarmRule(**winner["rule"]))
    factors = result["grid"]["noise_calibration"][str(candidate.rule.history_rows)]
    profiles = nab.load_profiles(tmp_path)
    raw = 0.0
    for key, summary in result["files"].items():
        values = pd.read_csv(tmp_path / "data" / key)["value"].to_numpy()
        learn = nab.probationary_length(len(values))
        period = summary["rows_per_day"]
        pager = nab_cv.pager_for(candidate, period=period, learn_rows=learn, factors=factors)
        rows = pager.alarms(values, learn_rows=learn)
        assert len(rows) == summary["alarms_in_sample"]
        alarms = np.zeros(len(values), dtype=bool)
        alarms[rows] = True
        times = nab.file_timestamps(tmp_path, key)
        spans = [(pd.Timestamp(a), pd.Timestamp(b)) for a, b in windows[key]]
        raw += nab.score_detections(times, alarms, spans, profiles["standard"]).score
    null = result["scoreboard"]["null"]["standard"]
    expected = nab.normalized_score(raw, null, 4, profiles["standard"])
    assert result["ours"]["in_sample"]["standard"] == pytest.approx(expected)


def test_one_category_has_no_category_to_leave_out(tmp_path: Path) -> None:
    write_corpus(tmp_path)
    result = nab_cv.evaluate(tmp_path, files=["alpha/a1.csv", "alpha/a2.csv"])
    assert result["ours"]["leave_one_category_out"] is None
    assert result["headline"] == "leave_one_file_out"
    assert result["ours"]["leave_one_file_out"] is not None


def test_a_file_too_short_to_learn_from_stays_silent(tmp_path: Path) -> None:
    write_corpus(tmp_path)
    (tmp_path / "data" / "alpha" / "one.csv").write_text("timestamp,value\n2014-04-01 00:00:00,1\n")
    windows = json.loads((tmp_path / "labels" / "combined_windows.json").read_text())
    (tmp_path / "labels" / "combined_windows.json").write_text(
        json.dumps({**windows, "alpha/one.csv": []})
    )
    result = nab_cv.evaluate(tmp_path)
    assert result["files"]["alpha/one.csv"]["alarms_in_sample"] == 0
    assert result["files"]["alpha/one.csv"]["rows"] == 1


@settings(max_examples=60, deadline=None)
@given(
    rows=st.integers(40, 400),
    cuts=st.sets(st.integers(0, 399), max_size=6),
    alarm_rows=st.sets(st.integers(0, 399), max_size=30),
)
def test_cached_scoring_equals_the_nab_scorer(
    rows: int, cuts: set[int], alarm_rows: set[int]
) -> None:
    times = pd.date_range("2014-04-01", periods=rows, freq="5min")
    edges = sorted(cut for cut in cuts if cut < rows)
    windows = [(times[a], times[b]) for a, b in zip(edges[0::2], edges[1::2], strict=False)]
    positions = np.array(sorted(row for row in alarm_rows if row < rows), dtype="int64")
    alarms = np.zeros(rows, dtype=bool)
    alarms[positions] = True
    for profile in nab.DEFAULT_PROFILES:
        layout = nab.row_layout(times, windows, profile)
        assert nab.score_alarm_rows(layout, profile, positions) == pytest.approx(
            nab.score_detections(times, alarms, windows, profile).score, abs=1e-12
        )


SMOKE_FILES = [
    "artificialNoAnomaly/art_flatline.csv",
    "artificialWithAnomaly/art_daily_jumpsup.csv",
    "realAWSCloudwatch/iio_us-east-1_i-a2eb1cd9_NetworkIn.csv",
    "realKnownCause/rogue_agent_key_hold.csv",
]


def test_nab_smoke_run_on_four_short_real_files(nab_root: Path) -> None:
    result = nab_cv.evaluate(nab_root, files=SMOKE_FILES)
    assert result["headline"] == "leave_one_category_out"
    assert result["scoreboard"]["categories"] == 4
    assert result["scoreboard"]["windows"] == 5
    for protocol in ("leave_one_category_out", "leave_one_file_out", "in_sample"):
        scores = result["ours"][protocol]
        assert scores is None or all(math.isfinite(value) for value in scores.values())
    assert result["published"]["null"] == {p.name: 0.0 for p in nab.DEFAULT_PROFILES}
    # A category without windows is reported raw (0 = silent), never normalized by zero.
    flat = result["per_category"]["artificialNoAnomaly"]
    assert flat["normalized"] is False and flat["windows"] == 0
    assert flat["published"]["null"]["standard"] == 0.0
    assert set(result["choices"]["leave_one_category_out"]) == {
        key.split("/")[0] for key in SMOKE_FILES
    }
    assert result["grid"]["candidates"] == len(nab_cv.candidates())


def test_a_tie_goes_to_the_quieter_candidate_then_to_the_earlier_one() -> None:
    # 3 candidates x 2 files x 1 profile: candidates 0 and 1 tie on the training file (0).
    table = np.array([[[2.0], [9.0]], [[2.0], [0.0]], [[1.0], [9.0]]])
    alarms = np.array([[5, 1], [3, 9], [0, 0]])
    train = np.array([True, False])
    # Candidate 1 pages less than 0 on the training file; file 1's scores and pages are unseen.
    assert nab_cv.choose(table, alarms, train, [0, 1, 2]) == [1]
    # Equal pages too: the grid's order decides.
    assert nab_cv.choose(table, np.zeros((3, 2), dtype="int64"), train, [0, 1, 2]) == [0]
    # A better score wins however often it pages.
    assert nab_cv.choose(table, alarms, train, [0, 2]) == [0]
    assert nab_cv.choose(table, alarms, np.array([False, True]), [0, 1, 2]) == [2]
