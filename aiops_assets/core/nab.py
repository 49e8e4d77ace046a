"""The Numenta Anomaly Benchmark's scoring, its published results, and a NAB-style online detector.

Why a scorer of our own: a detector's NAB number is only comparable with the published scoreboard
if it is computed exactly as NAB v1.0 computes it, so this module re-implements NAB's sweeper
(``nab/sweeper.py``) row for row and is verified against NAB's own per-row output
(:func:`verify_scorer`). The rules it reproduces:

- **Windows.** Each labeled window ``[start, end]`` (both ends included) is a run of rows. A
  detection inside a window is worth ``tp_weight * S(p) / S(-1)`` where ``p = -(last - i + 1) /
  width`` and ``S(x) = 2 / (1 + exp(5 x)) - 1`` is the scaled sigmoid: only the earliest detection
  of a window counts, and an earlier one is worth more. A window without a detection costs
  ``fn_weight``.
- **False positives** outside windows cost ``fp_weight * S(p)``, ``p`` being the distance past
  the previous window's last row divided by that window's ``width - 1`` (``S(3) = -1`` before any
  window): an alarm just after a window is nearly free, a stray one costs ``fp_weight``.
- **Probationary period.** The first ``min(floor(0.15 n), 750)`` rows are the detector's to learn
  from and are not scored; a window lying wholly inside it is not counted.
- **Profiles** weigh these terms (``labels/scoring_profiles.json``: standard, reward_low_FP_rate,
  reward_low_FN_rate).
- **Normalization** over a set of files: ``100 (raw - null) / (perfect - null)`` with ``null`` the
  raw score of a detector that never fires and ``perfect = tp_weight x number of windows``.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, TypeAlias

import numpy as np
import numpy.typing as npt
import pandas as pd
from scipy import stats as scipy_stats

from aiops_assets.core.drift import (
    DriftPolicy,
    build_profile,
    calibrate,
    evaluate_drift,
    load_policy,
)
from aiops_assets.core.features import FeatureSetSpec, compute_features
from aiops_assets.core.models import DetectorConfig, train_detector
from aiops_assets.core.progress import NoProgress, Progress
from aiops_assets.core.store import ArtifactStore, canonical_parquet_bytes, sha256_hex
from aiops_assets.core.telemetry import (
    LABEL,
    SERVICE,
    TIMESTAMP,
    canonical_telemetry,
    clock_repeats,
    load_nab,
    read_nab_windows,
)

__all__ = [
    "DEFAULT_PROFILES",
    "PROBATIONARY_PERCENT",
    "CostProfile",
    "DriftAlarm",
    "FileRun",
    "FileScore",
    "NabDetectorConfig",
    "PublishedScoreboard",
    "RowLayout",
    "ScorerCheck",
    "corpus_files",
    "evaluate_pipeline",
    "feature_spec",
    "file_timestamps",
    "likelihood_alarms",
    "load_profiles",
    "normalized_score",
    "probationary_length",
    "read_published",
    "row_contributions",
    "row_layout",
    "run_file",
    "scaled_sigmoid",
    "score_alarm_rows",
    "score_detections",
    "spatial_anomalies",
    "subset_scoreboard",
    "verify_scorer",
    "window_spans",
]

FloatArray: TypeAlias = npt.NDArray[np.float64]
BoolArray: TypeAlias = npt.NDArray[np.bool_]
Windows: TypeAlias = Sequence[tuple[pd.Timestamp, pd.Timestamp]]
Timestamps: TypeAlias = pd.Series | pd.DatetimeIndex | np.ndarray

PROBATIONARY_PERCENT: Final = 0.15
# NAB caps the probationary period at 15% of 5000 rows, so long files are not mostly unscored.
_PROBATION_CAP_ROWS: Final = 5000
# Where NAB's scaled sigmoid is cut off to exactly -1: a false positive far from any window.
_FAR_PAST_WINDOW: Final = 3.0
PROFILES_PATH: Final = Path("labels") / "scoring_profiles.json"
PER_FILE_PATH: Final = Path("scoreboard") / "per_file" / "all_detectors_per_file_scores.csv"
THRESHOLDS_PATH: Final = Path("scoreboard") / "thresholds.json"
NUMENTA_ROWS_PATH: Final = Path("scoreboard") / "numenta_rows"
NULL_DETECTOR: Final = "null"


@dataclass(frozen=True)
class CostProfile:
    """One NAB application profile: how much a detected window, a miss and a false alarm weigh."""

    name: str
    tp_weight: float
    fp_weight: float
    fn_weight: float


DEFAULT_PROFILES: Final = (
    CostProfile("standard", tp_weight=1.0, fp_weight=0.11, fn_weight=1.0),
    CostProfile("reward_low_FP_rate", tp_weight=1.0, fp_weight=0.22, fn_weight=1.0),
    CostProfile("reward_low_FN_rate", tp_weight=1.0, fp_weight=0.11, fn_weight=2.0),
)


def load_profiles(root: str | os.PathLike[str]) -> dict[str, CostProfile]:
    """NAB's scoring profiles from ``labels/scoring_profiles.json``, in the file's order.

    A NAB-format folder of one's own may leave the file out: NAB v1.0's three profiles apply.
    """
    path = Path(root) / PROFILES_PATH
    if not path.is_file():
        return {profile.name: profile for profile in DEFAULT_PROFILES}
    document = json.loads(path.read_text(encoding="utf-8"))
    profiles: dict[str, CostProfile] = {}
    for name, body in document.items():
        matrix = body["CostMatrix"]
        profiles[name] = CostProfile(
            name=name,
            tp_weight=float(matrix["tpWeight"]),
            fp_weight=float(matrix["fpWeight"]),
            fn_weight=float(matrix["fnWeight"]),
        )
    return profiles


def probationary_length(rows: int, percent: float = PROBATIONARY_PERCENT) -> int:
    """Rows at the start of a file that NAB leaves unscored: ``min(floor(0.15 n), 750)``."""
    return int(min(math.floor(percent * rows), percent * _PROBATION_CAP_ROWS))


def scaled_sigmoid(position: FloatArray | float) -> FloatArray:
    """NAB's ``2 sigmoid(-5 x) - 1``, exactly -1 from ``x = 3`` on (a far false positive)."""
    x = np.asarray(position, dtype="float64")
    with np.errstate(over="ignore"):
        value = 2.0 / (1.0 + np.exp(5.0 * x)) - 1.0
    return np.where(x >= _FAR_PAST_WINDOW, -1.0, value)


