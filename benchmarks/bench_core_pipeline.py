"""Time and peak memory of each core stage of the reference pipeline, without Dagster.

Run: .venv/bin/python benchmarks/bench_core_pipeline.py [--days 14] [--repeat 3]
Prints one table row per stage: best wall time over the repeats and the peak traced allocation.
The demo's own budget is 3 minutes on 2 cores; this shows where the time goes. "generate
telemetry" at the default 14 days is the default scenario, which a test once required to take
under 0.5 s: speed is measured here, not asserted in the tests.
"""

from __future__ import annotations

import argparse
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from datetime import date
from typing import Any

import pandas as pd

from aiops_assets.core import telemetry
from aiops_assets.core.features import FeatureSetSpec, compute_features
from aiops_assets.core.models import (
    HOLDOUT,
    SPLIT,
    DetectorConfig,
    TrainingSetConfig,
    build_training_set,
    evaluate_detector,
    train_detector,
)
from aiops_assets.core.store import ArtifactStore


def measure(stage: Callable[[], Any], repeat: int) -> tuple[float, float, Any]:
    best = float("inf")
    peak = 0
    result: Any = None
    for _ in range(repeat):
        tracemalloc.start()
        started = time.perf_counter()
        result = stage()
        best = min(best, time.perf_counter() - started)
        peak = max(peak, tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
    return best, peak / 2**20, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=14)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    scenario = telemetry.default_scenario(start=date(2026, 1, 5), days=args.days)
    spec = FeatureSetSpec()
    rows: list[tuple[str, float, float, str]] = []

    with tempfile.TemporaryDirectory() as root:
        store = ArtifactStore(root)
        seconds, peak, raw = measure(lambda: telemetry.generate(scenario), args.repeat)
        rows.append(("generate telemetry", seconds, peak, f"{len(raw):,} rows"))
        seconds, peak, ref = measure(lambda: store.put_frame(raw), args.repeat)
        rows.append(("canonical Parquet + store", seconds, peak, f"{ref.size / 2**20:.2f} MiB"))
        seconds, peak, _ = measure(lambda: store.get_frame(ref), args.repeat)
        rows.append(("verified read", seconds, peak, ref.sha256[:12]))
        seconds, peak, features = measure(lambda: compute_features(raw, spec), args.repeat)
        rows.append(("features", seconds, peak, f"{features.shape[1]} columns"))
        seconds, peak, training = measure(
            lambda: build_training_set(features, TrainingSetConfig()), args.repeat
        )
        rows.append(("training set", seconds, peak, f"{len(training):,} rows"))
        seconds, peak, detector = measure(
            lambda: train_detector(training, DetectorConfig()), args.repeat
        )
        rows.append(("train detector", seconds, peak, f"threshold {detector.threshold:.3f}"))
        holdout = training[training[SPLIT] == HOLDOUT]
        seconds, peak, metrics = measure(lambda: evaluate_detector(detector, holdout), args.repeat)
        rows.append(("evaluate on holdout", seconds, peak, f"PR-AUC {metrics['pr_auc']:.3f}"))

    table = pd.DataFrame(rows, columns=["stage", "seconds", "peak MiB", "note"])
    print(
        f"core pipeline, {args.days} days x {len(scenario.services)} services, best of {args.repeat}"
    )
    print(table.to_string(index=False, float_format=lambda value: f"{value:.3f}"))


if __name__ == "__main__":
    main()
