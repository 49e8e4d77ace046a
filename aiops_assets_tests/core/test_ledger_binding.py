"""The registry bound to the chain: SQL edits around the ledger are named by table, key and kind.

An attacker with write access to the database (not to the audit key) edits registry tables
directly: ``Ledger.verify_audit`` must name each such row, and the next write must refuse
rather than vouch for it.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from aiops_assets.core.ledger import Ledger, LedgerError, WitnessedHead

KEY = b"binding-test-key-" + b"b" * 16
MODEL = "detector"
START = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)


def _clock() -> Callable[[], datetime]:
    ticks = iter(range(1_000_000))
    return lambda: START + timedelta(seconds=next(ticks))


def _registry(path: Path) -> Ledger:
    """Two versions, the champion assigned to v1, then v2 promoted over it."""
    ledger = Ledger(f"sqlite:///{path}", audit_key=KEY, clock=_clock())
    for n in (1, 2):
        ledger.register_model_version(
            MODEL,
            f"{n:064x}",
            metrics={"pr_auc": 0.5 + n / 10},
            training_set_version=f"train-{n}",
            feature_set_version="features-v1",
            actor="local:test",
        )
    ledger.set_alias(MODEL, "champion", 1, actor="local:test", reason="first")
    ledger.record_promotion(
        MODEL,
        candidate_version=2,
        champion_version=1,
        promoted=True,
        reason="all criteria passed",
        evidence={"margin": 0.1},
        actor="local:test",
    )
    return ledger


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "ledger.db"
    _registry(path).dispose()
    yield path


def _sql(path: Path, statement: str, *args: object) -> None:
    with sqlite3.connect(path) as conn:
        conn.execute(statement, args)


def _problems(path: Path) -> list[tuple[str | None, str | None, str]]:
    ledger = Ledger(f"sqlite:///{path}", audit_key=KEY)
    try:
        verification = ledger.verify_audit()
    finally:
        ledger.dispose()
    assert not verification.ok or not verification.problems
    return [(p.table, p.key, p.kind) for p in verification.problems]


def test_an_untouched_registry_verifies(db: Path) -> None:
    assert _problems(db) == []


def test_a_rewritten_model_hash_is_named(db: Path) -> None:
    _sql(db, "UPDATE model_versions SET sha256 = ? WHERE version = 2", "f" * 64)
    [problem] = _problems(db)
    assert problem[0] == "model_versions" and problem[2] == "registry edited"


def test_a_champion_moved_by_sql_is_named_with_its_key(db: Path) -> None:
    _sql(db, "UPDATE model_aliases SET version = 1 WHERE alias = 'champion'")
    assert _problems(db) == [
        ("model_aliases", json.dumps([MODEL, "champion"]).replace(" ", ""), "registry edited")
    ]


def test_a_deleted_alias_history_row_is_named(db: Path) -> None:
    _sql(db, "DELETE FROM alias_history WHERE to_version = 1")
    [(table, _, kind)] = _problems(db)
    assert (table, kind) == ("alias_history", "registry deleted")


def test_a_rewritten_promotion_reason_is_named(db: Path) -> None:
    _sql(db, "UPDATE promotions SET reason = 'approved by the CTO'")
    [(table, _, kind)] = _problems(db)
    assert (table, kind) == ("promotions", "registry edited")


def test_a_version_inserted_by_sql_is_named(db: Path) -> None:
    _sql(
        db,
        "INSERT INTO model_versions (model_name, version, sha256, metrics, training_set_version,"
        " feature_set_version, created_at, created_by, tags) VALUES (?, 3, ?, '{}', 't', 'f',"
        " '2026-01-06 00:00:00', 'mallory', '{}')",
        MODEL,
        "e" * 64,
    )
    [(table, _, kind)] = _problems(db)
    assert (table, kind) == ("model_versions", "registry inserted")


def test_the_next_write_refuses_to_vouch_for_a_tampered_registry(db: Path) -> None:
    _sql(db, "UPDATE model_versions SET sha256 = ? WHERE version = 2", "f" * 64)
    ledger = Ledger(f"sqlite:///{db}", audit_key=KEY)
    try:
        with pytest.raises(LedgerError, match=r"model_versions row .* differs"):
            ledger.set_alias(MODEL, "champion", 1, actor="local:test", reason="rollback")
        with pytest.raises(LedgerError, match="refusing to write"):
            ledger.audit("note", actor="local:test", subject="anything")
    finally:
        ledger.dispose()
    # Nothing was written, so the verdict is the same as before the attempts.
    assert [kind for _, _, kind in _problems(db)] == ["registry edited"]


def test_legitimate_writes_keep_the_registry_verifying(db: Path) -> None:
    ledger = Ledger(f"sqlite:///{db}", audit_key=KEY)
    try:
        ledger.set_alias(
            MODEL, "champion", 1, actor="local:test", reason="rollback", kind="rollback"
        )
        ledger.audit("note", actor="local:test", subject="after")
        entries = ledger.audit_entries()
    finally:
        ledger.dispose()
    assert _problems(db) == []
    move = [e for e in entries if e.action == "set_alias"][-1]
    assert "registry" not in move.details and set(move.registry) == {
        "model_aliases",
        "alias_history",
    }


# --- the anchored head -------------------------------------------------------------------------


def _anchored(path: Path, witness: Path) -> Ledger:
    ledger = Ledger(f"sqlite:///{path}", audit_key=KEY)
    ledger.anchor_to(witness)
    return ledger


def _truncate(path: Path, keep: int) -> None:
    """Delete the entries after ``keep`` and wind the head back to the new last one."""
    with sqlite3.connect(path) as conn:
        conn.execute("DELETE FROM audit_log WHERE seq > ?", (keep,))
        last = conn.execute(
            "SELECT seq, entry_hash FROM audit_log ORDER BY seq DESC LIMIT 1"
        ).fetchone() or (0, "0" * 64)
        conn.execute("UPDATE audit_head SET last_seq = ?, last_hash = ?", last)


def _verdict(path: Path, witness: Path) -> list[tuple[int, str]]:
    ledger = _anchored(path, witness)
    try:
        return [(p.seq, p.kind) for p in ledger.verify_audit().problems]
    finally:
        ledger.dispose()


def test_a_truncation_with_a_rewound_head_passes_the_chain_but_not_the_witness(
    tmp_path: Path,
) -> None:
    path, witness = tmp_path / "ledger.db", tmp_path / "elsewhere" / "witness.jsonl"
    ledger = _anchored(path, witness)
    try:
        for n in range(4):
            ledger.audit("note", actor="local:test", subject=f"entry {n}")
    finally:
        ledger.dispose()
    assert len(witness.read_text().splitlines()) == 4
    assert _verdict(path, witness) == []
    _truncate(path, keep=2)
    # The chain alone cannot tell: the head names the new last entry.
    bare = Ledger(f"sqlite:///{path}", audit_key=KEY)
    try:
        assert bare.verify_audit().ok
    finally:
        bare.dispose()
    assert _verdict(path, witness) == [(3, "truncated")]


def test_deleting_every_entry_is_a_truncation(tmp_path: Path) -> None:
    path, witness = tmp_path / "ledger.db", tmp_path / "witness.jsonl"
    ledger = _anchored(path, witness)
    try:
        ledger.audit("note", actor="local:test", subject="only")
    finally:
        ledger.dispose()
    _truncate(path, keep=0)
    assert _verdict(path, witness) == [(1, "truncated")]


def test_heads_witnessed_elsewhere_are_compared_too(tmp_path: Path) -> None:
    path = tmp_path / "ledger.db"
    ledger = Ledger(f"sqlite:///{path}", audit_key=KEY)
    try:
        entry = ledger.audit("note", actor="local:test", subject="observed by Dagster")
        seen = WitnessedHead(entry.seq, entry.entry_hash, "2026-01-05", "Dagster observation")
        assert ledger.verify_audit([seen]).ok
        forged = WitnessedHead(entry.seq, "a" * 64, "2026-01-05", "Dagster observation")
        [problem] = ledger.verify_audit([forged]).problems
    finally:
        ledger.dispose()
    assert problem.kind == "rewritten" and "Dagster observation" in problem.message
