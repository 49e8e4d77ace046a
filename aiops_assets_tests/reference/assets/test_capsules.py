"""Capsules as the assets record them: a changed seed is a different, recorded model."""

from __future__ import annotations

import shutil
from pathlib import Path

import dagster as dg

from aiops_assets.core.ledger import Ledger
from aiops_assets.core.registry import CHAMPION, MODEL_NAME
from aiops_assets.reference.definitions import build_definitions
from aiops_assets.reference.settings import PipelineSettings
from aiops_assets.resources import close_ledgers
from aiops_assets.runner import materialize_selection


def test_a_changed_seed_gives_a_different_recorded_hash_and_capsule(
    trained_home: PipelineSettings, tmp_path: Path
) -> None:
    home = tmp_path / "aiops"
    shutil.copytree(trained_home.home, home)
    settings = trained_home.with_overrides(home=home)
    with dg.DagsterInstance.ephemeral() as instance:
        result = materialize_selection(
            build_definitions(settings),
            instance,
            ["candidate_model"],
            run_config={
                "ops": {
                    "candidate_model": {"config": {"seed": 8, "success_criterion": "pr_auc>=0.5"}}
                }
            },
        )
    close_ledgers()
    [materialization] = [
        event.materialization
        for event in result.get_asset_materialization_events()
        if event.asset_key == dg.AssetKey("candidate_model")
    ]
    capsule_id = str(materialization.metadata["capsule_id"].value)
    ledger = Ledger.from_env(settings.ledger_url, default_key_file=settings.audit_key_file)
    try:
        champion = ledger.get_alias(MODEL_NAME, CHAMPION)
        capsule = ledger.get_capsule(capsule_id)
        assert champion is not None and capsule is not None
        new_sha = capsule.outputs["candidate_model"]
        assert new_sha != champion.sha256, "another seed, another model"
        assert capsule.seeds["candidate_model"] == 8
        version = ledger.find_version(MODEL_NAME, new_sha)
        assert version is not None and version.capsule_ref == capsule_id
        run = ledger.get_experiment_run(result.run_id)
        assert run is not None and run.capsule_id == capsule_id
        assert run.success_criterion == "pr_auc>=0.5" and run.criterion_met is True
    finally:
        ledger.dispose()
