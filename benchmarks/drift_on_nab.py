"""The drift check on real telemetry: how often it says ERROR where nothing is labelled, how many
pages that makes, and how early it flags the labelled windows.

Run: .venv/bin/python benchmarks/drift_on_nab.py [PATH] [--policy FILE] [--json]
     .venv/bin/python benchmarks/drift_on_nab.py --calibrate   # the grid search, calibration half

Each NAB file goes through the pipeline's own drift check, as ``aiops nab evaluate`` runs it
(``core/nab.py``): the ``nab_value-v1`` features of the file, the model's input columns, the
settled probationary rows as the reference (calibrated on its 288-row chunks), then every later
288-row partition (a day at five minutes) judged with the policy, persistence included, and the
verdicts folded into episodes (``core/drift/episodes.py``) with the policy's bridge.

Per file: partitions, ERROR partitions, ERROR partitions outside the labelled windows and their
share of the partitions outside windows, episodes, pages (one per episode; the sensor before
episodes paged every failing partition, WARN included: ``pages/partition``), and per window the
lead time in hours: the window's start minus the end of the first ERROR partition of the first
episode overlapping the window (positive: before the window opens; the end of a partition is the
earliest moment its check can run).

**Split, declared before any number was looked at**: the files sorted by key, shuffled with
``random.Random(22)``, the first half (18 of 35) is the *calibration* half, the rest is
*held out*. ``--calibrate`` searches the policy's calibration knobs on the calibration half only
and prints the best setting; the held-out half is never read while choosing.
"""

from __future__ import annotations

import argparse
import itertools
import json
import random
import statistics
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from aiops_assets.core.drift import (
    DriftPolicy,
    build_profile,
    calibrate,
    evaluate_drift,
    load_policy,
)
from aiops_assets.core.drift.episodes import fold_episodes
from aiops_assets.core.features import compute_features, model_input_columns
from aiops_assets.core.nab import (
    NabDetectorConfig,
    corpus_files,
    feature_spec,
    probationary_length,
)
from aiops_assets.core.telemetry import LABEL, TIMESTAMP, canonical_telemetry, load_nab
from aiops_assets.core.telemetry.nab import read_nab_windows

SPLIT_SEED = 22
Window = tuple[pd.Timestamp, pd.Timestamp]


@dataclass
class Prepared:
    """What the check needs from one file, computed once (the grid search reuses it)."""

    key: str
    profile: Any
    partitions: list[pd.DataFrame]
    windows: list[Window]


def split(files: Sequence[str]) -> tuple[list[str], list[str]]:
    """The declared split: (calibration half, held-out half)."""
    shuffled = sorted(files)
    random.Random(SPLIT_SEED).shuffle(shuffled)
    half = (len(shuffled) + 1) // 2
    return sorted(shuffled[:half]), sorted(shuffled[half:])


