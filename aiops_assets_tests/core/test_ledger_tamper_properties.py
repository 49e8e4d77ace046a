"""Issue 19's property: any SQL edit of any registry table, and any truncation, is detected.

The attacker writes ``ledger.db`` with ``sqlite3`` (foreign keys off, SQLite's advisory types)
but holds neither the audit key nor the witness. One ledger with rows in every registry table is
built once; each example edits a copy of it and asks ``Ledger.verify_audit`` (what ``aiops audit
verify`` prints), which must name the table, the key and the kind of the edit.

An edit is one the ledger can see: a value SQLAlchemy reads back as the same value (``2`` for
``true``, ``'1'`` in an INTEGER column, another spelling of the same time) changes nothing any
reader of the registry sees, so such examples are discarded rather than counted as detected.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, event, given, reject, settings
from hypothesis import strategies as st

from aiops_assets.core.ledger import AuditVerification, Ledger, LedgerError, metadata

KEY = b"tamper-property-key-" + b"p" * 16
MODEL = "detector"
START = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)
_SQLITE_TIME = "%Y-%m-%d %H:%M:%S.%f"

# Every table of the schema is a registry table except the chain itself and the two logs whose
# rows are not registry facts (capsules are content-addressed; experiment runs are notes). A new
# table lands in the registry list by default, and then needs rows here and a binding.
_NOT_REGISTRY = {"audit_log", "audit_head", "capsules", "experiment_runs", "aiops_ledger_version"}
REGISTRY = {name: table for name, table in metadata.tables.items() if name not in _NOT_REGISTRY}


# --- the ledger every example starts from -----------------------------------------------------


def _clock() -> Callable[[], datetime]:
    ticks = iter(range(1_000_000))
    return lambda: START + timedelta(seconds=next(ticks))


def _populate(ledger: Ledger) -> None:
    """Through the API: versions, checks, aliases and their history, promotions, feature sets
    and their status history, flags, a rollout with two stages, and audit-only entries."""
    for n in (1, 2, 3):
        ledger.register_model_version(
            MODEL,
            f"{n:064x}",
            metrics={"pr_auc": 0.5 + n / 10},
            training_set_version=f"train-{n}",
            feature_set_version="fs1",
            actor="local:test",
            capsule_ref=None if n == 1 else f"capsule-{n}",
            run_id=f"run-{n}",
            tags={"seed": str(n)},
        )
    ledger.set_alias(MODEL, "champion", 1, actor="local:test", reason="first")
    ledger.record_check(MODEL, 1, "perf", passed=True, partition="2026-01-05", metrics={"f1": 1})
    ledger.record_check(MODEL, 2, "perf", passed=False, partition="2026-01-05")
    ledger.record_promotion(
        MODEL,
        candidate_version=2,
        champion_version=1,
        promoted=True,
        reason="all criteria passed",
        evidence={"margin": 0.1},
        actor="sensor:gate",
    )
    ledger.set_alias(MODEL, "champion", 2, actor="sensor:gate", reason="promoted", kind="promote")
    ledger.audit("refused", actor="mallory", subject="promote", details={"why": "no role"})
    ledger.record_promotion(
        MODEL,
        candidate_version=3,
        champion_version=2,
        promoted=False,
        reason="not distinguishable from noise",
        evidence={},
        actor="sensor:gate",
    )
    for version_id, spec in (("fs1", {"window": 5}), ("fs2", {"window": 7})):
        ledger.register_feature_set(version_id, name="features", spec=spec, actor="local:test")
        ledger.set_feature_set_status(
            version_id, "candidate", expected_from="experimental", actor="local:test", reason="ok"
        )
        ledger.promote_to_production(version_id, actor="local:test", reason="ablation passed")
    ledger.record_flags("scoring: on\n", actor="local:test", reason="first")
    ledger.record_flags("scoring: off\n", actor="local:test", reason="incident")
    rollout = ledger.start_rollout(
        MODEL,
        3,
        from_version=2,
        plan={"stages": ["canary", "all"]},
        stage_name="canary",
        services=["api"],
        actor="local:test",
        reason="override: incident fix",
    )
    ledger.update_rollout(
        rollout.rollout_id,
        stage_index=0,
        stage_status="passed",
        evidence={"labelled_anomalies": 4},
        actor="sensor:rollout",
        next_stage=("all", ["api", "db"]),
    )
    ledger.update_rollout(
        rollout.rollout_id,
        stage_index=1,
        stage_status="passed",
        evidence={"labelled_anomalies": 9},
        actor="sensor:rollout",
        rollout_status="completed",
        promote_reason="every stage passed",
    )
    ledger.audit("export", actor="local:test", subject="capsule abc")


@dataclass(frozen=True)
class Built:
    db: Path
    witness: Path
    # table -> its rows as stored (with "_rowid"); each entry's registry digests
    rows: Mapping[str, list[dict[str, Any]]] = field(repr=False)
    registry: Sequence[Mapping[str, Mapping[str, str | None]]] = field(repr=False)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    folder = tmp_path_factory.mktemp("tamper-properties")
    db, witness = folder / "ledger.db", folder / "witness" / "heads.jsonl"
    ledger = Ledger(f"sqlite:///{db}", audit_key=KEY, clock=_clock())
    ledger.anchor_to(witness)
    try:
        _populate(ledger)
        registry = [dict(entry.registry) for entry in ledger.audit_entries()]
        assert _verify(ledger).ok
    finally:
        ledger.dispose()
    rows = {name: _stored_rows(db, name) for name in REGISTRY}
    assert all(rows.values()), {name: len(found) for name, found in rows.items()}
    return Built(db, witness, rows, registry)


def _stored_rows(db: Path, table: str) -> list[dict[str, Any]]:
    with sqlite3.connect(db) as conn:
        conn.row_factory = sqlite3.Row
        return [
            dict(row)
            for row in conn.execute(f"SELECT rowid AS _rowid, * FROM {table} ORDER BY rowid")
        ]


def _verify(ledger: Ledger) -> AuditVerification:
    verification = ledger.verify_audit()
    assert verification.ok == (not verification.problems), verification
    return verification


@pytest.fixture
def copy_of(built: Built) -> Iterator[Callable[[bool], tuple[Path, Path]]]:
    """A fresh copy of the built ledger (and, if asked, of its witness) per example."""
    with tempfile.TemporaryDirectory(prefix="tamper-") as scratch:
        counter = iter(range(1_000_000))

        def copy(with_witness: bool = True) -> tuple[Path, Path]:
            folder = Path(scratch) / str(next(counter))
            folder.mkdir()
            shutil.copy(built.db, folder / "ledger.db")
            if with_witness:
                shutil.copy(built.witness, folder / "witness.jsonl")
            return folder / "ledger.db", folder / "witness.jsonl"

        yield copy


def _verdict(db: Path, witness: Path) -> AuditVerification:
    ledger = Ledger(f"sqlite:///{db}", audit_key=KEY)
    ledger.anchor_to(witness)
    try:
        return _verify(ledger)
    finally:
        ledger.dispose()


def _key(values: list[Any]) -> str:
    """A row's key as verify names it: the JSON list of its primary-key values."""
    return json.dumps(values, separators=(",", ":"), ensure_ascii=False)


