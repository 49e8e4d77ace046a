"""The live-partition benchmark runs end to end on a tiny fleet and reports every step."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from aiops_assets_tests.paths import BENCHMARKS

# Each benchmark script runs in a fresh interpreter, as a person runs it.
pytestmark = pytest.mark.subprocess

SCRIPT = BENCHMARKS / "bench_live_partition.py"


def test_the_live_partition_benchmark_times_and_measures_every_step_of_the_daily_run(
    tmp_path: Path,
) -> None:
    environment = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("DAGSTER_", "AIOPS_"))
    }
    completed = subprocess.run(
        [
            sys.executable,
            str(SCRIPT),
            # Two services at a 30-minute step: 96 rows a day, so only the plumbing costs time.
            *("--services", "2", "--step-minutes", "30", "--history-days", "2"),
            *("--home", str(tmp_path), "--json"),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp_path,
        env=environment,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert "growth, 30-minute step" in completed.stdout
    report = json.loads(completed.stdout.strip().splitlines()[-1])
    (row,) = report["rows"]
    assert row["services"] == 2 and row["partition"] == "2026-01-07"
    assert row["rows"] == 2 * 48  # the live day's snapshot, from its materialization metadata
    for step in ("telemetry_snapshot", "features", "anomaly_scores", "checks"):
        assert row[step] > 0, step
    # Every check of the three assets ran in the timed run, each in a step of its own.
    assert {"features_drift", "anomaly_scores_drift", "anomaly_scores_performance"} <= set(
        row["check_steps"]
    )
    assert row["check_evaluations"] >= len(row["check_steps"])
    # Each step's RSS peak was sampled inside its window and lies under the run's ru_maxrss.
    assert set(row["step_peaks"]) == set(row["windows"])
    for step, peak in row["step_peaks"].items():
        assert not math.isnan(peak), step
        assert row["idle_mib"] / 2 < peak <= row["peak_mib"] + 1, step
    assert row["ratio_rows"] == 1.0 and row["ratio_seconds"] == 1.0