def prepare(root: Path, key: str, config: NabDetectorConfig) -> Prepared:
    """The reference profile and the partitions exactly as ``core.nab.run_file`` makes them."""
    frame = load_nab(root, files=[key], drop_clock_repeats=True)
    snapshot = canonical_telemetry(frame)
    step = pd.Timedelta(pd.Series(snapshot[TIMESTAMP]).diff().median())
    features = compute_features(snapshot.drop(columns=[LABEL]), feature_spec(step, config))
    columns = model_input_columns(features)
    file_rows = len(pd.read_csv(root / "data" / key, usecols=[0]))
    probation = probationary_length(file_rows)
    learn_rows = min(probation, len(features))
    settled = min(max(config.windows_rows), learn_rows // 2)
    size = config.partition_rows
    reference = features.iloc[settled:learn_rows]
    chunks = [reference.iloc[s : s + size] for s in range(0, len(reference) - size + 1, size)]
    profile = build_profile(reference, numeric=columns, workers=1)
    if len(chunks) >= 2:
        profile = calibrate(profile, chunks, workers=1)
    partitions = [
        features.iloc[start : start + size]
        for start in range(learn_rows, len(features), size)
        if len(features.iloc[start : start + size]) >= 2
    ]
    return Prepared(key, profile, partitions, read_nab_windows(root)[key])


def measure(prepared: Prepared, policy: DriftPolicy) -> dict[str, Any]:
    """One file's figures under ``policy``."""
    previous: list[Mapping[str, str]] = []
    verdicts: list[str] = []
    for partition in prepared.partitions:
        result = evaluate_drift(prepared.profile, partition, policy, previous=previous, workers=1)
        previous = [*previous, result.feature_verdicts()][-policy.persistence_window :]
        verdicts.append(result.verdict)
    spans = [(p[TIMESTAMP].iloc[0], p[TIMESTAMP].iloc[-1]) for p in prepared.partitions]
    inside = [
        any(s <= w_end and e >= w_start for w_start, w_end in prepared.windows) for s, e in spans
    ]
    states = fold_episodes(
        ((str(index), verdict) for index, verdict in enumerate(verdicts)),
        bridge=policy.episode_bridge,
    )
    episodes: list[list[int]] = []  # per episode, its partitions (quiet bridge included)
    for index, state in enumerate(states):
        if state.status == "started":
            episodes.append([index])
        elif state.status in ("continues", "quiet"):
            episodes[-1].append(index)
    errors = [verdict == "error" for verdict in verdicts]
    outside = [not flag for flag in inside]
    error_outside = sum(e and o for e, o in zip(errors, outside, strict=True))
    return {
        "partitions": len(verdicts),
        "error": sum(errors),
        "outside": sum(outside),
        "error_outside": error_outside,
        "episodes": len(episodes),
        "pages": len(episodes),
        "pages_per_partition": sum(verdict != "ok" for verdict in verdicts),
        "lead_hours": _lead_times(prepared, spans, episodes, errors),
    }


def _lead_times(
    prepared: Prepared,
    spans: Sequence[tuple[pd.Timestamp, pd.Timestamp]],
    episodes: Sequence[Sequence[int]],
    errors: Sequence[bool],
) -> list[float | None]:
    leads: list[float | None] = []
    for w_start, w_end in prepared.windows:
        lead: float | None = None
        for members in episodes:
            first, last = spans[members[0]][0], spans[members[-1]][1]
            if first <= w_end and last >= w_start:
                alarm = spans[next(i for i in members if errors[i])][1]
                lead = (w_start - alarm).total_seconds() / 3600.0
                break
        leads.append(lead)
    return leads


def summarize(figures: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    outside = sum(f["outside"] for f in figures.values())
    error_outside = sum(f["error_outside"] for f in figures.values())
    leads = [lead for f in figures.values() for lead in f["lead_hours"]]
    found = [lead for lead in leads if lead is not None]
    return {
        "files": len(figures),
        "partitions": sum(f["partitions"] for f in figures.values()),
        "error": sum(f["error"] for f in figures.values()),
        "outside": outside,
        "error_outside": error_outside,
        "share_outside": error_outside / outside if outside else 0.0,
        "episodes": sum(f["episodes"] for f in figures.values()),
        "pages_per_partition": sum(f["pages_per_partition"] for f in figures.values()),
        "windows": len(leads),
        "windows_flagged": len(found),
        "median_lead_hours": statistics.median(found) if found else None,
    }


def format_table(title: str, figures: Mapping[str, Mapping[str, Any]]) -> str:
    lines = [
        f"## {title}",
        f"{'file':<58} {'parts':>5} {'ERROR':>5} {'ERR out':>9} {'episodes':>8} "
        f"{'pages':>5} {'pages/part':>10}  lead h per window",
    ]
    for key, f in sorted(figures.items()):
        share = f"{f['error_outside']}/{f['outside']}"
        leads = ", ".join("-" if lead is None else f"{lead:.0f}" for lead in f["lead_hours"])
        lines.append(
            f"{key:<58} {f['partitions']:>5} {f['error']:>5} {share:>9} {f['episodes']:>8} "
            f"{f['pages']:>5} {f['pages_per_partition']:>10}  {leads or '(no window)'}"
        )
    s = summarize(figures)
    median = "-" if s["median_lead_hours"] is None else f"{s['median_lead_hours']:.0f}"
    lines.append(
        f"total: {s['partitions']} partitions, {s['error']} ERROR; ERROR outside windows "
        f"{s['error_outside']}/{s['outside']} = {100 * s['share_outside']:.1f} %; "
        f"{s['episodes']} episodes (pages) against {s['pages_per_partition']} per-partition pages; "
        f"windows flagged {s['windows_flagged']}/{s['windows']}, median lead {median} h"
    )
    return "\n".join(lines)


# The calibration knobs searched by --calibrate (docs/drift.md, "Calibrated on real telemetry").
GRID: dict[str, Sequence[Any]] = {
    "warn": [0.05, 0.1, 0.2, 0.3],
    "error": [0.25, 0.5, 0.75, 1.0, 1.25, 1.5],
    "escalate_at": [0.0, 0.25, 0.5, 0.75, 1.0],
}


def candidate(base: DriftPolicy, warn: float, error: float, escalate_at: float) -> DriftPolicy:
    """The base policy with the numeric floors and the persistence escalation replaced."""
    return base.replace(
        {
            "kinds": {"numeric": {"warn": warn, "error": error}},
            "persistence": {"escalate_at": escalate_at},
        }
    )


def grid_search(
    prepared: Sequence[Prepared], base: DriftPolicy
) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """Every grid point on the calibration half, best first: the share outside windows must be
    at most 20 %; among those, the most windows flagged, then the lowest share."""
    rows = []
    for values in itertools.product(*GRID.values()):
        if values[0] > values[1]:
            continue  # warn above error is not a policy
        policy = candidate(base, *values)
        summary = summarize({p.key: measure(p, policy) for p in prepared})
        rows.append((dict(zip(GRID, values, strict=True)), summary))
    rows.sort(
        key=lambda row: (
            row[1]["share_outside"] > 0.20,
            -row[1]["windows_flagged"],
            row[1]["share_outside"],
        )
    )
    return rows


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("path", nargs="?", type=Path, default=Path("../shared/data/nab"))
    parser.add_argument("--policy", type=Path, default=None, help="a drift policy YAML")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--calibrate", action="store_true", help="grid search, calibration half")
    args = parser.parse_args(argv)
    if not (args.path / "data").is_dir():
        sys.exit(f"error: no NAB data folder under {args.path}")
    policy = load_policy(args.policy)
    config = NabDetectorConfig()
    started = time.perf_counter()
    calibration_files, held_out_files = split(corpus_files(args.path))
    halves = {"calibration": calibration_files, "held-out": held_out_files}
    if args.calibrate:
        prepared = [prepare(args.path, key, config) for key in calibration_files]
        for values, summary in grid_search(prepared, policy)[:10]:
            print(json.dumps({"knobs": values, **summary}, sort_keys=True))
        return
    figures = {
        half: {key: measure(prepare(args.path, key, config), policy) for key in keys}
        for half, keys in halves.items()
    }
    elapsed = time.perf_counter() - started
    if args.json:
        print(
            json.dumps(
                {
                    "policy_sha256": policy.sha256,
                    "split_seed": SPLIT_SEED,
                    "halves": {half: summarize(f) for half, f in figures.items()},
                    "files": figures,
                    "seconds": round(elapsed, 1),
                },
                sort_keys=True,
            )
        )
        return
    print(f"policy {policy.name} v{policy.version} sha256 {policy.sha256}; split seed {SPLIT_SEED}")
    for half, f in figures.items():
        print()
        print(format_table(f"{half} half ({len(f)} files)", f))
    print()
    print(format_table("all files", {k: v for f in figures.values() for k, v in f.items()}))
    print(f"\n{elapsed:.1f} s")


if __name__ == "__main__":
    main()
