"""The incremental-cost benchmark runs end to end on a tiny history and reports every column."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from aiops_assets_tests.paths import BENCHMARKS

# Each benchmark script runs in a fresh interpreter, as a person runs it.
pytestmark = pytest.mark.subprocess

SCRIPT = BENCHMARKS / "incremental_cost.py"


def test_the_incremental_cost_benchmark_times_each_chosen_day_against_day_one(
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
            *("--days", "3", "--at", "3", "--repeats", "1"),
            *("--train-days", "2", "--holdout-days", "1"),
            # Timings on a shared machine are noise at this size: no limit, only the report is
            # tested (the benchmark run by hand judges the ratio).
            *("--max-ratio", "inf", "--home", str(tmp_path), "--json"),
        ],
        capture_output=True,
        text=True,
        timeout=900,
        cwd=tmp_path,
        env=environment,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert "daily_telemetry_job per partition" in completed.stdout
    report = json.loads(completed.stdout.strip().splitlines()[-1])
    assert [row["partition"] for row in report["rows"]] == ["2026-01-05", "2026-01-07"]
    first, last = report["rows"]
    assert first["ratio"] == 1.0 and first["cpu_ratio"] == 1.0
    for row in report["rows"]:
        for step in ("telemetry_snapshot", "features", "anomaly_scores", "checks", "cpu"):
            assert row[step] > 0, (row["partition"], step)
        assert row["total_min"] <= row["total"] <= row["total_max"]
        assert row["first_pass"] > 0
    assert last["cpu_ratio"] == last["cpu"] / first["cpu"]
    assert report["worst_ratio"] == max(row["cpu_ratio"] for row in report["rows"])
