"""No way around the gate (issue 19, failure 10): a refused version rolls out only by an audited
override, a stage passes only on enough labelled anomalies, a champion adopted by a rollout
carries its stage results as checks, one feature set per name is in production, and a training
set never mixes feature-set versions."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
from hypothesis import given
from hypothesis import strategies as st

from aiops_assets.cli import main
from aiops_assets.core.features import FeatureSetSpec
from aiops_assets.core.ledger import Ledger
from aiops_assets.core.lifecycle import production_feature_set, register_feature_set, transition
from aiops_assets.core.registry import MODEL_NAME
from aiops_assets.core.rollout import (
    DEFAULT_MIN_LABELLED_ANOMALIES,
    MODEL_VERSION_COLUMN,
    RolloutError,
    RolloutPlan,
    advance,
    assignments,
    halt,
    running_rollout,
    start_rollout,
)
from aiops_assets.reference.definitions import build_definitions, ingest_selection
from aiops_assets.reference.settings import PipelineSettings
from aiops_assets.resources import close_ledgers
from aiops_assets.runner import daily_partition_keys, materialize_selection
from aiops_assets_tests.sensors import test_rollout as sensor_rollout
from aiops_assets_tests.sensors.test_rollout import Pipeline

SERVICES = ["checkout", *(f"svc-{n:02d}" for n in range(19))]
STAGES: list[dict[str, Any]] = [
    {"name": "canary", "services": ["checkout"]},
    {"name": "half", "percent": 50},
    {"name": "all", "percent": 100},
]
PLAN: dict[str, Any] = {"stages": STAGES, "check": "false_alarm_rate<=0.05"}
REFUSAL = "not distinguishable from noise"
# The staged-rollout tests' pipeline (nine served days, a champion and a noisier v2), reused.
pipeline = sensor_rollout.pipeline


def good(labelled: int) -> dict[str, float]:
    return {"false_alarm_rate": 0.01, "labeled_anomalies": float(labelled)}


def _open(settings: PipelineSettings) -> Ledger:
    return Ledger.from_env(settings.ledger_url, default_key_file=settings.audit_key_file)


@pytest.fixture
def settings(tmp_path: Path) -> PipelineSettings:
    return PipelineSettings(start=date(2026, 1, 5), days=3, home=tmp_path / "aiops")


@pytest.fixture
def ledger(settings: PipelineSettings) -> Iterator[Ledger]:
    """v1 is champion; the gate refused v2."""
    opened = _open(settings)
    for n in (1, 2):
        opened.register_model_version(
            MODEL_NAME,
            f"{n:064x}",
            metrics={"f1": 0.8},
            training_set_version=f"t{n}",
            feature_set_version="fs",
            actor="local:ops",
        )
    opened.set_alias(MODEL_NAME, "champion", 1, actor="local:ops", reason="first")
    opened.record_promotion(
        MODEL_NAME,
        2,
        champion_version=1,
        promoted=False,
        reason=REFUSAL,
        evidence={},
        actor="sensor:gate",
    )
    yield opened
    opened.dispose()


def _start(ledger: Ledger, override_reason: str | None = None) -> object:
    return start_rollout(
        ledger,
        MODEL_NAME,
        2,
        RolloutPlan.from_dict(PLAN),
        SERVICES,
        actor="local:ops",
        reason="try it",
        override_reason=override_reason,
    )


def test_a_version_the_gate_refused_rolls_out_only_with_an_audited_override(
    ledger: Ledger,
) -> None:
    for missing in (None, "  "):
        with pytest.raises(RolloutError, match=f"gate refused {MODEL_NAME} v2 \\({REFUSAL}\\)"):
            _start(ledger, missing)
    assert ledger.rollouts(MODEL_NAME) == []

    _start(ledger, "incident 42: v1 pages on checkout")
    [rollout] = ledger.rollouts(MODEL_NAME)
    assert rollout.status == "running"
    [entry] = [e for e in ledger.audit_entries() if e.action == "rollout_start"]
    assert entry.details["gate_override"] == {
        "reason": "incident 42: v1 pages on checkout",
        "refused_because": REFUSAL,
    }
    assert ledger.verify_audit().ok


def test_a_version_the_gate_never_refused_needs_no_override(ledger: Ledger) -> None:
    ledger.register_model_version(
        MODEL_NAME,
        f"{3:064x}",
        metrics={"f1": 0.8},
        training_set_version="t3",
        feature_set_version="fs",
        actor="local:ops",
    )
    # Never judged by the gate: nothing to override.
    rollout = start_rollout(
        ledger, MODEL_NAME, 3, RolloutPlan.from_dict(PLAN), SERVICES, actor="a", reason="r"
    )
    [entry] = [e for e in ledger.audit_entries() if e.action == "rollout_start"]
    assert rollout.to_version == 3 and "gate_override" not in entry.details


def test_the_cli_override_needs_its_reason(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["rollout", "start", "2", "--reason", "r", "--override-gate"])
    [line] = capsys.readouterr().err.splitlines()
    assert code == 2
    assert line == (
        "aiops rollout start: --override-gate and --override-reason go together "
        "(the reason is audited)"
    )


def test_a_stage_waits_for_enough_labelled_anomalies_and_then_passes(ledger: Ledger) -> None:
    rollout = _start(ledger, "override")
    rollout_id = ledger.rollouts(MODEL_NAME)[0].rollout_id
    waiting = advance(ledger, rollout_id, good(0), actor="sensor:s", evaluated="day-1")
    assert [(s.name, s.status) for s in waiting.stages] == [("canary", "active")]
    assert waiting.stages[0].evidence["reason"] == "waiting: 0 of 5 labelled anomalies"
    # The same day measured again replaces its count; a new day adds to it.
    again = advance(ledger, rollout_id, good(3), actor="sensor:s", evaluated="day-1")
    assert again.stages[0].evidence["reason"] == "waiting: 3 of 5 labelled anomalies"
    again = advance(ledger, rollout_id, good(1), actor="sensor:s", evaluated="day-1")
    assert again.stages[0].evidence["reason"] == "waiting: 1 of 5 labelled anomalies"
    assert {v for s, v in assignments(again).items() if s != "checkout"} == {1}
    # A missing count is no evidence.
    still = advance(ledger, rollout_id, {"false_alarm_rate": 0.0}, actor="sensor:s")
    assert still.stages[0].status == "active"
    passed = advance(ledger, rollout_id, good(4), actor="sensor:s", evaluated="day-2")
    assert [(s.name, s.status) for s in passed.stages] == [("canary", "passed"), ("half", "active")]
    assert passed.stages[0].evidence["labelled_anomalies"] == 5
    assert passed.stages[0].evidence["observed"] == {"day-1": 1, "evaluation 2": 0, "day-2": 4}
    waits = [e for e in ledger.audit_entries() if e.action == "rollout_stage_waiting"]
    assert len(waits) == 4 and rollout is not None
    assert ledger.verify_audit().ok


def test_a_failing_slice_still_halts_a_waiting_stage(ledger: Ledger) -> None:
    _start(ledger, "override")
    rollout_id = ledger.rollouts(MODEL_NAME)[0].rollout_id
    advance(ledger, rollout_id, good(1), actor="sensor:s", evaluated="day-1")
    halted = advance(
        ledger,
        rollout_id,
        {"false_alarm_rate": 0.2, "labeled_anomalies": 0.0},
        actor="sensor:s",
        evaluated="day-2",
    )
    assert halted.status == "halted" and halted.stages[0].status == "rolled_back"


def test_the_minimum_is_configurable_per_plan_and_per_stage() -> None:
    plan = RolloutPlan.from_dict(
        {
            **PLAN,
            "min_labelled_anomalies": 2,
            "stages": [{**STAGES[0], "min_labelled_anomalies": 9}, *STAGES[1:]],
        }
    )
    assert [s.min_labelled_anomalies for s in plan.stages] == [9, 2, 2]
    assert [s.min_labelled_anomalies for s in RolloutPlan.load().stages] == [
        DEFAULT_MIN_LABELLED_ANOMALIES
    ] * 3
    for bad in (-1, 1.5, "five", True):
        with pytest.raises(RolloutError, match="min_labelled_anomalies"):
            RolloutPlan.from_dict({**PLAN, "min_labelled_anomalies": bad})


@given(
    default=st.one_of(st.none(), st.integers(0, 10_000)),
    own=st.lists(st.one_of(st.none(), st.integers(-50, 10_000)), min_size=3, max_size=3),
)
def test_plan_minimums_parse_and_round_trip(default: int | None, own: list[int | None]) -> None:
    stages = [
        {**stage, **({} if value is None else {"min_labelled_anomalies": value})}
        for stage, value in zip(STAGES, own, strict=True)
    ]
    data: dict[str, Any] = {**PLAN, "stages": stages}
    if default is not None:
        data["min_labelled_anomalies"] = default
    expected = [
        (DEFAULT_MIN_LABELLED_ANOMALIES if default is None else default) if v is None else v
        for v in own
    ]
    if any(value < 0 for value in expected):
        with pytest.raises(RolloutError, match="0 or more"):
            RolloutPlan.from_dict(data)
        return
    plan = RolloutPlan.from_dict(data)
    assert [s.min_labelled_anomalies for s in plan.stages] == expected
    assert RolloutPlan.from_dict(plan.to_dict()) == plan


def test_a_champion_adopted_by_a_rollout_carries_its_stage_results_as_checks(
    ledger: Ledger, settings: PipelineSettings, capsys: pytest.CaptureFixture[str]
) -> None:
    _start(ledger, "override")
    rollout_id = ledger.rollouts(MODEL_NAME)[0].rollout_id
    for day in ("d1", "d2", "d3"):
        finished = advance(ledger, rollout_id, good(6), actor="sensor:s", evaluated=day)
    assert finished.status == "completed"
    assert ledger.get_alias(MODEL_NAME, "champion").version == 2  # type: ignore[union-attr]
    checks = ledger.version_checks(MODEL_NAME, 2)
    assert [(c.check_name, c.passed) for c in checks] == [
        ("rollout_stage:canary", True),
        ("rollout_stage:half", True),
        ("rollout_stage:all", True),
    ]
    assert all(c.metrics["labelled_anomalies"] == 6 for c in checks)
    assert checks[0].metrics["metrics"] == good(6)
    assert ledger.verify_audit().ok
    ledger.dispose()
    code = main(["registry", "list", "--json", "--home", str(settings.home)])
    assert code == 0
    rows = {row["version"]: row for row in json.loads(capsys.readouterr().out)}
    assert rows[2]["checks"] == "3 ok / 0 failed" and rows[2]["aliases"] == ["champion"]


def test_promoting_a_feature_set_retires_the_production_one_it_replaces(tmp_path: Path) -> None:
    ticks = iter(range(1_000_000))
    start = datetime(2026, 1, 12, 9, 0, tzinfo=UTC)
    ledger = Ledger(
        f"sqlite:///{tmp_path / 'ledger.db'}",
        audit_key=b"k" * 32,
        clock=lambda: start + timedelta(seconds=next(ticks)),
    )
    old, new = FeatureSetSpec(), FeatureSetSpec(version=5)
    register_feature_set(ledger, old, actor="local:ops", status="production")
    register_feature_set(ledger, new, actor="local:ana")
    transition(ledger, new.version_id, "candidate", actor="local:ana", reason="looks good")
    with pytest.raises(Exception, match="not candidate"):
        ledger.promote_to_production(old.version_id, actor="local:ana", reason="x")

    changes = ledger.promote_to_production(new.version_id, actor="local:ana", reason="better")
    assert [(c.version_id, c.to_status) for c in changes] == [
        (old.version_id, "retired"),
        (new.version_id, "production"),
    ]
    assert [r.version_id for r in ledger.list_feature_sets(status="production")] == [new.version_id]
    assert ledger.get_feature_set(old.version_id).status == "retired"  # type: ignore[union-attr]
    retired = ledger.feature_set_history(old.version_id)[-1]
    assert retired.reason == f"replaced in production by {new.version_id}"
    audited = [e.details for e in ledger.audit_entries() if e.action == "feature_set_status"]
    assert [(d["from_status"], d["to_status"]) for d in audited[-2:]] == [
        ("production", "retired"),
        ("candidate", "production"),
    ]
    promoted = production_feature_set(ledger, old.name)
    assert promoted is not None and promoted.version_id == new.version_id
    assert ledger.verify_audit().ok
    ledger.dispose()


@pytest.mark.slow
def test_a_training_set_mixes_feature_set_versions_only_by_a_lifecycle_switch(
    settings: PipelineSettings,
) -> None:
    definitions = build_definitions(settings)
    quiet = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}
    with dg.DagsterInstance.ephemeral() as instance:
        days = daily_partition_keys(definitions)
        for day in days:
            materialize_selection(
                definitions, instance, ingest_selection(), partition_key=day, run_config=quiet
            )
        materialize_selection(
            definitions,
            instance,
            dg.AssetSelection.assets("features").without_checks(),
            partition_key=days[-1],
            run_config={**quiet, "ops": {"features": {"config": {"version": 2}}}},
        )
        training = {
            **quiet,
            "ops": {"training_set": {"config": {"holdout_days": 1}}},
        }
        run = materialize_selection(
            definitions,
            instance,
            dg.AssetSelection.assets("training_set"),
            run_config=training,
            raise_on_error=False,
        )
        assert not run.success
        [failure] = run.get_step_failure_events()
        message = failure.step_failure_data.error.message  # type: ignore[union-attr]
        first, second = FeatureSetSpec().version_id, FeatureSetSpec(version=2).version_id
        assert "mix feature-set versions" in message
        assert f"{first}: {', '.join(days[:-1])}" in message and f"{second}: {days[-1]}" in message

        # The lifecycle's own switch (v2 promoted, v1 retired with it) is allowed, and said.
        ledger = _open(settings)
        register_feature_set(ledger, FeatureSetSpec(), actor="local:ops", status="production")
        register_feature_set(ledger, FeatureSetSpec(version=2), actor="local:ana")
        transition(ledger, second, "candidate", actor="local:ana", reason="ok")
        ledger.promote_to_production(second, actor="local:ana", reason="better")
        ledger.dispose()
        run = materialize_selection(
            definitions,
            instance,
            dg.AssetSelection.assets("training_set"),
            run_config=training,
        )
        [materialization] = run.asset_materializations_for_node("training_set")
    close_ledgers()
    said = str(materialization.metadata["feature_set_mix"].value)
    assert said.startswith(f"days of retired feature sets and of {second}, which replaced them")
    assert f"{first}: {', '.join(days[:-1])}" in said


WAITING_PLAN = """
min_labelled_anomalies: 100000
stages:
  - name: canary
    services: [checkout]
  - name: all
    percent: 100
