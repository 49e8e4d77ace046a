"""``aiops incident``: what changed before the model got worse, ranked, from a terminal.

Reads the project's Dagster instance (materializations and check results) and the ledger
(aliases, capsules), so it answers for the same history the UI shows. It only reads: without an
instance or a ledger it says where it looked.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from aiops_assets.cli._common import (
    CliError,
    Command,
    common_options,
    dagster_output,
    ledger_of,
    load_settings,
    make_progress,
    model_option,
    print_json,
    say,
)

if TYPE_CHECKING:
    from aiops_assets.core.incidents import (
        Change,
        DriftPoint,
        IncidentReport,
        PerformancePoint,
    )
    from aiops_assets.reference.settings import PipelineSettings

# Labels come only on days with enough anomalies to judge F1; the false-alarm rate always exists.
FALLBACK_METRIC = "false_alarm_rate"


@click.command(
    cls=Command,
    help="Find the last passing and first failing performance check, collect every data, code, "
    "feature-set, config, environment, alias and policy change upstream of the model around "
    "them, and rank the likely causes with the evidence.",
)
@common_options
@model_option
@click.option(
    "--at", help="the incident at or before this time (ISO, or 2d ago); default the latest"
)
@click.option("--metric", default="f1", show_default=True, help="performance metric to explain")
@click.option("--top", type=int, default=5, show_default=True, help="suspects to show")
@click.option(
    "--png",
    type=click.Path(path_type=Path, dir_okay=False),
    help="also write the timeline plot (performance and top drift) here",
)
@click.option(
    "--history-days",
    type=float,
    default=30.0,
    help="how far back to read changes and evaluations (default 30 days)",
)
def incident(
    home: Path | None,
    as_json: bool,
    model: str,
    at: str | None,
    metric: str,
    top: int,
    png: Path | None,
    history_days: float,
) -> int:
    from aiops_assets.core.experiments import QueryError, parse_time
    from aiops_assets.core.incidents import asset_links

    try:
        moment = parse_time(at) if at else None
    except QueryError as error:
        raise CliError(str(error)) from error
    settings = load_settings(home)
    dagster_home = settings.instance_home(home_given=home is not None)
    if not (dagster_home / "dagster.yaml").is_file():
        raise CliError(
            f"no Dagster instance at {dagster_home}; run the pipeline (make demo) or point "
            "--home / DAGSTER_HOME at one"
        )
    since = (moment or datetime.now(UTC)) - timedelta(days=history_days)
    history = _history(settings, dagster_home, model, since)
    report = _report(model, *history, at=moment, metric=metric)
    if report is None:
        say(
            f"no failed performance check of {model}"
            + (f" up to {moment.isoformat()}" if moment else "")
            + f" in {len(history[1])} evaluation(s): no incident"
        )
        return 0
    if png is not None:
        from aiops_assets.core.incident_plot import plot_incident

        plot_incident(report, history[2], png)
        say(f"timeline plot written to {png}")
    if as_json:
        print_json(report.to_dict())
    else:
        click.echo(report.markdown(top=top, links=asset_links(report, settings.ui_url)))
    return 0


def _history(
    settings: PipelineSettings, dagster_home: Path, model: str, since: datetime
) -> tuple[list[Any], list[Any], list[Any]]:
    """Changes, performance and drift evaluations since ``since``: the query's cost follows the
    window, not the whole instance."""
    import dagster as dg

    from aiops_assets.changelog import collect_changes, drift_history, performance_history
    from aiops_assets.reference.definitions import (
        FEATURES_DRIFT_CHECK,
        SCORES_DRIFT_CHECK,
        build_definitions,
    )

    progress = make_progress()
    progress.begin(3, f"aiops incident: reading {dagster_home} since {since.date()}")
    with (
        ledger_of(settings, read_only=True) as ledger,
        dagster_output(),
        dg.DagsterInstance.from_config(str(dagster_home)) as instance,
    ):
        progress.step("changes upstream of the model")
        changes = collect_changes(
            instance, ledger, build_definitions(settings), model_name=model, since=since, until=None
        )
        progress.step("performance checks")
        performance = performance_history(instance, since=since)
        progress.step("drift checks")
        drift = drift_history(instance, [FEATURES_DRIFT_CHECK, SCORES_DRIFT_CHECK], since=since)
    progress.end()
    return list(changes), list(performance), list(drift)


def _report(
    model: str,
    changes: Sequence[Change],
    performance: Sequence[PerformancePoint],
    drift: Sequence[DriftPoint],
    *,
    at: datetime | None,
    metric: str,
) -> IncidentReport | None:
    from aiops_assets.core.incidents import build_incident_report

    report = build_incident_report(model, changes, performance, drift, at=at, metric=metric)
    if (
        report is not None
        and metric != FALLBACK_METRIC
        and metric not in report.window.first_bad.metrics
    ):
        report = build_incident_report(
            model, changes, performance, drift, at=at, metric=FALLBACK_METRIC
        )
    return report
