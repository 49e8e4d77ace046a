"""Wall time and peak memory of one live partition of the daily job, from 100 to 1,000 services.

The issue-20 target: 1,000 services at a 1-minute step (1.44 M rows a day) through snapshot,
features, scores and every check in <= 120 s and <= 4 GB peak on 2 cores, with cost linear in rows.
For each fleet size this script builds a short history in a fresh home (ingest the first days,
train the champion and the drift baselines on them), then times the daily job
(``daily_telemetry_job``'s selection: snapshot, features, scores and every check, through
``dg.materialize`` with the reference definitions) on the next day, the live partition.

Run: .venv/bin/python benchmarks/bench_live_partition.py [--services 100,300,1000]
     [--step-minutes 1] [--history-days 3] [--json]

The telemetry comes from the scenario generator (a scenario file with N services at the step),
so the snapshot step includes generating the day: the "generate" column times that alone, in the
parent, to show how much of the snapshot step is the generator rather than the pipeline. Each
fleet size runs in two fresh interpreters (build the history, then the timed run), so the peak
RSS of the timed run is its own: the whole run's peak is the child's ``ru_maxrss``, and each
step's peak is the child's RSS sampled every 10 ms by the parent (outside the child's GIL) inside
that step's start and end times. RSS includes the interpreter, Dagster and the definitions (the
"idle MiB" column, measured before the run starts). Timings are measured, never asserted: the
machine may be shared (say so when you quote them).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from datetime import date, timedelta
from pathlib import Path
from typing import Any

START = date(2026, 1, 5)
# The reported columns; every other step of the run (the checks with a step of their own) is
# summed into "checks".
ASSET_STEPS = ("telemetry_snapshot", "features", "anomaly_scores")
QUIET: dict[str, Any] = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}
SAMPLE_SECONDS = 0.01
MiB = 2**20


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--services", default="100,300,1000", help="comma-separated fleet sizes")
    parser.add_argument("--step-minutes", type=int, default=1, help="one row per service per step")
    parser.add_argument(
        "--history-days", type=int, default=3, help="days ingested before the live one (>= 2)"
    )
    parser.add_argument("--home", type=Path, help="where to build the histories (default: temp)")
    parser.add_argument("--json", action="store_true", help="also print one JSON line, last")
    parser.add_argument("--phase", choices=("build", "run"), help=argparse.SUPPRESS)
    parser.add_argument("--fleet", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.history_days < 2:
        parser.error("--history-days must be at least 2 (one to train on, one holdout)")
    if args.phase is not None:
        return _child(args)
    try:
        sizes = sorted({int(text) for text in args.services.split(",") if text.strip()})
    except ValueError:
        parser.error(f"--services must be comma-separated integers, got {args.services!r}")
    if not sizes or sizes[0] < 1:
        parser.error("--services needs at least one positive fleet size")
    if 1440 % args.step_minutes:
        parser.error("--step-minutes must divide 1440 (a day)")
    if args.home is not None:
        return _report(args, sizes, args.home)
    with tempfile.TemporaryDirectory(prefix="aiops-live-bench-") as home:
        return _report(args, sizes, Path(home))


def _report(args: argparse.Namespace, sizes: list[int], home: Path) -> int:
    rows = [_measure_size(args, services, home / f"fleet-{services}") for services in sizes]
    smallest = rows[0]
    for row in rows:
        row["ratio_rows"] = row["rows"] / smallest["rows"]
        row["ratio_seconds"] = row["total"] / smallest["total"]
        row["seconds_per_m_rows"] = row["total"] / (row["rows"] / 1e6)
    print(_steps_table(rows[-1]))
    print()
    print(_growth_table(rows, args))
    if args.json:
        print(json.dumps({"step_minutes": args.step_minutes, "rows": rows}, sort_keys=True))
    return 0


def _measure_size(args: argparse.Namespace, services: int, home: Path) -> dict[str, Any]:
    """Build the history, then time the live partition, each in a fresh interpreter."""
    common = [
        *("--fleet", str(services), "--step-minutes", str(args.step_minutes)),
        *("--history-days", str(args.history_days), "--home", str(home)),
    ]
    started = time.perf_counter()
    _run_child([*common, "--phase", "build"])
    build_seconds = time.perf_counter() - started
    print(f"{services} services: history built in {build_seconds:.0f}s", file=sys.stderr)
    report, samples, maxrss = _run_child([*common, "--phase", "run"], sample=True)
    row: dict[str, Any] = {
        "services": services,
        "build_seconds": build_seconds,
        "generate": _generate_seconds(services, args.step_minutes, args.history_days),
        "peak_mib": maxrss / 1024,  # ru_maxrss is in KiB on Linux
        **report,
    }
    row["step_peaks"] = {
        step: _peak_in(samples, start, end) for step, (start, end) in report["windows"].items()
    }
    print(
        f"{services} services: live partition {row['total']:.1f}s, peak {row['peak_mib']:.0f} MiB",
        file=sys.stderr,
    )
    return row


def _run_child(
    arguments: list[str], *, sample: bool = False
) -> tuple[dict[str, Any], list[tuple[float, int]], int]:
    """Run this script as a child; return its last JSON line, its RSS samples and ru_maxrss."""
    child = subprocess.Popen(
        [sys.executable, str(Path(__file__).resolve()), *arguments],
        stdout=subprocess.PIPE,
        text=True,
    )
    samples: list[tuple[float, int]] = []
    done = threading.Event()
    sampler = threading.Thread(target=_sample_rss, args=(child.pid, samples, done), daemon=True)
    if sample:
        sampler.start()
    # wait4 gives this one child's rusage (RUSAGE_CHILDREN would mix in the build child).
    assert child.stdout is not None
    output = child.stdout.read()
    _, status, usage = os.wait4(child.pid, 0)
    child.returncode = os.waitstatus_to_exitcode(status)
    done.set()
    if sample:
        sampler.join()
    if child.returncode != 0:
        raise SystemExit(f"benchmark child {arguments[-1]} failed (exit {child.returncode})")
    lines = output.strip().splitlines()
    return (json.loads(lines[-1]) if lines else {}), samples, usage.ru_maxrss


def _sample_rss(pid: int, samples: list[tuple[float, int]], done: threading.Event) -> None:
    """The child's resident set size every SAMPLE_SECONDS, read from /proc (Linux)."""
    page = os.sysconf("SC_PAGE_SIZE")
    statm = Path(f"/proc/{pid}/statm")
    while not done.is_set():
        try:
            resident = int(statm.read_text().split()[1]) * page
        except (OSError, IndexError, ValueError):
            return  # the child has exited
        samples.append((time.time(), resident))
        time.sleep(SAMPLE_SECONDS)


