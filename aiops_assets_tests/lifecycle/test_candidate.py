"""A host's own training asset registers its model through the public API alone.

``register_candidate`` and ``record_capsule`` are what the lifecycle's candidate asset and the
reference ``candidate_model`` call; here a host asset of a dozen lines calls them, materialized
by ``dg.materialize``, and the ledger says what the registry must know.
"""

import hashlib
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

import aiops_assets as aiops
from aiops_assets.core.capsule import build_capsule
from aiops_assets.core.ledger import Ledger
from aiops_assets.core.registry import CHALLENGER

MODEL = "host_model"
METRICS = {"f1": 0.8, "false_alarm_rate": 0.01}


class HostTrainingConfig(dg.Config):
    weights: str = "weights-1"
    success_criterion: str = "f1>=0.5"


@dg.asset
def host_model(
    context: dg.AssetExecutionContext,
    config: HostTrainingConfig,
    artifact_store: aiops.ArtifactStoreResource,
    ledger: aiops.LedgerResource,
) -> dg.MaterializeResult:
    store = artifact_store.get_store()
    ref = store.put_bytes(config.weights.encode(), "application/octet-stream")
    capsule = build_capsule(
        kind="model",
        asset="host_model",
        run_id=context.run.run_id,
        seeds={"host_model": 3},
        config={"host_model": config.model_dump()},
        inputs={"training_set": "f" * 64},
        code_versions={"host_model": "1"},
        outputs={"host_model": ref.sha256},
        metrics=METRICS,
    )
    version, links = aiops.register_candidate(
        context,
        ledger.get_ledger(),
        store,
        model_name=MODEL,
        model=ref,
        capsule=capsule,
        metrics=METRICS,
        training_set_version="f" * 64,
        tags={"team": "sre"},
        hypothesis="the host's model registers like the reference's",
        success_criterion=config.success_criterion,
    )
    return dg.MaterializeResult(
        metadata={**links, "model_version": dg.MetadataValue.int(version.version)}
    )


@pytest.fixture
def resources(tmp_path: Path) -> dict[str, Any]:
    return aiops.lifecycle_resources(tmp_path)


def _train(
    resources: dict[str, Any],
    instance: dg.DagsterInstance,
    weights: str = "weights-1",
    tags: dict[str, str] | None = None,
) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        [host_model],
        resources=resources,
        instance=instance,
        run_config={"ops": {"host_model": {"config": {"weights": weights}}}},
        tags=tags,
    )


def _ledger(resources: dict[str, Any]) -> Ledger:
    ledger: Ledger = resources["ledger"].get_ledger()
    return ledger


def test_a_host_asset_registers_a_version_with_its_capsule_and_becomes_the_challenger(
    resources: dict[str, Any],
) -> None:
    with dg.instance_for_test() as instance:
        result = _train(resources, instance, tags={"aiops/actor": "alice", "team_run": "r1"})
        assert result.success
        metadata = result.asset_materializations_for_node("host_model")[0].metadata
        ledger = _ledger(resources)
        [version] = ledger.list_versions(MODEL)
        assert version.sha256 == hashlib.sha256(b"weights-1").hexdigest()
        assert version.metrics == METRICS
        assert version.created_by == "alice"
        assert version.tags["team"] == "sre"
        assert version.tags["media_type"] == "application/octet-stream"
        assert ledger.get_alias(MODEL, CHALLENGER) == version
        capsule_id = metadata["capsule_id"].value
        assert version.capsule_ref == capsule_id
        capsule = ledger.get_capsule(str(capsule_id))
        assert capsule is not None and capsule.outputs["host_model"] == version.sha256
        assert metadata["capsule_command"].value == f"aiops reproduce {str(capsule_id)[:12]}"
        run = ledger.get_experiment_run(result.run_id)
        assert run is not None and run.model_version == version.version
        assert run.criterion_met is True
        assert run.tags == {"aiops/actor": "alice", "team_run": "r1"}, "no dagster/ tags"
        heads = instance.fetch_observations(dg.AssetKey("aiops_audit_head"), limit=5).records
        assert heads, "the audit head the run left is witnessed in the event log"


def test_retraining_the_same_bytes_registers_nothing_new_and_other_bytes_move_the_challenger(
    resources: dict[str, Any],
) -> None:
    with dg.instance_for_test() as instance:
        assert _train(resources, instance).success
        assert _train(resources, instance).success
        ledger = _ledger(resources)
        assert [v.version for v in ledger.list_versions(MODEL)] == [1]
        assert len(ledger.alias_history(MODEL, CHALLENGER)) == 1
        assert _train(resources, instance, weights="weights-2").success
        challenger = ledger.get_alias(MODEL, CHALLENGER)
        assert challenger is not None and challenger.version == 2
        assert challenger.sha256 == hashlib.sha256(b"weights-2").hexdigest()


def test_a_malformed_actor_is_refused_before_anything_is_registered(
    resources: dict[str, Any],
) -> None:
    with dg.instance_for_test() as instance:
        result = dg.materialize(
            [host_model],
            resources=resources,
            instance=instance,
            tags={"aiops/actor": "bad\nactor"},
            raise_on_error=False,
        )
        assert not result.success
        ledger = _ledger(resources)
        assert ledger.list_versions(MODEL) == []
        assert ledger.get_alias(MODEL, CHALLENGER) is None
        refused = [e for e in ledger.audit_entries() if e.action == "access_denied"]
        assert refused, "the refusal is audited"


@dg.asset
def host_features(
    context: dg.AssetExecutionContext,
    artifact_store: aiops.ArtifactStoreResource,
    ledger: aiops.LedgerResource,
) -> dg.MaterializeResult:
    store = artifact_store.get_store()
    ref = store.put_bytes(b"features", "application/octet-stream")
    capsule = build_capsule(
        kind="features",
        asset="host_features",
        run_id=context.run.run_id,
        seeds={},
        config={"window": "1h"},
        inputs={},
        code_versions={"host_features": "1"},
        outputs={"host_features": ref.sha256},
        metrics={},
    )
    return dg.MaterializeResult(metadata=aiops.record_capsule(ledger.get_ledger(), store, capsule))


def test_any_asset_records_its_capsule_in_the_ledger_and_the_store(
    resources: dict[str, Any],
) -> None:
    with dg.instance_for_test() as instance:
        result = dg.materialize([host_features], resources=resources, instance=instance)
        metadata = result.asset_materializations_for_node("host_features")[0].metadata
        capsule = _ledger(resources).get_capsule(str(metadata["capsule_id"].value))
        assert capsule is not None and capsule.config == {"window": "1h"}
        stored = resources["artifact_store"].get_store()
        copy = stored.get_json(str(metadata["capsule_artifact"].value))
        assert copy["capsule_id"] == capsule.capsule_id and copy["config"] == {"window": "1h"}
        assert _ledger(resources).list_versions("host_features") == [], "no model version"
