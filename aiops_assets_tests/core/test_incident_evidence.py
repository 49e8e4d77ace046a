"""The evidence rules that order suspects: labels refuted by a passing replay, false-alarm replays
discounted by doubtful labels, and derived refreshes below the upstream change they pass on."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from aiops_assets.core.incidents import (
    Change,
    IncidentWindow,
    PerformancePoint,
    score_suspects,
)
from aiops_assets.core.incidents.evidence import (
    STRONG_LABEL_EVIDENCE,
    EvidenceInputs,
    Replay,
    change_key,
    evidence_for,
)

DAY = datetime(2026, 1, 12, 1, tzinfo=UTC)


def _data(service: str, *, partition: str = "2026-01-12", subject: str = "telemetry_snapshot"):
    return Change(
        kind="data",
        subject=subject,
        at=DAY,
        summary=f"{subject}[{partition}] {service} latency moved",
        partition=partition,
        lineage_distance=3 if subject == "telemetry_snapshot" else 1,
        details={"service": service} if service else {},
    )


def _labels(evidence: float) -> Change:
    return Change(
        kind="labels",
        subject="telemetry_snapshot",
        at=DAY,
        summary="labels of 2026-01-12: 5 of 25 alerts labeled positive",
        partition="2026-01-12",
        details={"evidence": evidence, "words": "5 of 25 alerts labeled positive"},
    )


def _replay(
    change: Change,
    *,
    metric: str,
    effect: float,
    passed: bool,
    direction: str = "revert",
    replaces_rows: bool = True,
) -> Replay:
    return Replay(
        change=change_key(change),
        action=direction,
        direction=direction,
        partition="2026-01-12" if direction == "revert" else "2026-01-11",
        metric=metric,
        observed=0.2,
        replayed=0.2 + 0.5 * effect,
        target=0.7,
        passed=passed,
        changed_output=True,
        effect=effect,
        key="k-" + change.summary,
        replaces_rows=replaces_rows and direction == "revert",
    )


def _evidence(changes: list[Change], replays: list[Replay]) -> dict[str, float]:
    inputs = EvidenceInputs(replays={r.change: r for r in replays})
    return {key: e.value for key, e in evidence_for(changes, inputs).items()}


@pytest.mark.parametrize(
    ("metric", "direction", "passed", "replaces_rows"),
    [
        ("f1", "revert", True, True),
        ("f1", "revert", False, True),
        ("false_alarm_rate", "apply", False, False),
        ("false_alarm_rate", "revert", True, False),
    ],
)
def test_a_replay_that_does_not_rest_on_todays_labels_weakens_them(
    metric: str, direction: str, passed: bool, replaces_rows: bool
) -> None:
    """F1 cannot recover on labels without positives; an apply is graded by trusted labels; a
    revert that keeps today's rows cannot have silenced real incidents by removing them."""
    cause, labels = _data("auth"), _labels(1.0)
    replay = _replay(
        cause,
        metric=metric,
        effect=0.8,
        passed=passed,
        direction=direction,
        replaces_rows=replaces_rows,
    )
    found = _evidence([cause, labels], [replay])
    assert found[change_key(cause)] == pytest.approx(0.8)  # not capped under suspect labels
    assert found[change_key(labels)] == pytest.approx(0.2)


def test_strong_labels_cap_a_revert_graded_by_the_false_alarm_rate() -> None:
    busy, labels = _data("auth"), _labels(1.0)
    replay = _replay(busy, metric="false_alarm_rate", effect=0.8, passed=True)
    found = _evidence([busy, labels], [replay])
    assert found[change_key(labels)] == 1.0
    assert found[change_key(busy)] < STRONG_LABEL_EVIDENCE


def test_a_false_alarm_replay_counts_only_as_far_as_the_labels_are_trusted() -> None:
    busy, labels = _data("catalog"), _labels(0.5)
    replay = _replay(busy, metric="false_alarm_rate", effect=0.7, passed=True)
    found = _evidence([busy, labels], [replay])
    assert found[change_key(busy)] == pytest.approx(0.35)
    assert found[change_key(labels)] > found[change_key(busy)]
    # With healthy labels (no label suspect) the same replay keeps its full effect.
    assert _evidence([busy], [replay])[change_key(busy)] == pytest.approx(0.7)


def test_a_derived_refresh_ranks_below_the_upstream_data_it_was_computed_from() -> None:
    snapshot, features = _data(""), _data("", subject="features")
    good = PerformancePoint("2026-01-11", DAY - timedelta(days=1), True, {"f1": 0.7})
    bad = PerformancePoint("2026-01-12", DAY + timedelta(hours=1), False, {"f1": 0.2})
    ranked = score_suspects(
        [snapshot, features], [good, bad], [], IncidentWindow(last_good=good, first_bad=bad)
    )
    assert [s.change.subject for s in ranked] == ["telemetry_snapshot", "features"]
    assert "computed, by unchanged code, from" in ranked[1].explanation


def _deploy(kind: str, summary: str, hour: int = 1, **details: object) -> Change:
    return Change(
        kind=kind,
        subject="features",
        at=DAY.replace(hour=hour),
        summary=summary,
        partition="2026-01-12",
        lineage_distance=1,
        details=dict(details),
    )


def test_a_relabelled_deploy_yields_a_shared_apply_replay_to_the_library_upgrade() -> None:
    # One apply replay measures both: today's code holds the library and the new label.
    relabel = _deploy(
        "code",
        "features[2026-01-12]: code version features-2 -> features-2.7 (same code fingerprint)",
        code_unchanged=True,
    )
    library = _deploy("environment", "features[2026-01-12]: pandas 3.1.1 -> 3.2.0")
    refactor = _deploy(
        "code", "features[2026-01-12]: code version features-2 -> features-3", hour=2
    )
    replay = _replay(relabel, metric="f1", effect=1.0, passed=False, direction="apply")
    shared = {change_key(c): replay for c in (relabel, library, refactor)}
    evidence = evidence_for([relabel, library, refactor], EvidenceInputs(replays=shared))
    assert evidence[change_key(library)].value == 1.0
    assert evidence[change_key(refactor)].value == 1.0
    assert evidence[change_key(relabel)].value == 0.5
    assert "same fingerprint" in " ".join(evidence[change_key(relabel)].reasons)
