"""The registry must be right and its audit log must name any entry someone touched."""

from __future__ import annotations

import sqlite3
import tempfile
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import create_engine, event, text

from aiops_assets.core.ledger import (
    AUDIT_KEY_ENV,
    HEAD_REVISION,
    VERSION_TABLE,
    AuditProblem,
    AuditVerification,
    Ledger,
    LedgerError,
    ModelVersion,
    canonical_json,
    entry_hash,
    metadata,
)

KEY = b"test-audit-key-" + b"k" * 17
MODEL = "detector"
START = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)


def _clock() -> Callable[[], datetime]:
    """Whole seconds from a fixed start: deterministic times that survive a database round trip."""
    ticks = iter(range(1_000_000))
    return lambda: START + timedelta(seconds=next(ticks))


def _url(path: Path) -> str:
    return f"sqlite:///{path}"


def _sha(n: int) -> str:
    return f"{n:064x}"


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "nested" / "ledger.db"


@pytest.fixture
def ledger(db_path: Path) -> Iterator[Ledger]:
    opened = Ledger(_url(db_path), audit_key=KEY, clock=_clock())
    yield opened
    opened.dispose()


def _register(ledger: Ledger, n: int, model: str = MODEL, **extra: Any) -> ModelVersion:
    return ledger.register_model_version(
        model,
        _sha(n),
        metrics=extra.pop("metrics", {"pr_auc": 0.5 + n / 100}),
        training_set_version=f"train-{n}",
        feature_set_version="features-v1",
        actor="local:test",
        **extra,
    )


def _raw(path: Path, sql: str, *params: Any) -> list[Any]:
    connection = sqlite3.connect(path)
    try:
        rows = connection.execute(sql, params).fetchall()
        connection.commit()
        return rows
    finally:
        connection.close()


def _audit_n(ledger: Ledger, count: int) -> None:
    for n in range(count):
        ledger.audit("note", actor=f"user-{n}", subject=f"subject-{n}", details={"n": n})


def _kinds(verification: AuditVerification) -> list[tuple[int, str]]:
    return [(problem.seq, problem.kind) for problem in verification.problems]


# --- registry ---------------------------------------------------------------------------------


def test_registration_is_idempotent_per_bytes_and_numbered_per_model(ledger: Ledger) -> None:
    first = _register(ledger, 1, tags={"trained_until": "2026-01-04"}, run_id="run-1")
    second = _register(ledger, 2)
    other_model = _register(ledger, 1, model="other")
    again = _register(ledger, 1, metrics={"pr_auc": 0.99})

    assert (first.version, second.version, other_model.version) == (1, 2, 1)
    assert again == first  # unchanged, including the first registration's metrics
    assert again.metrics == {"pr_auc": 0.51}
    assert first.tags == {"trained_until": "2026-01-04"}
    assert first.created_at == START and first.created_at.tzinfo is not None
    assert ledger.get_version(MODEL, 1) == first
    assert ledger.find_version(MODEL, _sha(2)) == second
    assert ledger.get_version(MODEL, 3) is None
    assert ledger.find_version(MODEL, _sha(3)) is None
    assert [v.version for v in ledger.list_versions(MODEL)] == [1, 2]
    assert ledger.list_versions("nobody") == []
    assert ledger.list_models() == [MODEL, "other"]
    registrations = [e for e in ledger.audit_entries() if e.action == "register_version"]
    assert [e.subject for e in registrations] == [f"{MODEL}:v1", f"{MODEL}:v2", "other:v1"]
    assert registrations[0].details["sha256"] == _sha(1)
    assert registrations[0].run_id == "run-1"


