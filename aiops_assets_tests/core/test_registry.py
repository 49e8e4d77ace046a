"""Safe loading: a registered model loads only when its bytes match the ledger's hash."""

from __future__ import annotations

from pathlib import Path

import pytest

from aiops_assets.core.ledger import Ledger, ModelVersion
from aiops_assets.core.registry import (
    MODEL_NAME,
    MissingModelError,
    TamperedModelError,
    artifact_tags,
    load_model,
)
from aiops_assets.core.store import ArtifactStore


def _registered(tmp_path: Path) -> tuple[ArtifactStore, Ledger, Path]:
    store = ArtifactStore(tmp_path / "store")
    ref = store.put_pickle({"threshold": 0.7, "weights": [1, 2, 3]})
    ledger = Ledger(f"sqlite:///{tmp_path / 'ledger.db'}", audit_key=b"k" * 32)
    ledger.register_model_version(
        MODEL_NAME,
        ref.sha256,
        metrics={"pr_auc": 0.9},
        training_set_version="t" * 64,
        feature_set_version="features-v1",
        actor="local:test",
        tags=artifact_tags(ref),
    )
    path = tmp_path / "store" / "objects" / ref.sha256[:2] / ref.sha256[2:]
    assert path.is_file()
    return store, ledger, path


def test_a_registered_model_loads_when_its_bytes_verify(tmp_path: Path) -> None:
    store, ledger, _ = _registered(tmp_path)
    assert load_model(store, _version_one(ledger)) == {"threshold": 0.7, "weights": [1, 2, 3]}


def test_a_tampered_model_is_refused_naming_the_version(tmp_path: Path) -> None:
    store, ledger, path = _registered(tmp_path)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.chmod(0o644)
    path.write_bytes(bytes(data))
    with pytest.raises(TamperedModelError, match=rf"refusing to load {MODEL_NAME} v1"):
        load_model(store, _version_one(ledger))


def test_a_missing_model_artifact_says_which_store(tmp_path: Path) -> None:
    store, ledger, path = _registered(tmp_path)
    path.unlink()
    with pytest.raises(
        MissingModelError, match="is registered but its artifact is not in the store"
    ):
        load_model(store, _version_one(ledger))


def _version_one(ledger: Ledger) -> ModelVersion:
    version = ledger.get_version(MODEL_NAME, 1)
    assert version is not None
    return version
