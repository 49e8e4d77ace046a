"""What every part of the ledger shares: the engine, its transactions, the clock and audit appends.

Each domain part (versions, promotions, capsules, ...) builds on this core, so that a registry
change and the audit entry that carries it are always written in one transaction.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Self

from sqlalchemy import Connection
from sqlalchemy.engine import make_url

from aiops_assets.core.ledger.audit import (
    AUDIT_KEY_ENV,
    append_entry,
    lock_head,
    read_or_create_key,
    sign,
    signature_ok,
)
from aiops_assets.core.ledger.encoding import utc
from aiops_assets.core.ledger.records import AuditEntry, LedgerError
from aiops_assets.core.ledger.schema import (
    HEAD_REVISION,
    WRITE_OPTION,
    current_revision,
    open_engine,
    upgrade,
)


class LedgerCore:
    """The registry and audit log behind one SQLAlchemy URL; safe to share across threads."""

    def __init__(
        self,
        url: str,
        *,
        audit_key: bytes,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        if isinstance(audit_key, str):
            audit_key = audit_key.encode("utf-8")
        if not audit_key:
            raise LedgerError(
                f"the audit key is empty; set {AUDIT_KEY_ENV} to a long random secret"
            )
        self._key = bytes(audit_key)
        self._clock = clock or (lambda: datetime.now(UTC))
        parsed = make_url(url)
        self._url = parsed.render_as_string(hide_password=True)
        self._engine = open_engine(url)
        try:
            self._migrate()
        except Exception:
            self._engine.dispose()
            raise

    @classmethod
    def from_env(
        cls,
        url: str,
        *,
        environ: Mapping[str, str] | None = None,
        default_key_file: Path | None = None,
    ) -> Self:
        """A ledger keyed from ``AIOPS_AUDIT_KEY``, else from a local key file made on first use.

        The environment wins so that a shared deployment can inject its secret; the key file
        keeps a laptop demo working without setup, and is created private (0600).
        """
        env = os.environ if environ is None else environ
        from_env = env.get(AUDIT_KEY_ENV, "")
        if from_env:
            return cls(url, audit_key=from_env.encode("utf-8"))
        if default_key_file is not None:
            return cls(url, audit_key=read_or_create_key(Path(default_key_file)))
        raise LedgerError(
            f"no audit key: set the environment variable {AUDIT_KEY_ENV} to a long random "
            "secret (for example the output of `python -c 'import secrets; "
            "print(secrets.token_hex(32))'`) or configure a key file"
        )

    @property
    def url(self) -> str:
        return self._url

    def dispose(self) -> None:
        self._engine.dispose()

    def __repr__(self) -> str:
        return f"Ledger({self._url!r})"

    def _migrate(self) -> None:
        with self._engine.connect() as conn:
            if current_revision(conn) == HEAD_REVISION:
                return
        with self._write() as conn:
            upgrade(conn, "head")

    @contextmanager
    def _write(self) -> Iterator[Connection]:
        # SQLite: "BEGIN IMMEDIATE" takes the write lock before the first read, so two writers
        # cannot both read the same audit head and then collide on commit.
        with self._engine.connect() as conn:
            conn.execution_options(**{WRITE_OPTION: True})
            with conn.begin():
                yield conn

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        with self._engine.connect() as conn, conn.begin():
            yield conn

    def _now(self) -> datetime:
        return utc(self._clock())

    def _lock_head(self, conn: Connection) -> tuple[int, str]:
        """Lock the audit head for the rest of the transaction (a row lock on PostgreSQL)."""
        return lock_head(conn)

    def _append(
        self,
        conn: Connection,
        action: str,
        *,
        actor: str,
        subject: str,
        details: Mapping[str, Any] | None,
        run_id: str | None,
        at: datetime,
    ) -> AuditEntry:
        return append_entry(
            conn,
            self._key,
            action,
            actor=actor,
            subject=subject,
            details=details,
            run_id=run_id,
            at=at,
        )

    def _mac(self, digest: str) -> str:
        return sign(self._key, digest)

    def _mac_ok(self, digest: str, mac: str) -> bool:
        return signature_ok(self._key, digest, mac)
