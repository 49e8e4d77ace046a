"""The randomized incident benchmark runs end to end on one incident and prints its table.

One unit-change incident of the tuning seeds is served through the real pipeline (a shared
history first) and diagnosed with ``aiops incident --json``; the harness must produce a real
incident whose cause the change log recorded, a parsed report, the baseline's ranking and the
timings. Whether the engine ranks the cause first is the benchmark's figure, not this test's.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from aiops_assets_tests.paths import BENCHMARKS

# A fresh interpreter, as a person runs it; a minute or two (a history and one incident).
pytestmark = [pytest.mark.subprocess, pytest.mark.slow]

HANG_GUARD_SECONDS = 900.0


def test_one_unit_change_incident_is_served_diagnosed_and_tabled(tmp_path: Path) -> None:
    out = tmp_path / "results.json"
    completed = subprocess.run(
        [
            sys.executable,
            str(BENCHMARKS / "incident_benchmark.py"),
            "--seeds",
            "tuning",
            "--per-family",
            "1",
            "--families",
            "unit_change",
            "--work",
            str(tmp_path / "work"),
            "--skip-peers",
            "--json",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=HANG_GUARD_SECONDS,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    stdout = completed.stdout
    assert "# Incident benchmark: tuning seeds (base seeds 1101; incident seeds 10000)" in stdout
    assert "| family | n | redrawn | gave up | ours top-1 |" in stdout, stdout
    assert any(line.startswith("| unit_change | 1 |") for line in stdout.splitlines()), stdout
    assert "diagnosis (aiops incident --json) per incident: median" in stdout
    assert "[1] unit_change-10000: failed 2026-01-1" in completed.stderr

    [result] = json.loads(out.read_text())["results"]
    assert result["status"] == "incident"
    assert result["failed_partition"] >= "2026-01-12"
    assert result["truth_recorded"] == {
        **result["truth_recorded"],
        "checked": True,
        "recorded": True,
    }
    assert result["diagnosis"]["error"] is None
    assert result["ours"]["suspects"] > 0 and result["ours"]["top"]
    assert result["baseline"]["rankable"] and result["baseline"]["ranked"] > 0
    assert result["diagnosis"]["seconds"] > 0 and result["diagnosis"]["repeat_seconds"] > 0
    # The home stays in the work dir, so --diagnose-only can rank it again.
    home = tmp_path / "work" / "incidents" / "unit_change-10000"
    assert (home / "incident.json").is_file() and (home / "telemetry").is_dir()
    again = subprocess.run(
        [
            sys.executable,
            str(BENCHMARKS / "incident_benchmark.py"),
            "--families",
            "unit_change",
            "--per-family",
            "1",
            "--work",
            str(tmp_path / "work"),
            "--diagnose-only",
            "--skip-peers",
        ],
        capture_output=True,
        text=True,
        timeout=HANG_GUARD_SECONDS,
    )
    assert again.returncode == 0, again.stderr[-3000:]
    assert any(line.startswith("| unit_change | 1 |") for line in again.stdout.splitlines())