def _key_of(table: str, row: Mapping[str, Any]) -> str:
    return _key([row[column.name] for column in REGISTRY[table].primary_key.columns])


# --- registry edits -----------------------------------------------------------------------------


class _NotUtf8:
    """Text SQLite stores but that is not UTF-8 (``CAST(X'FF' AS TEXT)``)."""

    def __repr__(self) -> str:
        return "NOT_UTF8"


NOT_UTF8 = _NotUtf8()


def _times() -> st.SearchStrategy[Any]:
    shifted = st.integers(-86_400, 86_400).map(
        lambda s: (START + timedelta(seconds=s)).strftime(_SQLITE_TIME)
    )
    return shifted | st.sampled_from(["not a time", "", "2026-13-45 99:00:00", "2026-01-05"])


def _values(column: sa.Column[Any], rows: list[dict[str, Any]]) -> st.SearchStrategy[Any]:
    """Plausible values (another row's, a near one) and ones the column cannot hold."""
    others = sorted({row[column.name] for row in rows}, key=repr)
    typed: st.SearchStrategy[Any]
    if isinstance(column.type, sa.Boolean):
        typed = st.integers(0, 2)
    elif isinstance(column.type, sa.Integer):
        typed = st.integers(-2, 12)
    elif isinstance(column.type, sa.DateTime):
        typed = _times()
    else:
        typed = st.text(max_size=12) | st.sampled_from(["{}", '{"pr_auc":0.99}', "f" * 64])
    plausible = st.sampled_from(others) | typed
    if column.primary_key:
        return plausible  # a new key: the old one deleted and the new one inserted
    wrong_type = st.sampled_from([NOT_UTF8, 9e999, b"\x00", "x"]) | st.floats(allow_nan=False)
    return plausible | wrong_type


