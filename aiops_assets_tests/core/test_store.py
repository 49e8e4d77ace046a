from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aiops_assets.core.store import (
    PARQUET,
    ArtifactNotFoundError,
    ArtifactRef,
    ArtifactStore,
    IntegrityError,
    StoreError,
    canonical_parquet_bytes,
)


def _object_files(root: Path) -> list[Path]:
    return sorted(path for path in (root / "objects").rglob("*") if path.is_file())


def test_objects_are_keyed_by_the_sha256_of_their_bytes(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path)
    ref = store.put_bytes(b"hello telemetry", "text/plain")
    assert ref.sha256 == hashlib.sha256(b"hello telemetry").hexdigest()
    assert ref.size == len(b"hello telemetry")
    assert store.get_bytes(ref) == b"hello telemetry"
    assert store.get_bytes(ref.sha256) == b"hello telemetry"


def test_the_same_bytes_are_stored_once(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path)
    first = store.put_bytes(b"x" * 1000, "text/plain")
    second = store.put_bytes(b"x" * 1000, "text/plain")
    assert first == second
    assert len(_object_files(tmp_path)) == 1
    assert list(store.iter_object_ids()) == [first.sha256]


def test_a_corrupted_object_is_refused_on_read(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path)
    ref = store.put_bytes(b"precious", "text/plain")
    (path,) = _object_files(tmp_path)
    path.write_bytes(b"tampered")
    with pytest.raises(IntegrityError, match=ref.sha256):
        store.get_bytes(ref)
    assert not store.verify(ref)


def test_a_corrupted_object_is_not_silently_rewritten(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path)
    ref = store.put_bytes(b"precious", "text/plain")
    (path,) = _object_files(tmp_path)
    path.write_bytes(b"tampered")
    with pytest.raises(IntegrityError, match="already exists"):
        store.put_bytes(b"precious", "text/plain")
    assert path.read_bytes() == b"tampered", "the evidence of corruption must be kept"
    assert ref.sha256 in path.as_posix().replace("/", "")


def test_a_missing_object_raises_not_found(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path)
    with pytest.raises(ArtifactNotFoundError):
        store.get_bytes("0" * 64)
    with pytest.raises(StoreError, match="not a SHA-256"):
        store.get_bytes("../../etc/passwd")


def test_a_crash_during_write_leaves_no_partial_object(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = ArtifactStore(tmp_path)

    def crash(*_: object) -> None:
        raise OSError("simulated crash before rename")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="simulated crash"):
        store.put_bytes(b"half written", "text/plain")
    monkeypatch.undo()
    assert _object_files(tmp_path) == [], "neither the object nor a temporary file may remain"
    ref = store.put_bytes(b"half written", "text/plain")
    assert store.get_bytes(ref) == b"half written"


def test_a_crash_while_moving_a_ref_keeps_the_old_ref(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = ArtifactStore(tmp_path)
    old = store.put_bytes(b"old", "text/plain")
    new = store.put_bytes(b"new", "text/plain")
    store.set_ref("assets/model/_", old)

    def crash(*_: object) -> None:
        raise OSError("simulated crash before rename")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError):
        store.set_ref("assets/model/_", new)
    monkeypatch.undo()
    assert store.get_ref("assets/model/_") == old
    assert sorted(p.name for p in (tmp_path / "refs").rglob("*") if p.is_file()) == ["_.json"]


def test_refs_move_but_objects_stay(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path)
    old = store.put_bytes(b"v1", "text/plain")
    new = store.put_bytes(b"v2", "text/plain")
    store.set_ref("assets/champion_model/_", old)
    store.set_ref("assets/champion_model/_", new)
    assert store.require_ref("assets/champion_model/_") == new
    assert store.get_bytes(old) == b"v1"


def test_a_ref_cannot_point_at_a_missing_object_or_escape_the_store(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path)
    with pytest.raises(ArtifactNotFoundError):
        store.set_ref("assets/x/_", ArtifactRef("a" * 64, 1, "text/plain"))
    ref = store.put_bytes(b"v", "text/plain")
    for bad_name in ("../outside", "a/../../b", "/absolute", "a b"):
        with pytest.raises(StoreError, match="invalid ref name"):
            store.set_ref(bad_name, ref)
    assert store.get_ref("assets/never/_") is None
    with pytest.raises(ArtifactNotFoundError, match="materialize it first"):
        store.require_ref("assets/never/_")


def test_object_storage_roots_work_through_fsspec() -> None:
    store = ArtifactStore("memory://aiops-test-bucket/store")
    frame = pd.DataFrame({"a": [1.0, 2.0]})
    ref = store.put_frame(frame)
    store.set_ref("assets/x/_", ref)
    pd.testing.assert_frame_equal(store.get_frame(store.require_ref("assets/x/_")), frame)


def _sample_frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "timestamp": pd.to_datetime(["2026-01-05 00:05", "2026-01-05 00:00"]).astype(
                "datetime64[us]"
            ),
            "service": pd.Series(["b", "a"], dtype=object),
            "value": [2.5, np.nan],
            "label": pd.Series([1, 0], dtype="int8"),
        }
    )


def test_canonical_parquet_is_independent_of_row_order_index_and_string_dtype() -> None:
    frame = _sample_frame()
    shuffled = frame.iloc[::-1].set_index(pd.Index([10, 20]))
    with_new_strings = frame.assign(service=frame["service"].astype("string"))
    keys = ("timestamp", "service")
    expected = canonical_parquet_bytes(frame, sort_by=keys)
    assert canonical_parquet_bytes(shuffled, sort_by=keys) == expected
    assert canonical_parquet_bytes(with_new_strings, sort_by=keys) == expected


def test_frames_round_trip_through_the_store(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path)
    frame = _sample_frame()
    ref = store.put_frame(frame)
    assert ref.media_type == PARQUET
    loaded = store.get_frame(ref)
    pd.testing.assert_frame_equal(loaded, frame)
    assert store.put_frame(loaded).sha256 == ref.sha256, (
        "re-storing what was read must not change the id"
    )


def test_an_unencodable_column_is_refused(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="'mixed'"):
        ArtifactStore(tmp_path).put_frame(pd.DataFrame({"mixed": [1, "a"]}, dtype=object))


@settings(max_examples=50, deadline=None)
@given(
    values=st.lists(
        st.floats(allow_nan=True, allow_infinity=False, width=64), min_size=1, max_size=40
    ),
    services=st.lists(st.text(min_size=1, max_size=8), min_size=1, max_size=40),
)
def test_canonical_bytes_survive_a_round_trip(values: list[float], services: list[str]) -> None:
    size = min(len(values), len(services))
    frame = pd.DataFrame(
        {"service": pd.Series(services[:size], dtype=object), "value": values[:size]}
    )
    data = canonical_parquet_bytes(frame)
    from aiops_assets.core.store import frame_from_parquet_bytes

    assert canonical_parquet_bytes(frame_from_parquet_bytes(data)) == data
