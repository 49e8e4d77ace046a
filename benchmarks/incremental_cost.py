"""Cost of materializing day k of a long history against day 1: must stay flat.

Each daily partition should read only its own data plus a bounded look-back (the snapshot its
day, the features D-1 and D, the drift check a stored profile and the last few verdicts), so day
60 of a 60-day history should cost what day 1 costs. This script builds the history (ingest every
day, train once, score every day) in a fresh home and SQLite instance, then re-runs the daily job
(`daily_telemetry_job`: snapshot, features, scores and every check) for the chosen days, several
times each, and prints the median wall time per step, the run's wall and CPU seconds, and their
ratios to day 1. The verdict (exit status) uses the CPU ratio; the wall ratio is printed beside it.

Run: .venv/bin/python benchmarks/incremental_cost.py [--days 60] [--at 1,10,30,60] [--repeats 5]
The machine is shared: the table also prints the spread (min-max) so noise is visible. Day 1 has
no D-1, so its features read one snapshot where later days read two; the ratio includes that.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import date
from pathlib import Path
from typing import Any

MAX_RATIO = 1.3
# The steps reported as columns; everything else in the run (checks in their own steps) is summed.
ASSET_STEPS = ("telemetry_snapshot", "features", "anomaly_scores")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--days", type=int, default=60, help="length of the history")
    parser.add_argument(
        "--at", default="1,10,30,60", help="comma-separated days to time (1 = the first day)"
    )
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per day")
    parser.add_argument("--train-days", type=int, default=8, help="days the champion learns from")
    parser.add_argument(
        "--holdout-days", type=int, default=4, help="the champion's holdout (of --train-days)"
    )
    parser.add_argument(
        "--home", type=Path, help="where to build the history (default: a temp dir)"
    )
    parser.add_argument("--json", action="store_true", help="also print one JSON line, last")
    parser.add_argument(
        "--max-ratio",
        type=float,
        default=MAX_RATIO,
        help=f"exit 1 when a day's median exceeds day 1's by more than this (default {MAX_RATIO})",
    )
    args = parser.parse_args(argv)
    days_at = sorted({int(text) for text in args.at.split(",") if text.strip()})
    if not days_at or days_at[0] < 1 or days_at[-1] > args.days:
        parser.error(f"--at days must lie in 1..{args.days}")
    if 1 not in days_at:
        days_at.insert(0, 1)
    if args.home is not None:
        return _run(args, days_at, args.home)
    with tempfile.TemporaryDirectory(prefix="aiops-incremental-") as home:
        return _run(args, days_at, Path(home))


def _run(args: argparse.Namespace, days_at: list[int], home: Path) -> int:
    import dagster as dg

    from aiops_assets.reference.definitions import (
        DAILY_JOB,
        TRAINING_ASSETS,
        build_definitions,
        ingest_selection,
        scoring_selection,
    )
    from aiops_assets.reference.settings import PipelineSettings
    from aiops_assets.resources import close_ledgers
    from aiops_assets.runner import daily_partition_keys, materialize_selection, prepare_instance

    settings = PipelineSettings(start=date(2026, 1, 5), days=args.days, home=home / "aiops")
    quiet: dict[str, Any] = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}
    instance = prepare_instance(settings.dagster_home)
    definitions = build_definitions(settings)
    keys = daily_partition_keys(definitions)
    train_until = keys[min(args.train_days, len(keys)) - 1]

    built = time.perf_counter()
    first_pass: dict[int, float] = {}
    good_days: list[int] = []
    for day, key in enumerate(keys, start=1):
        started = time.perf_counter()
        # The scenario has a day whose snapshot the quality gate quarantines (by design): that
        # run stops at the blocking check, and the day has no features to score.
        run = materialize_selection(
            definitions,
            instance,
            ingest_selection(),
            partition_key=key,
            run_config=quiet,
            raise_on_error=False,
        )
        first_pass[day] = time.perf_counter() - started
        if run.success:
            good_days.append(day)
        if day % 10 == 0:
            print(f"history: {day}/{len(keys)} days ingested", file=sys.stderr, flush=True)
    materialize_selection(
        definitions,
        instance,
        dg.AssetSelection.assets(*TRAINING_ASSETS),
        run_config={
            **quiet,
            "ops": {
                "training_set": {
                    "config": {"until": train_until, "holdout_days": args.holdout_days}
                }
            },
        },
    )
    for day in good_days:
        started = time.perf_counter()
        materialize_selection(
            definitions,
            instance,
            scoring_selection(),
            partition_key=keys[day - 1],
            run_config=quiet,
        )
        first_pass[day] += time.perf_counter() - started
    build_seconds = time.perf_counter() - built
    print(
        f"history: {args.days} days built in {build_seconds:.0f}s "
        f"(ingest + scoring per day, champion trained until {train_until}); "
        f"instance {instance.root_directory}",
        file=sys.stderr,
    )

    quarantined = sorted(set(first_pass) - set(good_days))
    if quarantined:
        print(f"quarantined by the quality gate (not timed): days {quarantined}", file=sys.stderr)
    days_at = sorted({_nearest_good(day, good_days) for day in days_at})
    job = definitions.resolve_job_def(DAILY_JOB)
    samples: dict[int, list[dict[str, float]]] = {day: [] for day in days_at}
    _timed_daily_run(job, instance, keys[days_at[0] - 1], quiet)  # warm-up, not counted
    # Interleaved rounds, so a burst of load on the shared machine hits every day alike.
    for _ in range(args.repeats):
        for day in days_at:
            samples[day].append(_timed_daily_run(job, instance, keys[day - 1], quiet))
    close_ledgers()

    rows = [_row(day, keys[day - 1], samples[day], first_pass[day]) for day in days_at]
    for row in rows:
        row["ratio"] = row["total"] / rows[0]["total"]
        row["cpu_ratio"] = row["cpu"] / rows[0]["cpu"]
    print(_table(rows, args.repeats))
    # The verdict uses CPU seconds: on a shared machine the wall time of a 2-3 s run swings by
    # more than the limit with other people's load, while the work done stays put.
    worst = max(row["cpu_ratio"] for row in rows)
    worst_wall = max(row["ratio"] for row in rows)
    verdict = "ok" if worst <= args.max_ratio else "TOO HIGH"
    print(
        f"\nworst ratio to day 1: CPU {worst:.2f} (limit {args.max_ratio}): {verdict}; "
        f"wall {worst_wall:.2f} (noisy on a shared machine, see min-max)"
    )
    if args.json:
        print(
            json.dumps(
                {
                    "days": args.days,
                    "repeats": args.repeats,
                    "build_seconds": round(build_seconds, 2),
                    "rows": rows,
                    "worst_ratio": worst,
                    "worst_wall_ratio": worst_wall,
                    "max_ratio": args.max_ratio,
                },
                sort_keys=True,
            )
        )
    return 0 if worst <= args.max_ratio else 1


def _nearest_good(day: int, good_days: list[int]) -> int:
    """The day itself, or the next day whose snapshot was accepted (else the previous one)."""
    later = [good for good in good_days if good >= day]
    return later[0] if later else good_days[-1]


def _timed_daily_run(
    job: Any, instance: Any, partition_key: str, quiet: dict[str, Any]
) -> dict[str, float]:
    """One run of the daily job: its wall time and the time of each asset step in it."""
    started, cpu_started = time.perf_counter(), time.process_time()
    result = job.execute_in_process(
        instance=instance, partition_key=partition_key, run_config=quiet, raise_on_error=False
    )
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    if not result.success:
        raise SystemExit(f"the daily run of {partition_key} failed (run {result.run_id})")
    steps: dict[str, float] = {"total": wall, "cpu": cpu, "checks": 0.0}
    for stats in instance.get_run_step_stats(result.run_id):
        seconds = (stats.end_time or 0.0) - (stats.start_time or 0.0)
        name = stats.step_key if stats.step_key in ASSET_STEPS else "checks"
        steps[name] = steps.get(name, 0.0) + seconds
    return steps


def _row(day: int, key: str, runs: list[dict[str, float]], first_pass: float) -> dict[str, Any]:
    columns = (*ASSET_STEPS, "checks", "total", "cpu")
    row: dict[str, Any] = {"day": day, "partition": key, "first_pass": first_pass}
    for column in columns:
        values = [run.get(column, 0.0) for run in runs]
        row[column] = statistics.median(values)
        if column == "total":
            row["total_min"] = min(values)
            row["total_max"] = max(values)
    return row


def _table(rows: list[dict[str, Any]], repeats: int) -> str:
    header = (
        f"{'day':>4}  {'partition':<10}  {'snapshot':>8}  {'features':>8}  {'scores':>8}  "
        f"{'checks':>8}  {'run s':>7}  {'min-max s':>11}  {'ratio':>6}  {'CPU s':>6}  "
        f"{'ratio':>6}  {'1st pass s':>10}"
    )
    lines = [
        f"daily_telemetry_job per partition: median of {repeats} runs (step seconds)",
        header,
        "-" * len(header),
    ]
    for row in rows:
        spread = f"{row['total_min']:.2f}-{row['total_max']:.2f}"
        lines.append(
            f"{row['day']:>4}  {row['partition']:<10}  {row['telemetry_snapshot']:>8.2f}  "
            f"{row['features']:>8.2f}  {row['anomaly_scores']:>8.2f}  {row['checks']:>8.2f}  "
            f"{row['total']:>7.2f}  {spread:>11}  {row['ratio']:>6.2f}  {row['cpu']:>6.2f}  "
            f"{row['cpu_ratio']:>6.2f}  {row['first_pass']:>10.2f}"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    # Dagster's own progress output would bury the table.
    sys.exit(main())