def window_spans(timestamps: Timestamps, windows: Windows) -> list[tuple[int, int]]:
    """Each window as the positions ``(first, last)`` of the rows inside it, both ends included.

    Found by time, not by exact timestamp match, so a window edge between two rows (a gap in the
    series) still covers exactly the rows the loader labels 1. A window with no rows is dropped:
    it can be neither detected nor missed by a detector that never saw its rows.
    """
    # Nanoseconds on both sides: ``Timestamp.value`` is always in nanoseconds.
    times = pd.DatetimeIndex(timestamps).as_unit("ns").asi8
    spans: list[tuple[int, int]] = []
    for start, end in sorted(windows):
        first = int(np.searchsorted(times, pd.Timestamp(start).value, "left"))
        last = int(np.searchsorted(times, pd.Timestamp(end).value, "right")) - 1
        if first <= last:
            spans.append((first, last))
    return spans


_UNIT: Final = "us"


def _as_unit(timestamps: Timestamps) -> pd.DatetimeIndex:
    return pd.DatetimeIndex(timestamps).as_unit(_UNIT)


@dataclass(frozen=True)
class RowLayout:
    """Where every row stands relative to the windows: the inputs NAB's sweeper derives once."""

    weights: FloatArray  # the score a detection on this row would add (S(t) in NAB's output)
    window_of_row: npt.NDArray[np.int64]  # index into spans, -1 outside every window
    scorable: BoolArray  # False inside the probationary period
    spans: list[tuple[int, int]]


def _layout(timestamps: Timestamps, windows: Windows, profile: CostProfile) -> RowLayout:
    index = _as_unit(timestamps)
    rows = len(index)
    spans = window_spans(index, windows)
    positions = np.arange(rows, dtype="float64")
    window_of_row = np.full(rows, -1, dtype="int64")
    weights = np.empty(rows, dtype="float64")
    max_tp = float(scaled_sigmoid(-1.0))
    # Outside windows: distance past the previous window's last row, in that window's widths.
    past_position = np.full(rows, _FAR_PAST_WINDOW)
    for number, (first, last) in enumerate(spans):
        width = float(last - first + 1)
        window_of_row[first : last + 1] = number
        inside = positions[first : last + 1]
        weights[first : last + 1] = (
            scaled_sigmoid(-(last - inside + 1.0) / width) * profile.tp_weight / max_tp
        )
        following_end = spans[number + 1][0] if number + 1 < len(spans) else rows
        after = positions[last + 1 : following_end]
        # NAB divides by width - 1; a one-row window would divide by zero there, and every later
        # alarm is then as far from it as can be.
        past_position[last + 1 : following_end] = (
            np.abs(last - after) / (width - 1.0) if width > 1 else _FAR_PAST_WINDOW
        )
    outside = window_of_row < 0
    weights[outside] = scaled_sigmoid(past_position[outside]) * profile.fp_weight
    scorable = positions >= probationary_length(rows)
    return RowLayout(weights, window_of_row, scorable, spans)


