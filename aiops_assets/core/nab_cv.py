"""``aiops nab evaluate``: detectors chosen by cross-validation, never on the files they are scored on.

Why: a detector tuned on the files it is reported on looks better than it will on a user's own
telemetry (issue 22: 55.5 in-sample fell to 50.0 on categories nobody tuned on). So every choice
the evaluation makes — detector family, its settings, the alarm threshold, the cooldown, the
spatial rule — is made by a protocol declared up front:

- **The grid** (:data:`STREAMS` x :data:`RULES`) is fixed here, before any score is looked at.
  A *stream* is a detector family with its settings (derived from the file's sampling step and
  length, never from its labels); a *rule* turns the stream into alarms.
- **Leave one category out** (the headline): for each category, the candidate with the best raw
  NAB score summed over the *other* categories' files is applied to this category's files; the
  per-file results are then summed and normalized over all files, as NAB normalizes.
- **Leave one file out within a category**: the same, choosing on the category's other files.
- **Ties** (equal raw scores on the training files) go to the candidate that paged least there,
  then to the earlier one in the grid (:func:`choose`).
- **In-sample**: the choice made on all the files it is scored on, printed beside and labelled.

Each candidate's alarms on a file do not depend on the fold (only the choice does), so every
stream is computed once per file and every rule applied once to it; the folds are then sums over
a table of raw scores. That is what keeps a full evaluation of the subset within two minutes.
"""

from __future__ import annotations

import functools
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import pandas as pd

from aiops_assets.core.detectors import (
    AlarmRule,
    Pager,
    alarm_rows,
    any_tail,
    build_detector,
    calibrated,
    combine_scores,
    likelihood_tail,
    spatial_anomalies,
    tail_factor,
)
from aiops_assets.core.detectors.calibration import NOISE_LEARN_ROWS, NOISE_PERIOD
from aiops_assets.core.nab import (
    PER_FILE_PATH,
    CostProfile,
    RowLayout,
    corpus_files,
    file_timestamps,
    load_profiles,
    normalized_score,
    probationary_length,
    read_published,
    row_layout,
    score_alarm_rows,
)
from aiops_assets.core.progress import NoProgress, Progress
from aiops_assets.core.telemetry import TIMESTAMP, clock_repeats, load_nab, read_nab_windows

__all__ = [
    "RULES",
    "STREAMS",
    "Candidate",
    "StreamSpec",
    "candidates",
    "choose",
    "evaluate",
    "noise_factors",
    "pager_for",
    "rows_per_day",
]

LOCO: Final = "leave_one_category_out"
LOFO: Final = "leave_one_file_out"
IN_SAMPLE: Final = "in_sample"
_DAY_SECONDS: Final = 86400
# The likelihood's memory, in rows, is a choice of the protocol too: a week, two weeks and a month
# at NAB's usual five-minute step (Numenta uses the month, 8,640 rows).
LIKELIHOOD_HISTORIES: Final = (2016, 4032, 8640)


@dataclass(frozen=True)
class StreamSpec:
    """A detector family with settings that follow the file's step and length, not its labels."""

    name: str
    family: str
    params: Callable[[int, int], dict[str, Any]]  # (rows per day, learning rows) -> parameters


