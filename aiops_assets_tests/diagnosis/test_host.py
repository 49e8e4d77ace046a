"""A host model's replays: a suspect whose kind cannot be replayed on a host's own model (its
code, config or environment are the host's) is ranked without a replay, and the replay table
says why; nothing raises. The replays that do run are in ``test_foreign_model_incident.py``."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import dagster as dg

from aiops_assets.core.incidents import Change, IncidentWindow, PerformancePoint, Suspect
from aiops_assets.core.store import ArtifactStore
from aiops_assets.diagnosis.host import HostRows, host_replays
from aiops_assets.diagnosis.replay import ReplayContext
from aiops_assets.diagnosis.target import host_targets
from aiops_assets.resources import close_ledgers
from aiops_assets_tests.diagnosis.test_target import _defs

AT = datetime(2025, 3, 13, 1, tzinfo=UTC)


def _suspect(kind: str, subject: str) -> Suspect:
    change = Change(
        kind=kind,
        subject=subject,
        at=AT,
        summary=f"{subject}: {kind} changed",
        partition="2025-03-13",
        lineage_distance=1,
    )
    return Suspect(change=change, score=0.5, components={}, explanation="")


def test_kinds_a_host_model_cannot_replay_are_ranked_without_one_and_say_why(
    tmp_path: Path,
) -> None:
    defs = _defs(tmp_path, "breach")
    (target,) = host_targets(defs)
    ledger = defs.resources["ledger"].get_ledger()  # type: ignore[index]
    window = IncidentWindow(
        last_good=PerformancePoint("2025-03-12", AT, True, {"f1": 0.8}, 1),
        first_bad=PerformancePoint("2025-03-13", AT, False, {"f1": 0.3}, 1),
    )
    context = ReplayContext(
        defs, ArtifactStore(tmp_path / "store"), ledger, "breach", "f1", scores_key=target.scores
    )
    try:
        with dg.DagsterInstance.ephemeral() as instance:
            replays = host_replays(
                context,
                HostRows(defs, instance, target),
                [_suspect("code", "metrics"), _suspect("config", "metrics"), _suspect("data", "x")],
                window,
                limit=5,
                good_value=0.8,
                bad_value=0.3,
            )
    finally:
        context.close()
        close_ledgers()
    assert [(r.change.split("|")[0], r.effect, r.changed_output) for r in replays] == [
        ("code", 0.0, False),
        ("config", 0.0, False),
    ]
    assert all(r.error and r.error.startswith("not replayed on a host model: ") for r in replays)
    assert "previous code is not recorded" in str(replays[0].error)
    # Not a decoy either: an unmeasured suspect keeps its rank from timing and lineage.
    assert not any(r.decoy for r in replays)
    assert replays[0].words().startswith("code of metrics: not measured (not replayed")
