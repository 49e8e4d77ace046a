"""Re-running a model capsule: identical bytes from the same capsule, a named diff otherwise."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from aiops_assets.core.capsule import Capsule
from aiops_assets.core.ledger import Ledger
from aiops_assets.core.registry import CHAMPION, MODEL_NAME
from aiops_assets.core.reproduce import (
    ReproductionError,
    reproduce_model_capsule,
    run_in_fresh_process,
)
from aiops_assets.core.store import ArtifactStore
from aiops_assets.reference.settings import PipelineSettings


@pytest.fixture
def ledger(trained_home: PipelineSettings) -> Iterator[Ledger]:
    opened = Ledger.from_env(trained_home.ledger_url, default_key_file=trained_home.audit_key_file)
    yield opened
    opened.dispose()


def _champion_capsule(ledger: Ledger) -> Capsule:
    champion = ledger.get_alias(MODEL_NAME, CHAMPION)
    assert champion is not None and champion.capsule_ref
    capsule = ledger.get_capsule(champion.capsule_ref)
    assert capsule is not None
    return capsule


def _altered(capsule: Capsule, **changes: Any) -> Capsule:
    body = {**capsule.body}
    for path, value in changes.items():
        section, key = path.split("__")
        body[section] = {**body[section], key: value}
    return Capsule(body)


def test_the_champion_capsule_names_the_whole_chain(ledger: Ledger) -> None:
    capsule = _champion_capsule(ledger)
    champion = ledger.get_alias(MODEL_NAME, CHAMPION)
    assert champion is not None
    assert capsule.kind == "model" and capsule.outputs["candidate_model"] == champion.sha256
    assert any(name.startswith("telemetry_snapshot[") for name in capsule.inputs)
    assert any(name.startswith("features[") for name in capsule.inputs)
    assert set(capsule.seeds) == {"training_set", "candidate_model"}
    assert capsule.parent is not None and ledger.get_capsule(capsule.parent) is not None
    assert capsule.environment["packages"]["numpy"]


@pytest.mark.subprocess  # the second training runs in a fresh process
def test_two_trainings_from_one_capsule_give_identical_bytes(
    trained_home: PipelineSettings, ledger: Ledger
) -> None:
    capsule = _champion_capsule(ledger)
    store = ArtifactStore(trained_home.store_root)
    first = reproduce_model_capsule(capsule, store)
    second = run_in_fresh_process(capsule, trained_home.store_root)
    assert first.ok and second.ok, first.lines() + second.lines()
    assert first.to_dict()["comparisons"] == second.to_dict()["comparisons"]
    names = [item.name for item in first.comparisons]
    assert "model sha256" in names and "training_set sha256" in names
    assert sum(name.startswith("features[") for name in names) >= 2


def test_a_changed_seed_gives_a_different_model_and_says_so(
    trained_home: PipelineSettings, ledger: Ledger
) -> None:
    capsule = _champion_capsule(ledger)
    seed = capsule.config["candidate_model"]["seed"]
    altered = _altered(
        capsule, config__candidate_model={**capsule.config["candidate_model"], "seed": seed + 1}
    )
    assert altered.capsule_id != capsule.capsule_id
    result = reproduce_model_capsule(altered, ArtifactStore(trained_home.store_root))
    assert not result.ok
    by_name = {item.name: item for item in result.comparisons}
    assert by_name["training_set sha256"].ok, "the seed only changes the model"
    assert not by_name["model sha256"].ok
    assert by_name["model sha256"].recorded == capsule.outputs["candidate_model"]
    assert any(line.startswith("  DIFF model sha256: recorded") for line in result.lines())


def test_a_changed_package_version_shows_in_the_environment_diff(
    trained_home: PipelineSettings, ledger: Ledger
) -> None:
    capsule = _champion_capsule(ledger)
    packages = {**capsule.environment["packages"], "numpy": "1.26.0"}
    altered = _altered(capsule, environment__packages=packages)
    result = reproduce_model_capsule(altered, ArtifactStore(trained_home.store_root))
    assert result.ok, "the outcome still matches; the environment difference is reported"
    current = capsule.environment["packages"]["numpy"]
    assert f"package numpy 1.26.0 -> {current}" in result.environment


def test_an_altered_snapshot_is_refused_naming_it(
    trained_home: PipelineSettings, ledger: Ledger, tmp_path: Path
) -> None:
    capsule = _champion_capsule(ledger)
    store_copy = tmp_path / "store"
    shutil.copytree(trained_home.store_root, store_copy)
    _name, digest = next(
        (name, sha) for name, sha in sorted(capsule.inputs.items()) if "snapshot" in name
    )
    path = store_copy / "objects" / digest[:2] / digest[2:]
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.chmod(0o644)
    path.write_bytes(bytes(data))
    result = reproduce_model_capsule(capsule, ArtifactStore(store_copy))
    assert not result.ok
    assert any("corrupt" in problem and digest in problem for problem in result.problems), (
        result.problems
    )


def test_a_training_set_capsule_is_not_a_model_to_reproduce(
    trained_home: PipelineSettings, ledger: Ledger
) -> None:
    parent = ledger.get_capsule(str(_champion_capsule(ledger).parent))
    assert parent is not None
    with pytest.raises(ReproductionError, match="only 'model' capsules"):
        reproduce_model_capsule(parent, ArtifactStore(trained_home.store_root))
