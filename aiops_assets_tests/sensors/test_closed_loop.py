"""The issue's scenario, end to end on the generated telemetry, with a real webhook.

Drift from the payments config change makes ``retrain_on_drift`` request a retraining; the
retrained challenger does not pass the promotion gate; a champion forced into service with a
10% alert budget fails its performance check on the next day; ``rollback_on_regression`` restores
the previous champion; the alerts reached the webhook; and the audit chain verifies until one
byte of one audit row is changed.
"""

from __future__ import annotations

import base64
import io
import json
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from aiops_assets.changelog import collect_changes, drift_history, performance_history
from aiops_assets.cli import main
from aiops_assets.core.incidents import build_incident_report
from aiops_assets.core.ledger import Ledger
from aiops_assets.core.registry import CHAMPION, MODEL_NAME
from aiops_assets.core.store import ArtifactStore
from aiops_assets.diagnosis import DiagnosisOptions, diagnose
from aiops_assets.reference.definitions import (
    FEATURES_DRIFT_CHECK,
    PERFORMANCE_CHECK,
    SCORES_DRIFT_CHECK,
    build_definitions,
)
from aiops_assets.reference.demo import DemoResult, run_demo
from aiops_assets.reference.settings import PipelineSettings
from aiops_assets_tests.sensors.webhook import local_webhook

# The whole closed loop (train, serve, retrain, roll back, roll out) on one instance.
pytestmark = pytest.mark.slow


@dataclass
class Loop:
    settings: PipelineSettings
    instance: dg.DagsterInstance
    result: DemoResult
    alerts: list[dict[str, Any]]
    ledger: Ledger


@pytest.fixture(scope="module")
def loop(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Loop]:
    home = tmp_path_factory.mktemp("loop") / "aiops"
    with dg.DagsterInstance.ephemeral() as instance, local_webhook() as hook:
        settings = PipelineSettings(days=14, home=home, alert_webhook=hook.url)
        result = run_demo(settings, instance=instance, progress=io.StringIO())
        ledger = Ledger.from_env(settings.ledger_url, default_key_file=settings.audit_key_file)
        yield Loop(settings, instance, result, hook.received, ledger)
        ledger.dispose()


def _runs(instance: dg.DagsterInstance, trigger: str) -> list[Any]:
    return list(instance.get_run_records(filters=dg.RunsFilter(tags={"aiops/trigger": trigger})))


def test_drift_requests_one_retraining_and_the_gate_refuses_a_worse_challenger(
    loop: Loop,
) -> None:
    retrains = _runs(loop.instance, "retrain_on_drift")
    assert len(retrains) == 1, "the cooldown turns repeated drift into one retraining"
    run = retrains[0].dagster_run
    assert run.tags["dagster/run_key"].startswith("retrain_on_drift:")
    assert "ERROR drift" in run.tags["aiops/reason"]
    decisions = [item for item in loop.ledger.promotions(MODEL_NAME) if item.run_id == run.run_id]
    assert len(decisions) == 1
    decision = decisions[0]
    assert not decision.promoted, decision.reason
    assert decision.champion_version == 1
    bootstrap = decision.evidence["bootstrap"]
    assert bootstrap["ci_low"] <= 0.0, "the evidence shows why: not better beyond noise"
    assert {criterion["name"] for criterion in decision.evidence["criteria"]} >= {
        "blocking_checks",
        "holdout_improvement",
        "shadow",
    }


def test_a_regressed_champion_is_rolled_back_to_the_last_known_good(loop: Loop) -> None:
    changes = [c for c in loop.ledger.alias_history(MODEL_NAME, CHAMPION)]
    kinds = [(change.kind, change.from_version, change.to_version) for change in changes]
    forced = next(change for change in changes if change.actor == "local:demo-fire-drill")
    rollback = changes[changes.index(forced) + 1]
    assert rollback.kind == "rollback", kinds
    assert rollback.from_version == forced.to_version
    assert rollback.to_version == forced.from_version == 1
    assert rollback.actor == "sensor:rollback_on_regression"
    assert "performance" in rollback.reason and "false-alarm rate" in rollback.reason
    failed = [
        check
        for check in loop.ledger.version_checks(MODEL_NAME, forced.to_version)
        if not check.passed
    ]
    assert failed and failed[0].check_name == "performance"
    # Nothing was deleted: every version is still registered and loadable.
    assert [v.version for v in loop.ledger.list_versions(MODEL_NAME)] == [1, 2, 3]
    assert len(_runs(loop.instance, "rollback_on_regression")) == 1


