"""Content-addressed artifact store.

Every artifact (a telemetry snapshot, a feature set, a training set, a model) is stored under the
SHA-256 of its bytes. That hash is the artifact's identity and its Dagster data version, so two runs
that produce the same bytes share one object, nothing is ever overwritten, and a reader can prove it
got exactly what the writer stored: every read re-hashes the bytes and refuses a mismatch.

Named *refs* ("assets/features/2026-01-05") are the only mutable state: small JSON pointers to an
object, replaced atomically, like git refs. Losing or rewinding a ref never loses data.

The root is any `UPath`: a local directory by default, or object storage (``s3://``, ``gs://``,
``memory://`` in tests) by configuration alone. On a local disk a write goes to a temporary file that is
fsynced and then renamed into place, so a crash leaves either the old state or the new one. On object
storage a single PUT is already atomic, so the final key is written directly.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import pathlib
import re
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from upath import UPath

PARQUET = "application/vnd.apache.parquet"
JSON = "application/json"
SKOPS = "application/x-skops"
# Only a name now: models stored by older releases carry it, and nothing here unpickles them.
PICKLE = "application/x-python-pickle"
MODEL_MEDIA_TYPES = (SKOPS, PICKLE)

_SHA256_PATTERN = re.compile(r"^[0-9a-f]{64}$")
_REF_NAME_PATTERN = re.compile(r"^[A-Za-z0-9_.=-]+(/[A-Za-z0-9_.=-]+)*$")

# Parquet writer settings are pinned so that the same frame always yields the same bytes: a change of
# pyarrow's defaults must not silently change every snapshot's identity.
_PARQUET_OPTIONS: dict[str, Any] = {
    "compression": "zstd",
    "compression_level": 3,
    "use_dictionary": True,
    "write_statistics": True,
    "data_page_version": "2.0",
    "version": "2.6",
    "row_group_size": 1 << 20,
}


class StoreError(Exception):
    """Base class for artifact-store failures."""


class IntegrityError(StoreError):
    """The bytes read back do not hash to the id they were stored under (corruption or tampering)."""


class ArtifactNotFoundError(StoreError, KeyError):
    """No object with that id, or no ref with that name, exists in the store."""


@dataclass(frozen=True)
class ArtifactRef:
    """A pointer to one immutable stored object; what assets pass to each other."""

    sha256: str
    size: int
    media_type: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ArtifactRef:
        return cls(
            sha256=str(data["sha256"]), size=int(data["size"]), media_type=str(data["media_type"])
        )


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def canonical_json_bytes(obj: Any) -> bytes:
    """JSON with sorted keys and no insignificant white space, so equal content hashes equally."""
    return json.dumps(
        obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode()


def canonical_parquet_bytes(frame: pd.DataFrame, *, sort_by: Sequence[str] = ()) -> bytes:
    """Encode a frame so that equal data always gives equal bytes.

    Rows are sorted (stable) by ``sort_by``; the index is dropped; column types are normalized
    (timestamps to naive microseconds, text to plain UTF-8 strings, floats to float64) and pandas'
    own schema metadata, which embeds the pandas version, is left out.
    """
    if sort_by:
        frame = frame.sort_values(list(sort_by), kind="mergesort")
    frame = frame.reset_index(drop=True)
    arrays: list[pa.Array] = []
    fields: list[pa.Field] = []
    for name in frame.columns:
        array, arrow_type = _canonical_column(str(name), frame[name])
        arrays.append(array)
        fields.append(pa.field(str(name), arrow_type))
    table = pa.Table.from_arrays(arrays, schema=pa.schema(fields))
    sink = io.BytesIO()
    pq.write_table(table, sink, **_PARQUET_OPTIONS)
    return sink.getvalue()


def _canonical_column(name: str, column: pd.Series) -> tuple[pa.Array, pa.DataType]:
    dtype = column.dtype
    if isinstance(dtype, pd.DatetimeTZDtype):
        column = column.dt.tz_convert("UTC").dt.tz_localize(None)
        dtype = column.dtype
    if pd.api.types.is_datetime64_dtype(dtype):
        arrow_type: pa.DataType = pa.timestamp("us")
        return pa.array(column.astype("datetime64[us]"), type=arrow_type), arrow_type
    if pd.api.types.is_bool_dtype(dtype):
        return pa.array(column, type=pa.bool_()), pa.bool_()
    if pd.api.types.is_integer_dtype(dtype):
        arrow_type = pa.from_numpy_dtype(column.to_numpy().dtype)
        return pa.array(column.to_numpy(), type=arrow_type), arrow_type
    if pd.api.types.is_float_dtype(dtype):
        return pa.array(column.to_numpy(dtype="float64"), type=pa.float64()), pa.float64()
    # "string" or "empty" means only text and missing values; pyarrow encodes them without a
    # Python loop over the rows (missing -> null).
    if pd.api.types.infer_dtype(column, skipna=True) in ("string", "empty"):
        return pa.array(column.astype(object), type=pa.string(), from_pandas=True), pa.string()
    raise StoreError(f"column {name!r} has dtype {dtype} that has no canonical Parquet encoding")


def frame_from_parquet_bytes(data: bytes) -> pd.DataFrame:
    frame = pq.read_table(io.BytesIO(data)).to_pandas()
    for name in frame.columns:
        if pd.api.types.is_string_dtype(frame[name].dtype) and not pd.api.types.is_object_dtype(
            frame[name].dtype
        ):
            frame[name] = frame[name].astype(object)
    return frame


class ArtifactStore:
    """Objects under ``objects/ab/cdef...``, refs under ``refs/<name>.json``."""

    def __init__(self, root: str | os.PathLike[str] | UPath) -> None:
        self.root = UPath(root)
        self._local_root: pathlib.Path | None = local_path(self.root)
        if self._local_root is not None and not self._local_root.is_dir():
            # Private whatever the umask: the objects are models and data, read back on trust.
            self._local_root.mkdir(mode=0o700, parents=True, exist_ok=True)
            os.chmod(self._local_root, 0o700)

    def __repr__(self) -> str:
        return f"ArtifactStore({str(self.root)!r})"

    # -- objects ---------------------------------------------------------------------------------

    def put_bytes(self, data: bytes, media_type: str) -> ArtifactRef:
        """Store bytes once; storing the same bytes again is a no-op that returns the same ref."""
        digest = sha256_hex(data)
        ref = ArtifactRef(sha256=digest, size=len(data), media_type=media_type)
        path = self._object_path(digest)
        if path.exists():
            # Never overwrite: if the existing copy is corrupt, say so rather than mask it.
            if path.stat().st_size == len(data) and self._hash_file(path) == digest:
                return ref
            raise IntegrityError(
                f"object {digest} already exists at {path} but its content does not match its id; "
                "move the corrupt file aside (it is evidence) and write again"
            )
        self._write_atomically(path, data)
        return ref

    def get_bytes(self, ref: ArtifactRef | str) -> bytes:
        digest = _digest_of(ref)
        path = self._object_path(digest)
        try:
            data = path.read_bytes()
        except FileNotFoundError as error:
            raise ArtifactNotFoundError(f"no object {digest} in {self.root}") from error
        actual = sha256_hex(data)
        if actual != digest:
            raise IntegrityError(
                f"object {path} is corrupt: its bytes hash to {actual}, not to its id {digest}"
            )
        return data

    def exists(self, ref: ArtifactRef | str) -> bool:
        return self._object_path(_digest_of(ref)).exists()

    def verify(self, ref: ArtifactRef | str) -> bool:
        """True when the object exists and its bytes still hash to its id."""
        try:
            self.get_bytes(ref)
        except (ArtifactNotFoundError, IntegrityError):
            return False
        return True

    def iter_object_ids(self) -> Iterator[str]:
        objects = self.root / "objects"
        if not objects.exists():
            return
        for prefix in sorted(objects.iterdir(), key=str):
            for entry in sorted(prefix.iterdir(), key=str):
                digest = prefix.name + entry.name
                if _SHA256_PATTERN.match(digest):
                    yield digest

    # -- typed helpers ---------------------------------------------------------------------------

    def put_frame(self, frame: pd.DataFrame, *, sort_by: Sequence[str] = ()) -> ArtifactRef:
        return self.put_bytes(canonical_parquet_bytes(frame, sort_by=sort_by), PARQUET)

    def get_frame(self, ref: ArtifactRef | str) -> pd.DataFrame:
        return frame_from_parquet_bytes(self.get_bytes(ref))

    def put_json(self, obj: Any) -> ArtifactRef:
        return self.put_bytes(canonical_json_bytes(obj), JSON)

    def get_json(self, ref: ArtifactRef | str) -> Any:
        return json.loads(self.get_bytes(ref))

    def load(self, ref: ArtifactRef) -> Any:
        """Decode a data object by its media type; models are refused here.

        A ref is a mutable pointer anyone with write access to the store can repoint, and a hash
        match only proves the bytes are the ones stored under that name, not that anyone vouched
        for them. Models therefore load only through a ledger version
        (``core.registry.load_model``), never from a ref.
        """
        if ref.media_type == PARQUET:
            return self.get_frame(ref)
        if ref.media_type == JSON:
            return self.get_json(ref)
        if ref.media_type in MODEL_MEDIA_TYPES:
            raise StoreError(
                f"object {ref.sha256[:12]} is a model; models load only through a registered "
                "version (core.registry.load_model), never from a ref"
            )
        return self.get_bytes(ref)

    # -- refs ------------------------------------------------------------------------------------

    def set_ref(self, name: str, ref: ArtifactRef) -> None:
        """Point a name at an object that already exists (never at a missing one)."""
        if not self.exists(ref):
            raise ArtifactNotFoundError(f"cannot point ref {name!r} at missing object {ref.sha256}")
        self._write_atomically(self._ref_path(name), canonical_json_bytes(ref.to_dict()))

    def get_ref(self, name: str) -> ArtifactRef | None:
        path = self._ref_path(name)
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            return None
        try:
            return ArtifactRef.from_dict(json.loads(raw))
        except (ValueError, KeyError, TypeError) as error:
            raise StoreError(f"ref file {path} is not a valid ref: {error}") from error

    def require_ref(self, name: str) -> ArtifactRef:
        ref = self.get_ref(name)
        if ref is None:
            raise ArtifactNotFoundError(f"no ref {name!r} in {self.root}; materialize it first")
        return ref

    # -- internals -------------------------------------------------------------------------------

    def _object_path(self, digest: str) -> UPath:
        return self.root / "objects" / digest[:2] / digest[2:]

    def _ref_path(self, name: str) -> UPath:
        if not _REF_NAME_PATTERN.match(name) or any(
            part in (".", "..") for part in name.split("/")
        ):
            raise StoreError(f"invalid ref name {name!r}")
        return self.root / "refs" / f"{name}.json"

    def _hash_file(self, path: UPath) -> str:
        return sha256_hex(path.read_bytes())

    def _write_atomically(self, path: UPath, data: bytes) -> None:
        local = local_path(path)
        if local is None:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
            return
        local.parent.mkdir(parents=True, exist_ok=True)
        descriptor, temporary_name = tempfile.mkstemp(
            prefix=f".{local.name}.", suffix=".tmp", dir=local.parent
        )
        try:
            with os.fdopen(descriptor, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temporary_name, local)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temporary_name)
            raise
        _fsync_directory(local.parent)


def _digest_of(ref: ArtifactRef | str) -> str:
    digest = ref.sha256 if isinstance(ref, ArtifactRef) else ref
    if not _SHA256_PATTERN.match(digest):
        raise StoreError(f"{digest!r} is not a SHA-256 hex digest")
    return digest


def local_path(path: UPath) -> pathlib.Path | None:
    """The folder on this machine behind ``path``; ``None`` for an object store."""
    if isinstance(path, pathlib.Path):
        return pathlib.Path(path)
    if path.protocol in ("file", "local"):
        return pathlib.Path(path.path)
    return None


def _fsync_directory(directory: pathlib.Path) -> None:
    """Make the rename itself durable; without it a power cut can forget the new name."""
    try:
        descriptor = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)