check: "false_alarm_rate<=1.0"
"""


@pytest.mark.slow
def test_the_rollout_sensor_keeps_a_stage_waiting_on_too_few_labelled_anomalies(
    pipeline: Pipeline,
) -> None:
    """Through the reference pipeline: the canary's slice passes its check, but one day holds
    far fewer labelled anomalies than the plan asks, so the stage waits and nothing moves."""
    plan = pipeline.plan_path.with_name("waiting.yaml")
    plan.write_text(WAITING_PLAN)
    cursor = pipeline.tick(None).cursor
    pipeline.run(
        dg.AssetSelection.assets("champion_model"),
        config={
            "ops": {
                "champion_model": {
                    "config": {"action": "rollout", "version": 2, "rollout_plan": str(plan)}
                }
            }
        },
    )
    scored = pipeline.score(pipeline.days[7])
    canary = scored[(scored["service"] == "checkout") & (scored[MODEL_VERSION_COLUMN] == 2)]
    assert not canary.empty
    data = pipeline.tick(cursor)
    [rollout] = pipeline.ledger.rollouts(MODEL_NAME)
    assert rollout.status == "running"
    [stage] = rollout.stages
    waiting = f"waiting: {int(canary['label'].sum())} of 100000 labelled anomalies"
    assert (stage.name, stage.status, stage.evidence["reason"]) == ("canary", "active", waiting)
    assert not data.run_requests
    [observation] = data.asset_events
    assert waiting in str(observation.metadata["summary"].value)
    assert pipeline.ledger.get_alias(MODEL_NAME, "champion").version == 1  # type: ignore[union-attr]
    assert pipeline.ledger.verify_audit().ok


@pytest.mark.slow
def test_aiops_rollout_start_refuses_a_refused_version_without_an_override(
    pipeline: Pipeline, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AIOPS_ACTOR", "local:ana")
    ledger = pipeline.ledger
    running = running_rollout(ledger, MODEL_NAME)
    if running is not None:
        halt(ledger, running.rollout_id, actor="local:ana", reason="start over")
    ledger.record_promotion(
        MODEL_NAME,
        2,
        champion_version=1,
        promoted=False,
        reason=REFUSAL,
        evidence={},
        actor="sensor:gate",
    )
    home = ["--home", str(pipeline.settings.home), "--plan", str(pipeline.plan_path)]
    before = len(ledger.rollouts(MODEL_NAME))

    code = main(["rollout", "start", "2", "--reason", "try it", *home])
    [line] = capsys.readouterr().err.splitlines()
    assert code == 1
    assert f"the promotion gate refused {MODEL_NAME} v2 ({REFUSAL})" in line
    assert len(ledger.rollouts(MODEL_NAME)) == before

    override = ["--override-gate", "--override-reason", "incident 7: v1 misses checkout"]
    code = main(["rollout", "start", "2", "--reason", "try it", *override, *home])
    assert code == 0, capsys.readouterr().err
    entry = [e for e in ledger.audit_entries() if e.action == "rollout_start"][-1]
    assert entry.actor == "local:ana"
    assert entry.details["gate_override"] == {
        "reason": "incident 7: v1 misses checkout",
        "refused_because": REFUSAL,
    }
    assert ledger.verify_audit().ok
