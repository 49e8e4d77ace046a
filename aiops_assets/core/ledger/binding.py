"""The registry bound to the audit chain: every registry row is vouched for by a signed entry.

The chain alone proves that nobody edited the log; it says nothing about the tables beside it. An
attacker with SQL access could move the champion alias or point a version at a planted object and
``verify`` would still pass. So every entry carries, under ``details["registry"]``, the digest of
each registry row its transaction wrote (``None`` for a row it deleted). Replaying the chain gives
the registry the log vouches for; any row that differs (edited), is not vouched for (inserted) or
is gone (deleted) was written around the ledger, and is named by table and key.

Writers check the same before writing: a transaction that finds the registry differing from the
chain refuses, so tampering is never laundered into the next legitimate entry's digests.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Integer, Table, func, inspect, literal_column, select
from sqlalchemy.exc import OperationalError

from aiops_assets.core.ledger.encoding import canonical_json, utc
from aiops_assets.core.ledger.schema import (
    alias_history,
    feature_set_status_history,
    feature_sets,
    flag_versions,
    model_aliases,
    model_versions,
    promotions,
    rollout_stages,
    rollouts,
    version_checks,
)

REGISTRY_DETAIL = "registry"
BOUND_TABLES: tuple[Table, ...] = (
    model_versions,
    model_aliases,
    alias_history,
    # A version's check results decide what "last known good" is, so a rollback's target.
    version_checks,
    promotions,
    feature_sets,
    feature_set_status_history,
    flag_versions,
    rollouts,
    rollout_stages,
)

State = dict[str, dict[str, str]]
"""table name -> row key -> row digest."""
Delta = dict[str, dict[str, str | None]]
"""table name -> row key -> new digest, or None for a deleted row."""


@dataclass(frozen=True)
class RegistryProblem:
    """One registry row the chain does not explain."""

    table: str
    key: str
    kind: str  # "edited", "inserted" or "deleted"
    vouched_by: int | None  # the seq of the entry that last wrote the row, if any

    def message(self) -> str:
        where = f"{self.table} row {self.key}"
        if self.kind == "inserted":
            return f"{where} is in the database but no audit entry wrote it"
        if self.kind == "deleted":
            return f"{where}, written by entry {self.vouched_by}, is missing from the database"
        return f"{where} differs from the one entry {self.vouched_by} recorded"


def _value(value: Any) -> Any:
    if isinstance(value, datetime):
        return utc(value).isoformat()
    return value


def row_key(table: Table, row: Mapping[Any, Any]) -> str:
    return canonical_json([_value(row[column.name]) for column in table.primary_key.columns])


def row_digest(table: Table, row: Mapping[Any, Any]) -> str:
    content = {column.name: _value(row[column.name]) for column in table.columns}
    return hashlib.sha256(canonical_json(content).encode("utf-8")).hexdigest()


def present_tables(conn: Connection) -> tuple[Table, ...]:
    """The bound tables this database's schema revision has (an old one may lack some)."""
    names = set(inspect(conn).get_table_names())
    return tuple(table for table in BOUND_TABLES if table.name in names)


def registry_state(conn: Connection, tables: Sequence[Table] = BOUND_TABLES) -> State:
    """The digest of every row of every bound table, as this transaction sees them."""
    return {table.name: _table_state(conn, table) for table in tables}


# A value its column cannot hold: a time that is not a time (ValueError from the type's result
# processor), text that is not UTF-8 (SQLite's OperationalError when decoding it).
_UNREADABLE = (ValueError, TypeError, OperationalError)


def _table_state(conn: Connection, table: Table) -> dict[str, str]:
    try:
        rows = conn.execute(select(table)).mappings().all()
    except _UNREADABLE:
        # SQLite types are only advisory, so SQL can store what the column type cannot read
        # back; that row is an edit to name, not a reason for verify to stop. (PostgreSQL
        # enforces the types: there such an error is not tampering, and is raised.)
        if conn.dialect.name != "sqlite":
            raise
        return _salvaged_state(conn, table)
    return {row_key(table, row): row_digest(table, row) for row in rows}


def _salvaged_state(conn: Connection, table: Table) -> dict[str, str]:
    """Row by row, column by column: a value that cannot be read counts as its hex bytes,
    which no row the ledger wrote has, so the row is reported as edited under its own key."""
    state = {}
    rowid_column = literal_column("rowid", Integer)  # every bound table is a rowid table
    for rowid in conn.execute(select(rowid_column).select_from(table)).scalars().all():
        where = rowid_column == rowid
        row: dict[str, Any] = {}
        for column in table.columns:
            try:
                row[column.name] = conn.execute(select(column).where(where)).scalar_one()
            except _UNREADABLE:
                raw = conn.execute(select(func.hex(column)).where(where)).scalar_one()
                row[column.name] = {"unreadable": raw}
        state[row_key(table, row)] = row_digest(table, row)
    return state


def delta(before: State, after: State) -> Delta:
    """What a transaction changed: rows added or rewritten (their digest) and rows removed."""
    changed: Delta = {}
    for table in BOUND_TABLES:
        old, new = before.get(table.name, {}), after.get(table.name, {})
        rows: dict[str, str | None] = {k: d for k, d in new.items() if old.get(k) != d}
        rows |= {k: None for k in old if k not in new}
        if rows:
            changed[table.name] = rows
    return changed


@dataclass
class VouchedState:
    """The registry as the chain describes it, and which entry last wrote each row."""

    rows: State
    writers: dict[tuple[str, str], int]
    seq: int = 0

    @classmethod
    def empty(cls) -> VouchedState:
        return cls({table.name: {} for table in BOUND_TABLES}, {})

    def apply(self, seq: int, details: Mapping[str, Any]) -> None:
        recorded = details.get(REGISTRY_DETAIL) if isinstance(details, Mapping) else None
        if isinstance(recorded, Mapping):
            for table, rows in recorded.items():
                if not isinstance(rows, Mapping):
                    continue
                current = self.rows.setdefault(str(table), {})
                for key, digest in rows.items():
                    self.writers[(str(table), str(key))] = seq
                    if digest is None:
                        current.pop(str(key), None)
                    else:
                        current[str(key)] = str(digest)
        self.seq = seq

    def copy(self) -> VouchedState:
        return VouchedState(
            {table: dict(rows) for table, rows in self.rows.items()}, dict(self.writers), self.seq
        )


def vouched_state(entries: Iterable[tuple[int, Mapping[str, Any]]]) -> VouchedState:
    state = VouchedState.empty()
    for seq, details in entries:
        state.apply(seq, details)
    return state


def unexplained_rows(vouched: VouchedState, actual: State) -> list[RegistryProblem]:
    """Every row where the database and the chain disagree, table by table, in key order."""
    problems = []
    for table in BOUND_TABLES:
        expected, found = vouched.rows.get(table.name, {}), actual.get(table.name, {})
        for key in sorted(set(expected) | set(found)):
            if expected.get(key) == found.get(key):
                continue
            kind = (
                "inserted" if key not in expected else "deleted" if key not in found else "edited"
            )
            writer = vouched.writers.get((table.name, key))
            problems.append(RegistryProblem(table.name, key, kind, writer))
    return problems


def describe(problems: list[RegistryProblem], limit: int = 3) -> str:
    shown = "; ".join(f"{p.kind}: {p.message()}" for p in problems[:limit])
    more = f"; and {len(problems) - limit} more" if len(problems) > limit else ""
    return f"{shown}{more}"
