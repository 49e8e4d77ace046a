"""Names in the shared store, and what a step hands its orchestrator.

The Airflow tasks keep each asset's current version under the same store ref the Dagster IO
manager uses (``assets/<asset>/<partition>``), so the two orchestrators read and write one store;
the facts Dagster keeps in materialization metadata (what a later step needs to read back) are
small JSON artifacts under ``facts/`` instead, because Airflow's asset events are not a store.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from aiops_assets.core.store import ArtifactRef, ArtifactStore

# The drift check's facts live under ``facts/checks/drift/<day>`` (``steps_data.drift_step``).
DRIFT_CHECK = "drift"


class StepFailed(Exception):
    """The step cannot produce its asset; the message is the one line the operator reads."""


class StepSkipped(Exception):
    """Nothing to do this time (no champion yet, no request due); the message says why."""


def asset_ref_name(asset: str, partition: str | None) -> str:
    """The store ref of an asset partition's current artifact (as ``aiops_assets.io``'s)."""
    return "/".join(["assets", asset, partition or "_"])


def facts_ref_name(asset: str, partition: str | None) -> str:
    return "/".join(["facts", asset, partition or "_"])


def put_facts(
    store: ArtifactStore, asset: str, partition: str | None, facts: dict[str, Any]
) -> None:
    store.set_ref(facts_ref_name(asset, partition), store.put_json(facts))


def get_facts(store: ArtifactStore, asset: str, partition: str | None) -> dict[str, Any] | None:
    ref = store.get_ref(facts_ref_name(asset, partition))
    if ref is None:
        return None
    facts = store.get_json(ref)
    return facts if isinstance(facts, dict) else None


def fact_partitions(store: ArtifactStore, asset: str) -> list[str]:
    """The partitions ``asset`` has facts for, sorted: what a reader outside the DAGs (``aiops
    incident``) finds in a home without knowing the ``AIOPS_START``/``AIOPS_DAYS`` it was run with.

    The store keeps a ref ``<name>`` at ``refs/<name>.json`` (``core/store.py``); listing that
    folder is the only way to enumerate refs.
    """
    folder = store.root / "refs" / facts_ref_name(asset, None).rsplit("/", 1)[0]
    if not folder.exists():
        return []
    suffix = ".json"
    return sorted(
        entry.name[: -len(suffix)]
        for entry in folder.iterdir()
        if entry.name.endswith(suffix) and entry.name != "_" + suffix
    )


def current_ref(store: ArtifactStore, asset: str, partition: str | None) -> ArtifactRef:
    ref = store.get_ref(asset_ref_name(asset, partition))
    if ref is None:
        where = asset + (f"[{partition}]" if partition else "")
        raise StepFailed(
            f"{where} has no current version in the artifact store at {store.root} (never "
            "materialized, or quarantined by its quality checks); run its task first"
        )
    return ref


@dataclass(frozen=True)
class StepResult:
    """One asset version a step produced: what its Airflow asset event carries as ``extra``."""

    asset: str
    partition: str | None
    sha256: str
    code_version: str
    checks: dict[str, dict[str, Any]] = field(default_factory=dict)
    facts: dict[str, Any] = field(default_factory=dict)

    def extra(self) -> dict[str, Any]:
        """JSON-safe lineage: the data version (content hash), the code version, the checks."""
        return {
            "asset": self.asset,
            "partition": self.partition or "",
            "data_version": self.sha256,
            "code_version": self.code_version,
            "checks": self.checks,
            **self.facts,
        }
