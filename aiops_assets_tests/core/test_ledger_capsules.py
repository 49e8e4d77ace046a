"""Capsules and experiment runs in the ledger: idempotent, findable by prefix, and migrated in."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, inspect, text

import aiops_assets.core.ledger as ledger_module
from aiops_assets.core.capsule import Capsule, build_capsule
from aiops_assets.core.experiments import ExperimentRun
from aiops_assets.core.ledger import (
    MIGRATIONS_DIR,
    VERSION_TABLE,
    Ledger,
    LedgerError,
    metadata,
)
from aiops_assets_tests.core.test_ledger import _raw

# Opening a ledger migrates it to the newest revision the package ships, whatever that is now.
HEAD_REVISION = ScriptDirectory(str(ledger_module.MIGRATIONS_DIR)).get_current_head()

KEY = b"test-audit-key-" + b"c" * 17
START = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)
ENVIRONMENT = {"python": "3.11.7", "packages": {"numpy": "2.1.0"}, "env": {}}


def _clock() -> Callable[[], datetime]:
    ticks = iter(range(1_000_000))
    return lambda: START + timedelta(seconds=next(ticks))


def _url(path: Path) -> str:
    return f"sqlite:///{path}"


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "ledger.db"


@pytest.fixture
def ledger(db_path: Path) -> Iterator[Ledger]:
    opened = Ledger(_url(db_path), audit_key=KEY, clock=_clock())
    yield opened
    opened.dispose()


def _capsule(n: int = 0, *, run_id: str | None = "run-1", kind: str = "model") -> Capsule:
    return build_capsule(
        kind=kind,
        asset="candidate_model",
        run_id=run_id,
        seeds={"candidate_model": n},
        config={"candidate_model": {"seed": n}},
        inputs={"features[2026-01-04]": "c" * 64},
        code_versions={"candidate_model": "v1"},
        outputs={"model": f"{n:064x}"},
        metrics={"pr_auc": 0.5},
        environment=ENVIRONMENT,
        created_at=START + timedelta(minutes=n),
    )


# --- capsules ---------------------------------------------------------------------------------


def test_record_capsule_is_idempotent_and_audited_once(ledger: Ledger, db_path: Path) -> None:
    capsule = _capsule(1)
    assert ledger.record_capsule(capsule) == capsule.capsule_id
    assert ledger.record_capsule(Capsule.from_json(capsule.to_json())) == capsule.capsule_id
    assert _raw(db_path, "SELECT count(*) FROM capsules") == [(1,)]
    entries = [e for e in ledger.audit_entries() if e.action == "record_capsule"]
    assert len(entries) == 1
    assert entries[0].subject == f"capsule:{capsule.capsule_id[:12]}"
    assert entries[0].details["capsule_id"] == capsule.capsule_id
    assert entries[0].run_id == "run-1"
    stored = ledger.get_capsule(capsule.capsule_id)
    assert stored == capsule and stored is not None and stored.body == capsule.body
    [(body,)] = _raw(db_path, "SELECT body FROM capsules")
    assert json.loads(body) == capsule.body
    assert ledger.verify_audit().ok


def test_capsules_are_found_by_unique_prefix(ledger: Ledger) -> None:
    capsule = _capsule(1)
    ledger.record_capsule(capsule)
    ledger.record_capsule(_capsule(2))
    full = capsule.capsule_id
    assert ledger.get_capsule(full[:8]) == capsule
    assert ledger.get_capsule(full[:8].upper()) == capsule
    assert ledger.get_capsule(full[:20]) == capsule
    assert ledger.get_capsule(full[:7]) is None  # too short to trust
    assert ledger.get_capsule("") is None
    assert ledger.get_capsule("f" * 64 if full[0] != "f" else "0" * 64) is None
    assert ledger.get_capsule("%%%%%%%%") is None  # a LIKE wildcard is not a prefix


def test_an_ambiguous_prefix_names_the_matches(ledger: Ledger) -> None:
    # Two real ids sharing 8 hex characters would take ~2**32 tries to find; instead rewrite one
    # row's key to share the other's prefix (only the look-up is under test).
    first, second = _capsule(1), _capsule(2)
    ledger.record_capsule(first)
    ledger.record_capsule(second)
    shared = first.capsule_id[:8]
    forged_id = shared + second.capsule_id[8:]
    with ledger._write() as conn:
        conn.execute(
            text("UPDATE capsules SET capsule_id = :new WHERE capsule_id = :old"),
            {"new": forged_id, "old": second.capsule_id},
        )
    with pytest.raises(LedgerError, match="ambiguous") as raised:
        ledger.get_capsule(shared)
    assert first.capsule_id in str(raised.value) and forged_id in str(raised.value)
    # A longer prefix disambiguates; the forged row no longer hashes to its key and is refused.
    assert ledger.get_capsule(first.capsule_id[:40]) == first
    with pytest.raises(LedgerError, match="does not match its content"):
        ledger.get_capsule(forged_id)


def test_an_edited_capsule_body_is_refused_on_read(ledger: Ledger, db_path: Path) -> None:
    capsule = _capsule(1)
    ledger.record_capsule(capsule)
    [(body,)] = _raw(db_path, "SELECT body FROM capsules")
    _raw(db_path, "UPDATE capsules SET body = ?", body.replace('"pr_auc":0.5', '"pr_auc":0.9'))
    with pytest.raises(LedgerError, match="does not match its content"):
        ledger.get_capsule(capsule.capsule_id)


def test_capsules_for_run_in_creation_order(ledger: Ledger) -> None:
    later, earlier, other = _capsule(5), _capsule(1), _capsule(3, run_id="run-2")
    for capsule in (later, other, earlier):
        ledger.record_capsule(capsule)
    ledger.record_capsule(_capsule(7, run_id=None))
    assert ledger.capsules_for_run("run-1") == [earlier, later]
    assert ledger.capsules_for_run("run-2") == [other]
    assert ledger.capsules_for_run("nobody") == []


# --- experiment runs --------------------------------------------------------------------------


def _run(run_id: str, hours: int, **overrides: Any) -> ExperimentRun:
    values: dict[str, Any] = {
        "run_id": run_id,
        "model_name": "detector",
        "model_version": None,
        "capsule_id": None,
        "at": START + timedelta(hours=hours),
        "config": {"candidate_model": {"seed": 7}},
        "metrics": {"pr_auc": 0.5},
        "tags": {"who": "test"},
        "dataset_version": "train-1",
        "feature_set_version": "features-v1",
        "hypothesis": "more trees help",
        "success_criterion": "pr_auc >= 0.5",
        "criterion_met": None,
    }
    values.update(overrides)
    return ExperimentRun(**values)


def test_experiment_run_upsert_keeps_one_row_and_one_audit_entry(
    ledger: Ledger, db_path: Path
) -> None:
    first = ledger.record_experiment_run(_run("3f2a9c1e-aaaa", 0))
    assert ledger.get_experiment_run("3f2a9c1e-aaaa") == first
    updated = ledger.record_experiment_run(
        _run(
            "3f2a9c1e-aaaa",
            0,
            model_version=3,
            capsule_id="e" * 64,
            metrics={"pr_auc": 1},
            criterion_met=True,
        )
    )
    assert _raw(db_path, "SELECT count(*) FROM experiment_runs") == [(1,)]
    stored = ledger.get_experiment_run("3f2a9c1e-aaaa")
    assert stored == updated
    assert stored is not None
    assert (stored.model_version, stored.capsule_id, stored.criterion_met) == (3, "e" * 64, True)
    assert stored.metrics == {"pr_auc": 1.0} and type(stored.metrics["pr_auc"]) is float
    assert stored.config == {"candidate_model": {"seed": 7}} and stored.tags == {"who": "test"}
    assert stored.at == START and stored.at.tzinfo is not None
    entries = [e for e in ledger.audit_entries() if e.action == "record_experiment_run"]
    assert len(entries) == 1 and entries[0].run_id == "3f2a9c1e-aaaa"
    assert ledger.verify_audit().ok


def test_experiment_runs_are_found_by_unique_prefix(ledger: Ledger) -> None:
    ledger.record_experiment_run(_run("3f2a9c1e-aaaa", 0))
    ledger.record_experiment_run(_run("3f2a9c1e-bbbb", 1))
    ledger.record_experiment_run(_run("short", 2))
    assert ledger.get_experiment_run("short") is not None  # exact ids of any length
    assert ledger.get_experiment_run("shor") is None
    found = ledger.get_experiment_run("3f2a9c1e-b")
    assert found is not None and found.run_id == "3f2a9c1e-bbbb"
    with pytest.raises(LedgerError, match="3f2a9c1e-aaaa, 3f2a9c1e-bbbb"):
        ledger.get_experiment_run("3f2a9c1e")
    assert ledger.get_experiment_run("3f2a9c1") is None  # a 7-character prefix is too short
    assert ledger.get_experiment_run("nonexistent-run") is None


def test_experiment_run_filters(ledger: Ledger) -> None:
    ledger.record_experiment_run(_run("run-c", 2, dataset_version="train-2"))
    ledger.record_experiment_run(_run("run-a", 0))
    ledger.record_experiment_run(_run("run-b", 1, feature_set_version="features-v2"))
    ledger.record_experiment_run(_run("run-d", 3, model_name="other"))

    def ids(**filters: Any) -> list[str]:
        return [run.run_id for run in ledger.list_experiment_runs(**filters)]

    assert ids() == ["run-a", "run-b", "run-c", "run-d"]  # oldest first, not insertion order
    assert ids(model_name="detector") == ["run-a", "run-b", "run-c"]
    assert ids(since=START + timedelta(hours=1)) == ["run-b", "run-c", "run-d"]
    assert ids(until=START + timedelta(hours=2)) == ["run-a", "run-b"]
    assert ids(since=START + timedelta(hours=1), until=START + timedelta(hours=3)) == [
        "run-b",
        "run-c",
    ]
    # Another time zone names the same instants.
    plus_two = timezone(timedelta(hours=2))
    assert ids(since=(START + timedelta(hours=3)).astimezone(plus_two)) == ["run-d"]
    assert ids(dataset_version="train-2") == ["run-c"]
    assert ids(feature_set_version="features-v2") == ["run-b"]
    assert ids(model_name="detector", dataset_version="train-1") == ["run-a", "run-b"]
    assert ids(model_name="nobody") == []


def test_non_utc_times_are_stored_as_the_same_instant(ledger: Ledger) -> None:
    local = START.astimezone(timezone(timedelta(hours=-5)))
    ledger.record_experiment_run(_run("run-tz", 0, at=local))
    stored = ledger.get_experiment_run("run-tz")
    assert stored is not None and stored.at == START and stored.at.tzinfo == UTC
    assert [r.run_id for r in ledger.list_experiment_runs(until=START)] == []
    assert [r.run_id for r in ledger.list_experiment_runs(since=START)] == ["run-tz"]


# --- schema and migration ---------------------------------------------------------------------


def _migrate_to_0001(self: Ledger) -> None:
    """The ledger as the previous release opened it: schema revision 0001 only."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    with self._write(bound=False) as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, "0001")
        # Today's code writes the key id that revision 0004 adds; the test drops it again
        # before the upgrade, so the ledger is 0001's when reopened.
        conn.execute(text("ALTER TABLE audit_log ADD COLUMN key_id VARCHAR(64)"))


