"""Portable capsules: one ``.tar.gz`` with a model's capsule chain, every artifact it names, and the lock file.

A capsule is only reproducible where its inputs are. The bundle carries the feature partitions,
the training set and the model by their SHA-256, so another machine (an auditor's, a new
cluster) can import it into an empty store and re-run it. Import verifies every object against
its name and every capsule against its id before anything is written: a bundle edited in
transit is refused, not half-imported.
"""

from __future__ import annotations

import io
import json
import tarfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiops_assets.core.capsule import Capsule, CapsuleError, find_project_root
from aiops_assets.core.ledger import Ledger
from aiops_assets.core.model_codec import media_type_of
from aiops_assets.core.store import PARQUET, ArtifactStore, sha256_hex

BUNDLE_FORMAT = "aiops-capsule-bundle"
BUNDLE_VERSION = 1
MANIFEST = "manifest.json"
LOCK_FILE = "uv.lock"


class BundleError(ValueError):
    """The bundle is not one of ours, is incomplete, or does not match its own manifest."""


@dataclass(frozen=True)
class BundleSummary:
    capsule_id: str
    capsules: list[str]
    objects: int
    bytes: int
    has_lock_file: bool


def _media_type(store: ArtifactStore, name: str, digest: str) -> str:
    """Told by the bytes for a model: stores from older releases hold pickles, newer ones skops."""
    if name != "candidate_model":
        return PARQUET
    return media_type_of(store.get_bytes(digest))


def _capsule_chain(ledger: Ledger, capsule_id: str) -> list[Capsule]:
    chain: list[Capsule] = []
    current: str | None = capsule_id
    while current:
        capsule = ledger.get_capsule(current)
        if capsule is None:
            raise BundleError(f"capsule {current[:12]} is not in the ledger at {ledger.url}")
        chain.append(capsule)
        current = capsule.parent
    return chain


def export_bundle(
    ledger: Ledger,
    store: ArtifactStore,
    capsule_id: str,
    target: Path,
    *,
    lock_file: Path | None = None,
) -> BundleSummary:
    """Write the capsule, its ancestors and every artifact they name into ``target``."""
    chain = _capsule_chain(ledger, capsule_id)
    objects: dict[str, str] = {}
    for capsule in chain:
        for name, digest in {**capsule.inputs, **capsule.outputs}.items():
            if digest not in objects:
                objects[digest] = _media_type(store, name, digest)
    if lock_file is None:
        root = find_project_root()
        lock_file = root / LOCK_FILE if root is not None else None
    manifest: dict[str, Any] = {
        "format": BUNDLE_FORMAT,
        "version": BUNDLE_VERSION,
        "capsule_id": chain[0].capsule_id,
        "capsules": [capsule.capsule_id for capsule in chain],
        "objects": [
            {"sha256": digest, "media_type": media} for digest, media in sorted(objects.items())
        ],
        "lock_file": lock_file is not None and lock_file.is_file(),
        "exported_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.partial")
    total = 0
    # Written under a temporary name and renamed: an interrupted export leaves no bundle that
    # looks complete.
    with tarfile.open(partial, "w:gz") as archive:
        _add(archive, MANIFEST, json.dumps(manifest, indent=2, sort_keys=True).encode())
        for capsule in chain:
            _add(archive, f"capsules/{capsule.capsule_id}.json", capsule.to_json().encode())
        for digest in sorted(objects):
            data = store.get_bytes(digest)  # verifies the hash on the way out
            total += len(data)
            _add(archive, f"objects/{digest}", data)
        if manifest["lock_file"] and lock_file is not None:
            _add(archive, LOCK_FILE, lock_file.read_bytes())
    partial.replace(target)
    return BundleSummary(
        capsule_id=chain[0].capsule_id,
        capsules=manifest["capsules"],
        objects=len(objects),
        bytes=total,
        has_lock_file=bool(manifest["lock_file"]),
    )


def _add(archive: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mtime = 0  # the same bundle content gives the same archive entries
    info.mode = 0o644
    archive.addfile(info, io.BytesIO(data))


def import_bundle(
    source: Path, ledger: Ledger, store: ArtifactStore, *, lock_target: Path | None = None
) -> BundleSummary:
    """Verify everything in the bundle, then write its objects to ``store`` and capsules to ``ledger``."""
    try:
        archive = tarfile.open(source, "r:gz")  # noqa: SIM115 - closed by the `with` below
    except (OSError, tarfile.TarError) as error:
        raise BundleError(f"{source} is not a readable .tar.gz bundle: {error}") from error
    with archive:
        members = {member.name: member for member in archive.getmembers() if member.isfile()}

        def read(name: str) -> bytes:
            member = members.get(name)
            handle = archive.extractfile(member) if member is not None else None
            if handle is None:
                raise BundleError(f"{source} lacks {name}")
            return handle.read()

        try:
            manifest = json.loads(read(MANIFEST))
        except json.JSONDecodeError as error:
            raise BundleError(f"{source}: {MANIFEST} is not JSON: {error}") from error
        if manifest.get("format") != BUNDLE_FORMAT or manifest.get("version") != BUNDLE_VERSION:
            raise BundleError(
                f"{source} is not an {BUNDLE_FORMAT} v{BUNDLE_VERSION} "
                f"(format {manifest.get('format')!r}, version {manifest.get('version')!r})"
            )
        capsules = []
        for capsule_id in manifest["capsules"]:
            try:
                capsule = Capsule.from_json(read(f"capsules/{capsule_id}.json").decode())
            except CapsuleError as error:
                raise BundleError(f"{source}: {error}") from error
            if capsule.capsule_id != capsule_id:
                raise BundleError(f"{source}: capsule file {capsule_id[:12]} holds another capsule")
            capsules.append(capsule)
        objects: list[tuple[bytes, str]] = []
        total = 0
        for entry in manifest["objects"]:
            data = read(f"objects/{entry['sha256']}")
            if sha256_hex(data) != entry["sha256"]:
                raise BundleError(
                    f"{source}: object {entry['sha256'][:12]} does not match its hash; "
                    "the bundle was altered or damaged"
                )
            objects.append((data, str(entry["media_type"])))
            total += len(data)
        lock = read(LOCK_FILE) if manifest.get("lock_file") else None
    # Everything verified: now write. Objects first, so a capsule never names a missing object.
    for data, media_type in objects:
        store.put_bytes(data, media_type)
    for capsule in reversed(capsules):
        ledger.record_capsule(capsule)
    if lock is not None and lock_target is not None:
        lock_target.parent.mkdir(parents=True, exist_ok=True)
        lock_target.write_bytes(lock)
    return BundleSummary(
        capsule_id=str(manifest["capsule_id"]),
        capsules=[capsule.capsule_id for capsule in capsules],
        objects=len(objects),
        bytes=total,
        has_lock_file=lock is not None,
    )
