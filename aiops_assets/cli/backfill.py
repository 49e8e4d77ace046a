"""``aiops backfill --from DATE --to DATE``: the daily assets for a range of days, oldest first.

Why not ``dagster asset materialize --partition-range``: it needs every selected asset to have a
single-run backfill policy (one run handling the whole range), and our daily assets compute one
partition each (``features[D]`` reads ``telemetry_snapshot[D-1]``), so the range must run day by
day, in order. The UI's backfill (Materialize > a partition range) does that with the daemon;
this command does it in-process, in the project's instance, so it works without a daemon and
shows progress as it goes. The runs land in the same instance the UI reads, tagged
``aiops/backfill=<from>...<to>``.

A day whose snapshot fails the quality gate is quarantined by design (the blocking check stops
its run, the data is kept in quarantine); the backfill reports it and goes on with the next day.
Any other failure stops the backfill and prints the command that resumes from that day.

With ``-m``/``-f``/``-w`` (or a host project's ``pyproject.toml``) it backfills that code
location instead: every asset with daily time-window partitions, the days checked against those
partitions rather than the reference's ``AIOPS_START``/``AIOPS_DAYS``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from aiops_assets.cli._common import (
    EXIT_FAILED,
    CliError,
    Command,
    common_options,
    dagster_output,
    iso_date,
    load_settings,
    location_definitions,
    location_options,
    location_pointer,
    make_progress,
    print_json,
)

if TYPE_CHECKING:
    from aiops_assets.core.progress import Progress
    from aiops_assets.reference.settings import PipelineSettings

BACKFILL_TAG = "aiops/backfill"
INGEST_ASSETS = ("telemetry_snapshot", "features")
VERDICTS = {
    "done": "done",
    "stopped": "stopped by a failed blocking check, quarantined",
    "failed": "FAILED",
}


@click.command(
    cls=Command,
    help="Materialize telemetry_snapshot and features (and anomaly_scores with its checks, once "
    "a champion is in service) for each day from --from to --to, both included, in order, in "
    "the project's Dagster instance. Days must lie in the closed partitions (AIOPS_START, "
    "AIOPS_DAYS or AIOPS_NOW, AIOPS_LAG). A day quarantined by the quality gate is reported and skipped; any other "
    "failure stops the backfill (exit 1).",
)
@click.option(
    "--from",
    "first",
    required=True,
    metavar="DATE",
    callback=iso_date,
    help="the first day (ISO date)",
)
@click.option(
    "--to",
    "last",
    required=True,
    metavar="DATE",
    callback=iso_date,
    help="the last day (ISO date), included",
)
@click.option(
    "--ingest-only",
    is_flag=True,
    help="only snapshot and features, even when a champion could score the days",
)
@common_options
@location_options
def backfill(first: date, last: date, ingest_only: bool, home: Path | None, as_json: bool) -> int:
    settings = load_settings(home)
    if location_pointer().is_reference:
        check_range(settings, first, last)
        plan = _Plan.make(settings, first, last, ingest_only=ingest_only, home=home)
    else:
        plan = _location_plan(settings, first, last, home=home)
    outcomes = plan.run(make_progress())
    if as_json:
        print_json(
            {
                "from": first.isoformat(),
                "to": last.isoformat(),
                "assets": list(plan.assets),
                "days": outcomes,
                "seconds": round(plan.seconds, 2),
            }
        )
    return EXIT_FAILED if any(o["status"] == "failed" for o in outcomes) else 0


def check_range(settings: PipelineSettings, first: date, last: date) -> None:
    """Before anything starts: the range is ordered and inside the closed daily partitions."""
    from aiops_assets.reference.clock import closed_until

    if settings.partition != "daily":
        raise CliError(
            f"aiops backfill walks daily partitions, and AIOPS_PARTITION is {settings.partition}: "
            "backfill hourly partitions from the UI (Materialize > a partition range)"
        )
    if last < first:
        raise CliError(f"--to {last} is before --from {first}")
    end = closed_until(settings.now or datetime.now(UTC), settings.lag, "daily").date()
    if first < settings.start or last >= end:
        raise CliError(
            f"{first}..{last} is outside the daily partitions {settings.start}.."
            f"{end - timedelta(days=1)}; set AIOPS_START / AIOPS_DAYS (or AIOPS_NOW) to cover it "
            "(the UI's code location reads the same variables)"
        )


def scoring_blocker(settings: PipelineSettings) -> str | None:
    """Why the days cannot be scored yet (no champion or no baselines), or None."""
    from aiops_assets.core.store import ArtifactStore

    store = ArtifactStore(settings.store_root)
    missing = [
        name
        for name in ("champion_model", "drift_baseline", "score_baseline", "telemetry_baseline")
        if store.get_ref(f"assets/{name}/_") is None
    ]
    if missing:
        return (
            f"{', '.join(missing)} not materialized yet (run train_and_promote_job, or "
            "`aiops demo`, then backfill again to score)"
        )
    return None


@dataclass
class _Plan:
    """The days, the assets and where they run; ``run`` walks the days in order."""

    settings: PipelineSettings
    days: list[date]
    assets: tuple[str, ...]
    blocker: str | None
    home: Path | None
    seconds: float = 0.0
    outcomes: list[dict[str, Any]] = field(default_factory=list)
    key_format: str = "%Y-%m-%d"
    resume_args: tuple[str, ...] = ()

    @classmethod
    def make(
        cls,
        settings: PipelineSettings,
        first: date,
        last: date,
        *,
        ingest_only: bool,
        home: Path | None,
    ) -> _Plan:
        from aiops_assets.reference.definitions import PARTITIONED_ASSETS

        blocker = None if ingest_only else scoring_blocker(settings)
        score = not ingest_only and blocker is None
        days = [first + timedelta(days=offset) for offset in range((last - first).days + 1)]
        assets = tuple(PARTITIONED_ASSETS) if score else INGEST_ASSETS
        return cls(settings, days, assets, blocker, home)

    @property
    def label(self) -> str:
        return f"{self.days[0]}...{self.days[-1]}"

    def run(self, progress: Progress) -> list[dict[str, Any]]:
        from aiops_assets.resources import close_ledgers
        from aiops_assets.runner import prepare_instance

        dagster_home = self.settings.instance_home(home_given=self.home is not None)
        definitions = location_definitions(self.settings)
        instance = prepare_instance(dagster_home)
        progress.begin(
            len(self.days),
            f"aiops backfill: {len(self.days)} days {self.label}: {', '.join(self.assets)}; "
            f"instance {dagster_home}",
        )
        if self.blocker:
            progress.note(f"scoring skipped: {self.blocker}")
        started = time.perf_counter()
        try:
            with dagster_output():
                for day in self.days:
                    if not self._day(definitions, instance, day, progress):
                        break
        finally:
            close_ledgers()
            instance.dispose()
        self.seconds = time.perf_counter() - started
        progress.end(self._summary())
        return self.outcomes

    def _day(self, definitions: Any, instance: Any, day: date, progress: Progress) -> bool:
        """One day's run; False when the backfill must stop there."""
        from aiops_assets.runner import materialize_selection, quiet, run_failure_message

        progress.step(day.isoformat())
        day_started = time.perf_counter()
        run = materialize_selection(
            definitions,
            instance,
            self._selection(),
            partition_key=day.strftime(self.key_format),
            run_config=quiet(None),
            tags={"aiops/source": "backfill", BACKFILL_TAG: self.label},
            raise_on_error=False,
        )
        outcome = _outcome(run, day, time.perf_counter() - day_started)
        self.outcomes.append(outcome)
        failed = outcome["failed_checks"]
        note = f" (failed checks: {', '.join(failed)})" if failed else ""
        progress.note(f"{day}  {VERDICTS[outcome['status']]} in {outcome['seconds']:.1f}s{note}")
        if outcome["status"] != "failed":
            return True
        progress.note(run_failure_message(run))
        resume = " ".join(
            ["aiops backfill --from", str(day), "--to", str(self.days[-1]), *self.resume_args]
        )
        progress.note(f"resume with: {resume}" + (f" --home {self.home}" if self.home else ""))
        return False

    def _selection(self) -> Any:
        import dagster as dg

        from aiops_assets.reference.definitions import ingest_selection, without_on_demand_checks

        if self.resume_args:  # another code location: its daily assets, with their checks
            return dg.AssetSelection.assets(*self.assets)
        if self.assets == INGEST_ASSETS:
            return ingest_selection()
        return without_on_demand_checks(dg.AssetSelection.assets(*self.assets))

    def _summary(self) -> str:
        done = sum(1 for outcome in self.outcomes if outcome["status"] == "done")
        stopped = [o["partition"] for o in self.outcomes if o["status"] == "stopped"]
        return (
            f"aiops backfill: backfill {self.label}: {done} of {len(self.days)} days "
            f"materialized in {self.seconds:.1f}s"
            + (f"; quarantined: {', '.join(stopped)}" if stopped else "")
        )


