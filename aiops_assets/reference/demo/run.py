"""Running the demo: check its settings, plan every step, then take them in order.

The plan lists each step before the first one runs (history days, training, scoring, the
feature-set lifecycle, then per served day its ingest, scoring and sensor tick, the fire drill
and the staged rollout), so the progress knows its total from the first line.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any, Literal, TextIO

import dagster as dg

from aiops_assets import LedgerResource
from aiops_assets.core.policy import ACTOR_TAG
from aiops_assets.core.progress import LineProgress, Progress
from aiops_assets.core.registry import CHAMPION, MODEL_NAME
from aiops_assets.core.rollout import RolloutPlan
from aiops_assets.keys import MONITORING_REPORT_KEY
from aiops_assets.reference.assets.models import TrainingSetRunConfig
from aiops_assets.reference.automation import INGEST_SCHEDULE
from aiops_assets.reference.definitions import (
    INGEST_ASSETS,
    TRAINING_ASSETS,
    build_definitions,
    daily_partitions,
    ingest_selection,
)
from aiops_assets.reference.demo.archive import archive_previous_demo
from aiops_assets.reference.demo.lifecycle import feature_set_lifecycle
from aiops_assets.reference.demo.result import DemoResult, record_registry
from aiops_assets.reference.demo.steps import SILENT, DemoSteps, SensorLoop
from aiops_assets.reference.demo.ticks import SCHEDULE_TAG, TickOutcome, TickRecorder
from aiops_assets.reference.settings import PipelineSettings
from aiops_assets.runner import daily_partition_keys

FIRE_DRILL_RUN_CONFIG: dict[str, Any] = {
    "ops": {
        "candidate_model": {"config": {"alert_quantile": 0.9}},
        "champion_model": {
            "config": {
                "action": "promote",
                "reason": "fire drill: forcing a model that pages too often into service",
            }
        },
    },
}

StepKind = Literal["ingest", "train", "score", "lifecycle", "sensors", "fire_drill", "rollout"]

# The packaged plan with the demo's one concession (no minimum of labelled anomalies: its canary
# service has none); the file says why.
DEMO_ROLLOUT_PLAN = Path(__file__).with_name("rollout_plan.yaml")


def validate_demo_settings(settings: PipelineSettings) -> None:
    """Refuse, in one line that says what to change, settings no demo can run on.

    It reads and writes nothing, so a command calls it before anything is archived or created.
    """
    holdout_days = TrainingSetRunConfig().holdout_days
    if settings.days <= holdout_days:
        raise ValueError(
            f"the demo needs more than {holdout_days} days (the holdout) to have anything to "
            f"train on; got {settings.days}: pass --days {holdout_days + 1} or more"
        )
    if isinstance(settings.seed, bool) or not isinstance(settings.seed, int) or settings.seed < 0:
        raise ValueError(f"the seed must be a non-negative integer; got {settings.seed!r}")
    _validate_clock(settings)
    _validate_start(settings)
    _validate_home(settings.home)
    if not settings.deployment.can_promote:
        raise ValueError(
            f"the demo promotes models and a feature set, which the {settings.deployment.name} "
            "environment cannot do: run it in dev (unset AIOPS_ENV)"
        )


def _validate_clock(settings: PipelineSettings) -> None:
    """The demo replays its days on its own fixed clock, so its output is the same every day."""
    if settings.partition != "daily":
        raise ValueError(
            f"the demo replays daily partitions; got AIOPS_PARTITION={settings.partition}: unset it"
        )
    if settings.clock:
        raise ValueError(
            f"the demo runs on its fixed clock (the end of its days); got AIOPS_NOW="
            f"{settings.clock}: unset it"
        )


def _validate_start(settings: PipelineSettings) -> None:
    start = settings.start
    if isinstance(start, datetime) or not isinstance(start, date):
        raise ValueError(f"the start must be a date (YYYY-MM-DD); got {start!r}")
    try:
        days = len(daily_partitions(settings).get_partition_keys())
    except (OverflowError, ValueError) as error:
        raise ValueError(
            f"{settings.days} days from {start} are not a range of dates: {error}"
        ) from error
    if days != settings.days:
        raise ValueError(
            f"{settings.days} days from {start} make {days} daily partitions: choose an "
            "earlier --start"
        )


def _validate_home(home: Path) -> None:
    """The home must be a folder, or creatable in the nearest folder that exists."""
    if home.exists() and not home.is_dir():
        raise ValueError(f"the home {home} is a file, not a folder: pass --home with a folder")
    existing = home.absolute()
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise ValueError(f"the home {home} cannot be created: {existing} is a file")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ValueError(f"the home {home} cannot be written: {existing} is not writable")


def run_demo(
    settings: PipelineSettings,
    *,
    instance: dg.DagsterInstance,
    progress: Progress | TextIO | None = None,
    clock: Callable[[], float] = time.perf_counter,
    verbose: bool = False,
) -> DemoResult:
    """Replay the scenario day by day: ingest, train as of a day, then serve the remaining days
    with the sensors on, so drift, retraining, a forced regression and its rollback all happen.

    ``progress`` is told every step; a text stream gets plain numbered lines, and ``None`` the
    process's stderr as it is when a line is written (a host, or a test, may replace it).
    Dagster's own log lines and warnings are kept out unless ``verbose``.
    """
    validate_demo_settings(settings)
    with dagster_output(verbose=verbose):
        return _run(settings, instance, as_progress(progress), clock, verbose)


def as_progress(progress: Progress | TextIO | None) -> Progress:
    if progress is None:
        return LineProgress()
    if callable(getattr(progress, "step", None)):
        return progress  # type: ignore[return-value]
    return LineProgress(progress)  # type: ignore[arg-type]


@contextlib.contextmanager
def dagster_output(*, verbose: bool) -> Iterator[None]:
    """Dagster's Python log and warnings stay out of the demo's output unless ``verbose``.

    The warnings filter goes last, so it only silences what would otherwise be printed: a filter
    set before (``-W error``, pytest's ``filterwarnings``) still applies."""
    if verbose:
        yield
        return
    logger = logging.getLogger("dagster")
    level = logger.level
    logger.setLevel(SILENT)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", append=True)
            yield
    finally:
        logger.setLevel(level)


def _run(
    settings: PipelineSettings,
    instance: dg.DagsterInstance,
    progress: Progress,
    clock: Callable[[], float],
    verbose: bool,
) -> DemoResult:
    started = clock()
    archived = archive_previous_demo(settings)
    definitions = build_definitions(settings)
    plan = plan_demo(
        daily_partition_keys(definitions),
        TrainingSetRunConfig().holdout_days,
        rollout_stages=len(RolloutPlan.load(DEMO_ROLLOUT_PLAN).stages),
    )
    result = DemoResult(dagster_home=str(instance.root_directory), store_root=settings.store_root)
    steps = DemoSteps(
        definitions,
        instance,
        result,
        progress,
        clock,
        verbose=verbose,
        recorder=TickRecorder.for_workspace(),
    )
    schedule = plan.schedule()
    progress.begin(len(schedule))
    if archived is not None:
        progress.note(f"previous demo registry kept in {archived}")
    demo = _Demo(settings, plan, steps, SensorLoop(definitions, steps))
    for kind, partition_key in schedule:
        demo.take(kind, partition_key)
    result.seconds = clock() - started
    record_registry(result, settings)
    progress.end()
    return result


@dataclass(frozen=True)
class DemoPlan:
    trained_until: str
    history: list[str]
    live: list[str]
    rollout_stages: int

    def schedule(self) -> list[tuple[StepKind, str | None]]:
        """Every step in order. History arrives up front; each served day arrives on its day.

        The fire drill follows the first served day (when three are served); the staged rollout
        starts after it with a served day left for each stage."""
        steps: list[tuple[StepKind, str | None]] = [("ingest", day) for day in self.history]
        steps.append(("train", None))
        steps += [("score", day) for day in self.history]
        steps.append(("lifecycle", None))
        rollout_position = len(self.live) - 1 - self.rollout_stages
        for position, day in enumerate(self.live):
            steps += [("ingest", day), ("score", day), ("sensors", day)]
            if position == 0 and len(self.live) >= 3:
                steps.append(("fire_drill", day))
            if position > 0 and position == rollout_position:
                steps.append(("rollout", day))
        return steps


def plan_demo(partition_keys: list[str], holdout_days: int, *, rollout_stages: int) -> DemoPlan:
    """Train as of the day that leaves five days to serve (fewer on a short demo)."""
    trained = max(holdout_days, len(partition_keys) - 6)
    return DemoPlan(
        trained_until=partition_keys[trained],
        history=partition_keys[: trained + 1],
        live=partition_keys[trained + 1 :],
        rollout_stages=rollout_stages,
    )


class _Demo:
    """Takes the plan's steps: each kind of step is one method, and each method one step."""

    def __init__(
        self, settings: PipelineSettings, plan: DemoPlan, steps: DemoSteps, loop: SensorLoop
    ) -> None:
        self.settings = settings
        self.plan = plan
        self.steps = steps
        self.loop = loop
        # The served day's runs so far, for its schedule tick.
        self.scheduled_runs: list[str] = []

    def take(self, kind: StepKind, partition_key: str | None) -> None:
        if kind == "ingest":
            self.ingest(partition_key)
        elif kind == "score":
            assert partition_key is not None
            self.score(partition_key)
        elif kind == "sensors":
            assert partition_key is not None
            self.loop.tick(partition_key)
        else:
            {
                "train": self.train,
                "lifecycle": self.lifecycle,
                "fire_drill": self.fire_drill,
                "rollout": self.rollout,
            }[kind]()

    def ingest(self, partition_key: str | None) -> None:
        """A served day's ingest is its schedule's run (history arrives as a backfill would)."""
        tags = self.scheduled_tags(partition_key)
        run_id = self.steps.materialize(partition_key, INGEST_ASSETS, ingest_selection(), tags=tags)
        if tags:
            self.scheduled_runs = [run_id]

    def score(self, partition_key: str) -> None:
        """Scoring, then the day's monitoring report (from the last history day on: the days the
        UI shows trends for); a served day's schedule tick is stored with both its runs."""
        tags = self.scheduled_tags(partition_key)
        run_id = self.steps.score(partition_key, tags=tags)
        if run_id is not None and partition_key >= self.plan.trained_until:
            self.steps.report(partition_key, dg.AssetSelection.assets(MONITORING_REPORT_KEY))
        if tags:
            runs = [*self.scheduled_runs, *([run_id] if run_id else [])]
            self.steps.record_tick(INGEST_SCHEDULE, "schedule", TickOutcome(run_ids=runs))
            self.scheduled_runs = []

    def scheduled_tags(self, partition_key: str | None) -> dict[str, str]:
        return {SCHEDULE_TAG: INGEST_SCHEDULE} if partition_key in self.plan.live else {}

    def train(self) -> None:
        until = self.plan.trained_until
        self.steps.materialize(
            None,
            TRAINING_ASSETS,
            dg.AssetSelection.assets(*TRAINING_ASSETS),
            run_config={"ops": {"training_set": {"config": {"until": until}}}},
            note=f"trained on the days up to {until}",
        )

    def lifecycle(self) -> None:
        feature_set_lifecycle(self.settings, self.steps, self.plan.history)
        # The sensors start after the history, so what it holds does not count as news.
        self.loop.start()

    def fire_drill(self) -> None:
        names = ("candidate_model", "champion_model", "score_baseline")
        self.steps.materialize(
            None,
            names,
            dg.AssetSelection.assets(*names),
            run_config=FIRE_DRILL_RUN_CONFIG,
            tags={ACTOR_TAG: "local:demo-fire-drill"},
            note="fire drill: a model with a 10% alert budget is forced into service",
        )

    def rollout(self) -> None:
        """The version the gate could not tell from noise goes out by stages instead of to
        every service at once."""
        candidate = rollout_candidate(self.settings)
        if candidate is None:
            self.steps.announce(None, ("champion_model",))
            self.steps.note("skipped: no version the gate refused is waiting to roll out")
            return
        reason = (
            f"v{candidate} was not distinguishably better on the holdout; try it service by service"
        )
        self.steps.materialize(
            None,
            ("champion_model",),
            dg.AssetSelection.assets("champion_model"),
            run_config={
                "ops": {
                    "champion_model": {
                        "config": {
                            "action": "rollout",
                            "version": candidate,
                            "reason": reason,
                            # The gate refused it: going out anyway is an explicit, audited
                            # override, and each stage still waits for labelled evidence.
                            "override_gate": True,
                            "override_reason": reason,
                            "rollout_plan": str(DEMO_ROLLOUT_PLAN),
                        }
                    }
                }
            },
            tags={ACTOR_TAG: "local:demo-rollout"},
            note=f"staged rollout of v{candidate}: canary first, one stage per served day",
        )


def rollout_candidate(settings: PipelineSettings) -> int | None:
    """The newest version the gate refused that is not serving: what the demo rolls out."""
    registry = LedgerResource(
        url=settings.ledger_url,
        key_file=str(settings.audit_key_file),
        witness_file=str(settings.audit_witness_file),
    ).get_ledger()
    champion = registry.get_alias(MODEL_NAME, CHAMPION)
    if any(rollout.status == "running" for rollout in registry.rollouts(MODEL_NAME)):
        return None
    refused = [
        record.candidate_version
        for record in registry.promotions(MODEL_NAME)
        if not record.promoted
        and (champion is None or record.candidate_version != champion.version)
    ]
    return refused[-1] if refused else None