def test_aliases_move_with_history_kinds_and_audit(ledger: Ledger) -> None:
    for n in (1, 2, 3):
        _register(ledger, n)
    ledger.set_alias(MODEL, "champion", 1, actor="alice", reason="first")
    ledger.set_alias(MODEL, "challenger", 2, actor="bob", reason="trained", run_id="r2")
    ledger.set_alias(MODEL, "champion", 2, actor="alice", reason="better", kind="promote")
    change = ledger.set_alias(MODEL, "champion", 1, actor="carol", reason="bad", kind="rollback")

    assert (change.from_version, change.to_version, change.kind) == (2, 1, "rollback")
    assert ledger.aliases(MODEL) == {"challenger": 2, "champion": 1}
    champion = ledger.get_alias(MODEL, "champion")
    assert champion is not None and champion.version == 1
    assert ledger.get_alias(MODEL, "shadow") is None
    history = ledger.alias_history(MODEL, "champion")
    assert [(c.from_version, c.to_version, c.kind, c.actor) for c in history] == [
        (None, 1, "assign", "alice"),
        (1, 2, "promote", "alice"),
        (2, 1, "rollback", "carol"),
    ]
    assert [c.alias for c in ledger.alias_history(MODEL)] == [
        "champion",
        "challenger",
        "champion",
        "champion",
    ]
    assert ledger.alias_history(MODEL, "challenger")[0].run_id == "r2"
    moves = [e for e in ledger.audit_entries() if e.action == "set_alias"]
    assert [e.subject for e in moves][-1] == f"{MODEL}:champion"
    assert moves[-1].details == {
        "from_version": 2,
        "to_version": 1,
        "kind": "rollback",
        "reason": "bad",
    }


def test_alias_to_an_unknown_version_or_kind_is_refused_and_leaves_no_trace(
    ledger: Ledger,
) -> None:
    _register(ledger, 1)
    before = len(ledger.audit_entries())
    with pytest.raises(LedgerError, match="v7"):
        ledger.set_alias(MODEL, "champion", 7, actor="a", reason="r")
    with pytest.raises(LedgerError, match="kind"):
        ledger.set_alias(MODEL, "champion", 1, actor="a", reason="r", kind="yolo")
    assert ledger.aliases(MODEL) == {}
    assert ledger.alias_history(MODEL) == []
    assert len(ledger.audit_entries()) == before


def test_checks_are_append_only(ledger: Ledger) -> None:
    _register(ledger, 1)
    ledger.record_check(MODEL, 1, "perf", passed=False, partition="2026-01-05", metrics={"f1": 0.1})
    ledger.record_check(MODEL, 1, "perf", passed=True, partition="2026-01-05", run_id="r")
    checks = ledger.version_checks(MODEL, 1)
    assert [(c.passed, c.metrics, c.severity) for c in checks] == [
        (False, {"f1": 0.1}, "ERROR"),
        (True, {}, "ERROR"),
    ]
    assert checks[1].run_id == "r" and checks[0].partition == "2026-01-05"
    with pytest.raises(LedgerError):
        ledger.record_check(MODEL, 9, "perf", passed=True)


# --- last known good --------------------------------------------------------------------------


def _champions(ledger: Ledger, *versions: int) -> None:
    for version in versions:
        ledger.set_alias(MODEL, "champion", version, actor="a", reason=f"to v{version}")


def test_last_known_good_skips_current_failed_and_unchecked_holders(ledger: Ledger) -> None:
    for n in (1, 2, 3, 4):
        _register(ledger, n)
    _champions(ledger, 1, 2, 3, 4)
    # v1: failed, then passed later on the same check and partition: that counts as passing.
    ledger.record_check(MODEL, 1, "perf", passed=False, partition="d1")
    ledger.record_check(MODEL, 1, "perf", passed=True, partition="d1")
    ledger.record_check(MODEL, 1, "quality", passed=True)
    # v2: never checked: unknown, not good.
    # v3: passed one partition, but its latest result on another failed.
    ledger.record_check(MODEL, 3, "perf", passed=True, partition="d1")
    ledger.record_check(MODEL, 3, "perf", passed=True, partition="d2")
    ledger.record_check(MODEL, 3, "perf", passed=False, partition="d2")
    # v4: the current champion, passing: still not a rollback target.
    ledger.record_check(MODEL, 4, "perf", passed=True)

    good = ledger.last_known_good(MODEL)
    assert good is not None and good.version == 1