def _revision(db_path: Path) -> str | None:
    engine = create_engine(_url(db_path))
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"version_table": VERSION_TABLE})
            return context.get_current_revision()
    finally:
        engine.dispose()


def _tables(db_path: Path) -> set[str]:
    engine = create_engine(_url(db_path))
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def test_a_0001_ledger_upgrades_on_open_and_its_chain_still_verifies(
    db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with monkeypatch.context() as patch:
        patch.setattr(Ledger, "_migrate", _migrate_to_0001)
        old = Ledger(_url(db_path), audit_key=KEY, clock=_clock())
        try:
            old.register_model_version(
                "detector",
                "a" * 64,
                metrics={"pr_auc": 0.5},
                training_set_version="train-1",
                feature_set_version="features-v1",
                actor="local:test",
            )
            old.set_alias("detector", "champion", 1, actor="local:test", reason="first")
            old.audit("note", actor="local:test", subject="before upgrade")
        finally:
            old.dispose()
    assert _revision(db_path) == "0001"
    assert not {"capsules", "experiment_runs"} & _tables(db_path)
    engine = create_engine(_url(db_path))
    try:
        with engine.begin() as connection:
            connection.execute(text("ALTER TABLE audit_log DROP COLUMN key_id"))
    finally:
        engine.dispose()

    upgraded = Ledger(_url(db_path), audit_key=KEY, clock=_clock())
    try:
        assert _revision(db_path) == HEAD_REVISION
        assert {"capsules", "experiment_runs"} <= _tables(db_path)
        verification = upgraded.verify_audit()
        assert verification.ok and verification.entries == 3, verification.summary()
        assert upgraded.aliases("detector") == {"champion": 1}
        upgraded.record_capsule(_capsule(1))
        upgraded.record_experiment_run(_run("run-after-upgrade", 0))
        verification = upgraded.verify_audit()
        assert verification.ok and verification.entries == 5, verification.summary()
    finally:
        upgraded.dispose()


def test_schema_at_head_matches_metadata(ledger: Ledger, db_path: Path) -> None:
    engine = create_engine(_url(db_path))
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(
                connection, opts={"version_table": VERSION_TABLE, "compare_type": True}
            )
            assert compare_metadata(context, metadata) == []
            assert context.get_current_revision() == HEAD_REVISION
    finally:
        engine.dispose()


def test_the_skip_revision_is_the_newest_migration() -> None:
    """Opening a current ledger skips Alembic only if HEAD_REVISION names the real head."""
    assert ledger_module.HEAD_REVISION == HEAD_REVISION
