"""Drift at ten million rows: a sketch reference, the current data profiled in chunks and merged.

Run: .venv/bin/python benchmarks/bench_drift_scale.py [--chunks 10] [--chunk-rows 1000000] [--repeat 3]

The test ``core/test_drift.py::test_a_hundredth_of_a_sigma_shift_at_10m_rows_is_significant_but_not_alarmed``
proves the verdict on the same data; this script says how long each part takes (best wall time over
the repeats), so no test has to assert a duration on a shared machine (the test once asserted
10 s for the whole of it).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from aiops_assets.core.drift import build_profile, evaluate_drift, merge_profiles


def best_of(stage: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    best, result = float("inf"), None
    for _ in range(repeat):
        started = time.perf_counter()
        result = stage()
        best = min(best, time.perf_counter() - started)
    return best, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chunks", type=int, default=10)
    parser.add_argument("--chunk-rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    rng = np.random.default_rng(15)
    reference_frame = pd.DataFrame({"x": rng.normal(size=args.chunk_rows)})
    chunks = [
        pd.DataFrame({"x": rng.normal(0.01, 1.0, size=args.chunk_rows)}) for _ in range(args.chunks)
    ]

    rows: list[tuple[str, float, str]] = []
    seconds, reference = best_of(lambda: build_profile(reference_frame, mode="sketch"), args.repeat)
    rows.append(("reference profile (sketch)", seconds, f"{args.chunk_rows:,} rows"))
    seconds, current = best_of(
        lambda: merge_profiles(*(build_profile(chunk, like=reference) for chunk in chunks)),
        args.repeat,
    )
    total = args.chunks * args.chunk_rows
    rows.append(("current: profile chunks + merge", seconds, f"{total:,} rows"))
    seconds, result = best_of(lambda: evaluate_drift(reference, current), args.repeat)
    rows.append(("evaluate_drift", seconds, f"verdict {result.verdict}"))
    rows.append(("total", sum(row[1] for row in rows), ""))

    table = pd.DataFrame(rows, columns=["stage", "seconds", "note"])
    print(f"drift at scale, best of {args.repeat}")
    print(table.to_string(index=False, float_format=lambda value: f"{value:.3f}"))


if __name__ == "__main__":
    main()
