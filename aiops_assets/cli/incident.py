"""``aiops incident``: what changed before the model got worse, ranked, from a terminal.

Reads the project's Dagster instance (materializations and check results) and the ledger
(aliases, capsules), so it answers for the same history the UI shows. It only reads: without an
instance or a ledger it says where it looked.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
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
    location_definitions,
    location_options,
    location_pointer,
    make_progress,
    model_option,
    say,
)

if TYPE_CHECKING:
    from aiops_assets.core.incidents import IncidentReport
    from aiops_assets.core.store import ArtifactStore
    from aiops_assets.reference.settings import PipelineSettings


@click.command(
    cls=Command,
    help="Find the last passing and first failing performance check, collect every data, code, "
    "feature-set, config, environment, alias and policy change upstream of the model around "
    "them, characterize what changed in the data per service and column, replay the top suspects "
    "with each one reverted, and rank the causes by that evidence.",
)
@common_options
@location_options
@model_option
@click.option(
    "--at", help="the incident at or before this time (ISO, or 2d ago); default the latest"
)
@click.option("--metric", default="f1", show_default=True, help="performance metric to explain")
@click.option("--top", type=int, default=5, show_default=True, help="suspects to show")
@click.option(
    "--replays",
    type=click.IntRange(min=0),
    default=5,
    show_default=True,
    help="counterfactual replays at most (0: rank without replaying)",
)
@click.option("--no-cache", is_flag=True, help="re-run replays even when a result is stored")
@click.option(
    "--ui-url",
    help="the Dagster UI the links point at (default AIOPS_UI_URL, else http://localhost:3000)",
)
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
    replays: int,
    no_cache: bool,
    ui_url: str | None,
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
        from aiops_assets.cli.incident_airflow import airflow_incident, provider_home

        if provider_home(settings):  # run by the Airflow provider: its ledger and step facts
            return airflow_incident(
                settings, model=model, at=moment, metric=metric, top=top, as_json=as_json, png=png
            )
        raise CliError(
            f"no Dagster instance at {dagster_home} and no Airflow provider home at "
            f"{settings.root.absolute()}; run the pipeline (make demo) or point --home / "
            "DAGSTER_HOME at one"
        )
    since = (moment or datetime.now(UTC)) - timedelta(days=history_days)
    links_to = ui_url or settings.ui_url
    query = {
        "model": model,
        "since": since.replace(minute=0, second=0, microsecond=0).isoformat(),
        "at": moment.isoformat() if moment else None,
        "metric": metric,
        "replays": replays,
        "top": top,
        "json": as_json,
        "ui_url": links_to,
    }
    # A plot is a file beside the answer: drawing one always diagnoses.
    outcome = _diagnose(
        settings, dagster_home, model, since, moment, metric, replays, not no_cache, query, png
    )
    if outcome.answer is not None:
        click.echo(outcome.answer)
        return 0
    report = outcome.report
    if report is None:
        say(
            f"no failed performance check of {outcome.model_name or model}"
            + (f" up to {moment.isoformat()}" if moment else "")
            + f" in {outcome.evaluations} evaluation(s): no incident"
        )
        return 0
    if png is not None:
        from aiops_assets.core.incident_plot import plot_incident

        plot_incident(report, outcome.drift, png)
        say(f"timeline plot written to {png}")
    answer = (
        json.dumps(report.to_dict(), sort_keys=True, default=str)
        if as_json
        else report.markdown(top=top, links=asset_links(report, links_to))
    )
    click.echo(answer)
    outcome.remember(answer)
    return 0


@dataclass
class _Outcome:
    """A diagnosis, or the stored answer to the same question about the same history."""

    report: IncidentReport | None = None
    drift: list[Any] = field(default_factory=list)
    evaluations: int = 0
    answer: str | None = None
    store: ArtifactStore | None = None
    key: str | None = None
    model_name: str = ""

    def remember(self, answer: str) -> None:
        if self.store is not None and self.key is not None:
            from aiops_assets.diagnosis.cache import store_answer

            store_answer(self.store, self.key, answer)


def _diagnose(
    settings: PipelineSettings,
    dagster_home: Path,
    model: str,
    since: datetime,
    at: datetime | None,
    metric: str,
    replays: int,
    use_cache: bool,
    query: dict[str, Any],
    png: Path | None,
) -> _Outcome:
    """The report with its evidence (or the stored answer, when nothing it reads has changed);
    the query's cost follows the window, not the whole instance."""
    import dagster as dg

    from aiops_assets.changelog import drift_history, performance_history
    from aiops_assets.core.store import ArtifactStore
    from aiops_assets.diagnosis import DiagnosisOptions, diagnose
    from aiops_assets.diagnosis.cache import cached_answer, report_key

    pointer = location_pointer()
    if not pointer.is_reference:  # another location's history is another question
        query = {**query, "location": pointer.describe()}
    store = ArtifactStore(settings.store_root)
    with (
        ledger_of(settings, read_only=True) as ledger,
        dagster_output(),
        dg.DagsterInstance.from_config(str(dagster_home)) as instance,
    ):
        key = report_key(
            event_log_cursor=instance.event_log_storage.get_maximum_record_id(),
            audit_head=ledger.audit_head(),
            query=query,
        )
        if use_cache and png is None:
            answer = cached_answer(store, key)
            if answer is not None:
                return _Outcome(answer=answer)
        definitions = location_definitions(settings)
        # The diagnosis (changelog, replays) follows the scored model's asset and its
        # performance check, found from the location; one without them is refused, not half done.
        target = _target(definitions, model)
        checks = _drift_checks(definitions, target)
        report = diagnose(
            instance,
            ledger,
            definitions,
            store,
            model_name=target.model_name,
            drift_checks=checks,
            since=since,
            at=at,
            options=DiagnosisOptions(max_replays=replays, use_cache=use_cache, metric=metric),
            progress=make_progress(),
            target=target,
        )
        drift = drift_history(instance, checks, since=since) if report is not None else []
        evaluations = (
            len(performance_history(instance, check_key=target.performance_check, since=since))
            if report is None
            else 0
        )
    return _Outcome(report, drift, evaluations, store=store, key=key, model_name=target.model_name)


