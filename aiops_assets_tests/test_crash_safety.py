"""Crash safety: SIGKILL a run during snapshot writes and registry updates, then prove nothing broke.

Each trial forks a child (see ``crash_worker``) that repeats real pipeline work on one home
(a SQLite Dagster instance, the SQLite ledger and the local store): materialize a new snapshot,
train a candidate, promote it through ``champion_model``. The child dies by SIGKILL: a third of
the trials after a seeded random delay, a third inside a store write (temporary file half
written, not yet renamed, renamed but the folder not fsynced), a third inside a ledger
transaction (audit entry inserted but the head not moved, or COMMIT not yet sent).

After every kill: every stored object and every ref verifies, every alias points at a registered
version whose model verifies, the audit chain verifies, and the same work run again completes.
"""

from __future__ import annotations

import multiprocessing
import os
import random
import resource
import signal
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from multiprocessing.context import ForkContext
from pathlib import Path
from typing import Any

import pytest

from aiops_assets.core.ledger import Ledger
from aiops_assets.core.registry import CHAMPION, MODEL_NAME, verify_model
from aiops_assets.core.store import ArtifactStore, IntegrityError, StoreError
from aiops_assets.reference.settings import PipelineSettings
from aiops_assets_tests.crash_worker import (
    CYCLES,
    FLAG_COUNT,
    KILLED_AT,
    LEDGER_DEPTH,
    LEDGER_PHASES,
    PHASE_NAMES,
    STORE_DEPTH,
    STORE_PHASES,
    KillPlan,
    crash_settings,
    run_cycle,
    setup_home,
    work_until_killed,
)

TRIALS = 21
SEED = 20261130
CHILD_TIMEOUT_S = 600.0

pytestmark = [
    # Every trial forks a child that runs pipeline work until it is killed.
    pytest.mark.subprocess,
    pytest.mark.skipif(
        sys.platform != "linux", reason="the trials fork and read /proc/self/fd (Linux only)"
    ),
]


@pytest.fixture
def crash_home(tmp_path: Path) -> Iterator[Path]:
    """A home in memory (tmpfs) when there is one.

    SIGKILL ends a process, not the machine: the page cache survives it, so fsync plays no part
    in what these trials test, and on tmpfs it costs nothing (on a disk, the SQLite instance's
    fsync per event doubles the test's time). Power-loss durability is not tested here.
    """
    shared_memory = Path("/dev/shm")
    if shared_memory.is_dir() and os.access(shared_memory, os.W_OK):
        with tempfile.TemporaryDirectory(dir=shared_memory, prefix="aiops-crash-") as home:
            yield Path(home)
    else:
        yield tmp_path


def test_sigkill_during_writes_leaves_a_verifiable_home_that_runs_again(crash_home: Path) -> None:
    context = multiprocessing.get_context("fork")
    settings = crash_settings(crash_home / "aiops")
    _run_to_completion(context, setup_home, settings)
    started = time.perf_counter()
    _run_to_completion(context, _cycle, settings, 1)
    cycle_seconds = time.perf_counter() - started

    rng = random.Random(SEED)
    next_cycle = 2
    outcomes: list[dict[str, Any]] = []
    debris_seen: set[str] = set()
    for trial in range(TRIALS):
        plan = _plan(trial, rng)
        flags = context.Array("i", FLAG_COUNT, lock=False)
        child = context.Process(
            target=work_until_killed, args=(settings, flags, plan, next_cycle), daemon=True
        )
        child.start()
        if plan.mode == "timer":
            child.join(rng.uniform(0.05, cycle_seconds))
            if child.is_alive():
                assert child.pid is not None
                child.kill()
        child.join(CHILD_TIMEOUT_S)
        if child.is_alive():
            child.kill()
            pytest.fail(f"trial {trial}: the child outlived {CHILD_TIMEOUT_S}s without its kill")
        assert child.exitcode == -signal.SIGKILL, f"trial {trial} ended with {child.exitcode}"
        landed = _where(flags)
        if plan.mode != "timer":
            assert PHASE_NAMES.get(flags[KILLED_AT]) == plan.phase, f"trial {trial}: {plan}"
        evidence = sorted(set(_interrupted_write_evidence(settings)) - debris_seen)
        debris_seen.update(path for path in evidence if not path.endswith("-journal"))
        problems = verify_home(settings)
        assert not problems, f"trial {trial} ({plan}, killed in {landed}): {problems}"
        # The same work again, from where the kill left it.
        next_cycle += flags[CYCLES] + 1
        _run_to_completion(context, _cycle, settings, next_cycle)
        outcomes.append({"plan": plan, "landed": landed, "evidence": evidence})
        print(f"trial {trial}: {plan} killed in {landed}; new debris {evidence}", file=sys.stderr)
        next_cycle += 1

    problems = verify_home(settings)
    assert not problems, problems
    ledger = _open_ledger(settings)
    try:
        champion = ledger.get_alias(MODEL_NAME, CHAMPION)
        assert champion is not None
        # The last re-run promoted its own model: the work really completed after the last kill.
        assert champion.tags["seed"] == str(1000 + next_cycle - 1)
    finally:
        ledger.dispose()

    places = Counter(outcome["landed"] for outcome in outcomes)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    print(
        f"\n{TRIALS} SIGKILL trials (cycle {cycle_seconds:.1f}s, children's CPU "
        f"{children.ru_utime + children.ru_stime:.0f}s): kills landed in "
        + ", ".join(f"{place}: {count}" for place, count in sorted(places.items()))
        + "; phases: "
        + ", ".join(
            f"{phase}: {count}"
            for phase, count in sorted(
                Counter(o["plan"].phase or "timer" for o in outcomes).items()
            )
        )
        + f"; trials with interrupted-write debris: "
        f"{sum(1 for outcome in outcomes if outcome['evidence'])}"
    )
    mid_write = places["store write"] + places["ledger transaction"]
    # Two thirds of the trials aim inside a write; the timed third lands wherever it lands.
    assert mid_write >= 2 * TRIALS // 3, places