def row_layout(timestamps: Timestamps, windows: Windows, profile: CostProfile) -> RowLayout:
    """Each row's weight under ``profile``, computed once so many alarm sets can be scored fast."""
    return _layout(timestamps, windows, profile)


def score_alarm_rows(layout: RowLayout, profile: CostProfile, rows: npt.ArrayLike) -> float:
    """The raw score of alarms on ``rows`` (positions in the file), as :func:`score_detections`.

    Within a window the weights fall with the position, so the earliest alarm is the best one.
    """
    positions = np.asarray(rows, dtype="int64")
    positions = positions[layout.scorable[positions]]
    window_of = layout.window_of_row[positions]
    score = float(layout.weights[positions[window_of < 0]].sum())
    for number, (first, last) in enumerate(layout.spans):
        if not layout.scorable[first : last + 1].any():
            continue
        hits = positions[window_of == number]
        score += float(layout.weights[hits.min()]) if hits.size else -profile.fn_weight
    return score


def row_contributions(
    timestamps: Timestamps,
    detections: npt.ArrayLike,
    windows: Windows,
    profile: CostProfile,
) -> FloatArray:
    """The score split over rows as NAB writes it in its ``S(t)_<profile>`` output column.

    An alarm outside windows carries its false-positive cost on its own row; each counted window
    carries its whole result (its earliest alarm's reward, or ``-fn_weight`` when missed) on the
    window's first row. The column therefore sums to the file's score.
    """
    alarms = np.asarray(detections).astype(bool)
    layout = _layout(timestamps, windows, profile)
    if alarms.shape != layout.weights.shape:
        raise ValueError(f"{alarms.shape[0]} detections for {layout.weights.shape[0]} rows")
    active = alarms & layout.scorable
    contributions = np.where(active & (layout.window_of_row < 0), layout.weights, 0.0)
    for first, last in layout.spans:
        if not layout.scorable[first : last + 1].any():
            continue  # wholly inside the probationary period: NAB does not count it
        hits = first + np.flatnonzero(active[first : last + 1])
        contributions[first] = layout.weights[hits].max() if hits.size else -profile.fn_weight
    return contributions


@dataclass(frozen=True)
class FileScore:
    """One file's raw NAB score under one profile, with NAB's row counts (scorable rows only)."""

    score: float
    tp: int
    tn: int
    fp: int
    fn: int
    windows: int
    detected_windows: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "score": self.score,
            "tp": self.tp,
            "tn": self.tn,
            "fp": self.fp,
            "fn": self.fn,
            "windows": self.windows,
            "detected_windows": self.detected_windows,
        }


def score_detections(
    timestamps: Timestamps,
    detections: npt.ArrayLike,
    windows: Windows,
    profile: CostProfile,
) -> FileScore:
    """Score one file's detections (truthy = alarm on that row) as NAB's sweeper does.

    ``timestamps`` must be the file's rows in time order; ``detections`` one value per row.
    """
    alarms = np.asarray(detections).astype(bool)
    layout = _layout(timestamps, windows, profile)
    if alarms.shape != layout.weights.shape:
        raise ValueError(f"{alarms.shape[0]} detections for {layout.weights.shape[0]} rows")
    active = alarms & layout.scorable
    in_window = layout.window_of_row >= 0
    false_positive_score = float(layout.weights[active & ~in_window].sum())
    window_score = 0.0
    counted = 0
    detected = 0
    for first, last in layout.spans:
        scorable_rows = layout.scorable[first : last + 1]
        hits = np.flatnonzero(active[first : last + 1])
        if not scorable_rows.any():
            continue  # wholly inside the probationary period: NAB does not count it
        counted += 1
        if hits.size:
            detected += 1
            window_score += float(layout.weights[first + hits].max())
        else:
            window_score -= profile.fn_weight
    scorable_inside = layout.scorable & in_window
    scorable_outside = layout.scorable & ~in_window
    return FileScore(
        score=window_score + false_positive_score,
        tp=int((active & in_window).sum()),
        tn=int((scorable_outside & ~alarms).sum()),
        fp=int((active & ~in_window).sum()),
        fn=int((scorable_inside & ~alarms).sum()),
        windows=counted,
        detected_windows=detected,
    )


