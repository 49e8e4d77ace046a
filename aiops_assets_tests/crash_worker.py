"""The child side of the crash trials: real pipeline work that a parent kills with SIGKILL.

A trial forks a child from the already-imported test process (importing Dagster afresh would
cost seconds per trial). The child repeats one *cycle* until it dies: materialize a snapshot
partition (new telemetry each cycle, so the store really writes new objects), then train a small
candidate and promote it through ``champion_model`` (register, capsule, experiment run, alias
moves, audit entries). It reports through a shared array whether it is inside a store write or a
ledger transaction, so the parent can tell where each kill landed.

Three ways to die, chosen by the parent:

- ``timer``: nothing here; the parent sends SIGKILL after a random delay.
- ``store``: SIGKILL from inside the n-th store write, at a chosen phase: the temporary file half
  written, written but not yet renamed, or renamed but the folder not yet fsynced.
- ``ledger``: SIGKILL inside the n-th ledger transaction: with the audit entry inserted but the
  head not yet moved, or with every statement done and COMMIT not yet sent.
"""

from __future__ import annotations

import contextlib
import io
import os
import signal
from collections.abc import Iterator, MutableSequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dagster as dg
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine

from aiops_assets.core import store as store_module
from aiops_assets.core.ledger import Ledger
from aiops_assets.core.policy import ACTOR_TAG
from aiops_assets.core.store import ArtifactStore
from aiops_assets.reference.definitions import (
    build_definitions,
    ingest_selection,
    without_on_demand_checks,
)
from aiops_assets.reference.settings import PipelineSettings
from aiops_assets.resources import TelemetrySourceResource, close_ledgers
from aiops_assets.runner import daily_partition_keys, prepare_instance

# Indexes into the shared flag array.
STORE_DEPTH = 0  # > 0 while inside ArtifactStore._write_atomically
LEDGER_DEPTH = 1  # > 0 while inside a ledger write transaction (until its COMMIT returned)
CYCLES = 2  # cycles completed
KILLED_AT = 3  # the phase code of a self-inflicted kill (0: none)
FLAG_COUNT = 4

STORE_PHASES = ("half_written", "before_rename", "after_rename")
LEDGER_PHASES = ("after_audit_insert", "before_commit")
PHASE_CODES = {name: code for code, name in enumerate((*STORE_PHASES, *LEDGER_PHASES), start=1)}
PHASE_NAMES = {code: name for name, code in PHASE_CODES.items()}

QUIET: dict[str, Any] = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}
# A small forest: the trial is about writes, not about a good model.
SMALL_MODEL = {"n_estimators": 8, "max_samples": 64}


@dataclass(frozen=True)
class KillPlan:
    """How the child should die: ``mode`` is timer, store or ledger; ``at`` counts the eligible
    writes (1 = the first; the kill lands in the first one at its phase from there on) and ``phase`` is one of STORE_PHASES or LEDGER_PHASES."""

    mode: str = "timer"
    at: int = 0
    phase: str = ""


def crash_settings(home: Path) -> PipelineSettings:
    return PipelineSettings(days=2, home=home)


def setup_home(settings: PipelineSettings) -> None:
    """Ingest every day, build a training set and put a first champion in service."""
    definitions = build_definitions(settings)
    instance = prepare_instance(settings.dagster_home)
    try:
        for key in daily_partition_keys(definitions):
            _materialize(definitions, instance, ingest_selection(), partition_key=key)
        _materialize(
            definitions,
            instance,
            dg.AssetSelection.assets("training_set"),
            run_config={"ops": {"training_set": {"config": {"holdout_days": 1}}}},
        )
        run_cycle(settings, cycle=0, definitions=definitions, instance=instance)
    finally:
        instance.dispose()
        close_ledgers()


def run_cycle(
    settings: PipelineSettings,
    *,
    cycle: int,
    definitions: dg.Definitions | None = None,
    instance: dg.DagsterInstance | None = None,
) -> None:
    """One unit of work: a new snapshot of one day, then a new model promoted to champion."""
    definitions = definitions or build_definitions(settings)
    own_instance = instance is None
    instance = instance or dg.DagsterInstance.from_config(str(settings.dagster_home))
    try:
        keys = daily_partition_keys(definitions)
        # New telemetry each cycle, so the snapshot is a new object and not a de-duplicated no-op.
        source = TelemetrySourceResource(
            scenario_start=settings.start.isoformat(),
            scenario_days=settings.days,
            seed=settings.seed + 1 + cycle,
        )
        _materialize(
            definitions,
            instance,
            dg.AssetSelection.assets("telemetry_snapshot") & ingest_selection(),
            partition_key=keys[cycle % len(keys)],
            resources={"telemetry_source": source},
        )
        _materialize(
            definitions,
            instance,
            dg.AssetSelection.assets("candidate_model", "champion_model"),
            run_config={
                "ops": {
                    "candidate_model": {"config": {**SMALL_MODEL, "seed": 1000 + cycle}},
                    "champion_model": {
                        "config": {"action": "promote", "reason": f"crash trial cycle {cycle}"}
                    },
                }
            },
            tags={ACTOR_TAG: "local:crash-trial"},
        )
    finally:
        if own_instance:
            instance.dispose()