def verify_home(settings: PipelineSettings) -> list[str]:
    """Every problem found: objects or refs that do not verify, aliases at missing or corrupt
    models, and a broken audit chain."""
    problems: list[str] = []
    store = ArtifactStore(settings.store_root)
    objects = list(store.iter_object_ids())
    problems += [
        f"object {digest} does not verify" for digest in objects if not store.verify(digest)
    ]
    refs_root = Path(settings.store_root) / "refs"
    for path in sorted(refs_root.rglob("*.json")):
        if path.name.startswith("."):
            continue  # a temporary file a kill left behind: never a ref
        name = path.relative_to(refs_root).as_posix().removesuffix(".json")
        try:
            ref = store.require_ref(name)
        except StoreError as error:
            problems.append(f"ref {name} is unreadable: {error}")
            continue
        if not store.verify(ref):
            problems.append(f"ref {name} points at {ref.sha256}, which does not verify")
    ledger = _open_ledger(settings)
    try:
        for alias, number in ledger.aliases(MODEL_NAME).items():
            version = ledger.get_version(MODEL_NAME, number)
            if version is None:
                problems.append(f"alias {alias} points at v{number}, which is not registered")
                continue
            try:
                verify_model(store, version)
            except (IntegrityError, StoreError) as error:
                problems.append(f"alias {alias} -> v{number}: {error}")
        verification = ledger.verify_audit()
        if not verification.ok:
            problems.append(f"audit chain: {verification.summary()}")
    finally:
        ledger.dispose()
    if not objects:
        problems.append("the store holds no objects at all")
    return problems


def _open_ledger(settings: PipelineSettings) -> Ledger:
    return Ledger.from_env(settings.ledger_url, default_key_file=settings.audit_key_file)


def _plan(trial: int, rng: random.Random) -> KillPlan:
    mode = ("timer", "store", "ledger")[trial % 3]
    if mode == "store":
        return KillPlan("store", at=rng.randint(1, 6), phase=rng.choice(STORE_PHASES))
    if mode == "ledger":
        return KillPlan("ledger", at=rng.randint(1, 6), phase=rng.choice(LEDGER_PHASES))
    return KillPlan()


def _where(flags: Any) -> str:
    if flags[STORE_DEPTH] > 0:
        return "store write"
    if flags[LEDGER_DEPTH] > 0:
        return "ledger transaction"
    return "elsewhere"


def _interrupted_write_evidence(settings: PipelineSettings) -> list[str]:
    """What a kill left on disk: temporary files in the store, a hot SQLite journal."""
    evidence = [str(path) for path in Path(settings.store_root).rglob(".*.tmp")]
    journal = Path(settings.ledger_url.removeprefix("sqlite:///") + "-journal")
    if journal.exists() and journal.stat().st_size > 0:
        evidence.append(str(journal))
    return evidence


def _cycle(settings: PipelineSettings, cycle: int) -> None:
    run_cycle(settings, cycle=cycle)


def _run_to_completion(context: ForkContext, target: Callable[..., None], *args: Any) -> None:
    child = context.Process(target=target, args=args, daemon=True)
    child.start()
    child.join(CHILD_TIMEOUT_S)
    if child.is_alive():
        child.kill()
        pytest.fail(f"{target.__name__} did not finish within {CHILD_TIMEOUT_S}s")
    assert child.exitcode == 0, f"{target.__name__}{args[1:]} failed: exit code {child.exitcode}"