def _location_plan(
    settings: PipelineSettings, first: date, last: date, *, home: Path | None
) -> _Plan:
    """The plan for a host's code location: its daily-partitioned assets over days its
    partitions hold, checked before anything runs."""
    import dagster as dg

    pointer = location_pointer()
    graph = location_definitions(settings).resolve_asset_graph()
    daily: dict[str, Any] = {}
    for key in sorted(graph.materializable_asset_keys):
        partitions_def = graph.get(key).partitions_def
        if (
            isinstance(partitions_def, dg.TimeWindowPartitionsDefinition)
            and partitions_def.cron_schedule == "0 0 * * *"
        ):
            daily[key.to_user_string()] = partitions_def
    if not daily:
        raise CliError(f"code location {pointer.name} has no daily-partitioned asset to backfill")
    if last < first:
        raise CliError(f"--to {last} is before --from {first}")
    partitions: Any = next(iter(daily.values()))
    days = [first + timedelta(days=offset) for offset in range((last - first).days + 1)]
    keys = set.intersection(*(set(each.get_partition_keys()) for each in daily.values()))
    if any(day.strftime(partitions.fmt) not in keys for day in days):
        ordered = sorted(keys)
        raise CliError(
            f"{first}..{last} is outside the daily partitions {ordered[0] if ordered else '-'}.."
            f"{ordered[-1] if ordered else '-'} of code location {pointer.name}"
        )
    return _Plan(
        settings,
        days,
        tuple(daily),
        None,
        home,
        key_format=partitions.fmt,
        resume_args=tuple(pointer.cli_args()),
    )


def _outcome(run: Any, day: date, seconds: float) -> dict[str, Any]:
    evaluations = [e for e in run.get_asset_check_evaluations() if not e.passed]
    failed_checks = [f"{e.asset_key.to_user_string()}.{e.check_name}" for e in evaluations]
    blocked = any(e.blocking for e in evaluations)
    status = "done" if run.success else "stopped" if blocked else "failed"
    return {
        "partition": day.isoformat(),
        "status": status,
        "failed_checks": failed_checks,
        "run_id": run.run_id,
        "seconds": round(seconds, 2),
    }
