"""``aiops incident`` on a home the Airflow provider runs (``aiops_assets.airflow``).

Such a home has no Dagster instance, so there is no event log to read changes and check results
from; the provider keeps its checks in the shared ledger and its steps' facts in the store
(``facts/<asset>/<partition>``). The report is the one the provider's ``incident_report`` task
stores: every version's performance checks and every move of the champion alias from the ledger,
the days' drift from the drift check's facts, ranked by the same engine (``core/incidents``), in
the same text and JSON as the Dagster path. What only Dagster's change log knows (data, code,
config and environment changes, counterfactual replays) is not in it, and the report says so.

Airflow itself is never imported: the home is read, nothing runs.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import click

from aiops_assets.cli._common import CliError, ledger_of, say

if TYPE_CHECKING:
    from aiops_assets.reference.settings import PipelineSettings

# Written by the provider's steps only (the Dagster IO manager keeps facts in its event log).
PROVIDER_FACTS = "refs/facts"
SOURCES = (
    "an Airflow provider home: ranked from the ledger's performance checks and champion moves and "
    "the stored drift facts (no Dagster change log, so no data/code/config suspects or replays)"
)


def provider_home(settings: PipelineSettings) -> bool:
    """True when the home's store holds the provider's step facts. Looked up without opening the
    store, which would create a missing one."""
    from upath import UPath

    return (UPath(settings.store_root) / PROVIDER_FACTS).is_dir()


def airflow_incident(
    settings: PipelineSettings,
    *,
    model: str,
    at: datetime | None,
    metric: str,
    top: int,
    as_json: bool,
    png: Path | None,
) -> int:
    """Print the report on the latest failing performance check at or before ``at``."""
    from aiops_assets.airflow.steps_incident import drift_points
    from aiops_assets.core.pipeline.incident import ledger_incident_report, performance_points
    from aiops_assets.core.store import ArtifactStore

    with ledger_of(settings, read_only=True) as ledger:
        if not ledger.list_versions(model):
            raise CliError(
                f"the ledger at {ledger.url} has no version of {model}: nothing to "
                "diagnose (train one first, e.g. the aiops_reference_train DAG)"
            )
        drift = drift_points(ArtifactStore(settings.store_root))
        report = ledger_incident_report(ledger, model, drift, at=at, metric=metric)
        evaluations = len(performance_points(ledger, model))
    say(SOURCES)
    if report is None:
        say(
            f"no failed performance check of {model}"
            + (f" up to {at.isoformat()}" if at else "")
            + f" in {evaluations} evaluation(s): no incident"
        )
        return 0
    if png is not None:
        from aiops_assets.core.incident_plot import plot_incident

        plot_incident(report, drift, png)
        say(f"timeline plot written to {png}")
    click.echo(
        json.dumps(report.to_dict(), sort_keys=True, default=str)
        if as_json
        else report.markdown(top=top)
    )
    return 0
