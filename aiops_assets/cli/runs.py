"""``aiops runs search`` and ``aiops runs diff``: the experiment ledger from a terminal.

Both only read the ledger, so neither imports Dagster: a question about past runs should answer
in the time it takes to open a SQLite file. The query language is the one success criteria are
declared in (``core.experiments``), so a criterion can be pasted into ``--metric`` as is.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from aiops_assets.cli._common import (
    CliError,
    Group,
    common_options,
    ledger_of,
    load_settings,
    print_json,
    print_table,
)

if TYPE_CHECKING:
    from aiops_assets.core.experiments import ExperimentRun, RunDiff, RunFilter
    from aiops_assets.core.ledger import Ledger


@click.group(cls=Group)
def runs() -> None:
    """Search and compare recorded training runs."""


@runs.command(
    help="Training runs matching every given filter, oldest first. Every filter must hold; a "
    "run that did not record a metric named in --metric is left out."
)
@common_options
@click.option("--model", help="model name")
@click.option("--dataset", help="training-set version (sha256 or a prefix of it)")
@click.option("--feature-set", "feature_set", help="feature-set version (or a prefix of it)")
@click.option(
    "--metric",
    "metrics",
    multiple=True,
    metavar="COND",
    help="a metric condition such as 'f1>0.8' or 'pr_auc>=0.95, false_alarm_rate<0.02' "
    "(repeatable; all must hold)",
)
@click.option("--since", metavar="T", help="ISO date/time or an age (7d, 12h, 30m)")
@click.option("--until", metavar="T", help="ISO date/time or an age (exclusive)")
@click.option(
    "--time", "time_range", metavar="RANGE", help="a time range A..B, A.. or ..B (B excluded)"
)
@click.option("--tag", "tags", multiple=True, metavar="K=V", help="a tag value (repeatable)")
def search(home: Path | None, as_json: bool, **query: Any) -> int:
    from aiops_assets.core.experiments import QueryError, run_to_dict, runs_table, search_runs

    # A bad query is reported before the ledger is opened.
    try:
        run_filter = build_filter(**query)
    except QueryError as error:
        raise CliError(str(error)) from error
    with ledger_of(load_settings(home), read_only=True) as ledger:
        # The ledger narrows by model and time in SQL; versions, metrics and tags go through
        # search_runs, which takes prefixes.
        candidates = ledger.list_experiment_runs(
            model_name=run_filter.model_name, since=run_filter.since, until=run_filter.until
        )
    found = search_runs(candidates, run_filter)
    if as_json:
        print_json([run_to_dict(run) for run in found])
    elif found:
        header, *rows = runs_table(found)
        print_table(header, rows)
    if not found:
        click.echo("no runs match", err=True)
    return 0


def build_filter(
    *,
    model: str | None = None,
    dataset: str | None = None,
    feature_set: str | None = None,
    metrics: tuple[str, ...] = (),
    since: str | None = None,
    until: str | None = None,
    time_range: str | None = None,
    tags: tuple[str, ...] = (),
    now: datetime | None = None,
) -> RunFilter:
    """``--since``/``--until`` and ``--time`` may be combined; the narrower bound of each wins,
    so adding a filter never widens a search."""
    from aiops_assets.core.experiments import (
        QueryError,
        RunFilter,
        parse_criterion,
        parse_tag,
        parse_time,
        parse_time_range,
    )

    conditions = [condition for text in metrics for condition in parse_criterion(text)]
    start = parse_time(since, now=now) if since else None
    end = parse_time(until, now=now) if until else None
    if time_range:
        range_start, range_end = parse_time_range(time_range, now=now)
        start = _bound(start, range_start, max)
        end = _bound(end, range_end, min)
    if start is not None and end is not None and start > end:
        raise QueryError(
            f"expected the start of the time range to be before its end, got "
            f"{start.isoformat()} .. {end.isoformat()}"
        )
    return RunFilter(
        model_name=model or None,
        dataset_version=dataset or None,
        feature_set_version=feature_set or None,
        conditions=tuple(conditions),
        since=start,
        until=end,
        tags=tuple(parse_tag(text) for text in tags),
    )


def _bound(current: datetime | None, other: datetime | None, pick: Any) -> datetime | None:
    if current is None or other is None:
        return current if other is None else other
    chosen: datetime = pick(current, other)
    return chosen


@runs.command()
@common_options
@click.argument("a")
@click.argument("b")
def diff(home: Path | None, as_json: bool, a: str, b: str) -> int:
    """Config, data versions, environment and metrics of run B against run A (ids or prefixes)."""
    from aiops_assets.core.experiments import diff_runs

    with ledger_of(load_settings(home), read_only=True) as ledger:
        run_a, run_b = (_run(ledger, ref) for ref in (a, b))
        lines, not_compared = _environment_lines(ledger, run_a, run_b)
    difference = diff_runs(run_a, run_b, environment_lines=lines)
    if as_json:
        print_json(difference.to_dict())
        if not_compared:
            click.echo(f"aiops runs diff: environment {not_compared}", err=True)
    else:
        _print_diff(difference, run_a, run_b, not_compared)
    return 0


def _run(ledger: Ledger, ref: str) -> ExperimentRun:
    from aiops_assets.core.ledger import LedgerError

    try:
        run = ledger.get_experiment_run(ref)
    except LedgerError as error:  # an ambiguous prefix, for one
        raise CliError(str(error)) from error
    if run is None:
        raise CliError(f"no run {ref} in {ledger.url}")
    return run


def _environment_lines(
    ledger: Ledger, run_a: ExperimentRun, run_b: ExperimentRun
) -> tuple[list[str], str | None]:
    """The environment differences, and why they could not be computed if they could not:
    half an environment compares to nothing, and "unknown" must not print as "no change"."""
    from aiops_assets.core.capsule import diff_environments
    from aiops_assets.core.ledger import LedgerError

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
    recorded, current = (capsule.environment for capsule in capsules)
    return list(diff_environments(recorded, current).lines()), None


def _print_diff(
    difference: RunDiff, run_a: ExperimentRun, run_b: ExperimentRun, not_compared: str | None
) -> None:
    from aiops_assets.core.experiments import format_number

    click.echo(f"a  {_describe(run_a)}")
    click.echo(f"b  {_describe(run_b)}")
    if difference.is_empty:
        compared = "config, data, tags" + (
            " and metrics" if not_compared else ", metrics and environment"
        )
        click.echo(f"the two runs recorded the same {compared}")
    _section(
        "config", ["path", "a", "b"], [[p, _value(x), _value(y)] for p, x, y in difference.config]
    )
    _section(
        "data versions",
        ["field", "a", "b"],
        [[f, _value(x), _value(y)] for f, x, y in difference.data],
    )
    click.echo("\nenvironment")
    if not_compared:
        click.echo(f"  ({not_compared})")
    elif not difference.environment:
        click.echo("  (same)")
    for line in difference.environment:
        click.echo(f"  {line}")
    _section("tags", ["tag", "a", "b"], [[t, _value(x), _value(y)] for t, x, y in difference.tags])
    _section(
        "metrics",
        ["metric", "a", "b", "b-a"],
        [
            [name, format_number(x), format_number(y), "-" if delta is None else f"{delta:+.3f}"]
            for name, x, y, delta in difference.metrics
        ],
    )


def _describe(run: ExperimentRun) -> str:
    from aiops_assets.core.experiments import criterion_label, run_to_dict

    version = f" v{run.model_version}" if run.model_version is not None else ""
    at = run_to_dict(run)["at"][:19]
    line = f"{run.run_id[:8]}  {run.model_name}{version}  {at}"
    if run.success_criterion:
        line += f"  criterion {run.success_criterion!r}: {criterion_label(run.criterion_met)}"
    return line


def _section(title: str, header: list[str], rows: list[list[str]]) -> None:
    click.echo(f"\n{title}")
    if not rows:
        click.echo("  (same)")
        return
    print_table(header, rows, indent="  ")


def _value(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, (dict, list)):
        return json.dumps(value, sort_keys=True, default=str)
    return str(value)