def test_last_known_good_is_the_newest_earlier_holder_and_may_be_none(ledger: Ledger) -> None:
    for n in (1, 2, 3):
        _register(ledger, n)
    assert ledger.last_known_good(MODEL) is None
    _champions(ledger, 1)
    ledger.record_check(MODEL, 1, "perf", passed=True)
    assert ledger.last_known_good(MODEL) is None  # only the current holder has passed
    _champions(ledger, 2, 3, 1)
    ledger.record_check(MODEL, 2, "perf", passed=True)
    ledger.record_check(MODEL, 3, "perf", passed=True)
    # History 1, 2, 3, 1: v1 holds it now; the newest earlier holder with passing checks is v3.
    good = ledger.last_known_good(MODEL)
    assert good is not None and good.version == 3
    ledger.record_check(MODEL, 3, "perf", passed=False)
    good = ledger.last_known_good(MODEL)
    assert good is not None and good.version == 2
    assert ledger.last_known_good(MODEL, alias="shadow") is None


# --- promotions -------------------------------------------------------------------------------


def test_promotion_records_the_decision_and_moves_the_champion(ledger: Ledger) -> None:
    _register(ledger, 1)
    _register(ledger, 2)
    _register(ledger, 3)
    ledger.set_alias(MODEL, "champion", 1, actor="a", reason="bootstrap")
    refused = ledger.record_promotion(
        MODEL,
        2,
        champion_version=1,
        promoted=False,
        reason="worse",
        evidence={"pr_auc": [0.4, 0.5]},
        actor="gate",
    )
    assert not refused.promoted
    assert ledger.aliases(MODEL)["champion"] == 1
    ledger.record_promotion(
        MODEL,
        3,
        champion_version=1,
        promoted=True,
        reason="better",
        evidence={"pr_auc": [0.7, 0.5], "shadow": {"days": 2}},
        actor="gate",
        run_id="run-9",
    )
    assert ledger.aliases(MODEL)["champion"] == 3
    last = ledger.alias_history(MODEL, "champion")[-1]
    assert (last.from_version, last.to_version, last.kind, last.reason, last.run_id) == (
        1,
        3,
        "promote",
        "better",
        "run-9",
    )
    records = ledger.promotions(MODEL)
    assert [(r.candidate_version, r.champion_version, r.promoted) for r in records] == [
        (2, 1, False),
        (3, 1, True),
    ]
    assert records[1].evidence == {"pr_auc": [0.7, 0.5], "shadow": {"days": 2}}
    actions = [e.action for e in ledger.audit_entries()][-3:]
    assert actions == ["promotion_decision", "promotion_decision", "set_alias"]
    assert ledger.verify_audit().ok


def test_promotion_is_one_transaction(ledger: Ledger, monkeypatch: pytest.MonkeyPatch) -> None:
    _register(ledger, 1)
    _register(ledger, 2)
    before = ledger.audit_entries()

    def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("crash between the decision and the alias move")

    monkeypatch.setattr(ledger, "_move_alias", broken)
    with pytest.raises(RuntimeError):
        ledger.record_promotion(
            MODEL, 2, champion_version=None, promoted=True, reason="r", evidence={}, actor="a"
        )
    assert ledger.promotions(MODEL) == []
    assert ledger.audit_entries() == before
    with pytest.raises(LedgerError):
        ledger.record_promotion(
            MODEL, 5, champion_version=None, promoted=True, reason="r", evidence={}, actor="a"
        )
    assert ledger.audit_entries() == before
    assert ledger.verify_audit().ok


# --- keys and setup ---------------------------------------------------------------------------


