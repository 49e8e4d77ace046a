"""``aiops reproduce``, ``aiops capsule export|import`` and ``aiops runs`` as a user runs them."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import dagster as dg
import pytest

from aiops_assets.core.capsule import Capsule
from aiops_assets.core.ledger import Ledger
from aiops_assets.core.lifecycle import ABLATION_KIND_TAG
from aiops_assets.core.registry import CHAMPION, MODEL_NAME
from aiops_assets.reference.definitions import REPRODUCIBLE_CHECK, build_definitions
from aiops_assets.reference.settings import PipelineSettings
from aiops_assets_tests.cli.process import aiops_process as _aiops


def _copy_home(settings: PipelineSettings, target: Path) -> Path:
    shutil.copytree(settings.home, target)
    return target


@pytest.mark.subprocess
def test_reproduce_the_champion_succeeds(trained_home: PipelineSettings, tmp_path: Path) -> None:
    completed = _aiops("reproduce", "champion", "--home", str(trained_home.home), cwd=tmp_path)
    assert completed.returncode == 0, completed.stderr
    assert "REPRODUCED" in completed.stdout and "NOT REPRODUCED" not in completed.stdout
    assert "ok  model sha256" in completed.stdout
    by_version = _aiops("reproduce", "v1", "--json", "--home", str(trained_home.home), cwd=tmp_path)
    report = json.loads(by_version.stdout)
    assert report["ok"] and report["capsule_id"]


@pytest.mark.subprocess
def test_reproduce_fails_with_a_diff_after_the_seed_is_altered(
    trained_home: PipelineSettings, tmp_path: Path
) -> None:
    home = _copy_home(trained_home, tmp_path / "home")
    ledger = Ledger.from_env(f"sqlite:///{home / 'ledger.db'}", default_key_file=home / "audit.key")
    champion = ledger.get_alias(MODEL_NAME, CHAMPION)
    assert champion is not None and champion.capsule_ref
    capsule = ledger.get_capsule(champion.capsule_ref)
    assert capsule is not None
    model_config = {**capsule.config["candidate_model"], "seed": 99}
    altered = Capsule(
        {**capsule.body, "config": {**capsule.config, "candidate_model": model_config}}
    )
    ledger.record_capsule(altered)
    ledger.dispose()
    completed = _aiops("reproduce", altered.capsule_id[:12], "--home", str(home), cwd=tmp_path)
    assert completed.returncode == 1, completed.stderr
    assert "NOT REPRODUCED" in completed.stdout
    assert "DIFF model sha256: recorded" in completed.stdout


@pytest.mark.subprocess
def test_reproduce_fails_after_a_snapshot_byte_is_altered(
    trained_home: PipelineSettings, tmp_path: Path
) -> None:
    home = _copy_home(trained_home, tmp_path / "home")
    objects = home / "store" / "objects"
    # Features are recomputed from snapshots: alter one byte of a snapshot the capsule names.
    ledger = Ledger.from_env(f"sqlite:///{home / 'ledger.db'}", default_key_file=home / "audit.key")
    champion = ledger.get_alias(MODEL_NAME, CHAMPION)
    assert champion is not None and champion.capsule_ref
    capsule = ledger.get_capsule(champion.capsule_ref)
    ledger.dispose()
    assert capsule is not None
    digest = next(sha for name, sha in capsule.inputs.items() if "telemetry_snapshot" in name)
    path = objects / digest[:2] / digest[2:]
    data = bytearray(path.read_bytes())
    data[100] ^= 0x01
    path.chmod(0o644)
    path.write_bytes(bytes(data))
    completed = _aiops("reproduce", "champion", "--home", str(home), cwd=tmp_path)
    assert completed.returncode == 1
    assert "NOT REPRODUCED" in completed.stdout and "corrupt" in completed.stdout


@pytest.mark.subprocess
def test_export_import_into_an_empty_store_then_reproduce(
    trained_home: PipelineSettings, tmp_path: Path
) -> None:
    bundle = tmp_path / "champion.tar.gz"
    exported = _aiops(
        "capsule", "export", "champion", str(bundle), "--json", "--home", str(trained_home.home),
        cwd=tmp_path,
    )  # fmt: skip
    assert exported.returncode == 0, exported.stderr
    summary = json.loads(exported.stdout)
    assert summary["lock_file"] and summary["objects"] >= 4
    empty = tmp_path / "elsewhere"
    imported = _aiops("capsule", "import", str(bundle), "--home", str(empty), cwd=tmp_path)
    assert imported.returncode == 0, imported.stderr
    completed = _aiops("reproduce", summary["capsule_id"], "--home", str(empty), cwd=tmp_path)
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert "REPRODUCED" in completed.stdout


@pytest.mark.subprocess
def test_a_damaged_bundle_is_refused(trained_home: PipelineSettings, tmp_path: Path) -> None:
    bundle = tmp_path / "champion.tar.gz"
    assert (
        _aiops(
            "capsule", "export", "champion", str(bundle), "--home", str(trained_home.home),
            cwd=tmp_path,
        ).returncode
        == 0
    )  # fmt: skip
    data = bytearray(bundle.read_bytes())
    data[len(data) // 2] ^= 0xFF
    bundle.write_bytes(bytes(data))
    imported = _aiops("capsule", "import", str(bundle), "--home", str(tmp_path / "x"), cwd=tmp_path)
    assert imported.returncode == 2
    assert "aiops capsule import:" in imported.stderr and "Traceback" not in imported.stderr


@pytest.mark.subprocess
def test_unknown_targets_say_what_was_tried(trained_home: PipelineSettings, tmp_path: Path) -> None:
    completed = _aiops("reproduce", "v42", "--home", str(trained_home.home), cwd=tmp_path)
    assert completed.returncode == 2
    assert "has no version 42" in completed.stderr
    completed = _aiops("reproduce", "nothing-here", "--home", str(trained_home.home), cwd=tmp_path)
    assert completed.returncode == 2 and "is not an alias" in completed.stderr


@pytest.mark.subprocess
def test_runs_search_finds_the_demo_trainings(
    trained_home: PipelineSettings, tmp_path: Path
) -> None:
    found = _aiops(
        "runs", "search", "--metric", "pr_auc>0.5", "--json", "--home", str(trained_home.home),
        cwd=tmp_path,
    )  # fmt: skip
    assert found.returncode == 0, found.stderr
    runs = json.loads(found.stdout)
    assert runs and all(run["metrics"]["pr_auc"] > 0.5 for run in runs)
    # Trainings carry their capsule; the demo's feature-set ablation trains outside the
    # pipeline and has none.
    trainings = [run for run in runs if run["tags"].get(ABLATION_KIND_TAG) != "ablation"]
    assert trainings and all(run["capsule_id"] for run in trainings)


@pytest.mark.slow
def test_the_reproducible_check_runs_on_demand_only(
    trained_home: PipelineSettings,
) -> None:
    definitions = build_definitions(trained_home)
    job = definitions.resolve_job_def("train_and_promote_job")
    # A training run does not pay for a second training: the check is not in the job.
    assert REPRODUCIBLE_CHECK not in job.asset_layer.asset_graph.asset_check_keys
    assets = [
        item
        for item in [*(definitions.assets or []), *(definitions.asset_checks or [])]
        if isinstance(item, dg.AssetsDefinition)
    ]
    with dg.DagsterInstance.ephemeral() as instance:
        result = dg.materialize(
            assets,
            instance=instance,
            resources=definitions.resources,
            selection=dg.AssetSelection.checks(REPRODUCIBLE_CHECK),
        )
    [evaluation] = result.get_asset_check_evaluations()
    assert evaluation.passed, evaluation.metadata["summary"]
    assert evaluation.asset_check_key == REPRODUCIBLE_CHECK


@pytest.mark.subprocess
def test_export_needs_the_export_permission(trained_home: PipelineSettings, tmp_path: Path) -> None:
    refused = _aiops(
        "capsule", "export", "champion", str(tmp_path / "b.tar.gz"), "--home",
        str(trained_home.home), cwd=tmp_path, env={"AIOPS_ACTOR": "sensor:retrain_on_drift"},
    )  # fmt: skip
    assert refused.returncode == 3
    assert "may not export capsule:" in refused.stderr
    assert not (tmp_path / "b.tar.gz").exists()


@pytest.mark.subprocess
@pytest.mark.parametrize("damage", ["corrupt", "delete"])
def test_reproduce_refuses_a_corrupt_or_missing_stored_champion(
    trained_home: PipelineSettings, tmp_path: Path, damage: str
) -> None:
    # A re-run that matches the recorded hashes proves nothing about the bytes the registry
    # serves: the verdict must also cover the stored champion object, and name it.
    home = _copy_home(trained_home, tmp_path / "home")
    ledger = Ledger.from_env(f"sqlite:///{home / 'ledger.db'}", default_key_file=home / "audit.key")
    champion = ledger.get_alias(MODEL_NAME, CHAMPION)
    ledger.dispose()
    assert champion is not None
    path = home / "store" / "objects" / champion.sha256[:2] / champion.sha256[2:]
    path.chmod(0o644)
    if damage == "corrupt":
        data = bytearray(path.read_bytes())
        data[len(data) // 2] ^= 0x01
        path.write_bytes(bytes(data))
    else:
        path.unlink()
    completed = _aiops("reproduce", "champion", "--home", str(home), cwd=tmp_path)
    assert completed.returncode == 1, completed.stdout + completed.stderr
    assert "NOT REPRODUCED" in completed.stdout
    [problem] = [line for line in completed.stdout.splitlines() if "problem:" in line]
    assert f"stored candidate_model object {champion.sha256}" in problem
    assert ("is missing" if damage == "delete" else "is corrupt") in problem
    # The retraining itself still ran and matched: the damage is the only reason for the verdict.
    assert "ok  model sha256" in completed.stdout