def _peak_in(samples: list[tuple[float, int]], start: float, end: float) -> float:
    inside = [rss for at, rss in samples if start <= at <= end]
    return max(inside) / MiB if inside else float("nan")


def _generate_seconds(services: int, step_minutes: int, history_days: int) -> float:
    """The generator alone on the live day, best of two (the snapshot step's share)."""
    from aiops_assets.core import telemetry

    scenario = _scenario(services, step_minutes, history_days + 1)
    live_day = START + timedelta(days=history_days)
    best = float("inf")
    for _ in range(2):
        started = time.perf_counter()
        telemetry.generate_day(scenario, live_day)
        best = min(best, time.perf_counter() - started)
    return best


def _scenario(services: int, step_minutes: int, days: int) -> Any:
    from aiops_assets.core import telemetry

    width = len(str(services - 1))
    return telemetry.Scenario(
        start=START,
        days=days,
        services=tuple(f"svc-{index:0{width}d}" for index in range(services)),
        seed=20260105,
        step_minutes=step_minutes,
    )


def _child(args: argparse.Namespace) -> int:
    """One phase in this fresh interpreter: ``build`` the history or ``run`` the live day."""
    import dagster as dg

    from aiops_assets.reference.definitions import (
        PARTITIONED_ASSETS,
        TRAINING_ASSETS,
        build_definitions,
        ingest_selection,
        scoring_selection,
    )
    from aiops_assets.reference.settings import PipelineSettings
    from aiops_assets.resources import TelemetrySourceResource, close_ledgers
    from aiops_assets.runner import daily_partition_keys, on_demand_checks, prepare_instance

    days = args.history_days + 1
    home: Path = args.home
    home.mkdir(parents=True, exist_ok=True)
    scenario_file = home / "scenario.json"
    if args.phase == "build":
        scenario_file.write_text(
            json.dumps(_scenario(args.fleet, args.step_minutes, days).to_dict())
        )
    settings = PipelineSettings(start=START, days=days, home=home / "aiops")
    instance = prepare_instance(settings.dagster_home)
    definitions = build_definitions(settings)
    # The reference definitions with their telemetry source pointed at the benchmark's fleet.
    resources = {
        **(definitions.resources or {}),
        "telemetry_source": TelemetrySourceResource(
            kind="scenario", scenario_file=str(scenario_file)
        ),
    }
    assets = [
        item
        for item in [*(definitions.assets or []), *(definitions.asset_checks or [])]
        if isinstance(item, dg.AssetsDefinition)
    ]
    on_demand = dg.AssetSelection.checks(*on_demand_checks(definitions))

    def materialize(selection: dg.AssetSelection, **kwargs: Any) -> dg.ExecuteInProcessResult:
        return dg.materialize(
            assets,
            instance=instance,
            resources=resources,
            selection=selection - on_demand,
            **{"run_config": QUIET, **kwargs},
        )

    keys = daily_partition_keys(definitions)
    if args.phase == "build":
        for key in keys[: args.history_days]:
            materialize(ingest_selection(), partition_key=key)
        training = {"until": keys[args.history_days - 1], "holdout_days": 1}
        materialize(
            dg.AssetSelection.assets(*TRAINING_ASSETS),
            run_config={**QUIET, "ops": {"training_set": {"config": training}}},
        )
        for key in keys[: args.history_days]:
            materialize(scoring_selection(), partition_key=key)
        close_ledgers()
        print(json.dumps({"built": keys[: args.history_days]}))
        return 0

    live = keys[args.history_days]
    idle = _own_rss()
    started, cpu_started = time.perf_counter(), time.process_time()
    result = materialize(
        dg.AssetSelection.assets(*PARTITIONED_ASSETS), partition_key=live, raise_on_error=False
    )
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    if not result.success:
        print(f"the live run of {live} failed (run {result.run_id})", file=sys.stderr)
        return 1
    steps: dict[str, float] = {"checks": 0.0}
    windows: dict[str, tuple[float, float]] = {}
    checks: list[str] = []
    for stats in instance.get_run_step_stats(result.run_id):
        begin, end = stats.start_time or 0.0, stats.end_time or 0.0
        windows[stats.step_key] = (begin, end)
        name = stats.step_key if stats.step_key in ASSET_STEPS else "checks"
        steps[name] = steps.get(name, 0.0) + end - begin
        if name == "checks":
            checks.append(stats.step_key)
    evaluations = result.get_asset_check_evaluations()
    snapshot_rows = _snapshot_rows(result)
    close_ledgers()
    report = {
        "partition": live,
        "rows": snapshot_rows,
        "total": wall,
        "cpu": cpu,
        "idle_mib": idle / MiB,
        "self_maxrss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "check_steps": checks,
        "check_evaluations": len(evaluations),
        "checks_failed": sorted(
            evaluation.check_name for evaluation in evaluations if not evaluation.passed
        ),
        "windows": windows,
        **steps,
    }
    print(json.dumps(report, sort_keys=True))
    return 0


