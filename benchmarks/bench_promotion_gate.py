"""Cost of the promotion gate's paired moving-block bootstrap (PR-AUC), fast path vs scikit-learn.

Run: .venv/bin/python benchmarks/bench_promotion_gate.py [--quick] [--samples 1000]
Prints one table row per holdout size: seconds for ``paired_bootstrap`` (the weighted fast path),
the seconds a naive loop calling ``average_precision_score`` on each resample for both models
would take (timed on a few resamples and extrapolated), and the largest absolute difference
between the fast path and scikit-learn on 20 resamples. The gate runs inside a materialization,
so its budget is a couple of seconds for 1000 resamples on 2 cores.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score

from aiops_assets.core.promotion import (
    ScoredRows,
    block_indices,
    block_starts,
    block_weights,
    paired_bootstrap,
    weighted_metric_values,
)

BLOCK_ROWS = 60


def holdout(rows: int, seed: int = 0) -> tuple[ScoredRows, ScoredRows]:
    """Bursty anomalies (about 5 % of rows), two detectors of different strength, tied scores."""
    rng = np.random.default_rng(seed)
    labels = np.zeros(rows, np.int8)
    for start in rng.integers(0, max(1, rows - 15), size=max(1, rows // 300)):
        labels[start : start + 15] = 1
    # Rounding makes ties, which the fast path must group exactly like scikit-learn.
    candidate = np.round(labels * 1.5 + rng.normal(size=rows), 2)
    champion = np.round(labels * 1.0 + rng.normal(size=rows), 2)
    return ScoredRows(labels, candidate, 1.5), ScoredRows(labels, champion, 1.5)


def fast_seconds(candidate: ScoredRows, champion: ScoredRows, samples: int, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        paired_bootstrap(
            candidate,
            champion,
            metric="pr_auc",
            samples=samples,
            block_rows=BLOCK_ROWS,
            confidence=0.95,
        )
        best = min(best, time.perf_counter() - started)
    return best


def naive_seconds(candidate: ScoredRows, champion: ScoredRows, samples: int, timed: int) -> float:
    """The obvious implementation: materialize each resample and call scikit-learn twice."""
    rows = len(candidate)
    starts = block_starts(np.random.default_rng(0), rows, BLOCK_ROWS, timed)
    started = time.perf_counter()
    for index in block_indices(starts, rows, BLOCK_ROWS):
        labels = candidate.labels[index]
        average_precision_score(labels, candidate.scores[index])
        average_precision_score(labels, champion.scores[index])
    return (time.perf_counter() - started) / timed * samples


def max_difference(rows: ScoredRows, resamples: int = 20) -> float:
    starts = block_starts(np.random.default_rng(1), len(rows), BLOCK_ROWS, resamples)
    fast = weighted_metric_values(rows, "pr_auc", block_weights(starts, len(rows), BLOCK_ROWS))
    slow = [
        average_precision_score(rows.labels[index], rows.scores[index])
        for index in block_indices(starts, len(rows), BLOCK_ROWS)
    ]
    return float(np.max(np.abs(fast - np.asarray(slow))))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1k and 10k rows only, one repeat")
    parser.add_argument("--samples", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    sizes = [1_000, 10_000] if args.quick else [1_000, 10_000, 100_000]
    repeat = 1 if args.quick else args.repeat
    table = []
    for rows in sizes:
        candidate, champion = holdout(rows)
        timed = 50 if rows <= 10_000 else 10
        fast = fast_seconds(candidate, champion, args.samples, repeat)
        naive = naive_seconds(candidate, champion, args.samples, timed)
        table.append(
            {
                "rows": f"{rows:,}",
                "samples": args.samples,
                "fast s": round(fast, 3),
                "naive sklearn s (extrapolated)": round(naive, 1),
                "speed-up": f"{naive / fast:.0f}x",
                "max |fast - sklearn| (20 resamples)": f"{max_difference(candidate):.1e}",
            }
        )
    print(pd.DataFrame(table).to_string(index=False))


if __name__ == "__main__":
    main()
