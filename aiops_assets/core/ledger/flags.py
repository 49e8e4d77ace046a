"""Feature-flag documents: every text ever in force, numbered, with who applied it and why."""

from __future__ import annotations

import hashlib
from typing import Any

from sqlalchemy import Connection, Row, insert, select

from aiops_assets.core.ledger.base import LedgerCore
from aiops_assets.core.ledger.encoding import utc
from aiops_assets.core.ledger.records import FlagVersion
from aiops_assets.core.ledger.schema import flag_versions


class FlagsPart(LedgerCore):
    """The flag documents, kept byte for byte so that what was in force can be shown exactly."""

    def record_flags(self, body: str, *, actor: str, reason: str) -> FlagVersion:
        """Make ``body`` the flags in force; the same text as the latest version is a no-op.

        The audit entry carries the previous version's hash, so the chain alone shows which flag
        document replaced which.
        """
        digest = hashlib.sha256(body.encode("utf-8")).hexdigest()
        with self._write() as conn:
            self._lock_head(conn)
            latest = _latest_row(conn)
            if latest is not None and latest.sha256 == digest:
                return _to_flag_version(latest)
            now = self._now()
            version = 1 if latest is None else int(latest.version) + 1
            conn.execute(
                insert(flag_versions).values(
                    version=version,
                    sha256=digest,
                    body=body,
                    actor=actor,
                    at=now,
                    reason=reason,
                )
            )
            self._append(
                conn,
                "flags_change",
                actor=actor,
                subject="flags",
                details={
                    "version": version,
                    "sha256": digest,
                    "previous_sha256": None if latest is None else latest.sha256,
                    "reason": reason,
                },
                run_id=None,
                at=now,
            )
        return FlagVersion(
            version=version, sha256=digest, body=body, actor=actor, at=now, reason=reason
        )

    def flag_versions(self) -> list[FlagVersion]:
        """Every flag document ever in force, oldest first."""
        with self._read() as conn:
            rows = conn.execute(select(flag_versions).order_by(flag_versions.c.version)).all()
        return [_to_flag_version(row) for row in rows]

    def latest_flags(self) -> FlagVersion | None:
        with self._read() as conn:
            row = _latest_row(conn)
        return None if row is None else _to_flag_version(row)


def _latest_row(conn: Connection) -> Row[Any] | None:
    return conn.execute(
        select(flag_versions).order_by(flag_versions.c.version.desc()).limit(1)
    ).one_or_none()


def _to_flag_version(row: Row[Any]) -> FlagVersion:
    return FlagVersion(
        version=int(row.version),
        sha256=row.sha256,
        body=row.body,
        actor=row.actor,
        at=utc(row.at),
        reason=row.reason,
    )