def _snapshot_rows(result: Any) -> int:
    """The live snapshot's row count, from its materialization metadata (0 when not recorded)."""
    for event in result.get_asset_materialization_events():
        materialization = event.step_materialization_data.materialization
        if materialization.asset_key.to_user_string() == "telemetry_snapshot":
            for name in ("rows", "row_count", "dagster/row_count"):
                value = materialization.metadata.get(name)
                if value is not None:
                    return int(value.value)
    return 0


def _own_rss() -> int:
    return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _steps_table(row: dict[str, Any]) -> str:
    header = f"{'step':<44}  {'seconds':>8}  {'peak RSS MiB':>12}"
    lines = [
        f"live partition {row['partition']}: {row['services']:,} services, {row['rows']:,} rows "
        f"(idle process {row['idle_mib']:.0f} MiB; generator alone {row['generate']:.2f} s of "
        "the snapshot step)",
        header,
        "-" * len(header),
    ]
    for step, (start, end) in sorted(row["windows"].items(), key=lambda item: item[1][0]):
        lines.append(f"{step:<44}  {end - start:>8.2f}  {row['step_peaks'][step]:>12.0f}")
    lines.append(
        f"{'run (wall, incl. Dagster overhead)':<44}  {row['total']:>8.2f}  "
        f"{row['peak_mib']:>12.0f}"
    )
    failed = ", ".join(row["checks_failed"]) or "none"
    lines.append(f"{row['check_evaluations']} check evaluations; failed: {failed}")
    return "\n".join(lines)


def _growth_table(rows: list[dict[str, Any]], args: argparse.Namespace) -> str:
    header = (
        f"{'services':>8}  {'rows':>10}  {'snapshot':>8}  {'features':>8}  {'scores':>8}  "
        f"{'checks':>8}  {'run s':>7}  {'CPU s':>7}  {'s/M rows':>8}  {'peak MiB':>8}  "
        f"{'x rows':>6}  {'x time':>6}"
    )
    lines = [
        f"growth, {args.step_minutes}-minute step, history {args.history_days} days "
        "(step seconds; peak = the timed run's ru_maxrss)",
        header,
        "-" * len(header),
    ]
    for row in rows:
        lines.append(
            f"{row['services']:>8,}  {row['rows']:>10,}  {row.get('telemetry_snapshot', 0):>8.2f}  "
            f"{row.get('features', 0):>8.2f}  {row.get('anomaly_scores', 0):>8.2f}  "
            f"{row['checks']:>8.2f}  {row['total']:>7.2f}  {row['cpu']:>7.2f}  "
            f"{row['seconds_per_m_rows']:>8.1f}  {row['peak_mib']:>8.0f}  "
            f"{row['ratio_rows']:>6.1f}  {row['ratio_seconds']:>6.1f}"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