def normalized_score(raw: float, null: float, windows: int, profile: CostProfile) -> float:
    """NAB's normalization: the null detector scores 0, one detected at every window start 100."""
    perfect = windows * profile.tp_weight
    if perfect == null:
        raise ValueError("normalization needs at least one window (perfect equals null)")
    return 100.0 * (raw - null) / (perfect - null)


# --------------------------------------------------------------------------------------------
# The published results
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PublishedScoreboard:
    """NAB's published per-file results and thresholds, as shipped with the data."""

    per_file: pd.DataFrame  # Detector, Profile, File, Threshold, Score, TP, TN, FP, FN, Total_Count
    thresholds: dict[str, dict[str, float]]  # detector -> profile -> threshold


def read_published(root: str | os.PathLike[str]) -> PublishedScoreboard:
    nab_root = Path(root)
    # keep_default_na=False: pandas would otherwise read the detector named "null" as missing.
    per_file = pd.read_csv(nab_root / PER_FILE_PATH, keep_default_na=False)
    document = json.loads((nab_root / THRESHOLDS_PATH).read_text(encoding="utf-8"))
    thresholds = {
        str(detector): {str(profile): float(body["threshold"]) for profile, body in by.items()}
        for detector, by in document.items()
    }
    return PublishedScoreboard(per_file=per_file, thresholds=thresholds)


def subset_scoreboard(
    root: str | os.PathLike[str],
    files: Sequence[str],
    *,
    published: PublishedScoreboard | None = None,
) -> dict[str, Any]:
    """Every published detector's normalized score on exactly ``files``, per profile.

    The published ``final_results.json`` is normalized over the whole NAB corpus; here each
    detector's per-file raw scores are summed over the subset and normalized with the subset's own
    null baseline (computed by :func:`score_detections` with no alarms) and window count, so our
    detector and theirs are measured on the same files with the same yardstick. A detector
    without a result for every file is listed under ``incomplete`` instead of being scored on
    fewer files. Returns ``{"scores": {detector: {profile: score}}, "incomplete": {detector:
    [missing files]}, "null": {profile: raw}, "windows": n}``.
    """
    nab_root = Path(root)
    board = published or read_published(nab_root)
    profiles = load_profiles(nab_root)
    baseline = null_baseline(nab_root, files, profiles)
    wanted = set(files)
    rows = board.per_file[board.per_file["File"].isin(wanted)]
    scores: dict[str, dict[str, float]] = {}
    incomplete: dict[str, list[str]] = {}
    for detector in sorted(set(board.per_file["Detector"])):
        of_detector = rows[rows["Detector"] == detector]
        missing = sorted(wanted - set(of_detector["File"]))
        if missing:
            incomplete[str(detector)] = missing
            continue
        scores[str(detector)] = {}
        for profile_name, profile in profiles.items():
            of_profile = of_detector[of_detector["Profile"] == profile_name]
            raw = float(of_profile["Score"].sum())
            scores[str(detector)][profile_name] = normalized_score(
                raw, baseline.raw[profile_name], baseline.windows, profile
            )
    return {
        "scores": scores,
        "incomplete": incomplete,
        "null": dict(baseline.raw),
        "windows": baseline.windows,
    }


@dataclass(frozen=True)
class NullBaseline:
    raw: dict[str, float]  # profile -> the raw score of never firing, summed over the files
    windows: int  # every labeled window of the files (NAB's "perfect" count)


def null_baseline(
    root: str | os.PathLike[str],
    files: Sequence[str],
    profiles: Mapping[str, CostProfile] | None = None,
) -> NullBaseline:
    """The never-firing detector's raw score over ``files`` and their number of windows."""
    nab_root = Path(root)
    chosen = profiles or load_profiles(nab_root)
    windows_by_key = read_nab_windows(nab_root)
    raw = dict.fromkeys(chosen, 0.0)
    total_windows = 0
    for key in files:
        timestamps = _file_timestamps(nab_root, key)
        windows = windows_by_key[key]
        total_windows += len(windows)
        silent = np.zeros(len(timestamps), dtype=bool)
        for name, profile in chosen.items():
            raw[name] += score_detections(timestamps, silent, windows, profile).score
    return NullBaseline(raw=raw, windows=total_windows)


def file_timestamps(root: str | os.PathLike[str], key: str) -> pd.DatetimeIndex:
    """Every row's time in one NAB file, clock repeats included: the rows NAB scores."""
    return _file_timestamps(Path(root), key)


