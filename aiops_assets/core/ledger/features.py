"""Feature-set lifecycle: each version's status, and every change of it with its evidence.

A feature set's current status is a column for cheap reads; every change of it is a history row
written in the same transaction as its audit entry, so the column can always be re-derived from
the history.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from sqlalchemy import Connection, Row, insert, select, update

from aiops_assets.core.ledger.base import LedgerCore
from aiops_assets.core.ledger.encoding import canonical_json, loads_json, utc
from aiops_assets.core.ledger.records import (
    FeatureSetRecord,
    FeatureSetStatusChange,
    LedgerError,
)
from aiops_assets.core.ledger.schema import feature_set_status_history, feature_sets


class FeatureSetsPart(LedgerCore):
    """Registering feature-set versions and moving them through their lifecycle statuses."""

    def register_feature_set(
        self,
        version_id: str,
        *,
        name: str,
        spec: Mapping[str, Any],
        actor: str,
        status: str = "experimental",
        reason: str = "registered",
        run_id: str | None = None,
    ) -> FeatureSetRecord:
        """The record for this version; registering it again returns the first record as is.

        The version id is derived from the spec's hash, so a second registration is the same
        feature set seen again (a re-run, another notebook), not news.
        """
        spec_text = canonical_json(dict(spec))
        with self._write() as conn:
            self._lock_head(conn)
            existing = _feature_set_row(conn, version_id)
            if existing is not None:
                return _to_feature_set(existing)
            now = self._now()
            conn.execute(
                insert(feature_sets).values(
                    version_id=version_id,
                    name=name,
                    spec=spec_text,
                    status=status,
                    registered_at=now,
                    registered_by=actor,
                    updated_at=now,
                )
            )
            change = FeatureSetStatusChange(
                version_id=version_id,
                from_status=None,
                to_status=status,
                actor=actor,
                at=now,
                reason=reason,
                evidence={},
                run_id=run_id,
            )
            _insert_status_change(conn, change, canonical_json({}))
            self._append(
                conn,
                "register_feature_set",
                actor=actor,
                subject=f"feature_set:{version_id}",
                details={"name": name, "status": status, "spec": json.loads(spec_text)},
                run_id=run_id,
                at=now,
            )
            row = conn.execute(
                select(feature_sets).where(feature_sets.c.version_id == version_id)
            ).one()
            return _to_feature_set(row)

    def set_feature_set_status(
        self,
        version_id: str,
        status: str,
        *,
        expected_from: str,
        actor: str,
        reason: str,
        evidence: Mapping[str, Any] | None = None,
        run_id: str | None = None,
    ) -> FeatureSetStatusChange:
        """Move a feature set to ``status`` if it still has ``expected_from``.

        The caller decided on the transition from a status it read earlier; checking that status
        again under the write lock keeps two concurrent decisions from both applying.
        """
        evidence_text = canonical_json(dict(evidence or {}))
        with self._write() as conn:
            self._lock_head(conn)
            current = _require_status(conn, version_id, expected_from)
            return self._move_feature_set(
                conn, version_id, str(current), status, actor, reason, evidence_text, run_id
            )

    def promote_to_production(
        self,
        version_id: str,
        *,
        actor: str,
        reason: str,
        evidence: Mapping[str, Any] | None = None,
        run_id: str | None = None,
    ) -> list[FeatureSetStatusChange]:
        """Move a candidate to production and retire the production set(s) of its name that it
        replaces, in one audited transaction: a name never has two production sets at once.

        Returns the changes in order: each retirement, then the promotion.
        """
        evidence_text = canonical_json(dict(evidence or {}))
        with self._write() as conn:
            self._lock_head(conn)
            _require_status(conn, version_id, "candidate")
            name = conn.execute(
                select(feature_sets.c.name).where(feature_sets.c.version_id == version_id)
            ).scalar_one()
            replaced = conn.execute(
                select(feature_sets.c.version_id)
                .where(feature_sets.c.name == name, feature_sets.c.status == "production")
                .order_by(feature_sets.c.version_id)
            ).scalars()
            moves = [
                (
                    str(old),
                    "production",
                    "retired",
                    f"replaced in production by {version_id}",
                    canonical_json({"replaced_by": version_id}),
                )
                for old in replaced
            ]
            moves.append((version_id, "candidate", "production", reason, evidence_text))
            changes = []
            for target, before, after, why, proof in moves:
                changes.append(
                    self._move_feature_set(conn, target, before, after, actor, why, proof, run_id)
                )
            return changes

    def _move_feature_set(
        self,
        conn: Connection,
        version_id: str,
        from_status: str,
        to_status: str,
        actor: str,
        reason: str,
        evidence_text: str,
        run_id: str | None,
    ) -> FeatureSetStatusChange:
        now = self._now()
        conn.execute(
            update(feature_sets)
            .where(feature_sets.c.version_id == version_id)
            .values(status=to_status, updated_at=now)
        )
        change = FeatureSetStatusChange(
            version_id=version_id,
            from_status=from_status,
            to_status=to_status,
            actor=actor,
            at=now,
            reason=reason,
            evidence=json.loads(evidence_text),
            run_id=run_id,
        )
        _insert_status_change(conn, change, evidence_text)
        self._append(
            conn,
            "feature_set_status",
            actor=actor,
            subject=f"feature_set:{version_id}",
            details={
                "from_status": from_status,
                "to_status": to_status,
                "reason": reason,
                "evidence": json.loads(evidence_text),
            },
            run_id=run_id,
            at=now,
        )
        return change

    def get_feature_set(self, version_id: str) -> FeatureSetRecord | None:
        with self._read() as conn:
            row = _feature_set_row(conn, version_id)
        return None if row is None else _to_feature_set(row)

    def list_feature_sets(
        self, *, name: str | None = None, status: str | None = None
    ) -> list[FeatureSetRecord]:
        """Oldest registration first."""
        query = select(feature_sets)
        if name is not None:
            query = query.where(feature_sets.c.name == name)
        if status is not None:
            query = query.where(feature_sets.c.status == status)
        with self._read() as conn:
            rows = conn.execute(
                query.order_by(feature_sets.c.registered_at, feature_sets.c.version_id)
            ).all()
        return [_to_feature_set(row) for row in rows]

    def feature_set_history(self, version_id: str | None = None) -> list[FeatureSetStatusChange]:
        """Status changes oldest first, of one feature set or of all."""
        query = select(feature_set_status_history)
        if version_id is not None:
            query = query.where(feature_set_status_history.c.version_id == version_id)
        with self._read() as conn:
            rows = conn.execute(query.order_by(feature_set_status_history.c.id)).all()
        return [_to_status_change(row) for row in rows]


def _feature_set_row(conn: Connection, version_id: str) -> Row[Any] | None:
    return conn.execute(
        select(feature_sets).where(feature_sets.c.version_id == version_id)
    ).one_or_none()


def _require_status(conn: Connection, version_id: str, expected: str) -> Any:
    """The stored status, which must still be the one the caller decided from."""
    current = conn.execute(
        select(feature_sets.c.status).where(feature_sets.c.version_id == version_id)
    ).scalar()
    if current is None:
        raise LedgerError(f"feature set {version_id} is not registered")
    if current != expected:
        raise LedgerError(
            f"feature set {version_id} is {current}, not {expected}: its status "
            "changed since it was read"
        )
    return current


def _insert_status_change(
    conn: Connection, change: FeatureSetStatusChange, evidence_text: str
) -> None:
    conn.execute(
        insert(feature_set_status_history).values(
            version_id=change.version_id,
            from_status=change.from_status,
            to_status=change.to_status,
            actor=change.actor,
            at=change.at,
            reason=change.reason,
            evidence=evidence_text,
            run_id=change.run_id,
        )
    )


def _to_feature_set(row: Row[Any]) -> FeatureSetRecord:
    return FeatureSetRecord(
        version_id=row.version_id,
        name=row.name,
        spec=loads_json(row.spec),
        status=row.status,
        registered_at=utc(row.registered_at),
        registered_by=row.registered_by,
        updated_at=utc(row.updated_at),
    )


def _to_status_change(row: Row[Any]) -> FeatureSetStatusChange:
    return FeatureSetStatusChange(
        version_id=row.version_id,
        from_status=row.from_status,
        to_status=row.to_status,
        actor=row.actor,
        at=utc(row.at),
        reason=row.reason,
        evidence=loads_json(row.evidence),
        run_id=row.run_id,
    )
