"""MLflow pyfunc models as content-addressed artifacts: any model MLflow can load, in our store.

A host whose models already live as MLflow models (a custom ``PythonModel``, any flavor with a
``python_function`` loader) should not have to re-express them as skops files to get the ledger,
the gate and rollback. An MLflow model is a folder, so it is stored as one deterministic tar
archive of that folder (sorted entries, fixed owner, mode and time, no compression) whose SHA-256
is the artifact hash the ledger registers; the same folder always gives the same bytes.

MLflow writes three values it makes up at save time into ``MLmodel`` (``utc_time_created``,
``model_uuid``, ``model_id``); they are dropped from the archived copy, so saving the same model
twice gives the same hash (and the same registered version) instead of a new one each time.
MLflow reads such a file as well as its own.

Safety: a pyfunc model runs the model's own code when it loads (a cloudpickled ``PythonModel``,
or a models-from-code file), by MLflow's design. Unlike skops there is no list of trusted types:
the guarantee is integrity, not a sandbox. Bytes load only through a ledger version whose hash
they match (:func:`load_pyfunc`), and extraction refuses links, absolute paths and ``..``.
"""

from __future__ import annotations

import io
import os
import shutil
import tarfile
import tempfile
import weakref
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from aiops_assets.core.ledger import ModelVersion
from aiops_assets.core.model_codec import ModelFormatError
from aiops_assets.core.registry import (
    MEDIA_TYPE_TAG,
    MissingModelError,
    TamperedModelError,
    UnloadableModelError,
    artifact_ref,
    artifact_tags,
    describe,
)
from aiops_assets.core.store import (
    ArtifactNotFoundError,
    ArtifactRef,
    ArtifactStore,
    IntegrityError,
)

FORMAT_NAME = "mlflow-pyfunc"
MEDIA_TYPE = "application/vnd.aiops.mlflow-pyfunc+tar"
# The version tags: the format's name (as core.registry's MODEL_FORMAT_TAG spells it) and the
# MLflow version that saved the model, read from its MLmodel file.
MODEL_FORMAT_TAG = "model_format"
MLFLOW_VERSION_TAG = "mlflow_version"
MLFLOW_EXTRA = "pip install 'aiops-assets[mlflow]'"

_MLMODEL = "MLmodel"
_VOLATILE_KEYS = ("utc_time_created", "model_uuid", "model_id")
_FILE_MODE = 0o644
_UV_FILES_SWITCH = "MLFLOW_LOG_UV_FILES"
_DIR_MODE = 0o755


class MlflowUnavailable(ImportError):
    """mlflow (or mlflow-skinny) is an extra: only the MLflow parts need it."""


def mlflow_module() -> Any:
    """``mlflow``, imported on first use, or one line saying how to install it."""
    try:
        import mlflow
        import mlflow.pyfunc
    except ModuleNotFoundError as error:
        raise MlflowUnavailable(f"MLflow models need mlflow-skinny: {MLFLOW_EXTRA}") from error
    return mlflow


# --- the archive ------------------------------------------------------------------------------


def archive_model_dir(folder: str | os.PathLike[str]) -> bytes:
    """The tar bytes of a saved MLflow model folder, equal for equal folders on any machine."""
    root = Path(folder)
    if not (root / _MLMODEL).is_file():
        raise ModelFormatError(f"{root} is not a saved MLflow model: it has no {_MLMODEL} file")
    sink = io.BytesIO()
    with tarfile.open(fileobj=sink, mode="w", format=tarfile.PAX_FORMAT) as archive:
        for path in _entries(root):
            name = path.relative_to(root).as_posix()
            if path.is_dir():
                archive.addfile(_info(name, tarfile.DIRTYPE, _DIR_MODE, 0))
                continue
            data = path.read_bytes()
            if name == _MLMODEL:
                data = _stable_mlmodel(data)
            archive.addfile(_info(name, tarfile.REGTYPE, _FILE_MODE, len(data)), io.BytesIO(data))
    return sink.getvalue()


def _entries(root: Path) -> list[Path]:
    """Every file and folder under ``root`` in sorted order; a link is refused, not followed."""
    found: list[Path] = []
    for path in sorted(root.rglob("*"), key=lambda item: item.relative_to(root).as_posix()):
        if path.is_symlink():
            raise ModelFormatError(f"{path} is a symbolic link: an archived model holds files only")
        found.append(path)
    return found