def work_until_killed(
    settings: PipelineSettings, flags: MutableSequence[int], plan: KillPlan, first_cycle: int
) -> None:
    """The killed child's body: repeat cycles (each new) until a kill lands."""
    _track_writes(flags)
    if plan.mode == "store":
        _kill_in_store_write(settings, flags, plan)
    elif plan.mode == "ledger":
        _kill_in_ledger_transaction(settings, flags, plan)
    definitions = build_definitions(settings)
    instance = dg.DagsterInstance.from_config(str(settings.dagster_home))
    cycle = first_cycle
    while True:
        run_cycle(settings, cycle=cycle, definitions=definitions, instance=instance)
        flags[CYCLES] += 1
        cycle += 1


def _materialize(
    definitions: dg.Definitions,
    instance: dg.DagsterInstance,
    selection: dg.AssetSelection,
    *,
    partition_key: str | None = None,
    run_config: dict[str, Any] | None = None,
    resources: dict[str, Any] | None = None,
    tags: dict[str, str] | None = None,
) -> None:
    assets = [item for item in definitions.assets or [] if isinstance(item, dg.AssetsDefinition)]
    checks = [
        item for item in definitions.asset_checks or [] if isinstance(item, dg.AssetsDefinition)
    ]
    with contextlib.redirect_stderr(io.StringIO()):
        dg.materialize(
            [*assets, *checks],
            instance=instance,
            resources={**(definitions.resources or {}), **(resources or {})},
            partition_key=partition_key,
            selection=without_on_demand_checks(selection),
            run_config={**QUIET, **(run_config or {})},
            tags=tags,
        )


def _track_writes(flags: MutableSequence[int]) -> None:
    """Count nesting of store writes and ledger transactions into the shared flags."""
    original_write = ArtifactStore._write_atomically

    def tracked_write(self: ArtifactStore, path: Any, data: bytes) -> None:
        flags[STORE_DEPTH] += 1
        try:
            original_write(self, path, data)
        finally:
            flags[STORE_DEPTH] -= 1

    original_transaction = Ledger._write

    @contextlib.contextmanager
    def tracked_transaction(self: Ledger) -> Iterator[Connection]:
        flags[LEDGER_DEPTH] += 1
        try:
            with original_transaction(self) as conn:
                yield conn
        finally:
            flags[LEDGER_DEPTH] -= 1

    ArtifactStore._write_atomically = tracked_write  # type: ignore[method-assign]
    Ledger._write = tracked_transaction  # type: ignore[method-assign, assignment]


def _die(flags: MutableSequence[int], phase: str) -> None:
    flags[KILLED_AT] = PHASE_CODES[phase]
    os.kill(os.getpid(), signal.SIGKILL)


def _kill_in_store_write(
    settings: PipelineSettings, flags: MutableSequence[int], plan: KillPlan
) -> None:
    """SIGKILL inside the ``plan.at``-th write of the artifact store, at ``plan.phase``."""
    root = str(Path(settings.store_root).resolve())
    seen = {"writes": 0}
    real_fsync, real_replace = os.fsync, os.replace

    def armed() -> bool:
        return flags[STORE_DEPTH] > 0 and seen["writes"] >= plan.at

    def fsync(fd: int) -> None:
        target = os.readlink(f"/proc/self/fd/{fd}")
        if flags[STORE_DEPTH] > 0 and target.startswith(root) and target.endswith(".tmp"):
            seen["writes"] += 1
            if armed() and plan.phase == "half_written":
                os.ftruncate(fd, os.fstat(fd).st_size // 2)
                _die(flags, plan.phase)
        real_fsync(fd)

    def replace(source: Any, target: Any, **kwargs: Any) -> None:
        inside = str(target).startswith(root) and armed()
        if inside and plan.phase == "before_rename":
            _die(flags, plan.phase)
        real_replace(source, target, **kwargs)
        if inside and plan.phase == "after_rename":
            _die(flags, plan.phase)

    store_module.os.fsync = fsync  # type: ignore[assignment]
    store_module.os.replace = replace  # type: ignore[assignment]


def _kill_in_ledger_transaction(
    settings: PipelineSettings, flags: MutableSequence[int], plan: KillPlan
) -> None:
    """SIGKILL inside the ``plan.at``-th ledger write transaction, at ``plan.phase``."""
    database = str(Path(settings.ledger_url.removeprefix("sqlite:///")).resolve())
    seen = {"transactions": 0, "counted": False}

    def is_ledger(conn: Connection) -> bool:
        return str(Path(conn.engine.url.database or "").resolve()) == database

    def after_execute(conn: Connection, clause: Any, *_args: Any) -> None:
        if not is_ledger(conn) or flags[LEDGER_DEPTH] == 0:
            return
        if not seen["counted"]:
            seen["counted"] = True
            seen["transactions"] += 1
        text = str(clause).lstrip().upper()
        if (
            plan.phase == "after_audit_insert"
            and seen["transactions"] >= plan.at
            and text.startswith("INSERT INTO AUDIT_LOG")
        ):
            _die(flags, plan.phase)

    def before_commit(conn: Connection) -> None:
        if not is_ledger(conn) or flags[LEDGER_DEPTH] == 0:
            return
        if plan.phase == "before_commit" and seen["transactions"] >= plan.at:
            _die(flags, plan.phase)
        seen["counted"] = False

    def on_rollback(conn: Connection) -> None:
        if is_ledger(conn):
            seen["counted"] = False

    event.listen(Engine, "after_execute", after_execute)
    event.listen(Engine, "commit", before_commit)
    event.listen(Engine, "rollback", on_rollback)
