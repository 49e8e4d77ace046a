"""The audit chain's head in Dagster's event log: a second witness outside the ledger database.

Dagster's event log lives in its own storage, so a run that changed the registry records the head
it left as an observation of ``aiops_audit_head``; ``aiops audit verify`` reads them back and
requires the chain to still hold each one (``core/ledger/witness.py``).
"""

from __future__ import annotations

from datetime import UTC, datetime

import dagster as dg

from aiops_assets.core.ledger import Ledger, WitnessedHead

AUDIT_HEAD_KEY = dg.AssetKey("aiops_audit_head")
_SOURCE = "Dagster observation"


def observe_audit_head(context: dg.AssetExecutionContext, ledger: Ledger) -> None:
    seq, digest = ledger.audit_head()
    if seq == 0:
        return
    context.log_event(
        dg.AssetObservation(
            asset_key=AUDIT_HEAD_KEY,
            metadata={"seq": dg.MetadataValue.int(seq), "hash": dg.MetadataValue.text(digest)},
        )
    )


def observed_heads(instance: dg.DagsterInstance, limit: int = 10_000) -> list[WitnessedHead]:
    """The heads runs observed, newest first (the highest is the one that matters most)."""
    records = instance.fetch_observations(AUDIT_HEAD_KEY, limit=limit).records
    heads = []
    for record in records:
        observation = record.event_log_entry.asset_observation
        metadata = observation.metadata if observation is not None else {}
        seq, digest = metadata.get("seq"), metadata.get("hash")
        if isinstance(seq, dg.IntMetadataValue) and isinstance(digest, dg.TextMetadataValue):
            at = datetime.fromtimestamp(record.event_log_entry.timestamp, UTC).isoformat()
            heads.append(WitnessedHead(int(seq.value or 0), str(digest.text), at, _SOURCE))
    return heads