def test_from_env_prefers_the_environment_over_a_key_file(tmp_path: Path) -> None:
    """Where keys live otherwise (a folder outside the home) is test_ledger_keys.py's subject."""
    url = _url(tmp_path / "ledger.db")
    key_file = tmp_path / "secrets" / "deep" / "audit.key"

    from_env = Ledger.from_env(
        url, environ={AUDIT_KEY_ENV: "env-secret"}, default_key_file=key_file
    )
    from_env.audit("note", actor="a", subject="s")
    assert not key_file.exists()  # the environment won; no file was made
    from_env.dispose()

    reopened = Ledger.from_env(
        url, environ={AUDIT_KEY_ENV: "env-secret"}, default_key_file=key_file
    )
    assert reopened.verify_audit().ok
    reopened.dispose()
    assert not key_file.exists()


def test_empty_key_is_refused(tmp_path: Path) -> None:
    with pytest.raises(LedgerError):
        Ledger(_url(tmp_path / "l.db"), audit_key=b"")
    empty = tmp_path / "empty.key"
    empty.write_text("\n")
    with pytest.raises(LedgerError, match="empty"):
        Ledger.from_env(_url(tmp_path / "l.db"), environ={}, default_key_file=empty)


def test_schema_matches_metadata_after_migration(ledger: Ledger, db_path: Path) -> None:
    assert ledger.url == _url(db_path)
    engine = create_engine(_url(db_path))
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(
                connection, opts={"version_table": VERSION_TABLE, "compare_type": True}
            )
            assert compare_metadata(context, metadata) == []
            assert context.get_current_revision() == HEAD_REVISION
            head = connection.execute(text("SELECT id, last_seq FROM audit_head")).all()
            assert [tuple(row) for row in head] == [(1, 0)]
    finally:
        engine.dispose()
    # Opening again is a no-op migration, not a second head row.
    Ledger(_url(db_path), audit_key=KEY).dispose()
    assert _raw(db_path, "SELECT count(*) FROM audit_head") == [(1,)]


