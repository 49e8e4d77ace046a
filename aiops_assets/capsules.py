"""Recording run capsules from assets: into the ledger, into the store, and onto the metadata.

Three places on purpose: the ledger is what ``aiops reproduce`` and ``aiops runs`` query, the
store copy travels with the artifacts (``aiops capsule export``), and the metadata is how the UI
links a materialization to the capsule that can re-create it. The recording itself is
``core.registration``'s, shared with the Airflow tasks; this module only says it as metadata.
"""

import dagster as dg

from aiops_assets.core import registration
from aiops_assets.core.capsule import Capsule
from aiops_assets.core.ledger import Ledger
from aiops_assets.core.registration import package_version
from aiops_assets.core.store import ArtifactStore

__all__ = ["capsule_metadata", "package_version", "record_capsule"]


def capsule_metadata(facts: dict[str, str]) -> dict[str, dg.MetadataValue]:
    """``core.registration.record_capsule``'s facts as the metadata that links to the capsule."""
    return {name: dg.MetadataValue.text(value) for name, value in facts.items()}


def record_capsule(
    ledger: Ledger, store: ArtifactStore, capsule: Capsule
) -> dict[str, dg.MetadataValue]:
    """Store the capsule in the ledger and as a JSON artifact; the metadata that links to both.

    For any asset whose output should be re-creatable: the ledger copy is what ``aiops
    reproduce`` and ``aiops runs`` find, the store copy travels with the artifacts, and the
    returned metadata (``capsule_id``, ``capsule_artifact``, ``capsule_command``) links the
    materialization to both. Recording the same capsule again records nothing new.

    Args:
        ledger: The registry (``LedgerResource.get_ledger()``).
        store: The artifact store (``ArtifactStoreResource.get_store()``).
        capsule: The run's capsule (``core.capsule.build_capsule``).

    Example:
        >>> metadata = {**record_capsule(ledger.get_ledger(), store, capsule)}  # doctest: +SKIP
    """
    return capsule_metadata(registration.record_capsule(ledger, store, capsule))
