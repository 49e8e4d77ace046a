"""``benchmarks/drift_on_nab.py`` on the real NAB files: the declared split, and the packaged
policy meets the goal it was calibrated for (at most 20 % of unlabelled partitions at ERROR)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from aiops_assets.core.drift import load_policy
from aiops_assets_tests.paths import BENCHMARKS

pytestmark = pytest.mark.subprocess

SCRIPT = BENCHMARKS / "drift_on_nab.py"


def test_the_drift_on_nab_benchmark_reports_both_halves_under_the_goal(nab_root: Path) -> None:
    completed = subprocess.run(
        [sys.executable, str(SCRIPT), str(nab_root), "--json"],
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )
    report = json.loads(completed.stdout)
    assert report["policy_sha256"] == load_policy().sha256
    halves = report["halves"]
    assert (halves["calibration"]["files"], halves["held-out"]["files"]) == (18, 17)
    assert set(report["files"]["calibration"]).isdisjoint(report["files"]["held-out"])
    for summary in halves.values():
        assert summary["share_outside"] <= 0.20, summary
        # One page per episode: never more pages than ERROR partitions.
        assert summary["episodes"] <= summary["error"]
    machine = report["files"]["calibration"][
        "realKnownCause/machine_temperature_system_failure.csv"
    ]
    assert machine["partitions"] == 77 and machine["error"] < 77
