"""``aiops registry mlflow-sync|mlflow-drift``: the MLflow mirror of the registry from a terminal.

The ledger is read, never written: ``mlflow-sync`` changes MLflow to match it, ``mlflow-drift``
only reports. Both exit 1 when a disagreement remains, so a scheduled job or CI step can alert on
it. An unreachable server or a missing ``mlflow`` package is one line, not a traceback.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from aiops_assets.cli._common import (
    EXIT_FAILED,
    CliError,
    Command,
    common_options,
    ledger_of,
    load_settings,
    model_option,
    print_json,
)

if TYPE_CHECKING:
    from aiops_assets.core.ledger import Ledger

# Spelled here, not imported from core.mlflow_bridge, so `--help` stays cheap.
TRACKING_URI_ENVS = ["AIOPS_MLFLOW_TRACKING_URI", "MLFLOW_TRACKING_URI"]


def _require_model(ledger: Ledger, model: str) -> None:
    """A model the ledger never registered is a typo: mirroring it would make an empty one."""
    if model not in ledger.list_models():
        known = ", ".join(ledger.list_models()) or "none"
        raise CliError(f"{model} has no versions in {ledger.url} (models: {known})")


def tracking_uri_option(command: Any) -> Any:
    return click.option(
        "--tracking-uri",
        envvar=TRACKING_URI_ENVS,
        required=True,
        help="the MLflow tracking server (default: AIOPS_MLFLOW_TRACKING_URI, MLFLOW_TRACKING_URI)",
    )(command)


def prefix_option(command: Any) -> Any:
    return click.option(
        "--prefix", default="", help="prepended to the model's name in MLflow (e.g. 'aiops-')"
    )(command)


@click.command("mlflow-sync", cls=Command)
@common_options
@model_option
@tracking_uri_option
@prefix_option
def mlflow_sync(
    home: Path | None, as_json: bool, model: str, tracking_uri: str, prefix: str
) -> int:
    """Mirror the model's versions, aliases and hashes into MLflow (the ledger is the truth)."""
    from aiops_assets.core.mlflow_bridge import BridgeError, mirror

    with ledger_of(load_settings(home), read_only=True) as ledger:
        _require_model(ledger, model)
        try:
            report = mirror(ledger, tracking_uri, models=[model], prefix=prefix)
        except BridgeError as error:
            raise CliError(str(error), status=EXIT_FAILED) from error
    if as_json:
        print_json(report.to_dict())
    else:
        for action in report.actions:
            click.echo(action)
        for drift in report.remaining:
            click.echo(f"not fixed: {drift.line()}")
        state = "in sync" if report.in_sync else f"{len(report.remaining)} left"
        click.echo(f"{prefix}{model} in {tracking_uri}: {len(report.actions)} changes, {state}")
    return 0 if report.in_sync else EXIT_FAILED


@click.command("mlflow-drift", cls=Command)
@common_options
@model_option
@tracking_uri_option
@prefix_option
def mlflow_drift(
    home: Path | None, as_json: bool, model: str, tracking_uri: str, prefix: str
) -> int:
    """Where MLflow disagrees with the ledger; changes nothing (exit 1 when it disagrees)."""
    from aiops_assets.core.mlflow_bridge import BridgeError, drift_report

    with ledger_of(load_settings(home), read_only=True) as ledger:
        _require_model(ledger, model)
        try:
            drifts = drift_report(ledger, tracking_uri, models=[model], prefix=prefix)
        except BridgeError as error:
            raise CliError(str(error), status=EXIT_FAILED) from error
    if as_json:
        print_json([{**vars(item), "fixable": item.fixable} for item in drifts])
    elif not drifts:
        click.echo(f"{prefix}{model} in {tracking_uri}: in sync with the ledger")
    else:
        for drift in drifts:
            click.echo(drift.line())
        click.echo(f"{len(drifts)} disagreements; `aiops registry mlflow-sync` repairs the fixable")
    return EXIT_FAILED if drifts else 0