@dataclass(frozen=True)
class Edit:
    table: str
    sql: str
    args: tuple[Any, ...]
    expected: frozenset[tuple[str, str]]  # (key, kind) verify must name, or () if it depends
    pk_of_rowid: int | None = None  # a key update: the row's new key is read after the edit


def _assignment(column: str, value: Any) -> tuple[str, tuple[Any, ...]]:
    if value is NOT_UTF8:
        return f"{column} = CAST(X'FF' AS TEXT)", ()
    return f"{column} = ?", (value,)


@st.composite
def _updates(draw: st.DrawFn, built: Built) -> Edit:
    table = draw(st.sampled_from(sorted(REGISTRY)))
    rows = built.rows[table]
    row = draw(st.sampled_from(rows))
    column = draw(st.sampled_from(list(REGISTRY[table].columns)))
    value = draw(_values(column, rows))
    assignment, args = _assignment(column.name, value)
    sql = f"UPDATE {table} SET {assignment} WHERE rowid = ?"
    old_key = _key_of(table, row)
    if column.primary_key:
        return Edit(table, sql, (*args, row["_rowid"]), frozenset(), pk_of_rowid=row["_rowid"])
    return Edit(table, sql, (*args, row["_rowid"]), frozenset({(old_key, "registry edited")}))


@st.composite
def _deletes(draw: st.DrawFn, built: Built) -> Edit:
    table = draw(st.sampled_from(sorted(REGISTRY)))
    row = draw(st.sampled_from(built.rows[table]))
    key = _key_of(table, row)
    return Edit(
        table,
        f"DELETE FROM {table} WHERE rowid = ?",
        (row["_rowid"],),
        frozenset({(key, "registry deleted")}),
    )


# Columns an inserted copy must change too, or a unique constraint refuses it.
_UNIQUE_FIXUPS: dict[str, Callable[[list[dict[str, Any]], int], dict[str, Any]]] = {
    "model_versions": lambda rows, n: {
        "version": max(r["version"] for r in rows) + 1 + n,
        "sha256": f"{0xE0 + n:064x}",
    },
    "rollout_stages": lambda rows, n: {"stage_index": max(r["stage_index"] for r in rows) + 1},
}


@st.composite
def _inserts(draw: st.DrawFn, built: Built) -> Edit:
    """A copy of an existing row under a fresh key, perhaps with one value changed."""
    table = draw(st.sampled_from(sorted(REGISTRY)))
    rows = built.rows[table]
    values = {k: v for k, v in draw(st.sampled_from(rows)).items() if k != "_rowid"}
    n = draw(st.integers(0, 3))
    for column in REGISTRY[table].primary_key.columns:
        if isinstance(column.type, sa.Integer):
            values[column.name] = max(r[column.name] for r in rows) + 1 + n
        else:
            values[column.name] = draw(st.sampled_from(["challenger", "shadow", "fs9"]))
    values |= _UNIQUE_FIXUPS.get(table, lambda _rows, _n: {})(rows, n)
    changed = draw(st.none() | st.sampled_from(list(REGISTRY[table].columns)))
    if changed is not None and not changed.primary_key:
        values[changed.name] = draw(_values(changed, rows).filter(lambda v: v is not NOT_UTF8))
    columns = ", ".join(values)
    marks = ", ".join("?" for _ in values)
    key = _key([values[c.name] for c in REGISTRY[table].primary_key.columns])
    return Edit(
        table,
        f"INSERT INTO {table} ({columns}) VALUES ({marks})",
        tuple(values.values()),
        frozenset({(key, "registry inserted")}),
    )


