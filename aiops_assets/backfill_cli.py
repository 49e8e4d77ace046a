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
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import date, timedelta
from typing import Any, TextIO

from aiops_assets.cli import add_common_options
from aiops_assets.reference.settings import PipelineSettings

EXIT_FAILED = 1
EXIT_USAGE = 2
BACKFILL_TAG = "aiops/backfill"


def add_backfill_command(commands: argparse._SubParsersAction) -> None:
    backfill = commands.add_parser(
        "backfill",
        help="materialize the daily assets for every day of a range, oldest first",
        description=(
            "Materialize telemetry_snapshot and features (and anomaly_scores with its checks, "
            "once a champion is in service) for each day from --from to --to, both included, "
            "in order, in the project's Dagster instance. Days must lie in the partition range "
            "(AIOPS_START, AIOPS_DAYS). A day quarantined by the quality gate is reported and "
            "skipped; any other failure stops the backfill (exit 1)."
        ),
    )
    backfill.add_argument(
        "--from",
        dest="first",
        required=True,
        type=date.fromisoformat,
        metavar="DATE",
        help="the first day (ISO date)",
    )
    backfill.add_argument(
        "--to",
        dest="last",
        required=True,
        type=date.fromisoformat,
        metavar="DATE",
        help="the last day (ISO date), included",
    )
    backfill.add_argument(
        "--ingest-only",
        action="store_true",
        help="only snapshot and features, even when a champion could score the days",
    )
    add_common_options(backfill)


def run_backfill_command(
    args: argparse.Namespace, settings: PipelineSettings, *, progress: TextIO | None = None
) -> int:
    # Looked up now, not bound at import: the process's stderr may have been replaced since.
    progress = progress or sys.stderr
    first, last = args.first, args.last
    if last < first:
        print(f"aiops backfill: --to {last} is before --from {first}", file=sys.stderr)
        return EXIT_USAGE
    if first < settings.start or last >= settings.end:
        print(
            f"aiops backfill: {first}..{last} is outside the daily partitions {settings.start}.."
            f"{settings.end - timedelta(days=1)}; set AIOPS_START / AIOPS_DAYS to cover it "
            "(the UI's code location reads the same variables)",
            file=sys.stderr,
        )
        return EXIT_USAGE
    # Dagster only now: `aiops --help` must answer at once.
    import dagster as dg

    from aiops_assets.reference.definitions import (
        PARTITIONED_ASSETS,
        build_definitions,
        ingest_selection,
        without_on_demand_checks,
    )
    from aiops_assets.resources import close_ledgers
    from aiops_assets.runner import materialize_selection, prepare_instance

    definitions = build_definitions(settings)
    dagster_home = settings.instance_home(home_given=args.home is not None)
    instance = prepare_instance(dagster_home)
    scoring_blocker = None if args.ingest_only else _scoring_blocker(settings)
    score = not args.ingest_only and scoring_blocker is None
    selection = (
        without_on_demand_checks(dg.AssetSelection.assets(*PARTITIONED_ASSETS))
        if score
        else ingest_selection()
    )
    names = PARTITIONED_ASSETS if score else ("telemetry_snapshot", "features")
    days = [first + timedelta(days=offset) for offset in range((last - first).days + 1)]
    label = f"{first}...{last}"
    _say(progress, f"{len(days)} days {label}: {', '.join(names)}; instance {dagster_home}")
    if scoring_blocker:
        _say(progress, f"scoring skipped: {scoring_blocker}")
    started = time.perf_counter()
    outcomes: list[dict[str, Any]] = []
    try:
        for number, day in enumerate(days, start=1):
            day_started = time.perf_counter()
            run = materialize_selection(
                definitions,
                instance,
                selection,
                partition_key=day.isoformat(),
                run_config={"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}},
                tags={"aiops/source": "backfill", BACKFILL_TAG: label},
                raise_on_error=False,
            )
            failed_checks = [
                f"{evaluation.asset_key.to_user_string()}.{evaluation.check_name}"
                for evaluation in run.get_asset_check_evaluations()
                if not evaluation.passed
            ]
            blocked = [
                evaluation
                for evaluation in run.get_asset_check_evaluations()
                if not evaluation.passed and evaluation.blocking
            ]
            seconds = time.perf_counter() - day_started
            status = "done" if run.success else "stopped" if blocked else "failed"
            outcomes.append(
                {
                    "partition": day.isoformat(),
                    "status": status,
                    "failed_checks": failed_checks,
                    "run_id": run.run_id,
                    "seconds": round(seconds, 2),
                }
            )
            note = f" (failed checks: {', '.join(failed_checks)})" if failed_checks else ""
            verdict = {
                "done": "done",
                "stopped": "stopped by a failed blocking check, quarantined",
                "failed": "FAILED",
            }[status]
            _say(progress, f"[{number:>2}/{len(days)}] {day}  {verdict} in {seconds:.1f}s{note}")
            if status == "failed":
                _say(progress, f"        {_failure(run)}")
                _say(
                    progress,
                    f"        resume with: aiops backfill --from {day} --to {last}"
                    + (f" --home {args.home}" if args.home is not None else ""),
                )
                break
    finally:
        close_ledgers()
        instance.dispose()
    total = time.perf_counter() - started
    done = sum(1 for outcome in outcomes if outcome["status"] == "done")
    stopped = [outcome["partition"] for outcome in outcomes if outcome["status"] == "stopped"]
    _say(
        progress,
        f"backfill {label}: {done} of {len(days)} days materialized in {total:.1f}s"
        + (f"; quarantined: {', '.join(stopped)}" if stopped else ""),
    )
    if args.json:
        print(
            json.dumps(
                {
                    "from": first.isoformat(),
                    "to": last.isoformat(),
                    "assets": list(names),
                    "days": outcomes,
                    "seconds": round(total, 2),
                },
                sort_keys=True,
            )
        )
    return EXIT_FAILED if any(o["status"] == "failed" for o in outcomes) else 0


def _scoring_blocker(settings: PipelineSettings) -> str | None:
    """Why the days cannot be scored yet (no champion or no baselines), or None."""
    from aiops_assets.core.store import ArtifactStore

    store = ArtifactStore(settings.store_root)
    missing = [
        name
        for name in ("champion_model", "drift_baseline", "score_baseline")
        if store.get_ref(f"assets/{name}/_") is None
    ]
    if missing:
        return (
            f"{', '.join(missing)} not materialized yet (run train_and_promote_job, or "
            "`aiops demo`, then backfill again to score)"
        )
    return None


def _failure(run: Any) -> str:
    for event in run.get_step_failure_events():
        error = event.step_failure_data.error
        if error is not None:
            return f"step {event.step_key} failed: {error.message.strip()}"
    return f"run {run.run_id} failed"


def _say(stream: TextIO, message: str) -> None:
    print(f"aiops backfill: {message}", file=stream, flush=True)
