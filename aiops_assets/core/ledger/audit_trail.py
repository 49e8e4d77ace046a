"""The audit log as callers use it: entries outside a registry change, reading, verification."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import select

from aiops_assets.core.ledger.audit import to_audit_entry, verify_chain
from aiops_assets.core.ledger.base import LedgerCore
from aiops_assets.core.ledger.binding import registry_state, unexplained_rows, vouched_state
from aiops_assets.core.ledger.encoding import loads_json
from aiops_assets.core.ledger.records import AuditEntry, AuditProblem, AuditVerification
from aiops_assets.core.ledger.schema import audit_head, audit_log
from aiops_assets.core.ledger.witness import WitnessedHead, compare, read_witness


class AuditTrailPart(LedgerCore):
    """Reading and verifying the chain that every other part writes to."""

    def audit(
        self,
        action: str,
        *,
        actor: str,
        subject: str,
        details: Mapping[str, Any] | None = None,
        run_id: str | None = None,
    ) -> AuditEntry:
        """Append an entry that is not part of a registry change (a refused request, say)."""
        with self._write() as conn:
            return self._append(
                conn,
                action,
                actor=actor,
                subject=subject,
                details=details,
                run_id=run_id,
                at=self._now(),
            )

    def audit_head(self) -> tuple[int, str]:
        """The last seq and hash, for publishing the head outside the database."""
        with self._read() as conn:
            row = conn.execute(
                select(audit_head.c.last_seq, audit_head.c.last_hash).where(audit_head.c.id == 1)
            ).one()
        return int(row.last_seq), str(row.last_hash)

    def audit_entries(self, since_seq: int = 0) -> list[AuditEntry]:
        with self._read() as conn:
            rows = conn.execute(
                select(audit_log).where(audit_log.c.seq > since_seq).order_by(audit_log.c.seq)
            ).all()
        return [to_audit_entry(row) for row in rows]

    def verify_audit(self, witnessed: Sequence[WitnessedHead] = ()) -> AuditVerification:
        """Re-derive every hash and MAC and walk the chain, naming each entry that was touched.

        Kinds: ``edited`` (content or MAC no longer matches), ``deleted`` (a gap in seq),
        ``inserted`` (an entry that does not authenticate and does not continue the chain, or
        lies past the head), ``reordered`` (an authentic entry stored under another seq, or
        authentic neighbours that do not link), ``truncated`` (the head names entries beyond
        the last stored one); and ``registry edited|inserted|deleted`` for a registry row the
        chain does not explain (``table`` and ``key`` name it; ``core/ledger/binding.py``);
        ``truncated``/``rewritten``/``deleted`` also for a head the witness file or
        ``witnessed`` (Dagster's observations) saw and the chain no longer holds (``witness.py``).
        """
        with self._read() as conn:
            rows = conn.execute(select(audit_log).order_by(audit_log.c.seq)).all()
            head = conn.execute(
                select(audit_head.c.last_seq, audit_head.c.last_hash).where(audit_head.c.id == 1)
            ).one_or_none()
            actual = registry_state(conn, self._bound_tables)
        chain = verify_chain(rows, head, self._mac_ok)
        vouched = vouched_state((int(row.seq), loads_json(row.details)) for row in rows)
        registry = [
            AuditProblem(
                problem.vouched_by or 0,
                f"registry {problem.kind}",
                problem.message(),
                table=problem.table,
                key=problem.key,
            )
            for problem in unexplained_rows(vouched, actual)
        ]
        anchored, notes = self._against_witnesses(rows, witnessed)
        return AuditVerification(
            ok=chain.ok and not registry and not anchored,
            entries=chain.entries,
            problems=[*chain.problems, *registry, *anchored],
            notes=notes,
        )

    def _against_witnesses(
        self, rows: Sequence[Any], witnessed: Sequence[WitnessedHead]
    ) -> tuple[list[AuditProblem], list[str]]:
        """Heads published outside the database that the chain no longer holds as published."""
        heads, notes = list(witnessed), []
        if self.witness_file is not None:
            if self.witness_file.is_file():
                found, unreadable = read_witness(self.witness_file)
                heads += found
                notes += unreadable
            elif rows:
                notes.append(f"no witness file at {self.witness_file}: the head is not anchored")
        chain = {int(row.seq): str(row.entry_hash) for row in rows}
        problems = [AuditProblem(f.seq, f.kind, f.message) for f in compare(chain, heads)]
        return problems, notes