def test_the_refused_version_went_out_by_stages_and_became_champion(loop: Loop) -> None:
    """After the rollback the demo rolls out the version the gate could not tell from noise:
    one stage per served day, each judged on its slice, then the champion alias moves."""
    [rollout] = loop.ledger.rollouts(MODEL_NAME)
    assert rollout.status == "completed"
    assert [(stage.name, stage.status) for stage in rollout.stages] == [
        ("canary", "passed"),
        ("half", "passed"),
        ("all", "passed"),
    ]
    assert rollout.stages[0].services == ("checkout",)
    served = sorted(service for stage in rollout.stages for service in stage.services)
    assert served == sorted(rollout.plan["services"])
    for stage in rollout.stages:
        assert stage.evidence["passed"] is True
        assert stage.evidence["metrics"]["false_alarm_rate"] <= 0.02
    last = loop.ledger.alias_history(MODEL_NAME, CHAMPION)[-1]
    assert (last.kind, last.to_version, last.actor) == (
        "promote",
        rollout.to_version,
        "sensor:staged_rollout",
    )
    # Each verdict is visible in the UI as an observation of the champion asset, and the
    # completed rollout's adopt run re-materialized the champion.
    observations = loop.instance.fetch_observations(dg.AssetKey("champion_model"), limit=10)
    statuses = []
    for record in observations.records:
        observation = record.asset_observation
        assert observation is not None
        statuses.append(str(observation.metadata["stage_status"].value))
    assert sorted(statuses) == ["passed", "passed", "passed"]
    assert len(_runs(loop.instance, "staged_rollout")) == 1
    assert loop.result.decision == "adopted"


def test_the_demo_promoted_a_feature_set_and_the_pipeline_serves_it(loop: Loop) -> None:
    """Experimental -> candidate -> production with all four criteria as evidence; the flag
    switch then makes the features asset compute the new set for every served day."""
    sets = loop.result.registry["feature_sets"]
    # Promoting the new set retired the one it replaced (one production set per name).
    assert sorted(sets.values()) == ["production", "retired"]
    [new] = [version for version, status in sets.items() if status == "production"]
    [old] = [version for version, status in sets.items() if status == "retired"]
    history = loop.ledger.feature_set_history(new)
    assert [(change.from_status, change.to_status) for change in history] == [
        (None, "experimental"),
        ("experimental", "candidate"),
        ("candidate", "production"),
    ]
    evidence = history[-1].evidence
    assert sorted(item["name"] for item in evidence["criteria"]) == [
        "ablation",
        "drift_stability",
        "leakage",
        "quality",
    ]
    assert all(item["passed"] for item in evidence["criteria"])
    served: dict[str, str] = {}
    for record in loop.instance.fetch_materializations(dg.AssetKey("features"), limit=100).records:
        materialization = record.asset_materialization
        assert materialization is not None and materialization.partition is not None
        served.setdefault(
            materialization.partition, str(materialization.metadata["feature_set_version"].value)
        )
    days = sorted(served)
    switched = [day for day in days if served[day] == new]
    assert switched and all(served[day] == old for day in days if day < switched[0])
    assert switched == days[days.index(switched[0]) :]


def test_alerts_reached_the_webhook(loop: Loop) -> None:
    kinds = [alert["kind"] for alert in loop.alerts]
    assert "check_failed" in kinds
    assert "promotion_refused" in kinds
    assert "rollback" in kinds
    drift = [a for a in loop.alerts if a["kind"] == "check_failed" and a["check"] == "drift"]
    assert drift and all(a["severity"] in ("WARN", "ERROR") for a in drift)
    performance = [a for a in loop.alerts if a.get("check") == "performance"]
    assert performance and performance[0]["severity"] == "ERROR"
    assert all(a["run_url"] and "/runs/" in a["run_url"] for a in loop.alerts)
    assert loop.result.alerts, "the demo reports the alerts too"


def test_the_demo_reports_the_loop(loop: Loop) -> None:
    registry = loop.result.registry
    assert registry["champion"] == "v2"
    assert [item["kind"] for item in registry["alias_history"] if item["alias"] == CHAMPION] == [
        "promote",
        "promote",
        "rollback",
        "promote",
    ]
    [rollout] = registry["rollouts"]
    assert (rollout["version"], rollout["status"]) == ("v2", "completed")
    assert loop.result.audit == {"ok": True, "entries": loop.ledger.verify_audit().entries}