def _target(definitions: Any, model: str) -> Any:
    """The reference's scored model, or the location's own: the one it serves (or the one
    ``--model`` names, when it serves several)."""
    from click.core import ParameterSource

    from aiops_assets.diagnosis.target import TargetError, find_target, reference_target

    if location_pointer().is_reference:
        return reference_target(model)
    ctx = click.get_current_context(silent=True)
    given = ctx is not None and ctx.get_parameter_source("model") != ParameterSource.DEFAULT
    pointer = location_pointer()
    try:
        return find_target(
            definitions,
            model if given else None,
            location=f"{pointer.name} ({pointer.describe()})",
        )
    except TargetError as error:
        raise CliError(str(error)) from error


def _drift_checks(definitions: Any, target: Any) -> list[Any]:
    """The drift checks whose history the report lines up: the reference's two, those a host's
    model declares (``build_model_lifecycle(drift_checks=...)``), else every check a host's
    location names ``drift`` (what the plugin's drift factories and component build)."""
    if location_pointer().is_reference:
        from aiops_assets.reference.definitions import FEATURES_DRIFT_CHECK, SCORES_DRIFT_CHECK

        return [FEATURES_DRIFT_CHECK, SCORES_DRIFT_CHECK]
    if target.drift_checks:
        return list(target.drift_checks)
    from aiops_assets.keys import DRIFT_CHECK_NAME

    graph = definitions.resolve_asset_graph()
    return sorted(key for key in graph.asset_check_keys if key.name == DRIFT_CHECK_NAME)
