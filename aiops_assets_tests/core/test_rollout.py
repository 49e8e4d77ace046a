"""A staged rollout moves slice by slice; a failing canary halts it and rolls back only itself."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from aiops_assets.core.ledger import Ledger
from aiops_assets.core.rollout import (
    RolloutError,
    RolloutPlan,
    advance,
    assignments,
    halt,
    start_rollout,
)

KEY = b"rollout-test-key-" + b"k" * 15
MODEL = "anomaly_detector"
SERVICES = ["checkout", *(f"svc-{n:02d}" for n in range(19))]
PLAN = RolloutPlan.from_dict(
    {
        "stages": [
            {"name": "canary", "services": ["checkout"]},
            {"name": "half", "percent": 50},
            {"name": "all", "percent": 100},
        ],
        "check": "f1>=0.6, false_alarm_rate<=0.05",
    }
)
GOOD = {"f1": 0.8, "false_alarm_rate": 0.01, "labeled_anomalies": 5.0}


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[Ledger]:
    opened = Ledger(f"sqlite:///{tmp_path / 'ledger.db'}", audit_key=KEY)
    for n in (1, 2):
        opened.register_model_version(
            MODEL,
            f"{n:064x}",
            metrics={"f1": 0.8},
            training_set_version=f"t{n}",
            feature_set_version="fs",
            actor="local:ops",
        )
    opened.set_alias(MODEL, "champion", 1, actor="local:ops", reason="first")
    yield opened
    opened.dispose()


def test_a_failing_canary_halts_the_rollout_and_rolls_back_only_the_canary(
    ledger: Ledger,
) -> None:
    rollout = start_rollout(ledger, MODEL, 2, PLAN, SERVICES, actor="local:ops", reason="v2")
    serving = assignments(rollout)
    assert serving["checkout"] == 2
    assert {serving[s] for s in SERVICES if s != "checkout"} == {1}

    halted = advance(
        ledger, rollout.rollout_id, {"f1": 0.3, "false_alarm_rate": 0.01}, actor="sensor:canary"
    )
    assert halted.status == "halted"
    assert [(s.name, s.status) for s in halted.stages] == [("canary", "rolled_back")]
    assert halted.stages[0].evidence["rolled_back_to"] == 1
    assert set(assignments(halted).values()) == {1}
    champion = ledger.get_alias(MODEL, "champion")
    assert champion is not None and champion.version == 1
    stages = [e.details for e in ledger.audit_entries() if e.action == "rollout_stage"]
    assert [(d["name"], d["status"]) for d in stages] == [
        ("canary", "active"),
        ("canary", "rolled_back"),
    ]
    assert stages[1]["services"] == ["checkout"]
    assert ledger.verify_audit().ok
    with pytest.raises(RolloutError, match="is halted"):
        advance(ledger, rollout.rollout_id, GOOD, actor="local:ops")


def test_passing_stages_widen_the_slice_and_the_last_one_promotes(ledger: Ledger) -> None:
    rollout = start_rollout(ledger, MODEL, 2, PLAN, SERVICES, actor="local:ops", reason="v2")
    half = advance(ledger, rollout.rollout_id, GOOD, actor="sensor:canary")
    added = half.stages[1].services
    assert "checkout" not in added and 0 < len(added) < len(SERVICES) - 1
    serving = assignments(half)
    assert {s for s, v in serving.items() if v == 2} == {"checkout", *added}
    champion = ledger.get_alias(MODEL, "champion")
    assert champion is not None and champion.version == 1

    done = advance(ledger, rollout.rollout_id, GOOD, actor="sensor:canary")
    finished = advance(ledger, rollout.rollout_id, GOOD, actor="sensor:canary")
    assert done.status == "running" and finished.status == "completed"
    assert [s.status for s in finished.stages] == ["passed", "passed", "passed"]
    covered = [service for stage in finished.stages for service in stage.services]
    assert sorted(covered) == sorted(SERVICES)
    assert set(assignments(finished).values()) == {2}
    champion = ledger.get_alias(MODEL, "champion")
    assert champion is not None and champion.version == 2
    last = ledger.alias_history(MODEL, "champion")[-1]
    assert last.kind == "promote" and "staged rollout" in last.reason


def test_a_later_failing_stage_rolls_back_its_slice_and_halts_for_everyone(
    ledger: Ledger,
) -> None:
    """A version that failed one slice serves no slice unjudged: after the halt the canary,
    which had passed, is back on the champion too."""
    rollout = start_rollout(ledger, MODEL, 2, PLAN, SERVICES, actor="local:ops", reason="v2")
    advance(ledger, rollout.rollout_id, GOOD, actor="sensor:canary")
    halted = advance(ledger, rollout.rollout_id, {"f1": 0.9}, actor="sensor:canary")
    assert halted.status == "halted"
    assert [(s.name, s.status) for s in halted.stages] == [
        ("canary", "passed"),
        ("half", "rolled_back"),
    ]
    assert halted.stages[1].evidence["reason"].endswith("a metric it names is missing")
    assert set(assignments(halted).values()) == {1}


def test_a_person_halts_a_running_rollout_at_once(ledger: Ledger) -> None:
    rollout = start_rollout(ledger, MODEL, 2, PLAN, SERVICES, actor="local:ops", reason="v2")
    advance(ledger, rollout.rollout_id, GOOD, actor="sensor:canary")
    with pytest.raises(RolloutError, match="needs a reason"):
        halt(ledger, rollout.rollout_id, actor="local:ana", reason=" ")
    halted = halt(ledger, rollout.rollout_id, actor="local:ana", reason="pages on search")
    assert halted.status == "halted"
    assert halted.stages[-1].status == "rolled_back"
    assert halted.stages[-1].evidence["manual"] is True
    assert "halted by local:ana: pages on search" in halted.stages[-1].evidence["reason"]
    assert set(assignments(halted).values()) == {1}
    with pytest.raises(RolloutError, match="only a running one halts"):
        halt(ledger, rollout.rollout_id, actor="local:ana", reason="again")
    last = [e for e in ledger.audit_entries() if e.action == "rollout_stage"][-1]
    assert last.actor == "local:ana" and last.details["status"] == "rolled_back"


def test_plans_are_checked_before_anything_moves(ledger: Ledger) -> None:
    with pytest.raises(RolloutError, match="must reach every service"):
        RolloutPlan.from_dict(
            {
                "stages": [{"name": "c", "services": ["a"]}, {"name": "b", "percent": 50}],
                "check": "f1>0",
            }
        )
    with pytest.raises(RolloutError, match="needs a check"):
        RolloutPlan.from_dict(
            {
                "stages": [{"name": "c", "services": ["a"]}, {"name": "b", "percent": 100}],
                "check": "",
            }
        )
    with pytest.raises(RolloutError, match="selects none of the services"):
        start_rollout(
            ledger,
            MODEL,
            2,
            RolloutPlan.from_dict(
                {
                    "stages": [
                        {"name": "c", "services": ["nobody"]},
                        {"name": "b", "percent": 100},
                    ],
                    "check": "f1>0",
                }
            ),
            SERVICES,
            actor="a",
            reason="r",
        )
    with pytest.raises(RolloutError, match="already the champion"):
        start_rollout(ledger, MODEL, 1, PLAN, SERVICES, actor="a", reason="r")