def test_sqlite_writes_take_the_lock_up_front(ledger: Ledger) -> None:
    statements: list[str] = []

    def capture(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    event.listen(ledger._engine, "before_cursor_execute", capture)
    _register(ledger, 1)
    ledger.get_version(MODEL, 1)
    begins = [s for s in statements if s.startswith("BEGIN")]
    assert begins == ["BEGIN IMMEDIATE", "BEGIN"]


# --- audit verification -----------------------------------------------------------------------


def test_untouched_log_verifies(ledger: Ledger) -> None:
    _register(ledger, 1)
    ledger.set_alias(MODEL, "champion", 1, actor="a", reason="r")
    entry = ledger.audit(
        "access_denied", actor="mallory", subject=f"{MODEL}:champion", details={"why": "ünïcode"}
    )
    assert (entry.seq, entry.action, entry.details) == (3, "access_denied", {"why": "ünïcode"})
    assert [e.seq for e in ledger.audit_entries(since_seq=1)] == [2, 3]
    assert ledger.audit_entries()[0].prev_hash == "0" * 64
    verification = ledger.verify_audit()
    assert verification == AuditVerification(ok=True, entries=3, problems=[])
    assert verification.summary() == "audit log verified: 3 entries, chain intact"


def test_empty_log_verifies(ledger: Ledger) -> None:
    assert ledger.verify_audit().summary() == "audit log verified: 0 entries, chain intact"


def test_one_edited_byte_is_named(ledger: Ledger, db_path: Path) -> None:
    _audit_n(ledger, 5)
    [(details,)] = _raw(db_path, "SELECT details FROM audit_log WHERE seq = 3")
    assert details == '{"n":2}'
    _raw(db_path, "UPDATE audit_log SET details = ? WHERE seq = 3", details.replace("2", "3"))
    verification = ledger.verify_audit()
    assert not verification.ok
    assert _kinds(verification) == [(3, "edited")]
    assert "edited at seq 3" in verification.summary()
    assert verification.summary().startswith("audit log FAILED verification")


def test_a_deleted_middle_entry_is_named(ledger: Ledger, db_path: Path) -> None:
    _audit_n(ledger, 5)
    _raw(db_path, "DELETE FROM audit_log WHERE seq = 2")
    verification = ledger.verify_audit()
    assert _kinds(verification) == [(2, "deleted")]
    assert verification.entries == 4


def test_a_deleted_last_entry_is_a_truncation(ledger: Ledger, db_path: Path) -> None:
    _audit_n(ledger, 5)
    _raw(db_path, "DELETE FROM audit_log WHERE seq = 5")
    assert _kinds(ledger.verify_audit()) == [(5, "truncated")]
    _raw(db_path, "DELETE FROM audit_log")
    assert _kinds(ledger.verify_audit()) == [(1, "truncated")]


def _forge(db_path: Path, seq: int, prev_hash: str, *, key: bytes) -> str:
    """An entry written the way the ledger writes one, by someone who knows all but the key."""
    import hashlib
    import hmac

    at = START.isoformat()
    details = canonical_json({"forged": True})
    digest = entry_hash(
        seq=seq,
        at=at,
        actor="mallory",
        action="set_alias",
        subject=f"{MODEL}:champion",
        details=details,
        run_id=None,
        prev_hash=prev_hash,
    )
    mac = hmac.new(key, digest.encode(), hashlib.sha256).hexdigest()
    _raw(
        db_path,
        "INSERT INTO audit_log (seq, at, actor, action, subject, details, run_id, prev_hash, "
        "entry_hash, mac) VALUES (?, ?, 'mallory', 'set_alias', ?, ?, NULL, ?, ?, ?)",
        seq,
        at,
        f"{MODEL}:champion",
        details,
        prev_hash,
        digest,
        mac,
    )
    return digest


def test_a_forged_entry_is_named(ledger: Ledger, db_path: Path) -> None:
    _audit_n(ledger, 4)
    last_hash = ledger.audit_entries()[-1].entry_hash
    _forge(db_path, 5, last_hash, key=b"guessed")
    assert _kinds(ledger.verify_audit()) == [(5, "inserted")]


def test_a_forged_entry_with_the_head_moved_too_is_named(ledger: Ledger, db_path: Path) -> None:
    _audit_n(ledger, 4)
    last_hash = ledger.audit_entries()[-1].entry_hash
    digest = _forge(db_path, 5, last_hash, key=b"guessed")
    _raw(db_path, "UPDATE audit_head SET last_seq = 5, last_hash = ?", digest)
    [problem] = ledger.verify_audit().problems
    assert problem.seq == 5 and problem.kind in {"inserted", "edited"}


def test_a_forged_entry_that_breaks_the_chain_is_an_insertion(
    ledger: Ledger, db_path: Path
) -> None:
    _audit_n(ledger, 4)
    digest = _forge(db_path, 5, "f" * 64, key=b"guessed")
    _raw(db_path, "UPDATE audit_head SET last_seq = 5, last_hash = ?", digest)
    assert _kinds(ledger.verify_audit()) == [(5, "inserted")]


def test_swapped_entries_are_reordered(ledger: Ledger, db_path: Path) -> None:
    _audit_n(ledger, 6)
    _raw(db_path, "UPDATE audit_log SET seq = -1 WHERE seq = 2")
    _raw(db_path, "UPDATE audit_log SET seq = 2 WHERE seq = 5")
    _raw(db_path, "UPDATE audit_log SET seq = 5 WHERE seq = -1")
    verification = ledger.verify_audit()
    assert _kinds(verification) == [(2, "reordered"), (5, "reordered")]
    assert "written as seq 5" in verification.problems[0].message


def test_swapped_neighbours_are_reordered(ledger: Ledger, db_path: Path) -> None:
    _audit_n(ledger, 4)
    _raw(db_path, "UPDATE audit_log SET seq = -1 WHERE seq = 2")
    _raw(db_path, "UPDATE audit_log SET seq = 2 WHERE seq = 3")
    _raw(db_path, "UPDATE audit_log SET seq = 3 WHERE seq = -1")
    assert _kinds(ledger.verify_audit()) == [(2, "reordered"), (3, "reordered")]


def test_the_wrong_key_fails_verification(ledger: Ledger, db_path: Path) -> None:
    _audit_n(ledger, 3)
    assert ledger.verify_audit().ok
    other = Ledger(_url(db_path), audit_key=b"another key")
    try:
        verification = other.verify_audit()
    finally:
        other.dispose()
    assert not verification.ok
    assert [p.kind for p in verification.problems] == ["edited"]
    assert "key" in verification.summary()


def test_summary_names_every_problem() -> None:
    verification = AuditVerification(
        ok=False,
        entries=9,
        problems=[AuditProblem(2, "deleted", "gone"), AuditProblem(7, "edited", "changed")],
    )
    summary = verification.summary()
    assert "\n" not in summary
    assert "deleted at seq 2: gone" in summary and "edited at seq 7: changed" in summary


# A template migrated once, copied per example: the property test then spends its time on the log.
_TEMPLATE: dict[str, Path] = {}


def _fresh_db(directory: Path) -> Path:
    if "path" not in _TEMPLATE:
        template = Path(tempfile.mkdtemp()) / "template.db"
        Ledger(_url(template), audit_key=KEY).dispose()
        _TEMPLATE["path"] = template
    target = directory / "ledger.db"
    target.write_bytes(_TEMPLATE["path"].read_bytes())
    return target


_MUTATIONS = (
    "at",
    "actor",
    "action",
    "subject",
    "details",
    "run_id",
    "prev_hash",
    "entry_hash",
    "mac",
    "delete",
)


def _mutated(column: str, value: Any) -> Any:
    if value is None:
        return "forged"
    if column in {"prev_hash", "entry_hash", "mac"}:
        return value[:-1] + ("0" if value[-1] != "0" else "1")
    if column == "details":
        return value + " "  # still the same JSON to a parser; not the same bytes
    return value + "x"


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(
    entries=st.lists(
        st.tuples(
            st.text(min_size=1, max_size=8),
            st.dictionaries(st.text(max_size=5), st.integers() | st.text(max_size=5), max_size=3),
            st.none() | st.text(min_size=1, max_size=6),
        ),
        min_size=1,
        max_size=10,
    ),
    target=st.integers(min_value=0),
    mutation=st.sampled_from(_MUTATIONS),
)
def test_any_single_row_mutation_is_named(
    entries: list[tuple[str, dict[str, Any], str | None]], target: int, mutation: str
) -> None:
    with tempfile.TemporaryDirectory() as directory:
        path = _fresh_db(Path(directory))
        ledger = Ledger(_url(path), audit_key=KEY, clock=_clock())
        try:
            for actor, details, run_id in entries:
                ledger.audit("note", actor=actor, subject="s", details=details, run_id=run_id)
            assert ledger.verify_audit().ok
            seq = target % len(entries) + 1
            if mutation == "delete":
                _raw(path, "DELETE FROM audit_log WHERE seq = ?", seq)
            else:
                [(value,)] = _raw(path, f"SELECT {mutation} FROM audit_log WHERE seq = ?", seq)
                _raw(
                    path,
                    f"UPDATE audit_log SET {mutation} = ? WHERE seq = ?",
                    _mutated(mutation, value),
                    seq,
                )
            verification = ledger.verify_audit()
        finally:
            ledger.dispose()
    assert not verification.ok
    assert {problem.seq for problem in verification.problems} == {seq}
    assert f"seq {seq}" in verification.summary()


def test_concurrent_writers_share_one_chain(db_path: Path) -> None:
    start = threading.Barrier(4)
    errors: list[BaseException] = []

    def writer(n: int) -> None:
        try:
            start.wait()
            ledger = Ledger(_url(db_path), audit_key=KEY)  # also races the first migration
            try:
                for i in range(25):
                    ledger.audit("note", actor=f"writer-{n}", subject=f"item-{i}")
            finally:
                ledger.dispose()
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    reader = Ledger(_url(db_path), audit_key=KEY)
    try:
        entries = reader.audit_entries()
        verification = reader.verify_audit()
    finally:
        reader.dispose()
    assert [e.seq for e in entries] == list(range(1, 101))
    assert verification.ok, verification.summary()
    assert verification.entries == 100