def _file_timestamps(root: Path, key: str) -> pd.DatetimeIndex:
    frame = pd.read_csv(root / "data" / key, usecols=["timestamp"])
    return _as_unit(pd.to_datetime(frame["timestamp"], format="ISO8601"))


# --------------------------------------------------------------------------------------------
# Verification against NAB's own per-row output
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ScorerCheck:
    """Our score of one published per-row output beside NAB's own score of it."""

    file: str
    profile: str
    threshold: float
    ours: FileScore
    published_score: float
    published_counts: tuple[int, int, int, int]  # TP, TN, FP, FN
    max_row_difference: float  # our per-row contributions against the file's S(t)_<profile>

    @property
    def difference(self) -> float:
        return abs(self.ours.score - self.published_score)

    @property
    def counts_match(self) -> bool:
        ours = (self.ours.tp, self.ours.tn, self.ours.fp, self.ours.fn)
        return ours == self.published_counts

    def to_dict(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "profile": self.profile,
            "threshold": self.threshold,
            "ours": self.ours.score,
            "published": self.published_score,
            "difference": self.difference,
            "counts": {
                "tp": self.ours.tp,
                "tn": self.ours.tn,
                "fp": self.ours.fp,
                "fn": self.ours.fn,
            },
            "published_counts": dict(
                zip(("tp", "tn", "fp", "fn"), self.published_counts, strict=True)
            ),
            "max_row_difference": self.max_row_difference,
        }


def verify_scorer(root: str | os.PathLike[str], detector: str = "numenta") -> list[ScorerCheck]:
    """Re-score every ``scoreboard/numenta_rows`` file at the detector's published threshold.

    Windows come from ``labels/combined_windows.json`` (not from the rows' own ``label`` column),
    so the check covers the window placement too; the rows' ``S(t)`` columns check the per-row
    weights. Raises ``FileNotFoundError`` when there is nothing to verify.
    """
    nab_root = Path(root)
    profiles = load_profiles(nab_root)
    board = read_published(nab_root)
    windows_by_key = read_nab_windows(nab_root)
    prefix = f"{detector}_"
    row_files = sorted((nab_root / NUMENTA_ROWS_PATH).glob(f"*/{prefix}*.csv"))
    if not row_files:
        raise FileNotFoundError(f"{nab_root / NUMENTA_ROWS_PATH}: no {prefix}*.csv files")
    checks: list[ScorerCheck] = []
    for path in row_files:
        key = f"{path.parent.name}/{path.name.removeprefix(prefix)}"
        rows = pd.read_csv(path)
        timestamps = _as_unit(pd.to_datetime(rows["timestamp"], format="ISO8601"))
        for name, profile in profiles.items():
            threshold = board.thresholds[detector][name]
            alarms = rows["anomaly_score"].to_numpy() >= threshold
            ours = score_detections(timestamps, alarms, windows_by_key[key], profile)
            published = board.per_file[
                (board.per_file["Detector"] == detector)
                & (board.per_file["Profile"] == name)
                & (board.per_file["File"] == key)
            ]
            if len(published) != 1:
                raise ValueError(f"expected one published {detector}/{name} row for {key}")
            record = published.iloc[0]
            contributions = row_contributions(timestamps, alarms, windows_by_key[key], profile)
            published_contributions = rows[f"S(t)_{name}"].to_numpy(dtype="float64")
            checks.append(
                ScorerCheck(
                    file=key,
                    profile=name,
                    threshold=threshold,
                    ours=ours,
                    published_score=float(record["Score"]),
                    published_counts=(
                        int(record["TP"]),
                        int(record["TN"]),
                        int(record["FP"]),
                        int(record["FN"]),
                    ),
                    max_row_difference=float(np.abs(contributions - published_contributions).max()),
                )
            )
    return checks


