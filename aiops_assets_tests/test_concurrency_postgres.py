"""Eight runs at once against one PostgreSQL instance, one PostgreSQL ledger and one store.

Eight worker processes (as eight run workers of a deployment would be) materialize overlapping
partitions and then all train, register and gate models at the same moment. The phases are
separated by barriers so that every writer of a partition computes from the same inputs: the
bytes are then deterministic, and any second version of a partition, any object that does not
hash to its name, any duplicated registry version or forked audit chain can only come from the
concurrency itself. Each partition is written by two or three processes at once.

The instance is the documented ``docker/dagster.postgres.yaml``; nothing is created up front
except the Dagster schema (a deployment's webserver creates it before any run); the ledger's
migration and its audit key file are left for the workers to race over.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
from dagster_postgres import PostgresEventLogStorage

from aiops_assets.core.ledger import Ledger, StaleChampionError
from aiops_assets.core.registry import CHALLENGER, CHAMPION, MODEL_NAME, verify_model
from aiops_assets.core.store import ArtifactStore
from aiops_assets.io import asset_ref_name
from aiops_assets.reference.definitions import build_definitions, ingest_selection
from aiops_assets.reference.settings import PipelineSettings
from aiops_assets.runner import materialize_selection
from aiops_assets_tests.postgres import throwaway_database
from aiops_assets_tests.postgres_instance import PostgresInstanceHome, postgres_instance_home

# Eight worker processes run the pipeline against the PostgreSQL service.
pytestmark = [pytest.mark.services, pytest.mark.subprocess]

WORKERS = 8
# Three days: two to train on and one of holdout; each is written by two or three processes at once.
DAYS = 3
PARTITIONS_PER_WORKER = 1
START = date(2026, 1, 5)
# Two seeds among eight trainers: four processes race to register the very same bytes.
SEEDS = (7, 8)
TEST_TAG = "aiops/concurrency_test"
PHASE_TAG = "aiops/phase"
WORKER_TAG = "aiops/worker"
# Bounds for the whole test, so a deadlock fails it instead of hanging CI (generous: a busy
# machine ran it in 380 s, an idle one in well under a minute).
DEADLINE_S = 480
BARRIER_TIMEOUT_S = 420
# The forkserver imports the pipeline once; each worker is then a cheap fork of it (a spawned
# worker would spend several CPU-seconds importing Dagster and Great Expectations, eight times).
PRELOADED_MODULES = ["aiops_assets.reference.definitions", "aiops_assets.reference.demo"]
QUIET: dict[str, Any] = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}
# A small holdout and forest keep eight trainings on two cores within the test budget; the
# bootstrap still runs whenever a second model meets the champion.
TRAINING_CONFIG: dict[str, Any] = {
    "training_set": {"config": {"holdout_days": 1}},
    "candidate_model": {"config": {"n_estimators": 40, "max_samples": 256}},
    "champion_model": {"config": {"bootstrap_samples": 200, "shadow_partitions": 0}},
}


@dataclass(frozen=True)
class WorkerPlan:
    worker: int
    partitions: tuple[str, ...]
    seed: int


def _partition_keys() -> list[str]:
    return [(START + timedelta(days=offset)).isoformat() for offset in range(DAYS)]


def _plans() -> list[WorkerPlan]:
    keys = _partition_keys()
    return [
        WorkerPlan(
            worker=worker,
            partitions=tuple(
                keys[(worker + offset) % DAYS] for offset in range(PARTITIONS_PER_WORKER)
            ),
            seed=SEEDS[worker % len(SEEDS)],
        )
        for worker in range(WORKERS)
    ]


def _settings(home: Path, ledger_url: str) -> PipelineSettings:
    return PipelineSettings(start=START, days=DAYS, home=home, ledger_url=ledger_url)


def _work(
    plan: WorkerPlan,
    instance_home: PostgresInstanceHome,
    home: Path,
    ledger_url: str,
    test_id: str,
    barrier: Any,
) -> None:
    """One process: snapshots of its days, (all wait) their features, (all wait) a training."""
    os.environ.update(instance_home.environ)
    definitions = build_definitions(_settings(home, ledger_url))

    def run(phase: str, selection: dg.AssetSelection, **options: Any) -> None:
        tags = {TEST_TAG: test_id, PHASE_TAG: phase, WORKER_TAG: str(plan.worker)}
        started = time.monotonic()
        run_config = {**QUIET, **options.pop("run_config", {})}
        materialize_selection(
            definitions, instance, selection, tags=tags, run_config=run_config, **options
        )
        # On stderr, which pytest shows when the test fails: who was slow, who never got there.
        print(
            f"worker {plan.worker}: {phase} {options.get('partition_key', '')} "
            f"in {time.monotonic() - started:.1f}s (process CPU so far {time.process_time():.1f}s)",
            file=sys.stderr,
            flush=True,
        )

    snapshot_selection = dg.AssetSelection.assets("telemetry_snapshot") & ingest_selection()
    with instance_home.open() as instance:
        for partition in plan.partitions:
            run("snapshot", snapshot_selection, partition_key=partition)
        barrier.wait(BARRIER_TIMEOUT_S)
        for partition in plan.partitions:
            # Without the drift check: its baseline is trained later (as in the demo).
            run("features", ingest_selection() - snapshot_selection, partition_key=partition)
        barrier.wait(BARRIER_TIMEOUT_S)
        config = {**TRAINING_CONFIG}
        config["candidate_model"] = {
            "config": {**TRAINING_CONFIG["candidate_model"]["config"], "seed": plan.seed}
        }
        run(
            "train",
            dg.AssetSelection.assets("training_set", "candidate_model", "champion_model"),
            run_config={"ops": config},
        )


@pytest.fixture
def shared_state(tmp_path: Path) -> Iterator[tuple[PostgresInstanceHome, str]]:
    with (
        postgres_instance_home(tmp_path / "dagster_home", "aiops_concurrency") as instance_home,
        throwaway_database("aiops_concurrency_ledger") as ledger_url,
    ):
        yield instance_home, ledger_url.render_as_string(hide_password=False)


def test_eight_concurrent_runs_leave_one_verified_version_per_partition_and_a_valid_ledger(
    shared_state: tuple[PostgresInstanceHome, str], tmp_path: Path
) -> None:
    instance_home, ledger_url = shared_state
    home = tmp_path / "aiops"
    settings = _settings(home, ledger_url)
    test_id = uuid.uuid4().hex
    plans = _plans()
    # The schema exists before any run, as in a deployment; the workers race on everything else.
    with instance_home.open() as instance:
        assert isinstance(instance.event_log_storage, PostgresEventLogStorage)
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(PRELOADED_MODULES)
        barrier = context.Barrier(WORKERS)
        processes = [
            context.Process(
                target=_work,
                args=(plan, instance_home, home, ledger_url, test_id, barrier),
                name=f"aiops-worker-{plan.worker}",
            )
            for plan in plans
        ]
        for process in processes:
            process.start()
        deadline = time.monotonic() + DEADLINE_S
        try:
            for process in processes:
                process.join(timeout=max(0.0, deadline - time.monotonic()))
        finally:
            for process in processes:
                if process.is_alive():
                    process.kill()
                    process.join()
        assert [process.exitcode for process in processes] == [0] * WORKERS

        runs = instance.get_runs(filters=dg.RunsFilter(tags={TEST_TAG: test_id}))
        phases = Counter(run.tags[PHASE_TAG] for run in runs)
        assert phases == {
            "snapshot": WORKERS * PARTITIONS_PER_WORKER,
            "features": WORKERS * PARTITIONS_PER_WORKER,
            "train": WORKERS,
        }
        assert {run.status for run in runs} == {dg.DagsterRunStatus.SUCCESS}
        run_ids = {run.run_id for run in runs}

        store = ArtifactStore(settings.store_root)
        _assert_one_verified_version_per_partition(instance, store, plans, run_ids)
        _assert_store_holds_only_whole_objects(store)
        _assert_one_materialization_per_training_run(instance, runs)
    _assert_registry_consistent(ledger_url, settings, store)


def _assert_one_verified_version_per_partition(
    instance: dg.DagsterInstance,
    store: ArtifactStore,
    plans: list[WorkerPlan],
    run_ids: set[str],
) -> None:
    writers = Counter(partition for plan in plans for partition in plan.partitions)
    for name in ("telemetry_snapshot", "features"):
        key = dg.AssetKey(name)
        records = instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=key), limit=1000
        ).records
        assert {record.run_id for record in records} <= run_ids
        per_run_partition = Counter((record.run_id, record.partition_key) for record in records)
        assert set(per_run_partition.values()) == {1}, "one materialization per run and partition"
        for partition, count in writers.items():
            versions = {
                _data_version(record) for record in records if record.partition_key == partition
            }
            written = [record for record in records if record.partition_key == partition]
            assert len(written) == count, f"{name}[{partition}]: every writer's run is recorded"
            current = store.get_ref(asset_ref_name(key, partition))
            assert current is not None, f"{name}[{partition}] has no current version"
            assert versions == {current.sha256}, (
                f"{name}[{partition}] has versions {sorted(versions)}; the current one is "
                f"{current.sha256}: concurrent writers produced duplicates"
            )
            assert store.verify(current)


def _data_version(record: dg.EventLogRecord) -> str:
    materialization = record.asset_materialization
    assert materialization is not None and materialization.tags is not None
    return materialization.tags["dagster/data_version"]


def _assert_store_holds_only_whole_objects(store: ArtifactStore) -> None:
    objects = list(store.iter_object_ids())
    assert objects
    corrupt = [digest for digest in objects if not store.verify(digest)]
    assert corrupt == [], f"objects that do not hash to their name: {corrupt}"
    root = Path(str(store.root))
    leftovers = sorted(str(path) for path in root.rglob("*.tmp"))
    assert leftovers == [], f"temporary files left behind: {leftovers}"


def _assert_one_materialization_per_training_run(
    instance: dg.DagsterInstance, runs: Sequence[dg.DagsterRun]
) -> None:
    training_runs = {run.run_id for run in runs if run.tags[PHASE_TAG] == "train"}
    for name in ("training_set", "candidate_model", "champion_model"):
        records = instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=dg.AssetKey(name)), limit=1000
        ).records
        assert sorted(record.run_id for record in records) == sorted(training_runs), name


def _assert_registry_consistent(
    ledger_url: str, settings: PipelineSettings, store: ArtifactStore
) -> None:
    ledger = Ledger.from_env(ledger_url, default_key_file=settings.audit_key_file)
    try:
        versions = ledger.list_versions(MODEL_NAME)
        assert [version.version for version in versions] == list(range(1, len(versions) + 1))
        shas = [version.sha256 for version in versions]
        assert len(set(shas)) == len(shas), "the same bytes were registered twice"
        # Same training set and seed give the same bytes: one version per seed, however many
        # processes registered it at once.
        assert len(versions) == len(SEEDS)
        for version in versions:
            verify_model(store, version)
        aliases = ledger.aliases(MODEL_NAME)
        assert set(aliases) == {CHAMPION, CHALLENGER}
        assert set(aliases.values()) <= {version.version for version in versions}

        # Every move of the champion was decided against the champion it replaced.
        promoted = [record for record in ledger.promotions(MODEL_NAME) if record.promoted]
        moves = ledger.alias_history(MODEL_NAME, CHAMPION)
        assert [(move.from_version, move.to_version) for move in moves] == [
            (record.champion_version, record.candidate_version) for record in promoted
        ]
        assert moves[-1].to_version == aliases[CHAMPION]

        verification = ledger.verify_audit()
        assert verification.ok, verification.summary()
        registrations = [
            entry for entry in ledger.audit_entries() if entry.action == "register_version"
        ]
        assert len(registrations) == len(versions)
    finally:
        ledger.dispose()


def test_a_promotion_decided_against_a_replaced_champion_is_refused() -> None:
    """The race the gate retries on, made deterministic: two deciders saw "no champion"."""
    with throwaway_database("aiops_stale_champion") as url:
        first, second = (
            Ledger(url.render_as_string(hide_password=False), audit_key=b"stale-champion-key")
            for _ in range(2)
        )
        try:
            for digest in ("a", "b"):
                first.register_model_version(
                    MODEL_NAME, digest * 64, metrics={}, training_set_version="t",
                    feature_set_version="f", actor="test",
                )  # fmt: skip
            first.record_promotion(
                MODEL_NAME, 1, champion_version=None, promoted=True, reason="first",
                evidence={}, actor="gate-1",
            )  # fmt: skip
            entries = len(second.audit_entries())
            with pytest.raises(StaleChampionError, match=r"judged against no champion.*now v1"):
                second.record_promotion(
                    MODEL_NAME, 2, champion_version=None, promoted=True, reason="stale",
                    evidence={}, actor="gate-2",
                )  # fmt: skip
            assert len(second.audit_entries()) == entries
            assert [record.reason for record in second.promotions(MODEL_NAME)] == ["first"]
            second.record_promotion(
                MODEL_NAME, 2, champion_version=1, promoted=True, reason="decided again",
                evidence={}, actor="gate-2",
            )  # fmt: skip
            assert second.aliases(MODEL_NAME)[CHAMPION] == 2
            assert second.verify_audit().ok
        finally:
            first.dispose()
            second.dispose()
