"""The ledger on the real local PostgreSQL: the same registry and audit chain, under concurrency.

Each test module run gets its own database, dropped afterwards. Without a server the tests are
skipped locally (with the reason printed) and fail in CI, where PostgreSQL is part of the machine.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from aiops_assets.core.ledger import Ledger
from aiops_assets_tests.postgres import throwaway_database

pytestmark = pytest.mark.services

KEY = b"postgres-test-key-0123456789abcdef"


@pytest.fixture(scope="module")
def database_url() -> Iterator[str]:
    with throwaway_database("aiops_ledger") as url:
        yield url.render_as_string(hide_password=False)


def test_the_registry_and_the_audit_chain_work_on_postgresql(database_url: str) -> None:
    ledger = Ledger(database_url, audit_key=KEY)
    try:
        first = ledger.register_model_version(
            "m", "a" * 64, metrics={"f1": 0.9}, training_set_version="t", feature_set_version="f",
            actor="test",
        )  # fmt: skip
        again = ledger.register_model_version(
            "m", "a" * 64, metrics={"f1": 0.9}, training_set_version="t", feature_set_version="f",
            actor="test",
        )  # fmt: skip
        assert first == again and first.version == 1
        ledger.record_promotion(
            "m", 1, champion_version=None, promoted=True, reason="first", evidence={"x": 1},
            actor="test",
        )  # fmt: skip
        champion = ledger.get_alias("m", "champion")
        assert champion is not None and champion.version == 1
        verification = ledger.verify_audit()
        assert verification.ok and verification.entries >= 3, verification.summary()
    finally:
        ledger.dispose()


def _append(url: str, worker: int, count: int) -> None:
    ledger = Ledger(url, audit_key=KEY)
    try:
        for index in range(count):
            ledger.audit("note", actor=f"worker-{worker}", subject=f"s{index}")
            ledger.register_model_version(
                "race", f"{worker:02d}{index:062d}", metrics={}, training_set_version="t",
                feature_set_version="f", actor=f"worker-{worker}",
            )  # fmt: skip
    finally:
        ledger.dispose()


def test_concurrent_processes_never_fork_the_chain_or_reuse_a_version(database_url: str) -> None:
    workers, count = 4, 15
    context = multiprocessing.get_context("spawn")
    processes = [
        context.Process(target=_append, args=(database_url, worker, count))
        for worker in range(workers)
    ]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=120)
        assert process.exitcode == 0
    ledger = Ledger(database_url, audit_key=KEY)
    try:
        versions = [version.version for version in ledger.list_versions("race")]
        assert versions == list(range(1, workers * count + 1)), "no gaps, no duplicates"
        verification = ledger.verify_audit()
        assert verification.ok, verification.summary()
        notes = [entry for entry in ledger.audit_entries() if entry.action == "note"]
        assert len(notes) == workers * count
    finally:
        ledger.dispose()


def test_an_edited_row_is_named_on_postgresql(database_url: str) -> None:
    ledger = Ledger(database_url, audit_key=KEY)
    try:
        entry = ledger.audit("note", actor="tamper-test", subject="x", details={"n": 1})
        intruder = sa.create_engine(database_url)  # a direct write, bypassing the ledger
        with intruder.begin() as connection:
            connection.execute(
                sa.text("UPDATE audit_log SET details = :d WHERE seq = :s"),
                {"d": '{"n":2}', "s": entry.seq},
            )
        intruder.dispose()
        verification = ledger.verify_audit()
        assert not verification.ok
        assert [problem.seq for problem in verification.problems] == [entry.seq]
    finally:
        ledger.dispose()