# --------------------------------------------------------------------------------------------
# The reference pipeline on one NAB file: snapshot -> features -> model -> alarms -> checks
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class NabDetectorConfig:
    """The streaming detector run on every NAB file; nothing in it is fitted to NAB's labels.

    Window lengths are in rows of the file's modal step (12 and 288 rows are one hour and one
    day at NAB's usual five minutes), so an hourly or half-hourly file gets the same shape of
    detector. The alarm rule is Numenta's anomaly likelihood applied to the isolation forest's
    score: the score's ``average_rows`` moving average is compared with the mean and spread of
    that average over the previous ``history_rows`` rows, and a row alarms when the normal tail
    beyond it is below ``tail_probability``. A value that leaves the range of every earlier value
    by more than ``spatial_tolerance`` of that range alarms too (the "spatial anomaly" rule of
    Numenta's NAB detector, with its 5%). After an alarm the detector stays quiet for
    ``cooldown_rows`` rows, as an on-call rotation deduplicates a page storm.
    """

    windows_rows: tuple[int, ...] = (12, 288)
    average_rows: int = 10
    history_rows: int = 8640
    tail_probability: float = 1e-4
    spatial_tolerance: float = 0.05
    cooldown_rows: int = 288
    partition_rows: int = 288
    n_estimators: int = 200
    max_samples: int = 512
    seed: int = 7

    def __post_init__(self) -> None:
        if not 0.0 < self.tail_probability < 0.5:
            raise ValueError(f"tail_probability must be in (0, 0.5), got {self.tail_probability}")
        if min(self.windows_rows, default=0) < 2 or self.average_rows < 1:
            raise ValueError("windows need at least 2 rows and the average at least 1")


def feature_spec(step: pd.Timedelta, config: NabDetectorConfig) -> FeatureSetSpec:
    """The feature set for a file sampled every ``step``: trailing windows of fixed row counts."""
    seconds = max(int(pd.Timedelta(step).total_seconds()), 1)
    return FeatureSetSpec(
        name="nab_value",
        version=1,
        windows=tuple(f"{rows * seconds}s" for rows in config.windows_rows),
        ratios=(),
    )


def spatial_anomalies(values: npt.ArrayLike, tolerance: float) -> BoolArray:
    """Rows whose value leaves the range of all earlier values by more than ``tolerance`` of it."""
    series = pd.Series(np.asarray(values, dtype="float64"))
    high = series.cummax().shift(1)
    low = series.cummin().shift(1)
    margin = tolerance * (high - low)
    beyond = (series > high + margin) | (series < low - margin)
    return beyond.to_numpy(dtype=bool, na_value=False)