def _as_the_ledger_reads(db: Path, table: str) -> object:
    """The table as SQLAlchemy reads it (rowid and every column), or a fresh object when some
    value cannot even be read: that is never the same as before."""
    engine = sa.create_engine(f"sqlite:///{db}")
    try:
        with engine.connect() as conn:
            rowid = sa.literal_column("rowid", sa.Integer)
            query = sa.select(rowid, *REGISTRY[table].columns).order_by(rowid)
            return [tuple(row) for row in conn.execute(query)]
    except (ValueError, TypeError, sa.exc.OperationalError):
        return object()
    finally:
        engine.dispose()


def _apply(db: Path, edit: Edit) -> None:
    before = _as_the_ledger_reads(db, edit.table)
    try:
        with sqlite3.connect(db) as conn:
            conn.execute(edit.sql, edit.args)
    except sqlite3.IntegrityError:
        reject()  # NOT NULL, a taken key, a non-integer rowid: SQLite refused the edit itself
    if _as_the_ledger_reads(db, edit.table) == before:
        reject()  # the same values, as every reader of the registry sees them: not an edit


def _expected(db: Path, edit: Edit, built: Built) -> frozenset[tuple[str, str]]:
    if edit.pk_of_rowid is None:
        return edit.expected
    [old] = [row for row in built.rows[edit.table] if row["_rowid"] == edit.pk_of_rowid]
    new = [row for row in _stored_rows(db, edit.table) if row not in built.rows[edit.table]]
    assert len(new) == 1, new
    return frozenset(
        {
            (_key_of(edit.table, old), "registry deleted"),
            (_key_of(edit.table, new[0]), "registry inserted"),
        }
    )


@settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.filter_too_much],
)
@given(data=st.data())
def test_any_sql_edit_of_any_registry_table_is_named_by_table_key_and_kind(
    built: Built, copy_of: Callable[[bool], tuple[Path, Path]], data: st.DataObject
) -> None:
    edit = data.draw(_updates(built) | _deletes(built) | _inserts(built), label="edit")
    event(f"{edit.sql.split()[0]} {edit.table}")
    db, witness = copy_of(True)
    _apply(db, edit)
    verification = _verdict(db, witness)
    named = {(p.table, p.key, p.kind) for p in verification.problems}
    assert not verification.ok
    assert named == {(edit.table, key, kind) for key, kind in _expected(db, edit, built)}
    # An edited or deleted row names the entry that vouched for it.
    assert all(p.seq > 0 for p in verification.problems if p.kind != "registry inserted")


# --- truncation -----------------------------------------------------------------------------------


def _registry_after(registry: Sequence[Mapping[str, Mapping[str, str | None]]]) -> dict[Any, str]:
    """The rows (table, key) -> digest the given entries vouch for, replayed in order."""
    state: dict[Any, str] = {}
    for rows_by_table in registry:
        for table, rows in rows_by_table.items():
            for key, digest in rows.items():
                if digest is None:
                    state.pop((table, key), None)
                else:
                    state[(table, key)] = digest
    return state


def _unexplained(built: Built, keep: int) -> set[tuple[str, str, str]]:
    """What dropping every entry after ``keep`` leaves unexplained in the intact registry."""
    vouched, actual = _registry_after(built.registry[:keep]), _registry_after(built.registry)
    found = set()
    for table, key in set(vouched) | set(actual):
        if vouched.get((table, key)) != actual.get((table, key)):
            kind = (
                "inserted"
                if (table, key) not in vouched
                else "deleted"
                if (table, key) not in actual
                else "edited"
            )
            found.add((table, key, f"registry {kind}"))
    return found