def _hour(period: int) -> int:
    return max(2, period // 24)


def _forest(period: int, learn: int) -> dict[str, Any]:
    return {"windows": (_hour(period), max(2, min(period, learn // 2)))}


def _seasonal(seasons: int) -> Callable[[int, int], dict[str, Any]]:
    def params(period: int, learn: int) -> dict[str, Any]:
        return {
            "period": period,
            "seasons": seasons,
            "local": _hour(period),
            "scale_rows": max(2, min(period, learn)),
        }

    return params


def _ewma(share_of_day: int) -> Callable[[int, int], dict[str, Any]]:
    def params(period: int, learn: int) -> dict[str, Any]:
        del learn
        return {"halflife": max(1, period // share_of_day)}

    return params


# The grid, declared before any result was seen. Windows are an hour and a day of rows at the
# file's step (capped by its learning rows, so a short file's windows are full when it is scored).
STREAMS: Final = (
    StreamSpec("forest", "isolation_forest", _forest),
    StreamSpec("seasonal", "seasonal_residual", _seasonal(3)),
    StreamSpec("local", "seasonal_residual", _seasonal(0)),
    StreamSpec("ewma_hour", "ewma", _ewma(24)),
    StreamSpec("ewma_6h", "ewma", _ewma(4)),
)
# The ensemble is the mean of these streams' standardized scores, over a week of history.
ENSEMBLE_OF: Final = ("forest", "seasonal", "ewma_hour")
ENSEMBLE: Final = "ensemble"
# "Any" pages when any of these streams is surprised (their tails' minimum, Bonferroni-corrected).
ANY_OF: Final = ("forest", "seasonal", "ewma_6h")
ANY: Final = "any"
ANY_FAMILY: Final = "any_of"
RULES: Final = tuple(
    AlarmRule(
        tail_probability=tail,
        cooldown_fraction=cooldown,
        spatial_tolerance=spatial,
        history_rows=history,
    )
    for history in LIKELIHOOD_HISTORIES
    for tail in (1e-3, 1e-4, 1e-5)
    for cooldown in (0.01, 0.05)
    for spatial in (None, 0.05)
)


@dataclass(frozen=True)
class Candidate:
    stream: str
    family: str
    rule: AlarmRule

    def label(self) -> str:
        return f"{self.stream} ({self.rule.label()})"


def candidates() -> list[Candidate]:
    """Every (stream, rule) pair of the grid, in a fixed order (see :func:`choose` for ties)."""
    streams = [(spec.name, spec.family) for spec in STREAMS]
    streams += [(ENSEMBLE, ENSEMBLE), (ANY, ANY_FAMILY)]
    return [Candidate(name, family, rule) for name, family in streams for rule in RULES]


def pager_for(
    candidate: Candidate,
    *,
    period: int,
    learn_rows: int,
    factors: Mapping[str, float] | None = None,
) -> Pager:
    """The candidate as a runnable :class:`Pager` for a stream of this period and learning length.

    Gives exactly the alarms the evaluation scored for the candidate (a test checks it), so a
    pipeline adopting the cross-validated choice runs what was measured. ``factors`` are the
    streams' noise calibration at the rule's history, :func:`noise_factors` by default.
    """
    history = candidate.rule.history_rows
    scale = dict(factors) if factors is not None else noise_factors(history)
    specs = {spec.name: spec for spec in STREAMS}

    def component(name: str) -> tuple[str, dict[str, Any]]:
        return specs[name].family, specs[name].params(period, learn_rows)

    if candidate.stream == ANY:
        names = list(ANY_OF)
        return Pager([component(n) for n in names], candidate.rule, [scale[n] for n in names])
    if candidate.stream == ENSEMBLE:
        parts = [list(component(name)) for name in ENSEMBLE_OF]
        params = {"components": parts, "history_rows": 7 * period}
        return Pager([(ENSEMBLE, params)], candidate.rule, [scale[ENSEMBLE]])
    return Pager([component(candidate.stream)], candidate.rule, [scale[candidate.stream]])


def _stream_scorer(name: str, period: int, learn_rows: int) -> Callable[[Any], Any]:
    """The named stream as a function of a series (fit on its first ``learn_rows`` rows)."""
    specs = {spec.name: spec for spec in STREAMS}
    names = list(ENSEMBLE_OF) if name == ENSEMBLE else [name]

    def score(values: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        streams = [
            build_detector(specs[n].family, specs[n].params(period, learn_rows))
            .fit(values[:learn_rows])
            .score(values)
            for n in names
        ]
        return combine_scores(streams, 7 * period) if name == ENSEMBLE else streams[0]

    return score


@functools.cache
def noise_factors(history_rows: int) -> dict[str, float]:
    """Each stream's likelihood calibration on seeded Gaussian noise (label-free, cached).

    Measured once per process at tail 1e-4 on NAB's most common file shape (two weeks at five
    minutes); every file's tails are multiplied by it, so the grid's tails mean about the same
    for every stream (the forest's raw tail is about ten times too confident on noise).
    """
    return {
        name: tail_factor(
            _stream_scorer(name, NOISE_PERIOD, NOISE_LEARN_ROWS), history_rows=history_rows
        )
        for name in [spec.name for spec in STREAMS] + [ENSEMBLE]
    }


def rows_per_day(timestamps: pd.Series) -> int:
    """Rows in a day at the file's modal step (at least 2): the period of its daily cycle."""
    steps = pd.Series(timestamps).diff().dropna()
    if steps.empty:
        return 2
    step = steps.mode().iloc[0].total_seconds()
    return max(2, round(_DAY_SECONDS / step)) if step > 0 else 2


@dataclass
class _File:
    key: str
    category: str
    rows: int  # every row of the file, as NAB scores them
    kept: npt.NDArray[np.int64]  # file positions of the rows the detectors see
    values: npt.NDArray[np.float64]
    learn_rows: int  # probationary rows, counted in kept rows
    period: int
    windows: int
    layouts: dict[str, RowLayout]


def _prepare(root: Path, key: str, profiles: Mapping[str, CostProfile]) -> _File:
    windows = read_nab_windows(root)[key]
    timestamps = file_timestamps(root, key)
    kept = np.flatnonzero(~clock_repeats(pd.Series(timestamps)))
    frame = load_nab(root, files=[key], drop_clock_repeats=True)
    probation = probationary_length(len(timestamps))
    return _File(
        key=key,
        category=key.split("/", 1)[0],
        rows=len(timestamps),
        kept=kept,
        values=frame["value"].to_numpy(dtype="float64"),
        learn_rows=int(np.searchsorted(kept, probation, "left")),
        period=rows_per_day(frame[TIMESTAMP]),
        windows=len(windows),
        layouts={name: row_layout(timestamps, windows, p) for name, p in profiles.items()},
    )


def _streams(file: _File) -> dict[str, npt.NDArray[np.float64]]:
    """Every stream's raw score on the file: computed once, shared by every rule and fold."""
    learn = max(file.learn_rows, 2)
    scores: dict[str, npt.NDArray[np.float64]] = {}
    if len(file.values) < learn:  # nothing to learn from: a silent detector, not a crash
        silent = np.zeros(len(file.values))
        return {spec.name: silent for spec in STREAMS} | {ENSEMBLE: silent}
    for spec in STREAMS:
        detector = build_detector(spec.family, spec.params(file.period, file.learn_rows))
        scores[spec.name] = detector.fit(file.values[:learn]).score(file.values)
    scores[ENSEMBLE] = combine_scores([scores[name] for name in ENSEMBLE_OF], 7 * file.period)
    return scores


def _score_table(
    file: _File, grid: Sequence[Candidate], profiles: Mapping[str, CostProfile]
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.int64]]:
    """Raw score per (candidate, profile) on one file, and each candidate's number of alarms."""
    raw = np.empty((len(grid), len(profiles)), dtype="float64")
    alarms = np.empty(len(grid), dtype="int64")
    spatial = {
        tolerance: spatial_anomalies(file.values, tolerance)
        for tolerance in {rule.spatial_tolerance for rule in RULES}
        if tolerance is not None
    }
    streams = _streams(file)
    tails: dict[tuple[str, int], npt.NDArray[np.float64]] = {}
    for history in LIKELIHOOD_HISTORIES:
        factors = noise_factors(history)
        for name, scores in streams.items():
            tail = likelihood_tail(scores, start=file.learn_rows, history_rows=history)
            tails[name, history] = calibrated(tail, factors[name])
        tails[ANY, history] = any_tail([tails[name, history] for name in ANY_OF])
    for number, candidate in enumerate(grid):
        tolerance = candidate.rule.spatial_tolerance
        rows = alarm_rows(
            tails[candidate.stream, candidate.rule.history_rows],
            candidate.rule,
            start=file.learn_rows,
            spatial=spatial[tolerance] if tolerance is not None else None,
        )
        positions = file.kept[rows]
        alarms[number] = len(positions)
        for column, (name, profile) in enumerate(profiles.items()):
            raw[number, column] = score_alarm_rows(file.layouts[name], profile, positions)
    return raw, alarms


def choose(
    table: npt.NDArray[np.float64],
    alarms: npt.NDArray[np.int64],
    train: npt.NDArray[np.bool_],
    allowed: Sequence[int],
) -> list[int]:
    """Per profile, the allowed candidate with the best raw score summed over ``train`` files.

    A tie goes to the candidate that paged least on those files, then to the earlier one in the
    grid: declared up front, because equal scores on the files seen say nothing about the ones
    unseen, and the quieter rule costs less where it is wrong (a longer cooldown, a smaller tail).
    """
    chosen = np.asarray(allowed)
    totals = table[chosen][:, train, :].sum(axis=1)  # candidates x profiles
    pages = alarms[chosen][:, train].sum(axis=1)
    picks = []
    for column in range(table.shape[2]):
        best = totals[:, column].max()
        tied = np.flatnonzero(totals[:, column] >= best - 1e-9 * max(1.0, abs(best)))
        picks.append(int(chosen[tied[int(np.argmin(pages[tied]))]]))
    return picks


def _protocol_scores(
    table: npt.NDArray[np.float64],
    alarms: npt.NDArray[np.int64],
    categories: Sequence[str],
    allowed: Sequence[int],
) -> dict[str, Any]:
    """Per-file raw scores under each protocol (None where a protocol has nothing to learn on)."""
    files, profiles = table.shape[1], table.shape[2]
    labels = np.asarray(categories)
    everything = np.ones(files, dtype=bool)
    in_sample = choose(table, alarms, everything, allowed)
    result: dict[str, Any] = {
        IN_SAMPLE: np.array(
            [[table[in_sample[p], f, p] for p in range(profiles)] for f in range(files)]
        ),
        "in_sample_choice": in_sample,
        "fold_choice": {},
    }
    for protocol in (LOCO, LOFO):
        per_file = np.full((files, profiles), np.nan)
        for category in sorted(set(categories)):
            members = np.flatnonzero(labels == category)
            folds = [members] if protocol == LOCO else [np.array([f]) for f in members]
            for held_out in folds:
                train = (labels != category) if protocol == LOCO else (labels == category)
                train = train.copy()
                train[held_out] = False
                if not train.any():
                    continue
                choice = choose(table, alarms, train, allowed)
                if protocol == LOCO:
                    result["fold_choice"][category] = choice
                for p in range(profiles):
                    per_file[held_out, p] = table[choice[p], held_out, p]
        result[protocol] = None if np.isnan(per_file).any() else per_file
    return result


def _aggregate(
    per_file: npt.NDArray[np.float64] | None,
    rows: Sequence[int],
    null: npt.NDArray[np.float64],
    windows: Sequence[int],
    profiles: Mapping[str, CostProfile],
) -> dict[str, float] | None:
    """NAB's normalized score over ``rows`` (files), or the raw sum when they have no window."""
    if per_file is None:
        return None
    count = sum(windows[f] for f in rows)
    scores: dict[str, float] = {}
    for column, (name, profile) in enumerate(profiles.items()):
        raw = float(per_file[list(rows), column].sum())
        baseline = float(null[list(rows), column].sum())
        scores[name] = normalized_score(raw, baseline, count, profile) if count else raw - baseline
    return scores


def _published_tables(
    root: Path, keys: Sequence[str], profiles: Mapping[str, CostProfile]
) -> tuple[dict[str, npt.NDArray[np.float64]], dict[str, list[str]]]:
    """Each published detector's per-file raw scores on ``keys`` (files x profiles), if shipped."""
    if not (root / PER_FILE_PATH).is_file():
        return {}, {}
    per_file = read_published(root).per_file
    rows = per_file[per_file["File"].isin(set(keys))]
    tables: dict[str, npt.NDArray[np.float64]] = {}
    incomplete: dict[str, list[str]] = {}
    for detector, of_detector in rows.groupby("Detector"):
        scores = of_detector.pivot_table(index="File", columns="Profile", values="Score")
        missing = sorted(set(keys) - set(scores.index))
        if missing:
            incomplete[str(detector)] = missing
            continue
        tables[str(detector)] = scores.reindex(index=list(keys), columns=list(profiles)).to_numpy()
    for detector in sorted(set(per_file["Detector"]) - set(rows["Detector"])):
        incomplete[str(detector)] = sorted(keys)
    return tables, incomplete


def evaluate(
    root: str | os.PathLike[str],
    *,
    files: Sequence[str] | None = None,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Score the grid on every file and report the cross-validated choice (all JSON-able).

    ``ours`` holds the three protocols' normalized scores per profile (``None`` where a protocol
    has nothing to learn on, e.g. one category only), ``headline`` names the protocol quoted
    first, ``per_category`` and ``per_family`` break them down, ``published`` holds NAB's
    detectors normalized on the same files (empty for a folder without ``scoreboard/``).
    """
    started = time.perf_counter()
    nab_root = Path(root)
    keys = list(files) if files is not None else corpus_files(nab_root)
    profiles = load_profiles(nab_root)
    grid = candidates()
    progress = progress or NoProgress()
    progress.begin(len(keys), f"{len(keys)} NAB file(s) from {nab_root}, {len(grid)} candidates")
    prepared: list[_File] = []
    tables: list[npt.NDArray[np.float64]] = []
    alarm_counts: list[npt.NDArray[np.int64]] = []
    for key in keys:
        progress.step(key)
        file = _prepare(nab_root, key, profiles)
        raw, alarms = _score_table(file, grid, profiles)
        prepared.append(file)
        tables.append(raw)
        alarm_counts.append(alarms)
    progress.end()
    table = np.stack(tables, axis=1)  # candidates x files x profiles
    null = np.array(
        [[score_alarm_rows(f.layouts[n], p, []) for n, p in profiles.items()] for f in prepared]
    )
    report = _report(
        table, np.stack(alarm_counts, axis=1), prepared, grid, null, profiles, nab_root
    )
    report["seconds"] = time.perf_counter() - started
    return report


def _report(
    table: npt.NDArray[np.float64],
    alarms: npt.NDArray[np.int64],
    files: Sequence[_File],
    grid: Sequence[Candidate],
    null: npt.NDArray[np.float64],
    profiles: Mapping[str, CostProfile],
    root: Path,
) -> dict[str, Any]:
    categories = [file.category for file in files]
    windows = [file.windows for file in files]
    every = list(range(len(files)))
    by_category = {c: [f for f in every if categories[f] == c] for c in sorted(set(categories))}
    main = _protocol_scores(table, alarms, categories, list(range(len(grid))))
    names = list(profiles)
    published, incomplete = _published_tables(root, [file.key for file in files], profiles)

    def summary(scores: Mapping[str, Any], rows: Sequence[int]) -> dict[str, Any]:
        return {
            protocol: _aggregate(scores[protocol], rows, null, windows, profiles)
            for protocol in (LOCO, LOFO, IN_SAMPLE)
        }

    per_family = {}
    for family in dict.fromkeys(candidate.family for candidate in grid):
        allowed = [n for n, candidate in enumerate(grid) if candidate.family == family]
        scores = _protocol_scores(table, alarms, categories, allowed)
        per_family[family] = summary(scores, every)
    ours = summary(main, every)
    headline = next((p for p in (LOCO, LOFO) if ours[p] is not None), IN_SAMPLE)
    return {
        "headline": headline,
        "ours": ours,
        "published": {
            name: _aggregate(scores, every, null, windows, profiles)
            for name, scores in published.items()
        },
        "per_category": {
            category: {
                "files": len(rows),
                "windows": sum(windows[f] for f in rows),
                "normalized": bool(sum(windows[f] for f in rows)),
                **summary(main, rows),
                "published": {
                    name: _aggregate(scores, rows, null, windows, profiles)
                    for name, scores in published.items()
                },
            }
            for category, rows in by_category.items()
        },
        "per_family": per_family,
        "choices": {
            IN_SAMPLE: {
                name: grid[main["in_sample_choice"][p]].label() for p, name in enumerate(names)
            },
            LOCO: {
                category: {name: grid[choice[p]].label() for p, name in enumerate(names)}
                for category, choice in main["fold_choice"].items()
            },
        },
        "winner": {
            name: {
                "stream": grid[main["in_sample_choice"][p]].stream,
                "family": grid[main["in_sample_choice"][p]].family,
                "rule": asdict(grid[main["in_sample_choice"][p]].rule),
            }
            for p, name in enumerate(names)
        },
        "grid": {
            "streams": [spec.name for spec in STREAMS] + [ENSEMBLE, ANY],
            "rules": [rule.label() for rule in RULES],
            "noise_calibration": {str(h): noise_factors(h) for h in LIKELIHOOD_HISTORIES},
            "candidates": len(grid),
        },
        "files": {
            file.key: {
                "rows": file.rows,
                "windows": file.windows,
                "probationary_rows": probationary_length(file.rows),
                "rows_per_day": file.period,
                "alarms_in_sample": int(alarms[main["in_sample_choice"][0], f]),
            }
            for f, file in enumerate(files)
        },
        "scoreboard": {
            "files": len(files),
            "windows": sum(windows),
            "categories": len(by_category),
            "null": {name: float(null[:, p].sum()) for p, name in enumerate(names)},
            "incomplete": incomplete,
        },
    }
