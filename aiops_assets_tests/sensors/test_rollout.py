"""A staged rollout through the reference pipeline: the canary's slice is scored by the new
version, measured apart from the champion, judged by the ``staged_rollout`` sensor, and a failing
canary halts the rollout with only the canary's service moved back."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import dagster as dg
import pandas as pd
import pytest

from aiops_assets.cli import main
from aiops_assets.core.ledger import Ledger
from aiops_assets.core.registry import CHAMPION, MODEL_NAME
from aiops_assets.core.rollout import MODEL_VERSION_COLUMN
from aiops_assets.core.store import ArtifactStore
from aiops_assets.reference.definitions import (
    PERFORMANCE_CHECK,
    TRAINING_ASSETS,
    build_definitions,
    ingest_selection,
    scoring_selection,
)
from aiops_assets.reference.settings import PipelineSettings
from aiops_assets.resources import close_ledgers
from aiops_assets.runner import daily_partition_keys, materialize_selection

# Each test serves several days through the real pipeline.
pytestmark = pytest.mark.slow

QUIET = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}
PLAN = """
stages:
  - name: canary
    services: [checkout]
  - name: all
    percent: 100
check: "false_alarm_rate<=0.02"
"""


@dataclass
class Pipeline:
    settings: PipelineSettings
    definitions: dg.Definitions
    instance: dg.DagsterInstance
    days: list[str]
    ledger: Ledger
    plan_path: Path

    def run(
        self,
        selection: dg.AssetSelection,
        partition: str | None = None,
        config: dict[str, Any] | None = None,
        *,
        raise_on_error: bool = True,
    ) -> dg.ExecuteInProcessResult:
        return materialize_selection(
            self.definitions,
            self.instance,
            selection,
            partition_key=partition,
            run_config={**QUIET, **(config or {})},
            tags={"aiops/actor": "local:test"},
            raise_on_error=raise_on_error,
        )

    def score(self, day: str) -> pd.DataFrame:
        run = self.run(scoring_selection(), day)
        store = ArtifactStore(self.settings.store_root)
        [event] = [
            item
            for item in run.get_asset_materialization_events()
            if item.asset_key == dg.AssetKey("anomaly_scores")
        ]
        metadata = event.step_materialization_data.materialization.metadata
        return store.get_frame(str(metadata["sha256"].value))

    def tick(self, cursor: str | None) -> dg.SensorExecutionData:
        sensor = self.definitions.resolve_sensor_def("staged_rollout")
        context = dg.build_sensor_context(
            instance=self.instance,
            cursor=cursor,
            definitions=self.definitions,
            sensor_name=sensor.name,
            resources=dict(self.definitions.resources or {}),
        )
        return sensor.evaluate_tick(context)


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pipeline]:
    """Nine generated days (the seventh's snapshot is refused for nulls): a champion (v1)
    trained on the first six (four held out), and a v2 that pages on
    roughly a tenth of normal rows (``alert_quantile`` 0.9), the kind of model a rollout must stop."""
    home = tmp_path_factory.mktemp("rollout") / "aiops"
    settings = PipelineSettings(start=date(2026, 1, 5), days=9, home=home)
    definitions = build_definitions(settings)
    plan_path = home.parent / "plan.yaml"
    plan_path.write_text(PLAN)
    with dg.DagsterInstance.ephemeral() as instance:
        days = daily_partition_keys(definitions)
        ledger = Ledger.from_env(settings.ledger_url, default_key_file=settings.audit_key_file)
        built = Pipeline(settings, definitions, instance, days, ledger, plan_path)
        for day in days:
            built.run(ingest_selection(), day, raise_on_error=False)
        built.run(
            dg.AssetSelection.assets(*TRAINING_ASSETS),
            config={"ops": {"training_set": {"config": {"until": days[5]}}}},
        )
        built.run(
            dg.AssetSelection.assets("candidate_model"),
            config={"ops": {"candidate_model": {"config": {"alert_quantile": 0.9}}}},
        )
        yield built
        ledger.dispose()
        close_ledgers()


def test_a_failing_canary_halts_the_rollout_and_moves_only_the_canary_back(
    pipeline: Pipeline,
) -> None:
    ledger = pipeline.ledger
    champion = ledger.get_alias(MODEL_NAME, CHAMPION)
    assert champion is not None and champion.version == 1
    cursor = pipeline.tick(None).cursor  # the sensor watches from now on

    started = pipeline.run(
        dg.AssetSelection.assets("champion_model"),
        config={
            "ops": {
                "champion_model": {
                    "config": {
                        "action": "rollout",
                        "version": 2,
                        "rollout_plan": str(pipeline.plan_path),
                    }
                }
            }
        },
    )
    [materialization] = started.asset_materializations_for_node("champion_model")
    assert materialization.metadata["decision"].value == "rollout started"
    assert ledger.get_alias(MODEL_NAME, CHAMPION).version == 1  # type: ignore[union-attr]

    # The canary day: checkout is scored by v2, every other service by the champion.
    canary_day = pipeline.score(pipeline.days[7])
    served = canary_day.groupby("service")[MODEL_VERSION_COLUMN].unique().to_dict()
    assert {service: list(v) for service, v in served.items()} == {
        service: [2 if service == "checkout" else 1] for service in served
    }
    [evaluation] = [
        item
        for item in pipeline.instance.event_log_storage.get_asset_check_execution_history(
            PERFORMANCE_CHECK, limit=1
        )
    ]
    assert evaluation.event is not None and evaluation.event.dagster_event is not None
    check: Any = evaluation.event.dagster_event.event_specific_data
    # The champion answered for its own rows only; the canary slice was measured apart.
    assert check.metadata["rows"].value == int((canary_day["service"] != "checkout").sum())
    canary = canary_day[(canary_day["service"] == "checkout") & (canary_day["label"] == 0)]
    assert check.metadata["rollout/false_alarm_rate"].value == pytest.approx(
        float(canary["alert"].mean())
    )
    assert check.metadata["rollout/false_alarm_rate"].value > 0.02  # the planted failure

    data = pipeline.tick(cursor)
    [rollout] = ledger.rollouts(MODEL_NAME)
    assert rollout.status == "halted"
    assert [(stage.name, stage.status) for stage in rollout.stages] == [("canary", "rolled_back")]
    assert ledger.get_alias(MODEL_NAME, CHAMPION).version == 1  # type: ignore[union-attr]
    assert not data.run_requests
    [observation] = data.asset_events
    assert observation.asset_key == dg.AssetKey("champion_model")
    assert observation.metadata["stage_status"].value == "rolled_back"
    assert "checkout back on v1" in str(observation.metadata["summary"].value)

    # The next day every service, checkout included, is served by the champion again.
    after = pipeline.score(pipeline.days[8])
    assert set(after[MODEL_VERSION_COLUMN]) == {1}
    assert ledger.verify_audit().ok
    kinds = [entry.action for entry in ledger.audit_entries()]
    assert kinds.count("rollout_stage") == 2 and "rollout_start" in kinds


def test_a_person_starts_watches_and_halts_a_rollout_from_the_cli(
    pipeline: Pipeline, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AIOPS_ACTOR", "local:ana")
    home = ["--home", str(pipeline.settings.home)]

    def aiops(*args: str) -> tuple[int, str, str]:
        code = main(list(args))
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    code, out, err = aiops(
        "rollout", "start", "2", "--plan", str(pipeline.plan_path), "--reason", "retry", *home
    )
    assert code == 0, err
    assert "stage canary serves checkout" in out

    code, out, _ = aiops("rollout", "status", "--json", *home)
    latest = json.loads(out)[-1]
    assert (latest["status"], latest["version"], latest["started_by"]) == (
        "running",
        2,
        "local:ana",
    )
    assert latest["serving"]["checkout"] == 2
    assert {v for s, v in latest["serving"].items() if s != "checkout"} == {1}
    code, out, err = aiops("rollout", "start", "2", "--reason", "twice", *home)
    assert code == 1 and "already has rollout" in err

    # While it runs, the promotion gate moves nothing: the rollout finishes first.
    gated = pipeline.run(dg.AssetSelection.assets("champion_model"))
    [decision] = gated.asset_materializations_for_node("champion_model")
    assert decision.metadata["decision"].value == "kept"
    assert "is running" in str(decision.metadata["reason"].value)

    code, out, _ = aiops("rollout", "halt", "--reason", "checkout pages at night", *home)
    assert code == 0 and "every service is back on v1" in out
    code, out, _ = aiops("rollout", "status", *home)
    assert "halted" in out and "halted by local:ana: checkout pages at night" in out
    code, out, err = aiops("rollout", "halt", "--reason", "again", *home)
    assert code == 1 and "no running rollout" in err
    # Nothing serves v2 any more; the champion never moved.
    assert set(pipeline.score(pipeline.days[8])[MODEL_VERSION_COLUMN]) == {1}
    assert pipeline.ledger.get_alias(MODEL_NAME, CHAMPION).version == 1  # type: ignore[union-attr]
    assert pipeline.ledger.verify_audit().ok