def _truncate(db: Path, keep: int, *, rewind: bool) -> None:
    with sqlite3.connect(db) as conn:
        conn.execute("DELETE FROM audit_log WHERE seq > ?", (keep,))
        if rewind:
            last = conn.execute(
                "SELECT seq, entry_hash FROM audit_log ORDER BY seq DESC LIMIT 1"
            ).fetchone() or (0, "0" * 64)
            conn.execute("UPDATE audit_head SET last_seq = ?, last_hash = ?", last)


@settings(
    max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data(), rewind=st.booleans(), witnessed=st.booleans())
def test_any_truncation_is_detected(
    built: Built,
    copy_of: Callable[[bool], tuple[Path, Path]],
    data: st.DataObject,
    rewind: bool,
    witnessed: bool,
) -> None:
    """With the witness, every truncation is ``truncated`` at the first missing entry; without
    it (deleted, or never kept), a rewound head hides the cut unless the cut entries carried
    registry rows, which are then named as the chain no longer explaining them."""
    total = len(built.registry)
    cut = data.draw(st.integers(1, total), label="entries cut")
    keep = total - cut
    db, witness = copy_of(witnessed)
    _truncate(db, keep, rewind=rewind)
    verification = _verdict(db, witness)
    found = {(p.kind, p.seq) for p in verification.problems}
    registry = {(p.table, p.key, p.kind) for p in verification.problems if p.table is not None}
    assert registry == _unexplained(built, keep)
    assert (("truncated", keep + 1) in found) == (witnessed or not rewind), found
    assert verification.ok == (rewind and not witnessed and not registry)
    if not witnessed and keep:
        assert any("not anchored" in note for note in verification.notes)


def test_an_audit_only_tail_cut_without_a_witness_is_the_case_only_the_witness_catches(
    built: Built,
) -> None:
    """The fixture ends with an audit-only entry, so the property test meets that case."""
    assert built.registry[-1] == {} and built.registry[-2] != {}


# --- regressions found by the properties ------------------------------------------------------


@pytest.mark.parametrize(
    ("sql", "table", "key"),
    [
        # Verify stopped with "Invalid isoformat string" instead of naming the row.
        (
            "UPDATE model_versions SET created_at = 'not a time' WHERE id = 2",
            "model_versions",
            "[2]",
        ),
        # ... and with SQLite's "Could not decode to UTF-8" on text that is not UTF-8.
        ("UPDATE promotions SET reason = CAST(X'FF' AS TEXT) WHERE id = 1", "promotions", "[1]"),
        # A check's verdict decides the rollback target, and was outside the binding.
        ("UPDATE version_checks SET passed = 1 WHERE id = 2", "version_checks", "[2]"),
    ],
    ids=["unreadable-time", "not-utf8", "check-verdict"],
)
def test_a_value_the_column_cannot_hold_or_a_check_verdict_is_named(
    copy_of: Callable[[bool], tuple[Path, Path]], sql: str, table: str, key: str
) -> None:
    db, witness = copy_of(True)
    with sqlite3.connect(db) as conn:
        conn.execute(sql)
    problems = [(p.table, p.key, p.kind) for p in _verdict(db, witness).problems]
    assert problems == [(table, key, "registry edited")]
    ledger = Ledger(f"sqlite:///{db}", audit_key=KEY)
    try:
        with pytest.raises(LedgerError, match=f"refusing to write.*{table} row"):
            ledger.audit("note", actor="local:test", subject="after the edit")
    finally:
        ledger.dispose()


@pytest.mark.parametrize("column", ["details", "actor", "subject"])
def test_an_audit_entry_whose_text_is_not_utf8_is_named_not_a_crash(
    copy_of: Callable[[bool], tuple[Path, Path]], column: str
) -> None:
    """Verify used to stop with SQLite's "Could not decode to UTF-8" while reading the chain."""
    db, witness = copy_of(True)
    with sqlite3.connect(db) as conn:
        conn.execute(f"UPDATE audit_log SET {column} = CAST(X'FF' AS TEXT) WHERE seq = 2")
    verdict = _verdict(db, witness)
    assert not verdict.ok
    assert verdict.problems[0].seq == 2, verdict.problems
