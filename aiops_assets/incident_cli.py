"""``aiops incident``: what changed before the model got worse, ranked, from a terminal.

Reads the project's Dagster instance (materializations and check results) and the ledger
(aliases, capsules), so it answers for the same history the UI shows.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from aiops_assets.core.experiments import QueryError, parse_time
from aiops_assets.core.incidents import (
    Change,
    DriftPoint,
    IncidentReport,
    PerformancePoint,
    asset_links,
    build_incident_report,
)
from aiops_assets.reference.settings import PipelineSettings
from aiops_assets.registry_cli import open_ledger

# Labels come only on days with enough anomalies to judge F1; the false-alarm rate always exists.
FALLBACK_METRIC = "false_alarm_rate"


def run_incident_command(args: argparse.Namespace, settings: PipelineSettings) -> int:
    try:
        at = parse_time(args.at) if args.at else None
    except QueryError as error:
        print(f"aiops incident: {error}", file=sys.stderr)
        return 2
    import dagster as dg

    from aiops_assets.changelog import collect_changes, drift_history, performance_history
    from aiops_assets.reference.definitions import (
        FEATURES_DRIFT_CHECK,
        SCORES_DRIFT_CHECK,
        build_definitions,
    )

    dagster_home = settings.instance_home(home_given=args.home is not None)
    if not (dagster_home / "dagster.yaml").is_file():
        print(
            f"aiops incident: no Dagster instance at {dagster_home}; run the pipeline (make demo) "
            "or point --home / DAGSTER_HOME at one",
            file=sys.stderr,
        )
        return 2
    ledger = open_ledger(settings)
    try:
        with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
            definitions = build_definitions(settings)
            # The history the correlation needs, not the whole instance: the query's cost follows
            # the window.
            since = (at or datetime.now(UTC)) - timedelta(days=args.history_days)
            changes = collect_changes(
                instance, ledger, definitions, model_name=args.model, since=since, until=None
            )
            performance = performance_history(instance, since=since)
            drift = drift_history(instance, [FEATURES_DRIFT_CHECK, SCORES_DRIFT_CHECK], since=since)
    finally:
        ledger.dispose()
    report = _report(args.model, changes, performance, drift, at=at, metric=args.metric)
    if report is None:
        print(
            f"aiops incident: no failed performance check of {args.model}"
            + (f" up to {at.isoformat()}" if at else "")
            + f" in {len(performance)} evaluation(s): no incident",
            file=sys.stderr,
        )
        return 0
    if args.png is not None:
        from aiops_assets.core.incident_plot import plot_incident

        plot_incident(report, drift, args.png)
        print(f"aiops incident: timeline plot written to {args.png}", file=sys.stderr)
    if args.json:
        print(json.dumps(report.to_dict(), sort_keys=True, default=str))
    else:
        print(report.markdown(top=args.top, links=asset_links(report, settings.ui_url)))
    return 0


def _report(
    model: str,
    changes: Sequence[Change],
    performance: Sequence[PerformancePoint],
    drift: Sequence[DriftPoint],
    *,
    at: datetime | None,
    metric: str,
) -> IncidentReport | None:
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
