"""The audit log as callers use it: entries outside a registry change, reading, verification."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import select

from aiops_assets.core.ledger.audit import to_audit_entry, verify_chain
from aiops_assets.core.ledger.base import LedgerCore
from aiops_assets.core.ledger.records import AuditEntry, AuditVerification
from aiops_assets.core.ledger.schema import audit_head, audit_log


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

    def audit_entries(self, since_seq: int = 0) -> list[AuditEntry]:
        with self._read() as conn:
            rows = conn.execute(
                select(audit_log).where(audit_log.c.seq > since_seq).order_by(audit_log.c.seq)
            ).all()
        return [to_audit_entry(row) for row in rows]

    def verify_audit(self) -> AuditVerification:
        """Re-derive every hash and MAC and walk the chain, naming each entry that was touched.

        Kinds: ``edited`` (content or MAC no longer matches), ``deleted`` (a gap in seq),
        ``inserted`` (an entry that does not authenticate and does not continue the chain, or
        lies past the head), ``reordered`` (an authentic entry stored under another seq, or
        authentic neighbours that do not link), ``truncated`` (the head names entries beyond
        the last stored one).
        """
        with self._read() as conn:
            rows = conn.execute(select(audit_log).order_by(audit_log.c.seq)).all()
            head = conn.execute(
                select(audit_head.c.last_seq, audit_head.c.last_hash).where(audit_head.c.id == 1)
            ).one_or_none()
        return verify_chain(rows, head, self._mac_ok)