def test_audit_verify_passes_and_names_a_changed_byte(
    loop: Loop, capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A copy, so the other tests of this module keep an intact ledger.
    original = Path(loop.settings.ledger_url.removeprefix("sqlite:///"))
    copy = tmp_path / "ledger.db"
    copy.write_bytes(original.read_bytes())
    monkeypatch.setenv("AIOPS_LEDGER_URL", f"sqlite:///{copy}")
    assert main(["audit", "verify", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] and report["entries"] > 5

    connection = sqlite3.connect(copy)
    table = _audit_table(connection)
    seq, details = connection.execute(
        f"SELECT seq, details FROM {table} ORDER BY seq LIMIT 1 OFFSET 3"
    ).fetchone()
    changed = details[:-2] + chr(ord(details[-2]) ^ 1) + details[-1:]
    connection.execute(f"UPDATE {table} SET details = ? WHERE seq = ?", (changed, seq))
    connection.commit()
    connection.close()
    assert main(["audit", "verify", "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert not report["ok"]
    assert any(problem["seq"] == seq for problem in report["problems"]), report


def _audit_table(connection: sqlite3.Connection) -> str:
    names = [
        row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type='table'")
    ]
    [table] = [name for name in names if "audit" in name and "head" not in name]
    return table


def test_the_incident_report_names_the_fire_drill_config_change_first(loop: Loop) -> None:
    definitions = build_definitions(loop.settings)
    report = build_incident_report(
        MODEL_NAME,
        collect_changes(loop.instance, loop.ledger, definitions),
        performance_history(loop.instance),
        drift_history(loop.instance, [FEATURES_DRIFT_CHECK, SCORES_DRIFT_CHECK]),
        metric="false_alarm_rate",
    )
    assert report is not None
    top = report.suspects[0].change
    assert (top.kind, top.subject) == ("config", "candidate_model"), report.markdown()
    assert "alert_quantile" in top.summary
    # Then what the same change did to the model (its threshold) and the promotion.
    assert [(s.change.kind, s.change.subject) for s in report.suspects[1:3]] == [
        ("threshold", "candidate_model"),
        ("alias", f"{MODEL_NAME}:{CHAMPION}"),
    ]
    assert "first bad evaluation" in report.markdown()
    thresholds = [c for c in report.timeline if c.kind == "threshold"]
    assert any(c.subject == "candidate_model" for c in thresholds), "the fire drill moved it"


def test_the_failed_performance_check_carries_the_incident_report(loop: Loop) -> None:
    [failed] = [
        evaluation
        for evaluation in _evaluations(loop.instance, PERFORMANCE_CHECK)
        if not evaluation.passed
    ]
    # The check's own report does not replay (aiops incident does), so it must not claim a
    # measurement it did not make; the diagnosis with replays names the forced promotion.
    likely = str(getattr(failed.metadata["likely_cause"], "value", ""))
    assert "not replayed" in likely or likely.startswith("No suspect has measured evidence"), likely
    diagnosed = diagnose(
        loop.instance,
        loop.ledger,
        build_definitions(loop.settings),
        ArtifactStore(loop.settings.store_root),
        model_name=MODEL_NAME,
        drift_checks=[FEATURES_DRIFT_CHECK, SCORES_DRIFT_CHECK],
        options=DiagnosisOptions(max_replays=5),
    )
    assert diagnosed is not None
    top = diagnosed.suspects[0]
    assert (top.change.kind, top.change.subject) == ("alias", f"{MODEL_NAME}:champion")
    assert top.evidence_source == "replay" and top.evidence >= 0.9, diagnosed.likely_cause()
    report = str(getattr(failed.metadata["incident_report"], "value", ""))
    assert "## Suspects" in report and "alert_quantile" in report
    assert "[candidate_model](/assets/candidate_model)" in report, "suspects link to the UI"
    timeline = str(getattr(failed.metadata["incident_timeline"], "value", ""))
    prefix = "(data:image/png;base64,"
    assert timeline.startswith("![incident timeline") and prefix in timeline
    png = base64.b64decode(timeline.split(prefix, 1)[1].rstrip(")"), validate=True)
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 5_000, "a real picture, inline"


def _evaluations(instance: dg.DagsterInstance, check_key: dg.AssetCheckKey) -> list[Any]:
    records = instance.event_log_storage.get_asset_check_execution_history(check_key, limit=100)
    return [
        record.event.dagster_event.event_specific_data
        for record in records
        if record.event is not None and record.event.dagster_event is not None
    ]
