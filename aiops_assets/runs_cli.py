"""``aiops runs search`` and ``aiops runs diff``: the experiment ledger from a terminal.

Both only read the ledger, so neither imports Dagster: a question about past runs should answer
in the time it takes to open a SQLite file. The query language is the one success criteria are
declared in (``core.experiments``), so a criterion can be pasted into ``--metric`` as is.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

from aiops_assets.cli import add_common_options
from aiops_assets.core.experiments import (
    ExperimentRun,
    MetricCondition,
    QueryError,
    RunDiff,
    RunFilter,
    criterion_label,
    diff_runs,
    format_number,
    parse_criterion,
    parse_tag,
    parse_time,
    parse_time_range,
    run_to_dict,
    runs_table,
    search_runs,
)
from aiops_assets.core.ledger import Ledger, LedgerError
from aiops_assets.reference.settings import PipelineSettings
from aiops_assets.registry_cli import open_ledger

EXIT_USAGE = 2


def add_runs_commands(commands: argparse._SubParsersAction) -> None:
    runs = commands.add_parser("runs", help="search and compare recorded training runs")
    runs_commands = runs.add_subparsers(dest="runs_command", required=True)
    search = runs_commands.add_parser(
        "search",
        help="training runs matching every given filter, oldest first",
        description="Every filter must hold; a run that did not record a metric named in "
        "--metric is left out.",
    )
    add_common_options(search)
    search.add_argument("--model", help="model name")
    search.add_argument("--dataset", help="training-set version (sha256 or a prefix of it)")
    search.add_argument(
        "--feature-set", dest="feature_set", help="feature-set version (or a prefix of it)"
    )
    search.add_argument(
        "--metric",
        action="append",
        default=[],
        metavar="COND",
        help="a metric condition such as 'f1>0.8' or 'pr_auc>=0.95, false_alarm_rate<0.02' "
        "(repeatable; all must hold)",
    )
    search.add_argument("--since", metavar="T", help="ISO date/time or an age (7d, 12h, 30m)")
    search.add_argument("--until", metavar="T", help="ISO date/time or an age (exclusive)")
    search.add_argument(
        "--time",
        metavar="RANGE",
        help="a time range A..B, A.. or ..B (from A up to, not including, B)",
    )
    search.add_argument(
        "--tag", action="append", default=[], metavar="K=V", help="a tag value (repeatable)"
    )
    diff = runs_commands.add_parser(
        "diff", help="config, data versions, environment and metrics of run B against run A"
    )
    add_common_options(diff)
    diff.add_argument("a", help="run id or a unique prefix of it")
    diff.add_argument("b", help="run id or a unique prefix of it")


def run_runs_command(args: argparse.Namespace, settings: PipelineSettings) -> int:
    if getattr(args, "home", None) is not None:
        settings = settings.with_overrides(home=Path(args.home))
    command = args.runs_command
    run_filter = RunFilter()
    # A bad query is reported before the ledger is opened (which may create its key file).
    if command == "search":
        try:
            run_filter = build_filter(args)
        except QueryError as error:
            print(f"aiops runs search: {error}", file=sys.stderr)
            return EXIT_USAGE
    ledger = open_ledger(settings)
    try:
        if command == "search":
            return _search(ledger, run_filter, as_json=args.json)
        if command == "diff":
            return _diff(ledger, args.a, args.b, as_json=args.json)
        raise AssertionError(f"unhandled runs command {command}")
    finally:
        ledger.dispose()


def build_filter(args: argparse.Namespace, *, now: datetime | None = None) -> RunFilter:
    """``--since``/``--until`` and ``--time`` may be combined; the narrower bound of each wins,
    so adding a filter never widens a search."""
    conditions: list[MetricCondition] = []
    for text in args.metric or ():
        conditions.extend(parse_criterion(text))
    since = parse_time(args.since, now=now) if args.since else None
    until = parse_time(args.until, now=now) if args.until else None
    if args.time:
        range_since, range_until = parse_time_range(args.time, now=now)
        since = _bound(since, range_since, max)
        until = _bound(until, range_until, min)
    if since is not None and until is not None and since > until:
        raise QueryError(
            f"expected the start of the time range to be before its end, got "
            f"{since.isoformat()} .. {until.isoformat()}"
        )
    return RunFilter(
        model_name=args.model or None,
        dataset_version=args.dataset or None,
        feature_set_version=args.feature_set or None,
        conditions=tuple(conditions),
        since=since,
        until=until,
        tags=tuple(parse_tag(text) for text in args.tag or ()),
    )


def _bound(current: datetime | None, other: datetime | None, pick: Any) -> datetime | None:
    if current is None or other is None:
        return current if other is None else other
    chosen: datetime = pick(current, other)
    return chosen


def _search(ledger: Ledger, run_filter: RunFilter, *, as_json: bool) -> int:
    # The ledger narrows by model and time in SQL; versions go through search_runs, which takes
    # prefixes (the ledger matches them exactly), as do metrics and tags.
    candidates = ledger.list_experiment_runs(
        model_name=run_filter.model_name, since=run_filter.since, until=run_filter.until
    )
    runs = search_runs(candidates, run_filter)
    if as_json:
        print(json.dumps([run_to_dict(run) for run in runs], sort_keys=True, default=str))
    elif runs:
        _print_table(runs_table(runs))
    if not runs:
        print("no runs match", file=sys.stderr)
    return 0


def _diff(ledger: Ledger, ref_a: str, ref_b: str, *, as_json: bool) -> int:
    runs: list[ExperimentRun] = []
    for ref in (ref_a, ref_b):
        try:
            run = ledger.get_experiment_run(ref)
        except LedgerError as error:  # an ambiguous prefix, for one
            print(f"aiops runs diff: {error}", file=sys.stderr)
            return EXIT_USAGE
        if run is None:
            print(f"aiops runs diff: no run {ref} in {ledger.url}", file=sys.stderr)
            return EXIT_USAGE
        runs.append(run)
    run_a, run_b = runs
    lines, not_compared = _environment_lines(ledger, run_a, run_b)
    diff = diff_runs(run_a, run_b, environment_lines=lines)
    if as_json:
        print(json.dumps(diff.to_dict(), sort_keys=True, default=str))
        if not_compared:
            print(f"aiops runs diff: environment {not_compared}", file=sys.stderr)
    else:
        _print_diff(diff, run_a, run_b, not_compared)
    return 0


def _environment_lines(
    ledger: Ledger, run_a: ExperimentRun, run_b: ExperimentRun
) -> tuple[list[str], str | None]:
    """The environment differences, and why they could not be computed if they could not:
    half an environment compares to nothing, and "unknown" must not print as "no change"."""
    capsules = []
    for run in (run_a, run_b):
        if not run.capsule_id:
            return [], f"not compared: run {run.run_id[:8]} has no capsule"
        try:
            capsule = ledger.get_capsule(run.capsule_id)
        except LedgerError as error:
            return [], f"not compared: {error}"
        if capsule is None:
            return [], f"not compared: capsule {run.capsule_id[:12]} is not in the ledger"
        capsules.append(capsule)
    from aiops_assets.core.capsule import diff_environments

    recorded, current = (capsule.environment for capsule in capsules)
    return list(diff_environments(recorded, current).lines()), None


def _print_diff(
    diff: RunDiff, run_a: ExperimentRun, run_b: ExperimentRun, not_compared: str | None
) -> None:
    print(f"a  {_describe(run_a)}")
    print(f"b  {_describe(run_b)}")
    if diff.is_empty:
        compared = "config, data, tags" + (
            " and metrics" if not_compared else ", metrics and environment"
        )
        print(f"the two runs recorded the same {compared}")
    _section("config", ["path", "a", "b"], [[p, _value(a), _value(b)] for p, a, b in diff.config])
    _section(
        "data versions", ["field", "a", "b"], [[f, _value(a), _value(b)] for f, a, b in diff.data]
    )
    print()
    print("environment")
    if not_compared:
        print(f"  ({not_compared})")
    elif not diff.environment:
        print("  (same)")
    for line in diff.environment:
        print(f"  {line}")
    _section("tags", ["tag", "a", "b"], [[t, _value(a), _value(b)] for t, a, b in diff.tags])
    _section(
        "metrics",
        ["metric", "a", "b", "b-a"],
        [
            [name, format_number(a), format_number(b), _delta(delta)]
            for name, a, b, delta in diff.metrics
        ],
    )


def _describe(run: ExperimentRun) -> str:
    version = f" v{run.model_version}" if run.model_version is not None else ""
    at = run_to_dict(run)["at"][:19]
    line = f"{run.run_id[:8]}  {run.model_name}{version}  {at}"
    if run.success_criterion:
        line += f"  criterion {run.success_criterion!r}: {criterion_label(run.criterion_met)}"
    return line


def _section(title: str, header: list[str], rows: list[list[str]]) -> None:
    print()
    print(title)
    if not rows:
        print("  (same)")
        return
    _print_table([header, *rows], indent="  ")


def _value(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, (dict, list)):
        return json.dumps(value, sort_keys=True, default=str)
    return str(value)


def _delta(delta: float | None) -> str:
    return "-" if delta is None else f"{delta:+.3f}"


def _print_table(rows: list[list[str]], *, indent: str = "") -> None:
    widths = [max(len(cell) for cell in column) for column in zip(*rows, strict=True)]
    for row in rows:
        cells = (cell.ljust(width) for cell, width in zip(row, widths, strict=True))
        print(indent + "  ".join(cells).rstrip())
