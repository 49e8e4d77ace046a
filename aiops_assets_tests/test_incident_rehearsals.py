"""Incidents rehearsed through the real pipeline: the planted cause must rank first.

Each rehearsal runs nine days of the reference pipeline in its own Dagster instance with one
cause planted from 2026-01-12 (see ``incident_rehearsals.py``); the performance check must
really fail, and both the report read back from the instance and the failed check's own
``likely_cause`` must name the cause. The seasonal rehearsal drifts on its weekend without a
regression, and must produce no incident at all.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from aiops_assets_tests.incident_rehearsals import (
    CAUSE_PARTITION,
    REHEARSALS,
    Rehearsal,
    planted_cause,
    prepare_history,
    rehearsal,
    run_rehearsal,
)

# A shared history, then one pipeline rehearsal per planted cause.
pytestmark = pytest.mark.slow

FAILING = [item for item in REHEARSALS if item.cause is not None]


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The shared days before the cause, built once for the module."""
    return prepare_history(tmp_path_factory.mktemp("rehearsal") / "history")


@pytest.mark.parametrize("item", FAILING, ids=[item.name for item in FAILING])
def test_the_planted_cause_ranks_first(item: Rehearsal, history: Path, tmp_path: Path) -> None:
    outcome = run_rehearsal(item, tmp_path / "home", history)
    assert outcome.failed_checks, f"{item.name}: the cause must really hurt the model"
    assert outcome.failed_checks[0].partition == CAUSE_PARTITION
    before = [p for p in outcome.performance if p.partition < CAUSE_PARTITION]
    assert before and all(p.passed for p in before), "every day before the cause passed"

    report = outcome.report
    assert report is not None
    assert report.window.first_bad.partition == CAUSE_PARTITION
    cause = planted_cause(outcome)
    top = report.suspects[0]
    assert top.change == cause, report.markdown(top=5)
    runner_up = report.suspects[1] if len(report.suspects) > 1 else None
    assert runner_up is None or top.score > runner_up.score, "first by score, not by a tie-break"

    metadata = outcome.failed_checks[0].metadata
    kind, subject = item.cause or ("", "")
    top_change = metadata["likely_cause_change"]
    assert str(getattr(top_change, "value", top_change)) == f"{kind} {subject}", metadata
    likely = str(getattr(metadata["likely_cause"], "value", ""))
    # The check does not replay, so a deploy has no measured evidence there; it says so.
    assert likely.startswith(("Likely cause:", "No suspect has measured evidence")), likely
    assert "Do:" in likely, likely


def test_seasonal_drift_without_a_regression_is_no_incident(history: Path, tmp_path: Path) -> None:
    outcome = run_rehearsal(rehearsal("seasonal drift, no regression"), tmp_path / "home", history)
    weekend = {"2026-01-10", "2026-01-11"}
    assert weekend <= set(outcome.drifted_partitions), "the weekend's lower load is real drift"
    assert not outcome.failed_checks
    assert all(point.passed for point in outcome.performance)
    assert outcome.report is None
