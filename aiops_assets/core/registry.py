"""The registry's view of models: names, aliases, and loading a registered version safely.

The ledger records *which* bytes a version is (their SHA-256); the store holds the bytes. Loading
goes through both so that a model file swapped or edited on disk is refused before it is
deserialized, with an error that says which version is affected and what to do, instead of a model
that silently scores differently from the one that was evaluated and promoted. There is no way to
load a model from a store ref alone: ``load_model`` takes a ledger version.

Models are stored with skops (``core.model_codec``), which constructs only trusted types. A
version stored as a pickle by an older release is refused, not unpickled, even when its bytes
verify: the fix is to retrain, which stores the new version in the skops format.
"""

from __future__ import annotations

from typing import Any

from aiops_assets.core.ledger import ModelVersion
from aiops_assets.core.model_codec import (
    ModelFormat,
    ModelFormatError,
    load_detector,
    media_type_of,
)
from aiops_assets.core.models import AnomalyDetector
from aiops_assets.core.store import (
    PICKLE,
    SKOPS,
    ArtifactNotFoundError,
    ArtifactRef,
    ArtifactStore,
    IntegrityError,
    StoreError,
)

MODEL_NAME = "anomaly_detector"
CHAMPION = "champion"
CHALLENGER = "challenger"
SHADOW = "shadow"
ALIASES = (CHAMPION, CHALLENGER, SHADOW)

# Tags a registered version carries so its artifact ref can be rebuilt from the ledger alone.
MEDIA_TYPE_TAG = "media_type"
SIZE_TAG = "size"
# The format that wrote the bytes (``skops``, or a plugged-in one): the version says how to read it.
MODEL_FORMAT_TAG = "model_format"


class TamperedModelError(IntegrityError):
    """A registered model's stored bytes no longer match the hash the ledger recorded."""


class MissingModelError(ArtifactNotFoundError):
    """A registered model's artifact is not in the store (deleted, or another store)."""


class UnloadableModelError(StoreError):
    """A registered model's bytes verify but are not a format that can be loaded safely."""


def artifact_tags(ref: ArtifactRef) -> dict[str, str]:
    return {MEDIA_TYPE_TAG: ref.media_type, SIZE_TAG: str(ref.size)}


def artifact_ref(version: ModelVersion) -> ArtifactRef:
    """The store ref of a registered version, rebuilt from what the ledger recorded."""
    return ArtifactRef(
        sha256=version.sha256,
        size=int(version.tags.get(SIZE_TAG, "0")),
        media_type=version.tags.get(MEDIA_TYPE_TAG, PICKLE),
    )


def describe(version: ModelVersion) -> str:
    return f"{version.model_name} v{version.version} ({version.sha256[:12]})"


def verify_model(store: ArtifactStore, version: ModelVersion) -> ArtifactRef:
    """The version's ref, after proving its bytes are the ones the ledger recorded."""
    return _verified_bytes(store, version)[0]


def load_model(store: ArtifactStore, version: ModelVersion) -> AnomalyDetector:
    """Decode a registered model only after its bytes verified against the ledger's hash.

    Callers that serve a model pass a version the audit chain vouches for
    (``Ledger.vouched_version``), so a rewritten version row cannot point here either.
    """
    _, data = _verified_bytes(store, version)
    # A version registered without the tag (the sandbox's, before it recorded one) is told by
    # its bytes; the tag, when present, is what the ledger recorded. The codec checks the bytes
    # either way.
    media_type = version.tags.get(MEDIA_TYPE_TAG) or media_type_of(data)
    if media_type == PICKLE:
        raise UnloadableModelError(
            f"refusing to load {describe(version)}: it was stored as a Python pickle by an older "
            "aiops_assets, and pickles are no longer loaded (they can run code); retrain "
            "(materialize candidate_model) and promote the new version"
        )
    if media_type != SKOPS:
        raise UnloadableModelError(
            f"refusing to load {describe(version)}: its media type {media_type!r} is not a "
            "model format"
        )
    try:
        return load_detector(data)
    except ModelFormatError as error:
        raise UnloadableModelError(f"refusing to load {describe(version)}: {error}") from error


def load_version(store: ArtifactStore, version: ModelVersion, model_format: ModelFormat) -> Any:
    """Any model format's registered version, decoded only after its bytes verified.

    The format is the caller's (its trusted types are code, not data); a version recorded under
    another format is refused rather than handed to a decoder that was not written for it.
    """
    _, data = _verified_bytes(store, version)
    recorded = version.tags.get(MODEL_FORMAT_TAG)
    if recorded and recorded != model_format.name:
        raise UnloadableModelError(
            f"refusing to load {describe(version)}: it was stored as {recorded!r}, and this "
            f"lifecycle reads {model_format.name!r}"
        )
    media_type = version.tags.get(MEDIA_TYPE_TAG) or media_type_of(data)
    if media_type != model_format.media_type:
        raise UnloadableModelError(
            f"refusing to load {describe(version)}: its media type {media_type!r} is not "
            f"{model_format.name}'s {model_format.media_type!r}"
        )
    try:
        return model_format.load(data)
    except ModelFormatError as error:
        raise UnloadableModelError(f"refusing to load {describe(version)}: {error}") from error


def _verified_bytes(store: ArtifactStore, version: ModelVersion) -> tuple[ArtifactRef, bytes]:
    ref = artifact_ref(version)
    try:
        data = store.get_bytes(ref)
    except IntegrityError as error:
        raise TamperedModelError(
            f"refusing to load {describe(version)}: its stored artifact does not match the hash "
            f"the registry recorded ({error}). Restore the object from a backup, or roll back to "
            "another version with `aiops registry rollback`."
        ) from error
    except ArtifactNotFoundError as error:
        raise MissingModelError(
            f"{describe(version)} is registered but its artifact is not in the store at "
            f"{store.root}: is this the store it was trained into?"
        ) from error
    return ref, data
