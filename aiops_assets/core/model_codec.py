"""Model bytes: any scikit-learn model to and from skops, with a closed list of trusted types.

Pickle runs whatever a file tells it to, so a model file anyone could write was a way to run code
on the scoring workers. skops rebuilds only types it is told to trust and refuses a file that
names any other, before constructing anything; loading here trusts exactly the types our own
detector holds beyond skops' defaults, never "whatever the file contains".

Models are content addressed (their SHA-256 is the registry's identity and what ``aiops
reproduce`` compares), so the same fitted model must give the same bytes in every process. Raw
skops output does not: its zip entries carry the wall-clock time and its schema names objects by
``id()``, a memory address. :func:`dump_detector` therefore renumbers those ids in the order the
schema first mentions them and rewrites the zip with fixed dates, sorted names and no compression
(a zlib build could change compressed bytes), with the padding bytes of structured arrays
zeroed (they hold whatever was in memory).
"""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np
import skops.io as sio
from skops.io.exceptions import UntrustedTypesFoundException

from aiops_assets.core.models import AnomalyDetector
from aiops_assets.core.store import PICKLE, SKOPS, ArtifactRef, ArtifactStore

# Beyond skops' own defaults (builtins, sklearn estimators, numpy arrays), exactly what an
# AnomalyDetector holds. sklearn's Tree is on the list because an isolation forest is made of
# them; skops leaves it off by default since crafted node indices are not bounds-checked, which is
# why a loaded detector's trees are checked below and why only bytes the ledger vouches for get here.
TRUSTED_TYPES: tuple[str, ...] = (
    "aiops_assets.core.models.AnomalyDetector",
    "aiops_assets.core.models.DetectorConfig",
    "numpy.dtype",
    "sklearn.tree._tree.Tree",
)

_SCHEMA = "schema.json"
_ZIP_MAGIC = b"PK\x03\x04"
_FIXED_DATE = (1980, 1, 1, 0, 0, 0)
_ENTRY_MODE = 0o644 << 16


# Beyond skops' defaults, what the tree ensembles hold (gradient boosting, forests, histogram
# boosting); each loaded tree's node indices are checked before anything scores with it.
SKLEARN_TRUSTED_TYPES: tuple[str, ...] = (
    "numpy.dtype",
    "sklearn.tree._tree.Tree",
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
)
SKOPS_FORMAT = "skops"


class ModelFormatError(ValueError):
    """The bytes are not a model this version can load safely (pickle, foreign types, damage)."""


@runtime_checkable
class ModelFormat(Protocol):
    """How a fitted model becomes bytes in the store and comes back: the place to plug another
    format in (an MLflow pyfunc, say). ``name`` goes into the version's tags and the capsule;
    ``dump`` must give equal bytes for equal models in any process (the hash is the identity)."""

    @property
    def name(self) -> str: ...

    @property
    def media_type(self) -> str: ...

    def dump(self, model: Any) -> bytes: ...

    def load(self, data: bytes) -> Any: ...


@dataclass(frozen=True)
class SkopsFormat:
    """scikit-learn estimators and pipelines through skops: nothing outside ``trusted_types``
    (and skops' own defaults) is ever constructed, whatever the file names."""

    trusted_types: tuple[str, ...] = SKLEARN_TRUSTED_TYPES
    name: str = SKOPS_FORMAT
    media_type: str = SKOPS

    def dump(self, model: Any) -> bytes:
        return dump_model(model)

    def load(self, data: bytes) -> Any:
        return load_model_bytes(data, self.trusted_types)


def dump_model(model: Any) -> bytes:
    """The skops bytes of any skops-serializable model, identical for identical models."""
    return _normalized(sio.dumps(model))


def load_model_bytes(data: bytes, trusted_types: Sequence[str] = SKLEARN_TRUSTED_TYPES) -> Any:
    """Rebuild a model from skops bytes, refusing any type outside ``trusted_types``."""
    model = _load_trusted(data, tuple(trusted_types))
    _check_estimator_trees(model)
    return model


def dump_detector(detector: AnomalyDetector) -> bytes:
    """The skops bytes of ``detector``, identical for identical models in any process."""
    if not isinstance(detector, AnomalyDetector):
        raise TypeError(f"only an AnomalyDetector is stored as a model, not {type(detector)}")
    return _normalized(sio.dumps(detector))


def put_detector(store: ArtifactStore, detector: AnomalyDetector) -> ArtifactRef:
    """Store a detector in the one model format; register the returned ref's hash in the ledger."""
    return store.put_bytes(dump_detector(detector), SKOPS)


def load_detector(data: bytes) -> AnomalyDetector:
    """Rebuild a detector from skops bytes, refusing any type outside :data:`TRUSTED_TYPES`.

    Callers pass bytes whose hash a vouched ledger version recorded
    (``core.registry.load_model``); this is the second line: even vouched bytes construct nothing
    untrusted.
    """
    model = _load_trusted(data, TRUSTED_TYPES)
    if not isinstance(model, AnomalyDetector):
        raise ModelFormatError(
            f"the model artifact holds a {type(model).__name__}, not an AnomalyDetector"
        )
    _check_trees(model)
    return model


