"""Recording run capsules from assets: into the ledger, into the store, and onto the metadata.

Three places on purpose: the ledger is what ``aiops reproduce`` and ``aiops runs`` query, the
store copy travels with the artifacts (``aiops capsule export``), and the metadata is how the UI
links a materialization to the capsule that can re-create it.
"""

import importlib.metadata
import json

import dagster as dg

from aiops_assets.core.capsule import Capsule
from aiops_assets.core.ledger import Ledger
from aiops_assets.core.store import ArtifactStore


def package_version() -> str:
    try:
        return importlib.metadata.version("aiops-assets")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def record_capsule(
    ledger: Ledger, store: ArtifactStore, capsule: Capsule
) -> dict[str, dg.MetadataValue]:
    """Store the capsule in the ledger and as a JSON artifact; the metadata that links to both."""
    capsule_id = ledger.record_capsule(capsule)
    artifact = store.put_json(json.loads(capsule.to_json()))
    return {
        "capsule_id": dg.MetadataValue.text(capsule_id),
        "capsule_artifact": dg.MetadataValue.text(artifact.sha256),
        "capsule_command": dg.MetadataValue.text(f"aiops reproduce {capsule_id[:12]}"),
    }
