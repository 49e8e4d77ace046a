"""The skops codec for any scikit-learn model: equal bytes for equal models, a closed type list."""

import io
import zipfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn.ensemble import GradientBoostingClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from aiops_assets.core.ledger import ModelVersion
from aiops_assets.core.model_codec import (
    ModelFormat,
    ModelFormatError,
    SkopsFormat,
    dump_model,
    load_model_bytes,
)
from aiops_assets.core.registry import UnloadableModelError, artifact_tags, load_version
from aiops_assets.core.store import SKOPS, ArtifactStore


def _fitted(seed: int = 0) -> Any:
    rng = np.random.default_rng(3)
    x = rng.normal(size=(300, 4))
    y = (x[:, 0] + 0.5 * x[:, 1] > 0).astype(int)
    model = make_pipeline(
        StandardScaler(), GradientBoostingClassifier(n_estimators=15, random_state=seed)
    )
    return model.fit(x, y)


def test_a_pipeline_round_trips_and_the_same_training_gives_the_same_bytes() -> None:
    first, again = dump_model(_fitted()), dump_model(_fitted())
    assert first == again
    assert dump_model(_fitted(seed=1)) != first
    loaded = load_model_bytes(first)
    x = np.random.default_rng(4).normal(size=(20, 4))
    np.testing.assert_array_equal(loaded.predict_proba(x), _fitted().predict_proba(x))
    assert isinstance(SkopsFormat(), ModelFormat) and SkopsFormat().name == "skops"


def test_a_type_off_the_trusted_list_is_refused_before_anything_is_built() -> None:
    data = dump_model(_fitted())
    with pytest.raises(ModelFormatError, match=r"sklearn\.tree\._tree\.Tree"):
        load_model_bytes(data, trusted_types=("numpy.dtype",))


def test_a_tree_with_a_crafted_child_index_is_refused() -> None:
    model = _fitted()
    tree = model[-1].estimators_[0, 0].tree_
    data = dump_model(model)
    # Rewrite the stored node array: the first node's left child points outside the tree.
    with zipfile.ZipFile(io.BytesIO(data)) as source:
        entries = {name: source.read(name) for name in source.namelist()}
    count = int(tree.node_count)
    patched = 0
    for name, payload in entries.items():
        if not name.endswith(".npy"):
            continue
        array = np.load(io.BytesIO(payload), allow_pickle=False)
        if array.dtype.names and "left_child" in array.dtype.names and len(array) == count:
            array = array.copy()
            array["left_child"][0] = count + 50
            sink = io.BytesIO()
            np.save(sink, array, allow_pickle=False)
            entries[name] = sink.getvalue()
            patched += 1
            break
    assert patched == 1
    sink = io.BytesIO()
    with zipfile.ZipFile(sink, "w") as target:
        for name, payload in entries.items():
            target.writestr(name, payload)
    with pytest.raises(ModelFormatError, match="out of range"):
        load_model_bytes(sink.getvalue())


def _version(store: ArtifactStore, data: bytes, **tags: str) -> ModelVersion:
    ref = store.put_bytes(data, SKOPS)
    return ModelVersion(
        model_name="slo_breach",
        version=1,
        sha256=ref.sha256,
        metrics={},
        training_set_version="",
        feature_set_version="",
        capsule_ref=None,
        run_id=None,
        created_at=datetime.now(UTC),
        created_by="local:test",
        tags={**artifact_tags(ref), **tags},
    )


def test_a_version_loads_only_through_the_format_that_wrote_it(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path / "store")
    version = _version(store, dump_model(_fitted()), model_format="skops")
    assert hasattr(load_version(store, version, SkopsFormat()), "predict_proba")
    foreign = _version(store, dump_model(_fitted(seed=2)), model_format="mlflow-pyfunc")
    with pytest.raises(UnloadableModelError, match="stored as 'mlflow-pyfunc'"):
        load_version(store, foreign, SkopsFormat())