def _load_trusted(data: bytes, trusted_types: tuple[str, ...]) -> Any:
    if data[:1] == b"\x80":
        raise ModelFormatError(
            "the model artifact is a Python pickle; pickled models are no longer loaded (they can "
            "run code): retrain to store it in the skops format"
        )
    if not data.startswith(_ZIP_MAGIC):
        raise ModelFormatError("the model artifact is not a skops file")
    try:
        untrusted = sorted(set(sio.get_untrusted_types(data=data)) - set(trusted_types))
        if untrusted:
            raise ModelFormatError(
                f"the model artifact names types outside the trusted list: {untrusted}"
            )
        # skops audits the same list again before constructing anything.
        model = sio.loads(data, trusted=list(trusted_types))
    except ModelFormatError:
        raise  # already says what is wrong; not "unreadable"
    except UntrustedTypesFoundException as error:
        raise ModelFormatError(
            f"the model artifact names untrusted types: {str(error).splitlines()[0]}"
        ) from error
    except (
        zipfile.BadZipFile,
        KeyError,
        IndexError,
        AttributeError,
        ValueError,
        TypeError,
    ) as error:
        raise ModelFormatError(
            f"the model artifact is not a readable skops file: {error}"
        ) from error
    return model


def media_type_of(data: bytes) -> str:
    """How stored model bytes are encoded, from their first bytes (for bundles and old stores)."""
    return SKOPS if data.startswith(_ZIP_MAGIC) else PICKLE


def _normalized(raw: bytes) -> bytes:
    with zipfile.ZipFile(io.BytesIO(raw)) as source:
        entries = {name: source.read(name) for name in source.namelist()}
    schema = json.loads(entries.pop(_SCHEMA))
    ids: dict[int, int] = {}
    files: dict[str, str] = {}
    for node in _nodes(schema):
        if "__id__" in node:
            node["__id__"] = ids.setdefault(node["__id__"], len(ids) + 1)
        name = node.get("file")
        if isinstance(name, str) and name in entries:
            suffix = name[name.rfind(".") :] if "." in name else ""
            node["file"] = files.setdefault(name, f"{len(files) + 1:06d}{suffix}")
    if set(files) != set(entries):
        raise ValueError(f"skops wrote files its schema does not name: {set(entries) - set(files)}")
    renamed = {files[name]: _zero_padding(name, data) for name, data in entries.items()}
    # Key order is kept: skops pairs a dict's keys with a parallel list of key types.
    renamed[_SCHEMA] = json.dumps(schema, separators=(",", ":")).encode()
    sink = io.BytesIO()
    with zipfile.ZipFile(sink, "w", compression=zipfile.ZIP_STORED) as target:
        for name in sorted(renamed):
            info = zipfile.ZipInfo(name, date_time=_FIXED_DATE)
            info.compress_type = zipfile.ZIP_STORED
            info.create_system = 3
            info.external_attr = _ENTRY_MODE
            target.writestr(info, renamed[name])
    return sink.getvalue()


def _zero_padding(name: str, data: bytes) -> bytes:
    """A structured array's padding bytes zeroed: sklearn's tree nodes leave 7 of every 64 bytes
    uninitialized, and np.save writes them as they are (whatever was in memory)."""
    if not name.endswith(".npy"):
        return data
    array = np.load(io.BytesIO(data), allow_pickle=False)
    if array.dtype.names is None:
        return data
    clean = np.zeros(array.shape, dtype=array.dtype)
    for field in array.dtype.names:
        clean[field] = array[field]
    sink = io.BytesIO()
    np.save(sink, clean, allow_pickle=False)
    return sink.getvalue()


def _nodes(value: Any) -> Iterator[dict[str, Any]]:
    """Every dict in the schema, depth first in document order (which is skops' save order)."""
    if isinstance(value, dict):
        yield value
        for child in value.values():
            yield from _nodes(child)
    elif isinstance(value, list):
        for child in value:
            yield from _nodes(child)


def _check_trees(detector: AnomalyDetector) -> None:
    """Node indices in range: sklearn follows them without bounds checks when scoring."""
    _check_estimator_trees(detector.pipeline)


def _check_estimator_trees(model: Any, depth: int = 0) -> None:
    """The same bounds check for any estimator: its trees, its ensemble's, its pipeline steps'."""
    if depth > 8:
        return
    tree = getattr(model, "tree_", None)
    if tree is not None and hasattr(tree, "children_left"):
        _check_tree(tree)
    children: list[Any] = []
    steps = getattr(model, "steps", None)
    if isinstance(steps, list):
        children += [step for _, step in steps if not isinstance(step, str)]
    estimators = getattr(model, "estimators_", None)
    if estimators is not None:
        children += list(np.asarray(estimators, dtype=object).ravel())
    for child in children:
        _check_estimator_trees(child, depth + 1)


def _check_tree(tree: Any) -> None:
    count = int(tree.node_count)
    children = np.concatenate([tree.children_left, tree.children_right])
    leaf = tree.children_left == -1
    features = tree.feature[~leaf]
    if (
        children.size != 2 * count
        or ((children != -1) & ((children < 1) | (children >= count))).any()
        or (leaf != (tree.children_right == -1)).any()
        or ((features < 0) | (features >= int(tree.n_features))).any()
    ):
        raise ModelFormatError(
            "the model artifact holds a tree whose node indices are out of range "
            "(a crafted or damaged file)"
        )
