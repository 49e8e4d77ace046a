"""Safe loading: a registered model loads only when its bytes match the ledger's hash, and even
then builds nothing but trusted types."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from aiops_assets.core.ledger import Ledger, ModelVersion
from aiops_assets.core.model_codec import put_detector
from aiops_assets.core.registry import (
    MODEL_NAME,
    MissingModelError,
    TamperedModelError,
    UnloadableModelError,
    artifact_tags,
    load_model,
)
from aiops_assets.core.store import PICKLE, SKOPS, ArtifactRef, ArtifactStore, StoreError
from aiops_assets_tests.core.planted_models import (
    planted_class,
    planted_os_system,
    planted_pickle,
    small_detector,
)


def _registered(
    tmp_path: Path, ref: ArtifactRef | None = None
) -> tuple[ArtifactStore, Ledger, Path]:
    """``ref`` (default: a real detector) registered properly, audit key and all: a vouched version."""
    store = ArtifactStore(tmp_path / "store")
    ref = ref or put_detector(store, small_detector())
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
    frame = pd.DataFrame({"latency__z_12": [0.0, 4.0], "ratio__errors": [0.5, 0.9]})
    loaded = load_model(store, _version_one(ledger))
    np.testing.assert_array_equal(loaded.score(frame), small_detector().score(frame))
    assert _version_one(ledger).tags["media_type"] == SKOPS


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


@pytest.mark.parametrize(
    "plant", [planted_os_system, planted_class], ids=["os.system", "own-class"]
)
def test_a_vouched_skops_file_naming_an_untrusted_type_is_refused_unexecuted(
    tmp_path: Path, plant: object
) -> None:
    # The ledger hash matches (the version was registered with the audit key): the codec is
    # what stops it.
    marker = tmp_path / "pwned"
    store = ArtifactStore(tmp_path / "store")
    planted = store.put_bytes(plant(marker), SKOPS)  # type: ignore[operator]
    store, ledger, _ = _registered(tmp_path, planted)
    with pytest.raises(
        UnloadableModelError, match=rf"refusing to load {MODEL_NAME} v1 .*outside the trusted list"
    ):
        load_model(store, _version_one(ledger))
    assert not marker.exists()


@pytest.mark.parametrize("media_type", [PICKLE, SKOPS])
def test_a_vouched_pickle_is_refused_unexecuted_with_a_retrain_hint(
    tmp_path: Path, media_type: str
) -> None:
    # PICKLE: a model an older release stored; SKOPS: a pickle whose ref claims to be skops.
    marker = tmp_path / "pwned"
    planted = ArtifactStore(tmp_path / "store").put_bytes(planted_pickle(marker), media_type)
    store, ledger, _ = _registered(tmp_path, planted)
    with pytest.raises(UnloadableModelError, match=r"refusing to load .*pickle.*retrain"):
        load_model(store, _version_one(ledger))
    assert not marker.exists()


@pytest.mark.parametrize("media_type", [PICKLE, SKOPS])
def test_the_store_never_decodes_a_model_from_a_ref(tmp_path: Path, media_type: str) -> None:
    marker = tmp_path / "pwned"
    store = ArtifactStore(tmp_path / "store")
    planted = store.put_bytes(planted_pickle(marker), media_type)
    with pytest.raises(StoreError, match="models load only through a registered version"):
        store.load(planted)
    assert not marker.exists()


def _version_one(ledger: Ledger) -> ModelVersion:
    version = ledger.get_version(MODEL_NAME, 1)
    assert version is not None
    return version
