"""MLflow pyfunc models in the store: one archive per model, the same bytes for the same model,
loaded back only through a registered version whose hash they match, and refusing archives
that would write outside their folder."""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path
from typing import Any

import mlflow
import mlflow.pyfunc
import pandas as pd
import pytest
import yaml
from mlflow.pyfunc import PythonModel

from aiops_assets.core.ledger import Ledger, ModelVersion
from aiops_assets.core.mlflow_format import (
    FORMAT_NAME,
    MEDIA_TYPE,
    MLFLOW_VERSION_TAG,
    MODEL_FORMAT_TAG,
    MlflowPyfuncFormat,
    archive_model_dir,
    load_pyfunc,
    put_pyfunc,
    unpack,
)
from aiops_assets.core.model_codec import ModelFormatError
from aiops_assets.core.registry import TamperedModelError, UnloadableModelError
from aiops_assets.core.store import ArtifactStore

KEY = b"mlflow-format-test-key-0123456789abcdef"
# Given, so MLflow does not infer requirements (which loads the model in a subprocess).
SAVE = {"pip_requirements": ["pandas"]}
NO_UV_FILES = "MLFLOW_LOG_UV_FILES"


class Scaled(PythonModel):
    """A host's own model: scores are the input times a factor it was 'trained' with."""

    def __init__(self, factor: float) -> None:
        self.factor = factor

    def predict(self, context: Any, model_input: pd.DataFrame, params: Any = None) -> Any:
        return model_input * self.factor


@pytest.fixture(autouse=True)
def _no_project_files(monkeypatch: pytest.MonkeyPatch) -> None:
    """MLflow copies the uv project of the working directory (our uv.lock) into every model it
    saves; these models stay independent of where the tests run."""
    monkeypatch.setenv(NO_UV_FILES, "false")


def _register(ledger: Ledger, store: ArtifactStore, model: Any) -> ModelVersion:
    ref, tags = put_pyfunc(store, model, save_options=SAVE)
    return ledger.register_model_version(
        "host_model",
        ref.sha256,
        metrics={"pr_auc": 0.9},
        training_set_version="t1",
        feature_set_version="f1",
        actor="local:test",
        tags=tags,
    )


@pytest.fixture
def ledger(tmp_path: Path) -> Any:
    opened = Ledger(f"sqlite:///{tmp_path / 'ledger.db'}", audit_key=KEY)
    yield opened
    opened.dispose()


def test_a_registered_pyfunc_round_trips_and_records_its_format(
    ledger: Ledger, tmp_path: Path
) -> None:
    store = ArtifactStore(tmp_path / "store")
    version = _register(ledger, store, Scaled(3.0))
    assert version.tags[MODEL_FORMAT_TAG] == FORMAT_NAME
    assert version.tags[MLFLOW_VERSION_TAG] == mlflow.__version__
    assert version.tags["media_type"] == MEDIA_TYPE
    vouched = ledger.vouched_version("host_model", version=version.version)
    assert vouched is not None
    model = load_pyfunc(store, vouched)
    scores = model.predict(pd.DataFrame({"x": [1.0, 2.0]}))
    assert scores["x"].tolist() == [3.0, 6.0]
    # The same model saved again is the same bytes, so the same version, not a new one.
    again = _register(ledger, store, Scaled(3.0))
    assert (again.version, again.sha256) == (version.version, version.sha256)
    other = _register(ledger, store, Scaled(4.0))
    assert other.version == version.version + 1 and other.sha256 != version.sha256


def test_the_archive_ignores_times_and_made_up_ids(tmp_path: Path) -> None:
    first, second = tmp_path / "a", tmp_path / "b"
    mlflow.pyfunc.save_model(str(first), python_model=Scaled(2.0), **SAVE)
    mlflow.pyfunc.save_model(str(second), python_model=Scaled(2.0), **SAVE)
    assert (first / "MLmodel").read_text() != (second / "MLmodel").read_text()
    os.utime(first / "conda.yaml", (0, 0))
    assert archive_model_dir(first) == archive_model_dir(second)
    with tarfile.open(fileobj=io.BytesIO(archive_model_dir(first))) as archive:
        names = archive.getnames()
        assert {member.mtime for member in archive.getmembers()} == {0}
        handle = archive.extractfile("MLmodel")
        assert handle is not None
        document = yaml.safe_load(handle.read())
    assert names == sorted(names)
    assert not {"utc_time_created", "model_uuid", "model_id"} & set(document)
    assert document["mlflow_version"] == mlflow.__version__


def test_a_changed_byte_in_the_store_is_refused_before_mlflow_reads_it(
    ledger: Ledger, tmp_path: Path
) -> None:
    store = ArtifactStore(tmp_path / "store")
    version = _register(ledger, store, Scaled(1.5))
    path = tmp_path / "store" / "objects" / version.sha256[:2] / version.sha256[2:]
    data = bytearray(path.read_bytes())
    data[-1] ^= 1
    path.write_bytes(bytes(data))
    with pytest.raises(TamperedModelError, match="does not match the hash"):
        load_pyfunc(store, version)


def test_a_version_of_another_format_is_not_read_as_a_pyfunc(
    ledger: Ledger, tmp_path: Path
) -> None:
    store = ArtifactStore(tmp_path / "store")
    ref = store.put_bytes(b"PK\x03\x04 not a pyfunc", "application/x-skops")
    version = ledger.register_model_version(
        "host_model",
        ref.sha256,
        metrics={},
        training_set_version="t",
        feature_set_version="f",
        actor="local:test",
        tags={"media_type": ref.media_type, "size": str(ref.size), MODEL_FORMAT_TAG: "skops"},
    )
    with pytest.raises(UnloadableModelError, match="stored as 'skops'"):
        load_pyfunc(store, version)


def _tar(*members: tuple[tarfile.TarInfo, bytes]) -> bytes:
    sink = io.BytesIO()
    with tarfile.open(fileobj=sink, mode="w") as archive:
        for info, data in members:
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return sink.getvalue()


def _link(name: str, target: str) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = tarfile.SYMTYPE, target
    return info


@pytest.mark.parametrize(
    "members",
    [
        [(tarfile.TarInfo("../escape"), b"x"), (tarfile.TarInfo("MLmodel"), b"{}")],
        [(tarfile.TarInfo("/abs/MLmodel"), b"{}")],
        [(_link("MLmodel", "/etc/passwd"), b"")],
        [(tarfile.TarInfo("conda.yaml"), b"only")],
    ],
    ids=["dot-dot", "absolute", "symlink", "no-mlmodel"],
)
def test_an_archive_that_is_not_a_plain_model_folder_is_refused(
    members: list[tuple[tarfile.TarInfo, bytes]], tmp_path: Path
) -> None:
    with pytest.raises(ModelFormatError):
        unpack(_tar(*members), tmp_path / "out")
    assert not (tmp_path / "escape").exists()
    with pytest.raises(ModelFormatError):
        MlflowPyfuncFormat().load(_tar(*members))


def test_a_folder_with_a_link_or_without_mlmodel_is_not_archived(tmp_path: Path) -> None:
    with pytest.raises(ModelFormatError, match="no MLmodel"):
        archive_model_dir(tmp_path)
    saved = tmp_path / "m"
    mlflow.pyfunc.save_model(str(saved), python_model=Scaled(1.0), **SAVE)
    (saved / "leak").symlink_to("/etc/hostname")
    with pytest.raises(ModelFormatError, match="symbolic link"):
        archive_model_dir(saved)
