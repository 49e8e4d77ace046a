"""The drift benchmark script runs end to end on a tiny input and agrees with scipy."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from aiops_assets_tests.paths import BENCHMARKS

# Each benchmark script runs in a fresh interpreter, as a person runs it.
pytestmark = pytest.mark.subprocess

SCRIPT = BENCHMARKS / "drift_vs_peers.py"


def test_the_drift_benchmark_prints_one_json_line_that_agrees_with_scipy() -> None:
    completed = subprocess.run(
        [sys.executable, str(SCRIPT), "--rows", "2000", "--cols", "4", "--skip-peers", "--json"],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    lines = completed.stdout.strip().splitlines()
    assert len(lines) == 1, completed.stdout
    report = json.loads(lines[0])
    for key in ("ours_s", "evidently_s", "nannyml_s", "scipy_s", "ours_peak_mb", "max_abs_diff"):
        assert key in report, key
    assert report["evidently_s"] is None and report["nannyml_s"] is None  # --skip-peers
    assert report["ours_s"] > 0 and report["scipy_s"] > 0 and report["ours_peak_mb"] > 0
    # 2,000 reference rows are below the sketch threshold: the default mode is exact here too.
    assert report["ours_mode"] == "exact" and report["max_abs_diff_mode"] == "exact"
    assert report["max_abs_diff"] < 1e-9
