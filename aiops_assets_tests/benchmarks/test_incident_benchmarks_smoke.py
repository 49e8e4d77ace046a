"""The incident benchmarks run end to end at their smallest settings and print their tables."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from aiops_assets_tests.paths import BENCHMARKS

# Each benchmark script runs in a fresh interpreter, as a person runs it.
pytestmark = pytest.mark.subprocess

# Each run's guard against a hang, not a speed budget (the benchmarks measure speed): on a CI
# machine running two test workers the quick runs took 55 s and once over 60 s.
HANG_GUARD_SECONDS = 600.0


def _run(script: str, *args: str, timeout: float) -> str:
    completed = subprocess.run(
        [sys.executable, str(BENCHMARKS / script), *args],
        capture_output=True,
        text=True,
        check=True,
        timeout=timeout,
    )
    return completed.stdout


def test_incident_benchmarks_print_their_tables_and_rank_the_cause_first() -> None:
    scaling = _run("incident_scaling.py", "--quick", timeout=HANG_GUARD_SECONDS)
    assert "| N | materializations | check evals | model versions |" in scaling, scaling
    rows = [line for line in scaling.splitlines() if line.startswith(("| 100 |", "| 1,000 |"))]
    assert len(rows) == 4, scaling  # the main table and the per-call table, two sizes each
    main_rows = [row for row in rows if row.count("|") > 8]
    assert len(main_rows) == 2, scaling
    # On a real (SQLite) Dagster history the planted change is still the top suspect.
    assert all(row.rstrip().endswith("| yes |") for row in main_rows), scaling
    assert "Growth between consecutive sizes" in scaling and "dominant call" in scaling

    versus = _run("incident_vs_baseline.py", "--quick", "--json", timeout=HANG_GUARD_SECONDS)
    assert "| # | scenario | true cause | our rank |" in versus, versus
    summary = json.loads(versus.strip().splitlines()[-1])
    ranks = {item["name"]: item["our_rank"] for item in summary["scenarios"]}
    assert len(ranks) == 5 and set(ranks.values()) == {1}, ranks
    assert "cause ranked first in 5/5 scenarios by our engine" in versus
    # The baseline ranks features only: the promotion scenario has none to rank.
    assert "cannot rank: no features" in versus
