"""Our drift check against Evidently, NannyML and per-column scipy on the same generated data.

Run: .venv/bin/python benchmarks/drift_vs_peers.py --rows 1000000 --cols 20 [--json] [--skip-peers]
     .venv/bin/python benchmarks/drift_vs_peers.py --scaling [--cols 20] [--skip-peers]

Data: seeded standard normals, reference and current of ``rows`` rows each; a quarter of the
current columns are shifted by 0.1 sigma. Every engine gets the same numbers.

What is timed (seconds, wall clock, one run each):
- ours: `evaluate_drift` (all statistics, BH, policy) on the current frame, with the reference
  profile built beforehand (its build time is printed separately: the reference is profiled once
  per baseline, not once per check). Two modes, both timed: *exact* (the whole sorted reference;
  the mode whose KS and Wasserstein are compared with scipy, ``max_abs_diff``) and *default*
  (``mode="auto"``: exact up to 100k reference rows, a quantile sketch above, with documented
  error bounds). In ``--json``, ``ours_s`` and ``ours_peak_mb`` are the default mode's (named in
  ``ours_mode``), ``ours_exact_s`` and ``ours_exact_peak_mb`` the exact mode's, and
  ``max_abs_diff`` always comes from exact mode.
- scipy: ``ks_2samp(method="asymp")`` and ``wasserstein_distance`` per column.
- Evidently ``Report([DataDriftPreset()])`` and NannyML ``UnivariateDriftCalculator`` (KS,
  Wasserstein, Jensen-Shannon; one chunk): in benchmarks/peers/.venv (pandas < 3), through
  benchmarks/peers/run_peer.py, timing the computation only (not imports or loading).

Memory: "traced MB" is tracemalloc's peak around the call (a separate run, so tracing does not
slow the timed one); the acceptance target is ours <= 1.5x the current data. "RSS MB" is the
resident high-water mark above the level before the call, sampled every 5 ms, the one measure
available for every engine.

"max |diff|" is the largest absolute disagreement with scipy over all columns, on the KS
statistic and on the Wasserstein distance (Evidently reports only Wasserstein / reference std,
compared with scipy's Wasserstein / np.std(reference)).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from aiops_assets.core.drift import build_profile, evaluate_drift, load_policy

# One resident-memory sampler for our engine and for the peers, so their numbers compare.
sys.path.insert(0, str(Path(__file__).resolve().parent / "peers"))
from run_peer import measure as timed

HERE = Path(__file__).resolve().parent
PEERS = HERE / "peers"
PEER_PYTHON = PEERS / ".venv" / "bin" / "python"
SHIFT_SIGMA = 0.1
SCALING_ROWS = (10_000, 100_000, 1_000_000, 10_000_000)
# Peers and scipy take minutes per million rows; beyond this only our engine runs.
PEER_MAX_ROWS = 1_000_000


def generate(rows: int, cols: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(cols, rows) arrays, so every column is contiguous for every engine."""
    rng = np.random.default_rng(seed)
    reference = rng.standard_normal((cols, rows))
    current = rng.standard_normal((cols, rows))
    current[: cols // 4] += SHIFT_SIGMA
    return reference, current


def as_frame(columns: np.ndarray) -> pd.DataFrame:
    return pd.DataFrame({f"c{index}": column for index, column in enumerate(columns)})


def traced_peak_mb(compute: Callable[[], Any]) -> float:
    tracemalloc.start()
    try:
        compute()
        return tracemalloc.get_traced_memory()[1] / 2**20
    finally:
        tracemalloc.stop()


def run_scipy(reference: np.ndarray, current: np.ndarray) -> dict[str, list[float]]:
    ks, ks_p, wasserstein = [], [], []
    for ref_column, cur_column in zip(reference, current, strict=True):
        result = stats.ks_2samp(ref_column, cur_column, method="asymp")
        ks.append(float(result.statistic))
        ks_p.append(float(result.pvalue))
        wasserstein.append(float(stats.wasserstein_distance(ref_column, cur_column)))
    return {"ks": ks, "ks_p": ks_p, "wasserstein": wasserstein}


def ensure_peer_environment() -> None:
    """Create benchmarks/peers/.venv from the pinned requirements when it is missing."""
    if PEER_PYTHON.exists():
        return
    uv_path = shutil.which("uv")
    uv = [uv_path] if uv_path else ["python3", "-m", "uv"]
    environment = {**os.environ, "UV_PYTHON_DOWNLOADS": "never"}
    print("creating benchmarks/peers/.venv (Evidently, NannyML; pandas < 3) ...", file=sys.stderr)
    subprocess.run([*uv, "venv", "-p", "3.11", str(PEERS / ".venv")], check=True, env=environment)
    subprocess.run(
        [*uv, "pip", "install", "-p", str(PEER_PYTHON), "-r", str(PEERS / "requirements.txt")],
        check=True,
        env=environment,
    )


def run_peer(peer: str, data_dir: Path) -> dict[str, Any]:
    completed = subprocess.run(
        [str(PEER_PYTHON), str(PEERS / "run_peer.py"), peer, str(data_dir)],
        check=True,
        capture_output=True,
        text=True,
    )
    return dict(json.loads(completed.stdout.strip().splitlines()[-1]))


def max_diff(values: list[float | None] | None, expected: list[float]) -> float | None:
    if values is None or any(value is None for value in values):
        return None
    return float(np.max(np.abs(np.array(values, dtype=float) - np.array(expected))))


def benchmark(rows: int, cols: int, seed: int, *, peers: bool, scipy: bool) -> dict[str, Any]:
    reference, current = generate(rows, cols, seed)
    reference_frame, current_frame = as_frame(reference), as_frame(current)
    policy = load_policy()
    report: dict[str, Any] = {"rows": rows, "cols": cols, "current_mb": current.nbytes / 2**20}

    started = time.perf_counter()
    exact_profile = build_profile(reference_frame, mode="exact")
    report["ours_profile_exact_s"] = time.perf_counter() - started
    started = time.perf_counter()
    default_profile = build_profile(reference_frame, mode="auto")
    report["ours_profile_default_s"] = time.perf_counter() - started
    report["ours_mode"] = default_profile.features[0].mode

    def check_exact() -> Any:
        return evaluate_drift(exact_profile, current_frame, policy)

    def check_default() -> Any:
        return evaluate_drift(default_profile, current_frame, policy)

    check_exact()  # warm-up: first-call imports and allocator growth are not the engine's cost
    seconds, rss, exact = timed(check_exact)
    report.update(
        ours_exact_s=seconds, ours_exact_rss_mb=rss, ours_exact_peak_mb=traced_peak_mb(check_exact)
    )
    seconds, rss, default = timed(check_default)
    report.update(ours_s=seconds, ours_rss_mb=rss, ours_peak_mb=traced_peak_mb(check_default))
    report["ours_drifted"] = len(exact.drifted)
    ours_ks = [item.statistic for item in exact.features]
    ours_w = [item.metrics["wasserstein"] for item in exact.features]
    default_ks = [item.statistic for item in default.features]
    default_w = [item.metrics["wasserstein"] for item in default.features]

    report.update(scipy_s=None, evidently_s=None, nannyml_s=None, max_abs_diff=None)
    if scipy:
        seconds, rss, expected = timed(lambda: run_scipy(reference, current))
        report.update(scipy_s=seconds, scipy_rss_mb=rss)
        report["diff"] = {
            "ours_exact": (
                max_diff(ours_ks, expected["ks"]),
                max_diff(ours_w, expected["wasserstein"]),
            ),
            "ours_default": (
                max_diff(default_ks, expected["ks"]),
                max_diff(default_w, expected["wasserstein"]),
            ),
        }
        report["ours_p_diff"] = max_diff(
            [item.p_value for item in exact.features], expected["ks_p"]
        )
        report["max_abs_diff"] = max(value or 0.0 for value in report["diff"]["ours_exact"])
    if peers:
        ensure_peer_environment()
        with tempfile.TemporaryDirectory() as folder:
            np.save(Path(folder) / "reference.npy", reference)
            np.save(Path(folder) / "current.npy", current)
            for peer in ("nannyml", "evidently"):
                result = run_peer(peer, Path(folder))
                report[f"{peer}_s"] = result["seconds"]
                report[f"{peer}_rss_mb"] = result["peak_mb"]
                if scipy:
                    if peer == "nannyml":
                        report["diff"][peer] = (
                            max_diff(result["ks"], expected["ks"]),
                            max_diff(result["wasserstein"], expected["wasserstein"]),
                        )
                    else:
                        normalized = [
                            w / float(np.std(column))
                            for w, column in zip(expected["wasserstein"], reference, strict=True)
                        ]
                        report["diff"][peer] = (
                            None,
                            max_diff(result["wasserstein_normalized"], normalized),
                        )
                        report["evidently_methods"] = result.get("methods")
    return report


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def _number(value: float | None, pattern: str = "{:.0f}") -> str:
    return "-" if value is None else pattern.format(value)


def print_table(report: dict[str, Any]) -> None:
    diff = report.get("diff", {})
    print(
        f"\n{report['rows']:,} rows x {report['cols']} columns, current data "
        f"{report['current_mb']:.0f} MB; reference profile built beforehand in "
        f"{report['ours_profile_exact_s']:.2f} s (exact) / "
        f"{report['ours_profile_default_s']:.2f} s (default: {report['ours_mode']})"
    )
    print("| engine | seconds | traced MB | RSS MB | max abs diff vs scipy: KS | Wasserstein |")
    print("|---|---|---|---|---|---|")

    def row(name: str, seconds: Any, traced: Any, rss: Any, key: str) -> None:
        ks, wasserstein = diff.get(key, (None, None))
        print(
            f"| {name} | {_seconds(seconds)} | {_number(traced)} | {_number(rss)} | "
            f"{_number(ks, '{:.1e}')} | {_number(wasserstein, '{:.1e}')} |"
        )

    row(
        "ours, exact mode",
        report["ours_exact_s"],
        report["ours_exact_peak_mb"],
        report["ours_exact_rss_mb"],
        "ours_exact",
    )
    row(
        f"ours, default mode ({report['ours_mode']})",
        report["ours_s"],
        report["ours_peak_mb"],
        report["ours_rss_mb"],
        "ours_default",
    )
    if report.get("scipy_s") is not None:
        row("scipy per column", report["scipy_s"], None, report.get("scipy_rss_mb"), "scipy")
    if report.get("nannyml_s") is not None:
        row("NannyML 0.13", report["nannyml_s"], None, report.get("nannyml_rss_mb"), "nannyml")
    if report.get("evidently_s") is not None:
        row(
            "Evidently 0.7 (W/std)",
            report["evidently_s"],
            None,
            report.get("evidently_rss_mb"),
            "evidently",
        )
    peers = [report.get(key) for key in ("scipy_s", "nannyml_s", "evidently_s")]
    fastest = min((value for value in peers if value is not None), default=None)
    if fastest is not None:
        print(
            f"\nfastest peer / ours: {fastest / report['ours_exact_s']:.1f}x (exact), "
            f"{fastest / report['ours_s']:.1f}x (default: {report['ours_mode']})"
        )
    if report.get("evidently_s") is not None:
        print(
            f"Evidently / ours: {report['evidently_s'] / report['ours_exact_s']:.1f}x (exact), "
            f"{report['evidently_s'] / report['ours_s']:.1f}x (default)"
        )
    print(
        "traced peak of our check / current data: "
        f"{report['ours_exact_peak_mb'] / report['current_mb']:.2f}x (exact), "
        f"{report['ours_peak_mb'] / report['current_mb']:.2f}x (default); KS p-values differ from "
        f"scipy by at most {_number(report.get('ours_p_diff'), '{:.1e}')} (exact)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--cols", type=int, default=20)
    parser.add_argument("--seed", type=int, default=20260105)
    parser.add_argument(
        "--json", action="store_true", help="print one JSON line instead of a table"
    )
    parser.add_argument("--skip-peers", action="store_true", help="ours and scipy only")
    parser.add_argument("--scaling", action="store_true", help="10k, 100k, 1M and 10M rows")
    args = parser.parse_args()
    if args.scaling:
        print(
            "| rows | ours exact s | ours default s (mode) | ours default traced MB | "
            "scipy s | NannyML s | Evidently s |"
        )
        print("|---|---|---|---|---|---|---|")
        for rows in SCALING_ROWS:
            small = rows <= PEER_MAX_ROWS
            report = benchmark(
                rows, args.cols, args.seed, peers=small and not args.skip_peers, scipy=small
            )
            print(
                f"| {rows:,} | {report['ours_exact_s']:.3f} | {report['ours_s']:.3f} "
                f"({report['ours_mode']}) | {report['ours_peak_mb']:.0f} | "
                f"{_seconds(report['scipy_s'])} | {_seconds(report['nannyml_s'])} | "
                f"{_seconds(report['evidently_s'])} |",
                flush=True,
            )
        return
    report = benchmark(args.rows, args.cols, args.seed, peers=not args.skip_peers, scipy=True)
    if args.json:
        keys = ("ours_s", "evidently_s", "nannyml_s", "scipy_s", "ours_peak_mb", "max_abs_diff")
        line = {key: report[key] for key in keys}
        line.update(
            ours_mode=report["ours_mode"],
            ours_exact_s=report["ours_exact_s"],
            ours_exact_peak_mb=report["ours_exact_peak_mb"],
            max_abs_diff_mode="exact",
            current_mb=report["current_mb"],
        )
        print(json.dumps(line))
    else:
        print_table(report)


if __name__ == "__main__":
    main()
