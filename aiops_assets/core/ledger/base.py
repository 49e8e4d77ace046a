"""What every part of the ledger shares: the engine, its transactions, the clock and audit appends.

Each domain part (versions, promotions, capsules, ...) builds on this core, so that a registry
change and the audit entry that carries it are always written in one transaction.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Self

from sqlalchemy import Connection, Table, select
from sqlalchemy.engine import make_url

from aiops_assets.core.ledger.audit import (
    AUDIT_KEY_ENV,
    GENESIS_HASH,
    append_entry,
    lock_head,
    sign,
    signature_ok,
)
from aiops_assets.core.ledger.binding import (
    REGISTRY_DETAIL,
    Delta,
    VouchedState,
    delta,
    describe,
    present_tables,
    registry_state,
    row_digest,
    row_key,
    unexplained_rows,
)
from aiops_assets.core.ledger.encoding import loads_json, utc
from aiops_assets.core.ledger.keys import (
    AuditKey,
    KeyRing,
    KeySearch,
    given_keys,
    key_dir,
    resolve_keys,
    rotate,
)
from aiops_assets.core.ledger.records import AuditEntry, LedgerError
from aiops_assets.core.ledger.schema import (
    HEAD_REVISION,
    WRITE_OPTION,
    audit_head,
    audit_log,
    current_revision,
    open_engine,
    upgrade,
)
from aiops_assets.core.ledger.witness import publish

# The registry as the open write transaction last saw it (on ``Connection.info``).
_STATE = "aiops_registry_state"
# The last entry the open write transaction appended, published once it commits.
_HEAD = "aiops_audit_head"
# The audit action of a key rotation; its details name the key that signs from then on.
KEY_ROTATED = "audit_key_rotated"


def _given_ring(audit_key: bytes | str | None, old_keys: Iterable[bytes | str]) -> KeyRing:
    if isinstance(audit_key, str):
        audit_key = audit_key.encode("utf-8")
    if not audit_key:
        raise LedgerError(f"the audit key is empty; set {AUDIT_KEY_ENV} to a long random secret")
    return KeyRing(AuditKey(bytes(audit_key), "the caller"), given_keys(old_keys))


def _pick(keys: Callable[[str | None, bool], KeyRing] | None, conn: Connection) -> KeyRing:
    """The ring ``keys`` makes for the key that signs here: the one the last rotation made
    current, else the one the newest entry names (a process that kept signing with the old key
    after a rotation does not undo it)."""
    if keys is None:  # pragma: no cover - __init__ builds a given ring whenever keys is None
        raise LedgerError("no audit key given")
    newest = conn.execute(
        select(audit_log.c.key_id).order_by(audit_log.c.seq.desc()).limit(1)
    ).one_or_none()
    rotated = conn.execute(
        select(audit_log.c.details)
        .where(audit_log.c.action == KEY_ROTATED)
        .order_by(audit_log.c.seq.desc())
        .limit(1)
    ).scalar_one_or_none()
    named = None if newest is None else newest.key_id
    details = loads_json(rotated) if rotated is not None else None
    if isinstance(details, dict) and isinstance(details.get("to_key_id"), str):
        named = details["to_key_id"]
    return keys(named, newest is not None)


def _sqlite_path(url: str) -> Path | None:
    parsed = make_url(url)
    database = parsed.database or ""
    if parsed.get_backend_name() != "sqlite" or database in ("", ":memory:"):
        return None
    return None if database.startswith("file:") else Path(database).expanduser()


def _create_private_sqlite(url: str) -> None:
    """A SQLite ledger the ledger makes is 0600 in a 0700 folder, whatever the umask: who may
    read the registry is the folder owner's decision, not a default's."""
    path = _sqlite_path(url)
    if path is None or path.exists():
        return
    if not path.parent.exists():
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(path.parent, 0o700)
    with suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        os.chmod(path, 0o600)


class LedgerCore:
    """The registry and audit log behind one SQLAlchemy URL; safe to share across threads."""

    def __init__(
        self,
        url: str,
        *,
        audit_key: bytes | str | None = None,
        old_keys: Iterable[bytes | str] = (),
        keys: Callable[[str | None, bool], KeyRing] | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        """``audit_key`` signs new entries and ``old_keys`` verify the entries rotated-out keys
        signed; or ``keys`` picks them once the ledger is open, from (the key id the newest
        entry records, whether there are entries) — what :meth:`from_env` does."""
        given = _given_ring(audit_key, old_keys) if keys is None else None
        self._clock = clock or (lambda: datetime.now(UTC))
        self._vouched: tuple[VouchedState, str] | None = None
        self._witness: Path | None = None
        parsed = make_url(url)
        self._url = parsed.render_as_string(hide_password=True)
        _create_private_sqlite(url)
        self._engine = open_engine(url)
        try:
            self._migrate()
            with self._engine.connect() as conn:
                self._bound_tables = present_tables(conn)
                self._keys: KeyRing = given or _pick(keys, conn)
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
        create_key: bool = True,
    ) -> Self:
        """A ledger keyed from a secret kept apart from its data (``core/ledger/keys.py``).

        ``AIOPS_AUDIT_KEY`` wins (a deployment injects it, as ``dg.EnvVar``), then the output of
        ``AIOPS_AUDIT_KEY_COMMAND``, then the key folder's file for the key the newest entry
        names; ``default_key_file`` is an older home's key file, read if present (never made).
        Only a new ledger gets a new key, and only if ``create_key``: a read-only caller (verify)
        passes False, so a missing key is an error naming where it looked, never a fresh key.
        """
        env = os.environ if environ is None else environ
        folder, legacy = key_dir(environ), default_key_file
        data_folder = _sqlite_path(url)

        def keys(newest_key_id: str | None, has_entries: bool) -> KeyRing:
            return resolve_keys(
                KeySearch(
                    environ=env,
                    folder=folder,
                    ledger=str(data_folder.resolve())
                    if data_folder is not None
                    else make_url(url).render_as_string(hide_password=True),
                    legacy_file=Path(legacy) if legacy is not None else None,
                    data_folder=data_folder.parent if data_folder is not None else None,
                    newest_key_id=newest_key_id,
                    has_entries=has_entries,
                    create=create_key,
                )
            )

        return cls(url, keys=keys)

    @property
    def key_id(self) -> str:
        """The id of the key new entries are signed with (not secret: a hash prefix)."""
        return self._keys.current.key_id

    @property
    def _key(self) -> AuditKey:
        """The key appends sign with; a new ledger's key reaches the key folder only here."""
        return self._keys.signing_key()

    @property
    def key_warnings(self) -> list[str]:
        """Worth telling the operator about the key (one kept beside the data), not failures."""
        return list(self._keys.warnings)

    def rotate_key(self, *, actor: str) -> tuple[str, str]:
        """Sign from now on with a new key in the key folder; the old one stays there, so the
        entries it signed keep verifying. Returns (old id, new id); the rotation is an entry of
        its own, signed with the new key, which makes it the one the next opening picks."""
        before = (self._keys.current, dict(self._keys.others))
        old, new = rotate(self._keys)
        try:
            with self._write() as conn:
                self._append(
                    conn,
                    KEY_ROTATED,
                    actor=actor,
                    subject="audit key",
                    details={"from_key_id": old.key_id, "to_key_id": new.key_id},
                    run_id=None,
                    at=self._now(),
                )
        except Exception:
            self._keys.current, self._keys.others = before
            self._keys.marked = False  # the folder's note goes back to the old key too
            raise
        return old.key_id, new.key_id

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
        with self._write(bound=False) as conn:
            upgrade(conn, "head")

    @contextmanager
    def _write(self, *, bound: bool = True) -> Iterator[Connection]:
        """A write transaction; ``bound`` ones refuse to start on a registry the chain does not
        explain, and put the digests of the rows they write into their audit entries."""
        # SQLite: "BEGIN IMMEDIATE" takes the write lock before the first read, so two writers
        # cannot both read the same audit head and then collide on commit.
        with self._engine.connect() as conn:
            conn.execution_options(**{WRITE_OPTION: True})
            with conn.begin():
                if bound:
                    self._begin_bound_write(conn)
                yield conn
                if bound:
                    self._finish_bound_write(conn)
            self._publish_head(conn.info.pop(_HEAD, None))

    def anchor_to(self, witness: Path | None) -> None:
        """Publish every committed head to ``witness`` too (``witness.py``); None stops it."""
        self._witness = None if witness is None else Path(witness)

    @property
    def witness_file(self) -> Path | None:
        return self._witness

    def _publish_head(self, head: AuditEntry | None) -> None:
        if head is None or self._witness is None:
            return
        try:
            publish(self._witness, head.seq, head.entry_hash, utc(head.at).isoformat())
        except OSError as error:
            # The change is committed; an unwitnessed head is reported by verify, not lost.
            warnings.warn(
                f"could not publish audit head {head.seq} to {self._witness}: {error}",
                stacklevel=3,
            )

    def _begin_bound_write(self, conn: Connection) -> None:
        head = lock_head(conn)
        vouched = self._vouched_at(conn, head)
        actual = registry_state(conn, self._bound_tables)
        problems = unexplained_rows(vouched, actual)
        if problems and not vouched.writers and head[0] > 0:
            # A ledger written before its registry was bound: vouch for the rows as found.
            self._append_registry(
                conn, "registry_adopted", delta(VouchedState.empty().rows, actual)
            )
            return
        if problems:
            raise LedgerError(
                "refusing to write: the registry holds rows the audit chain does not explain "
                f"({describe(problems)}); run `aiops audit verify`"
            )
        conn.info[_STATE] = actual

    def _finish_bound_write(self, conn: Connection) -> None:
        # A registry row written after the transaction's last audit entry still gets one.
        rest = delta(conn.info.pop(_STATE, {}), registry_state(conn, self._bound_tables))
        if rest:
            self._append_registry(conn, "registry_write", rest)

    def _append_registry(self, conn: Connection, action: str, rows: Delta) -> None:
        conn.info[_STATE] = registry_state(conn, self._bound_tables)
        conn.info[_HEAD] = append_entry(
            conn,
            self._key,
            action,
            actor="ledger",
            subject=", ".join(sorted(rows)),
            details={REGISTRY_DETAIL: rows},
            run_id=None,
            at=self._now(),
        )

    def _require_vouched(self, conn: Connection, table: Table, row: Mapping[Any, Any]) -> None:
        """Raise unless ``row`` is the one the chain's entries recorded for its key."""
        head = conn.execute(
            select(audit_head.c.last_seq, audit_head.c.last_hash).where(audit_head.c.id == 1)
        ).one()
        vouched = self._vouched_at(conn, (int(head.last_seq), str(head.last_hash)))
        if not vouched.writers and int(head.last_seq) > 0:
            return  # a ledger from before the binding, not yet adopted by a write
        key = row_key(table, row)
        if vouched.rows.get(table.name, {}).get(key) != row_digest(table, row):
            raise LedgerError(
                f"refusing to use {table.name} row {key}: it is not the row the audit chain "
                "recorded (edited around the ledger?); run `aiops audit verify`"
            )

    def _vouched_at(self, conn: Connection, head: tuple[int, str]) -> VouchedState:
        """The registry the chain vouches for at ``head``, read on from the last one seen."""
        seq, last_hash = head
        known = self._vouched
        if known is None or known[0].seq > seq:
            known = (VouchedState.empty(), GENESIS_HASH)
        state, known_hash = known[0].copy(), known[1]
        if state.seq == seq and known_hash == last_hash:
            return state
        rows = conn.execute(
            select(audit_log).where(audit_log.c.seq > state.seq).order_by(audit_log.c.seq)
        ).all()
        if rows and rows[0].prev_hash != known_hash:
            state, rows = (
                VouchedState.empty(),
                conn.execute(select(audit_log).order_by(audit_log.c.seq)).all(),
            )
        for row in rows:
            state.apply(int(row.seq), loads_json(row.details))
        self._vouched = (state.copy(), last_hash)
        return state

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
        before = conn.info.get(_STATE)
        if before is not None:
            after = registry_state(conn, self._bound_tables)
            written = delta(before, after)
            conn.info[_STATE] = after
            if written:
                details = {**(details or {}), REGISTRY_DETAIL: written}
        entry = append_entry(
            conn,
            self._key,
            action,
            actor=actor,
            subject=subject,
            details=details,
            run_id=run_id,
            at=at,
        )
        conn.info[_HEAD] = entry
        return entry

    def _mac(self, digest: str) -> str:
        return sign(self._key.secret, digest)

    def _mac_ok(self, digest: str, mac: str, key_id: str | None = None) -> bool:
        """Whether the key ``key_id`` names signed ``digest`` (UnknownKeyError if no key has
        that id); an entry from before key ids may have been signed by any key of the ring."""
        if key_id is not None:
            return signature_ok(self._keys.key(key_id).secret, digest, mac)
        return any(
            signature_ok(key.secret, digest, mac) for key in self._keys.unlabelled_candidates()
        )
