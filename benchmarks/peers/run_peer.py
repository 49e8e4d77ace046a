"""Run one peer drift engine on the benchmark's data and print its time, memory and values as JSON.

Runs inside benchmarks/peers/.venv (Evidently and NannyML need pandas < 3), as a subprocess of
benchmarks/drift_vs_peers.py. Only the computation is timed: imports, reading the .npy files and
building the frames happen before the clock starts. Peak memory is the resident-set high-water
mark above the level just before the computation, sampled every 5 ms (tracemalloc would slow
Evidently's Python-heavy code and so distort its time).

Usage: python run_peer.py {evidently,nannyml} DATA_DIR
DATA_DIR holds reference.npy and current.npy, each shaped (columns, rows), float64.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

_PAGE = os.sysconf("SC_PAGE_SIZE")


def resident_bytes() -> int:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * _PAGE


def measure(compute: Callable[[], Any]) -> tuple[float, float, Any]:
    """Seconds and peak resident MB above the starting level while ``compute`` runs."""
    start = resident_bytes()
    peak = start
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, resident_bytes())
            time.sleep(0.005)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    began = time.perf_counter()
    result = compute()
    seconds = time.perf_counter() - began
    done.set()
    sampler.join()
    peak = max(peak, resident_bytes())
    return seconds, (peak - start) / 2**20, result


def frames(data_dir: Path) -> tuple[pd.DataFrame, pd.DataFrame, list[str]]:
    reference = np.load(data_dir / "reference.npy")
    current = np.load(data_dir / "current.npy")
    names = [f"c{index}" for index in range(reference.shape[0])]
    return (
        pd.DataFrame({name: reference[index] for index, name in enumerate(names)}),
        pd.DataFrame({name: current[index] for index, name in enumerate(names)}),
        names,
    )


def run_evidently(
    reference: pd.DataFrame, current: pd.DataFrame, names: list[str]
) -> dict[str, Any]:
    from evidently import Report
    from evidently.presets import DataDriftPreset

    def compute() -> Any:
        return Report([DataDriftPreset()]).run(current_data=current, reference_data=reference)

    seconds, peak_mb, snapshot = measure(compute)
    normalized: dict[str, float] = {}
    methods: set[str] = set()
    for metric in snapshot.dict()["metrics"]:
        config = metric.get("config", {})
        if config.get("type", "").endswith("ValueDrift"):
            normalized[config["column"]] = float(metric["value"])
            methods.add(str(config.get("method")))
    return {
        "seconds": seconds,
        "peak_mb": peak_mb,
        "methods": sorted(methods),
        # DataDriftPreset picks Wasserstein over the reference std for numeric columns > 1000 rows.
        "wasserstein_normalized": [normalized.get(name) for name in names],
    }


def run_nannyml(reference: pd.DataFrame, current: pd.DataFrame, names: list[str]) -> dict[str, Any]:
    import nannyml

    def compute() -> Any:
        calculator = nannyml.UnivariateDriftCalculator(
            column_names=names,
            continuous_methods=["kolmogorov_smirnov", "wasserstein", "jensen_shannon"],
            chunk_number=1,
        )
        calculator.fit(reference)
        return calculator.calculate(current)

    seconds, peak_mb, result = measure(compute)
    table = result.filter(period="analysis").to_df()
    return {
        "seconds": seconds,
        "peak_mb": peak_mb,
        "ks": [float(table[(name, "kolmogorov_smirnov", "value")].iloc[0]) for name in names],
        "wasserstein": [float(table[(name, "wasserstein", "value")].iloc[0]) for name in names],
    }


def main() -> None:
    peer, data_dir = sys.argv[1], Path(sys.argv[2])
    warnings.filterwarnings("ignore")
    reference, current, names = frames(data_dir)
    runners = {"evidently": run_evidently, "nannyml": run_nannyml}
    report = runners[peer](reference, current, names)
    report["peer"] = peer
    print(json.dumps(report))


if __name__ == "__main__":
    main()