def _info(name: str, kind: bytes, mode: int, size: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.mode, info.size = kind, mode, size
    info.mtime, info.uid, info.gid, info.uname, info.gname = 0, 0, 0, "", ""
    return info


def _stable_mlmodel(data: bytes) -> bytes:
    """``MLmodel`` without the values MLflow makes up at save time, keys sorted."""
    document = yaml.safe_load(data.decode("utf-8"))
    if not isinstance(document, dict):
        raise ModelFormatError("the MLmodel file is not a YAML mapping")
    kept = {key: value for key, value in document.items() if key not in _VOLATILE_KEYS}
    return yaml.safe_dump(kept, sort_keys=True, default_flow_style=False).encode("utf-8")


def unpack(data: bytes, destination: str | os.PathLike[str]) -> Path:
    """Extract an archive into ``destination``, refusing anything but plain files and folders."""
    target = Path(destination)
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as archive:
            members = archive.getmembers()
            for member in members:
                if not (member.isfile() or member.isdir()):
                    raise ModelFormatError(f"the archive entry {member.name!r} is not a file")
            # The "data" filter also refuses absolute names, ``..`` and device files.
            archive.extractall(target, members=members, filter="data")
    except (tarfile.TarError, OSError) as error:
        raise ModelFormatError(
            f"the model artifact is not a readable model archive: {error}"
        ) from error
    if not (target / _MLMODEL).is_file():
        raise ModelFormatError(f"the model archive has no {_MLMODEL} file")
    return target


def saved_mlflow_version(data: bytes) -> str:
    """The MLflow version that saved the archived model (its MLmodel's ``mlflow_version``)."""
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as archive:
            handle = archive.extractfile(_MLMODEL)
            document = yaml.safe_load(handle.read()) if handle is not None else None
    except (tarfile.TarError, KeyError, yaml.YAMLError) as error:
        raise ModelFormatError(f"the model archive has no readable {_MLMODEL}: {error}") from error
    version = document.get("mlflow_version") if isinstance(document, dict) else None
    return str(version) if version else "unknown"


# --- the format -------------------------------------------------------------------------------


@dataclass(frozen=True)
class MlflowPyfuncFormat:
    """The pyfunc format in the shape of ``core.model_codec.ModelFormat`` (name, media type,
    dump, load), so a lifecycle can store a host's MLflow models as it stores skops ones.

    ``dump`` takes a saved model folder or a ``mlflow.pyfunc.PythonModel``; the latter is saved
    with ``save_options`` (``pip_requirements`` given there spares MLflow inferring them, which
    loads the model in a subprocess).
    """

    save_options: Mapping[str, Any] | None = None
    name: str = FORMAT_NAME
    media_type: str = MEDIA_TYPE

    def dump(self, model: Any) -> bytes:
        if isinstance(model, (str, os.PathLike)):
            return archive_model_dir(model)
        mlflow = mlflow_module()
        if not isinstance(model, mlflow.pyfunc.PythonModel):
            raise TypeError(
                f"an MLflow pyfunc model is a saved model folder or a PythonModel, not {type(model)}"
            )
        with tempfile.TemporaryDirectory(prefix="aiops-pyfunc-") as folder, _no_project_files():
            saved = Path(folder) / "model"
            mlflow.pyfunc.save_model(
                str(saved), python_model=model, **dict(self.save_options or {})
            )
            return archive_model_dir(saved)

    def load(self, data: bytes) -> Any:
        """A ``PyFuncModel`` from archive bytes; its folder lives as long as the model does."""
        mlflow = mlflow_module()
        folder = tempfile.mkdtemp(prefix="aiops-pyfunc-")
        try:
            unpack(data, folder)
            model = mlflow.pyfunc.load_model(folder)
        except Exception as error:
            shutil.rmtree(folder, ignore_errors=True)
            if isinstance(error, ModelFormatError):
                raise
            raise ModelFormatError(f"MLflow could not load the model: {error}") from error
        # Artifacts a model reads lazily (context.artifacts) stay on disk while it is in use.
        weakref.finalize(model, shutil.rmtree, folder, True)
        return model


@contextmanager
def _no_project_files() -> Iterator[None]:
    """MLflow 3 copies the uv.lock and pyproject.toml of the folder it is saved *from* into the
    model, so the same model saved from two folders gets two hashes (and the capsule's re-run,
    started elsewhere, a mismatch). The model's environment is its requirements, not the caller's
    project: that copy is switched off (``MLFLOW_LOG_UV_FILES``) while we save."""
    previous = os.environ.get(_UV_FILES_SWITCH)
    os.environ[_UV_FILES_SWITCH] = "false"
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop(_UV_FILES_SWITCH, None)
        else:
            os.environ[_UV_FILES_SWITCH] = previous


def pyfunc_tags(ref: ArtifactRef, data: bytes) -> dict[str, str]:
    """The tags to register a stored pyfunc version with: where its bytes are, their format and
    the MLflow version that saved it (the same go into the capsule: :func:`format_record`)."""
    return {**artifact_tags(ref), **format_record(data)}


def format_record(data: bytes) -> dict[str, str]:
    return {MODEL_FORMAT_TAG: FORMAT_NAME, MLFLOW_VERSION_TAG: saved_mlflow_version(data)}


def put_pyfunc(
    store: ArtifactStore, model: Any, *, save_options: Mapping[str, Any] | None = None
) -> tuple[ArtifactRef, dict[str, str]]:
    """Store a pyfunc model (a folder or a PythonModel); its ref and the tags to register it with."""
    data = MlflowPyfuncFormat(save_options=save_options).dump(model)
    ref = store.put_bytes(data, MEDIA_TYPE)
    return ref, pyfunc_tags(ref, data)


def load_pyfunc(store: ArtifactStore, version: ModelVersion) -> Any:
    """The pyfunc model of a registered version, after its bytes verified against the ledger.

    Callers that serve pass a version the audit chain vouches for (``Ledger.vouched_version``).
    """
    recorded = version.tags.get(MODEL_FORMAT_TAG) or version.tags.get(MEDIA_TYPE_TAG)
    if recorded not in (FORMAT_NAME, MEDIA_TYPE):
        raise UnloadableModelError(
            f"refusing to load {describe(version)} as an MLflow pyfunc: it was stored as "
            f"{recorded!r}"
        )
    try:
        data = store.get_bytes(artifact_ref(version))
    except IntegrityError as error:
        raise TamperedModelError(
            f"refusing to load {describe(version)}: its stored artifact does not match the hash "
            f"the registry recorded ({error})"
        ) from error
    except ArtifactNotFoundError as error:
        raise MissingModelError(
            f"{describe(version)} is registered but its artifact is not in the store at "
            f"{store.root}"
        ) from error
    try:
        return MlflowPyfuncFormat().load(data)
    except ModelFormatError as error:
        raise UnloadableModelError(f"refusing to load {describe(version)}: {error}") from error