def likelihood_alarms(
    scores: FloatArray,
    config: NabDetectorConfig,
    *,
    start: int,
    values: npt.ArrayLike | None = None,
) -> tuple[FloatArray, BoolArray]:
    """Tail probability of each row's averaged score against its own past, and the alarms.

    Only rows before a row enter its statistics (``closed="left"``), so the rule runs online;
    no alarm is raised before ``start`` (the probationary rows the detector learns from).
    ``values`` (the metric itself) adds the spatial rule of :func:`spatial_anomalies`.
    """
    averaged = pd.Series(scores).rolling(config.average_rows, min_periods=1).mean()
    history = averaged.rolling(config.history_rows, min_periods=max(start // 2, 2), closed="left")
    spread = history.std().clip(lower=1e-9)
    standardized = ((averaged - history.mean()) / spread).fillna(0.0).to_numpy()
    tail = np.asarray(scipy_stats.norm.sf(standardized), dtype="float64")
    candidates = tail <= config.tail_probability
    if values is not None:
        candidates |= spatial_anomalies(values, config.spatial_tolerance)
    alarms = np.zeros(len(scores), dtype=bool)
    quiet_until = start
    for row in np.flatnonzero(candidates):
        if row >= quiet_until:
            alarms[row] = True
            quiet_until = int(row) + config.cooldown_rows + 1
    return tail, alarms


@dataclass(frozen=True)
class DriftAlarm:
    """One partition whose drift check said ERROR: when it could be known, and what moved."""

    at: pd.Timestamp  # the partition's last row: the earliest moment the check can run
    drifted: tuple[str, ...]


@dataclass(frozen=True)
class FileRun:
    """Everything the pipeline produced and decided for one NAB file."""

    key: str
    rows: int
    dropped_rows: tuple[int, ...]  # clock repeats, 0-based positions in the file
    snapshot_sha256: str
    feature_version: str
    probationary_rows: int
    alarms: tuple[int, ...]  # 0-based positions in the file (as NAB counts rows)
    scores: dict[str, FileScore]
    windows: tuple[tuple[pd.Timestamp, pd.Timestamp], ...]
    drift_alarms: tuple[DriftAlarm, ...]
    drift_partitions: int

    def lead_times_hours(self) -> list[float | None]:
        """Per window: hours from the first drift alarm to the window's start (negative: inside
        it), counting alarms after the previous window ended; None when none came in time."""
        leads: list[float | None] = []
        previous_end = pd.Timestamp.min
        for start, end in self.windows:
            candidates = [alarm.at for alarm in self.drift_alarms if previous_end < alarm.at <= end]
            leads.append((start - candidates[0]).total_seconds() / 3600.0 if candidates else None)
            previous_end = end
        return leads

    def drift_summary(self) -> dict[str, Any]:
        return {
            "partitions": self.drift_partitions,
            "alarms": len(self.drift_alarms),
            "alarm_times": [str(alarm.at) for alarm in self.drift_alarms],
            "windows": len(self.windows),
            "lead_time_hours": self.lead_times_hours(),
        }


def run_file(
    root: str | os.PathLike[str],
    key: str,
    *,
    config: NabDetectorConfig | None = None,
    store: ArtifactStore | None = None,
    profiles: Mapping[str, CostProfile] | None = None,
    drift_policy: DriftPolicy | None = None,
) -> FileRun:
    """Run one file through snapshot, features, model, alarms and drift checks, then score it.

    Labels are loaded with the file (the snapshot keeps them, as every snapshot does) but are
    dropped before features reach the model or the drift checks, and the scorer reads the windows
    on its own: no choice the detector makes can see them.
    """
    nab_root = Path(root)
    chosen = config or NabDetectorConfig()
    chosen_profiles = profiles or load_profiles(nab_root)
    windows = read_nab_windows(nab_root)[key]
    file_timestamps = _file_timestamps(nab_root, key)
    repeated = clock_repeats(pd.Series(file_timestamps))
    kept_positions = np.flatnonzero(~repeated)

    frame = load_nab(nab_root, files=[key], drop_clock_repeats=True)
    snapshot = canonical_telemetry(frame)
    snapshot_sha256 = (
        store.put_frame(snapshot, sort_by=(TIMESTAMP, SERVICE)).sha256
        if store is not None
        else sha256_hex(canonical_parquet_bytes(snapshot, sort_by=(TIMESTAMP, SERVICE)))
    )
    step = pd.Timedelta(pd.Series(snapshot[TIMESTAMP]).diff().median())
    spec = feature_spec(step, chosen)
    features = compute_features(snapshot.drop(columns=[LABEL]), spec)

    probation = probationary_length(len(file_timestamps))
    # The probationary rows of the file, as rows of the snapshot (clock repeats left out).
    learn_rows = int(np.searchsorted(kept_positions, probation, "left"))
    # The model learns from every probationary row, warm-up included: learning from the settled
    # rows only scored 28 instead of 44 on the standard profile (before the spatial rule was
    # added; see docs/real-data.md). The drift reference starts once the longest window is full
    # (or halfway on a short file): rows still filling it look unlike any later row and would
    # read as drift.
    settled = min(max(chosen.windows_rows), learn_rows // 2)
    detector = train_detector(
        features.iloc[:learn_rows],
        DetectorConfig(
            n_estimators=chosen.n_estimators,
            max_samples=chosen.max_samples,
            seed=chosen.seed,
            # The forest's own alert threshold is never used: the likelihood rule below decides.
            alert_quantile=0.99,
        ),
    )
    model_scores = detector.score(features)
    _, kept_alarms = likelihood_alarms(
        model_scores, chosen, start=learn_rows, values=snapshot["value"].to_numpy()
    )
    alarms = np.zeros(len(file_timestamps), dtype=bool)
    alarms[kept_positions] = kept_alarms

    drift_alarms, partitions = _drift_checks(
        features,
        detector.feature_columns,
        reference_rows=(settled, learn_rows),
        partition_rows=chosen.partition_rows,
        policy=drift_policy,
    )
    scores = {
        name: score_detections(file_timestamps, alarms, windows, profile)
        for name, profile in chosen_profiles.items()
    }
    return FileRun(
        key=key,
        rows=len(file_timestamps),
        dropped_rows=tuple(int(position) for position in np.flatnonzero(repeated)),
        snapshot_sha256=snapshot_sha256,
        feature_version=spec.version_id,
        probationary_rows=probation,
        alarms=tuple(int(position) for position in np.flatnonzero(alarms)),
        scores=scores,
        windows=tuple(windows),
        drift_alarms=tuple(drift_alarms),
        drift_partitions=partitions,
    )


def _drift_checks(
    features: pd.DataFrame,
    feature_columns: Sequence[str],
    *,
    reference_rows: tuple[int, int],
    partition_rows: int,
    policy: DriftPolicy | None,
) -> tuple[list[DriftAlarm], int]:
    """The pipeline's drift check, partition by partition after the probationary rows.

    The reference is the settled probationary rows (profiled once and calibrated on chunks of
    partition size when there are two, as the ``drift_baseline`` asset does with its first days);
    each later partition of
    ``partition_rows`` rows is checked against it with the policy, persistence included.
    """
    first_row, learn_rows = reference_rows
    reference = features.iloc[first_row:learn_rows]
    chunk_starts = range(0, len(reference) - partition_rows + 1, partition_rows)
    chunks = [reference.iloc[start : start + partition_rows] for start in chunk_starts]
    # The model's own scores are left out: on the rows it learned from they are lower than on
    # any new row, so they would read as drift on every partition.
    profile = build_profile(reference, numeric=list(feature_columns), workers=1)
    if len(chunks) >= 2:
        profile = calibrate(profile, chunks, workers=1)
    chosen_policy = policy or load_policy()
    alarms: list[DriftAlarm] = []
    previous: list[Mapping[str, str]] = []
    partitions = 0
    for start in range(learn_rows, len(features), partition_rows):
        partition = features.iloc[start : start + partition_rows]
        if len(partition) < 2:
            break
        partitions += 1
        result = evaluate_drift(profile, partition, chosen_policy, previous=previous, workers=1)
        previous = [*previous, result.feature_verdicts()][-chosen_policy.persistence_window :]
        if result.verdict == "error":
            alarms.append(
                DriftAlarm(at=pd.Timestamp(partition[TIMESTAMP].iloc[-1]), drifted=result.drifted)
            )
    return alarms, partitions


def corpus_files(root: str | os.PathLike[str]) -> list[str]:
    """Every ``<category>/<file>.csv`` under ``data/``, sorted."""
    data_dir = Path(root) / "data"
    return sorted(path.relative_to(data_dir).as_posix() for path in data_dir.glob("*/*.csv"))


def evaluate_pipeline(
    root: str | os.PathLike[str],
    *,
    files: Sequence[str] | None = None,
    config: NabDetectorConfig | None = None,
    store: ArtifactStore | None = None,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """The reference pipeline's path (``aiops nab evaluate --pipeline``): every file through
    :func:`run_file`, our normalized score beside the scoreboard. Its settings were chosen on
    this subset (in-sample); the cross-validated evaluation is :mod:`aiops_assets.core.nab_cv`.

    Returns ``{"ours": {profile: score}, "published": {detector: {profile: score}},
    "drift": {...}, "files": {key: {...}}, "scoreboard": {...}}``, all JSON-able. ``drift``
    holds, per file, the drift check's alarms and the lead time before each window, and the
    alarms on the files without windows (the negative controls).
    """
    nab_root = Path(root)
    chosen_files = list(files) if files is not None else corpus_files(nab_root)
    profiles = load_profiles(nab_root)
    # A whole corpus takes minutes: say which file is running rather than stay silent.
    progress = progress or NoProgress()
    progress.begin(len(chosen_files), f"{len(chosen_files)} NAB file(s) from {nab_root}")
    runs = []
    for key in chosen_files:
        progress.step(key)
        runs.append(run_file(nab_root, key, config=config, store=store, profiles=profiles))
    progress.end()
    board = subset_scoreboard(nab_root, chosen_files)
    ours = {
        name: normalized_score(
            sum(run.scores[name].score for run in runs),
            board["null"][name],
            board["windows"],
            profile,
        )
        for name, profile in profiles.items()
    }
    negative_controls = [run for run in runs if not run.windows]
    leads = [lead for run in runs for lead in run.lead_times_hours()]
    drift = {
        "per_file": {run.key: run.drift_summary() for run in runs},
        "windows": len(leads),
        "windows_alarmed_before_start": sum(1 for lead in leads if lead is not None and lead > 0),
        "windows_alarmed_inside": sum(1 for lead in leads if lead is not None and lead <= 0),
        "windows_without_alarm": sum(1 for lead in leads if lead is None),
        "negative_control_files": len(negative_controls),
        "negative_control_alarms": sum(len(run.drift_alarms) for run in negative_controls),
        "negative_control_partitions": sum(run.drift_partitions for run in negative_controls),
    }
    return {
        "ours": ours,
        "published": board["scores"],
        "drift": drift,
        "files": {
            run.key: {
                "rows": run.rows,
                "dropped_clock_repeats": len(run.dropped_rows),
                "snapshot_sha256": run.snapshot_sha256,
                "feature_version": run.feature_version,
                "probationary_rows": run.probationary_rows,
                "alarms": len(run.alarms),
                "scores": {name: score.to_dict() for name, score in run.scores.items()},
            }
            for run in runs
        },
        "scoreboard": {
            "files": len(chosen_files),
            "windows": board["windows"],
            "null": board["null"],
            "incomplete": board["incomplete"],
        },
    }
