"""The reference pipeline through Airflow (``dag.test()``, in-process, SQLite metadata DB): the
lineage on its asset events, the closed loop, and the same hashes as through Dagster."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from aiops_assets.airflow.config import ProviderConfig, close_ledgers
from aiops_assets.airflow.dags import ROLLBACK_DAG, TRAIN_DAG
from aiops_assets.airflow.records import asset_ref_name
from aiops_assets.airflow.steps_model import candidate_step
from aiops_assets.core.pipeline.training import CandidateSettings
from aiops_assets.core.registry import CHAMPION, MODEL_NAME
from aiops_assets_tests.airflow.conftest import DAYS, START
from aiops_assets_tests.airflow.helpers import asset_events, dags, queued_dags, run, run_at
from aiops_assets_tests.cli.process import aiops_process

# Whole-pipeline runs through two orchestrators: the full lane's, not the fast lane's.
pytestmark = pytest.mark.slow

HISTORY = [(START + timedelta(days=offset)).isoformat() for offset in range(6)]
LAST = HISTORY[-1]


@dataclass
class Trained:
    config: ProviderConfig
    first_champion: int


@pytest.fixture(scope="module")
def trained(airflow_db: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Trained]:
    """Six days through the daily DAG, the training DAG until the sixth, the sixth scored."""
    home = tmp_path_factory.mktemp("airflow-pipeline") / "aiops"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AIOPS_HOME", str(home))
        patch.setenv("AIOPS_START", START.isoformat())
        patch.setenv("AIOPS_DAYS", str(DAYS))
        for name in ("AIOPS_STORE_ROOT", "AIOPS_LEDGER_URL", "AIOPS_AUDIT_WITNESS"):
            patch.delenv(name, raising=False)
        the_dags = dags()
        for day in HISTORY:
            states = run(the_dags["daily"], day=day)
            assert states["features"] == "success", (day, states)
            assert states["anomaly_scores"] == "skipped"  # no champion yet
        states = run(the_dags["train"], until=LAST)
        assert set(states.values()) == {"success"}, states
        config = ProviderConfig.from_env()
        champion = config.ledger().get_alias(MODEL_NAME, CHAMPION)
        assert champion is not None
        yield Trained(config=config, first_champion=champion.version)
        close_ledgers()


def _events_of(name: str, home: ProviderConfig) -> list[dict[str, Any]]:
    store = home.store()
    return [
        extra
        for extra in asset_events(name)
        if extra.get("data_version")
        and store.exists(extra["data_version"])
        and store.get_ref(asset_ref_name(extra["asset"], extra["partition"] or None)) is not None
    ]


def test_each_step_outlets_its_asset_with_data_version_code_version_and_checks(
    trained: Trained,
) -> None:
    store = trained.config.store()
    snapshots = {
        event["partition"]: event for event in _events_of("telemetry_snapshot", trained.config)
    }
    assert sorted(snapshots) == HISTORY
    for day, event in snapshots.items():
        ref = store.get_ref(asset_ref_name("telemetry_snapshot", day))
        assert ref is not None and event["data_version"] == ref.sha256
        assert event["code_version"] == "telemetry_snapshot-2"
        assert event["checks"]["telemetry_default_error"]["passed"] is True
    champion = _events_of("champion_model", trained.config)[-1]
    assert champion["decision"] == "promoted"
    assert "all criteria passed" in champion["reason"]
    candidate = _events_of("candidate_model", trained.config)[-1]
    assert candidate["data_version"] == champion["data_version"]
    assert candidate["capsule_command"].startswith("aiops reproduce ")


@pytest.mark.subprocess
def test_aiops_reproduce_and_audit_verify_accept_the_model_trained_through_airflow(
    trained: Trained, tmp_path: Path
) -> None:
    home = str(trained.config.home)
    completed = aiops_process("reproduce", "champion", "--home", home, cwd=tmp_path)
    assert completed.returncode == 0, completed.stderr
    assert "REPRODUCED" in completed.stdout and "NOT REPRODUCED" not in completed.stdout
    assert "ok  model sha256" in completed.stdout
    verified = aiops_process("audit", "verify", "--home", home, cwd=tmp_path)
    assert verified.returncode == 0, verified.stderr
    assert "chain intact" in verified.stdout


def test_a_scheduled_run_covers_the_day_its_data_interval_starts(trained: Trained) -> None:
    import pendulum

    def covered() -> list[str]:
        return [event["partition"] for event in asset_events("telemetry_snapshot")]

    before = covered()
    states = run_at(dags()["daily"], pendulum.datetime(2026, 1, 8, 0, 10, tz="UTC"))
    assert states["telemetry_snapshot"] == "success"
    after = covered()
    assert sorted(after) == sorted([*before, "2026-01-07"])


def test_a_quarantined_day_fails_its_run_and_keeps_no_version(trained: Trained) -> None:
    # The scenario's null injection: the gate refuses the day, the store keeps it in quarantine.
    states = run(dags()["daily"], day="2026-01-11")
    assert states["telemetry_snapshot"] == "failed"
    assert states["features"] == "upstream_failed"
    store = trained.config.store()
    assert store.get_ref(asset_ref_name("telemetry_snapshot", "2026-01-11")) is None
    assert list(store.iter_object_ids())


def test_drift_at_error_requests_one_retraining_which_the_train_dag_runs(
    trained: Trained,
) -> None:
    states = run(dags()["daily"], day=LAST)
    assert states["drift_check"] == "success"
    drift = asset_events("features.drift")[-1]["checks"]["drift"]
    assert drift["verdict"] == "error"  # the first weekend day against three weekdays
    assert states["request_retraining"] == "success"
    requests = asset_events("retrain_request")
    assert requests[-1]["run_key"] == f"retrain_on_drift:features:drift:{LAST}"
    assert requests[-1]["until"] == LAST
    assert TRAIN_DAG in queued_dags("retrain_request")
    # The same day's drift again: its run key is spent.
    again = run(dags()["daily"], day=LAST)
    assert again["request_retraining"] == "skipped"
    assert len(asset_events("retrain_request")) == len(requests)
    registry = trained.config.ledger()
    before = len(registry.audit_entries())
    states = run(dags()["train"], until=requests[-1]["until"])
    assert set(states.values()) == {"success"}
    entries = registry.audit_entries()[before:]
    assert {entry.action for entry in entries} >= {"record_capsule"}


def test_each_day_s_scores_are_judged_against_the_champion_s_score_baseline(
    trained: Trained,
) -> None:
    champion = trained.config.ledger().get_alias(MODEL_NAME, CHAMPION)
    baseline = asset_events("score_baseline")[-1]
    assert champion is not None and baseline["model_version"] == champion.version
    assert baseline["calibrated_on_partitions"] >= 2  # one chunk per training day
    store = trained.config.store()
    ref = store.get_ref(asset_ref_name("score_baseline", None))
    assert ref is not None and ref.sha256 == baseline["data_version"]
    states = run(dags()["daily"], day=LAST)
    assert states["anomaly_scores"] == "success"
    drift = asset_events("anomaly_scores")[-1]["checks"]["drift"]
    assert drift["baseline_sha256"] == baseline["data_version"]
    assert drift["verdict"] in ("ok", "warn", "error")
    assert drift["passed"] is (drift["verdict"] == "ok")


def test_the_monitoring_report_lays_out_the_days_verdicts_by_day(trained: Trained) -> None:
    # The last daily run was of LAST (the test before): its report covers the days up to it.
    event = asset_events("monitoring_report")[-1]
    assert event["partition"] == LAST and event["code_version"] == "monitoring_report-1"
    store = trained.config.store()
    ref = store.get_ref(asset_ref_name("monitoring_report", LAST))
    assert ref is not None and ref.sha256 == event["data_version"]
    stored = store.get_json(ref)
    rows = {row["partition"]: row for row in stored["rows"]}
    assert sorted(rows) == [day for day in HISTORY]  # 2026-01-05 .. LAST, oldest first
    assert all(rows[day]["quality"] == "pass" for day in HISTORY)
    # Before the first training nothing scored or drifted; on LAST both did.
    assert rows[HISTORY[0]]["performance"] == "" and rows[HISTORY[0]]["drift"] == ""
    performance = asset_events("anomaly_scores")[-1]["checks"]["performance"]
    assert rows[LAST]["performance"] == ("pass" if performance["passed"] else "FAIL")
    assert rows[LAST]["f1"] == round(performance["f1"], 4)
    assert rows[LAST]["drift"] == "FAIL"  # the features' ERROR drift of the first weekend day
    assert event["drift"] == "FAIL" and event["partitions"] == len(HISTORY)
    assert stored["markdown"].count(f"| {LAST} |") == 1


def test_a_regression_of_the_champion_requests_a_rollback_that_restores_the_last_good(
    trained: Trained,
) -> None:
    registry = trained.config.ledger()
    run(dags()["daily"], day=LAST)  # the first champion passes its performance check here
    # An operator forces a model that pages far too often into service (a manual promotion).
    noisy = candidate_step(
        trained.config,
        "manual-noisy",
        CandidateSettings(n_estimators=10, max_samples=64, seed=3, alert_quantile=0.75),
    )
    version = int(noisy.facts["model_version"])
    registry.record_promotion(
        MODEL_NAME,
        version,
        champion_version=trained.first_champion,
        promoted=True,
        reason="fire drill",
        evidence={"manual": True, "gate": "skipped"},
        actor="local:operator",
        run_id="manual-noisy",
    )
    states = run(dags()["daily"], day=LAST)
    performance = asset_events("anomaly_scores")[-1]["checks"]["performance"]
    assert performance["passed"] is False and performance["model_version"] == version
    assert states["request_rollback"] == "success"
    request = asset_events("rollback_request")[-1]
    assert request["run_key"] == f"rollback_on_regression:{MODEL_NAME}:v{version}"
    assert ROLLBACK_DAG in queued_dags("rollback_request")
    states = run(dags()["rollback"], reason=request["reason"])
    assert states == {
        "rollback": "success",
        "incident_report": "success",
        "score_baseline": "success",
    }
    # The prediction-drift reference follows the champion back.
    baseline = asset_events("score_baseline")[-1]
    assert baseline["model_version"] == trained.first_champion
    champion = registry.get_alias(MODEL_NAME, CHAMPION)
    assert champion is not None and champion.version == trained.first_champion
    entry = registry.audit_entries()[-1]
    assert entry.action == "set_alias" and entry.details["kind"] == "rollback"
    assert entry.details["reason"] == request["reason"]
    assert entry.details["to_version"] == trained.first_champion
    incident = asset_events("incident_report")[-1]
    assert incident["first_failing"] == LAST
    assert f"v{version}" in incident["verdict"]
    # The forced promotion is the change in the window: the report names it.
    assert any("fire drill" in suspect for suspect in incident["suspects"]), incident


def test_the_same_days_give_the_same_hashes_through_dagster(
    trained: Trained, tmp_path: Path
) -> None:
    from aiops_assets.reference.definitions import BASELINE_CHECKS, build_definitions
    from aiops_assets.reference.settings import PipelineSettings
    from aiops_assets.runner import materialize_selection

    settings = PipelineSettings(start=START, days=DAYS, home=tmp_path / "dagster")
    definitions = build_definitions(settings)
    ingest = (
        dg.AssetSelection.assets("telemetry_snapshot", "features")
        - dg.AssetSelection.checks_for_assets(dg.AssetKey("features"))
        - dg.AssetSelection.checks(*BASELINE_CHECKS)
    )
    with dg.DagsterInstance.ephemeral() as instance:
        for day in HISTORY:
            materialize_selection(definitions, instance, selection=ingest, partition_key=day)
        materialize_selection(
            definitions,
            instance,
            selection=["training_set", "candidate_model"],
            run_config={"ops": {"training_set": {"config": {"until": LAST}}}},
        )
        # The first champion (the gate's "first model") and its prediction-drift reference.
        materialize_selection(definitions, instance, selection=["champion_model", "score_baseline"])
    dagster_store = ProviderConfig(home=tmp_path / "dagster", start=START, days=DAYS).store()
    airflow_store = trained.config.store()

    def sha(store: Any, asset: str, partition: str | None) -> str:
        ref = store.get_ref(asset_ref_name(asset, partition))
        assert ref is not None, (asset, partition)
        return str(ref.sha256)

    for day in HISTORY:
        for asset in ("telemetry_snapshot", "features"):
            assert sha(dagster_store, asset, day) == sha(airflow_store, asset, day), (asset, day)
    first_training = next(e for e in asset_events("training_set") if e["until"] == LAST)
    assert sha(dagster_store, "training_set", None) == first_training["data_version"]
    first_model = next(e for e in asset_events("candidate_model") if e["model_version"] == 1)
    assert sha(dagster_store, "candidate_model", None) == first_model["data_version"]
    first_baseline = next(e for e in asset_events("score_baseline") if e["model_version"] == 1)
    assert sha(dagster_store, "champion_model", None) == first_model["data_version"]
    assert sha(dagster_store, "score_baseline", None) == first_baseline["data_version"]
