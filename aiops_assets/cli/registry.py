"""``aiops registry list|history|promote|rollback``: the model registry from a terminal.

Reading (list, history) goes straight to the ledger and never creates one. Changing the champion
(promote, rollback) goes through the ``champion_model`` asset in the project's Dagster instance,
exactly as the sensors do, so the change is a materialization the UI shows and ``anomaly_scores``
picks up. It is checked twice: here, for a clear refusal (and a version that exists) before
anything runs, and in the asset, which is the check that cannot be bypassed.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from aiops_assets.cli._common import (
    CliError,
    Group,
    authorized_actor,
    champion_assets,
    common_options,
    emit,
    ledger_of,
    load_settings,
    location_options,
    materialize_champion,
    model_option,
    print_json,
    print_table,
)

if TYPE_CHECKING:
    from aiops_assets.core.ledger import Ledger


@click.group(cls=Group)
def registry() -> None:
    """Model versions, aliases and their history."""


@registry.command("list")
@common_options
@model_option
def list_versions(home: Path | None, as_json: bool, model: str) -> int:
    """Every registered model version."""
    with ledger_of(load_settings(home), read_only=True) as ledger:
        rows = version_rows(ledger, model)
        url = ledger.url
    if as_json:
        print_json(rows)
    elif not rows:
        click.echo(f"no versions of {model} in {url}")
    else:
        print_table(
            [
                "version",
                "sha256",
                "aliases",
                "pr_auc",
                "f1",
                "checks",
                "trained_until",
                "created_by",
            ],
            [_version_cells(row) for row in rows],
        )
    return 0


def version_rows(ledger: Ledger, model: str) -> list[dict[str, Any]]:
    aliases: dict[int, list[str]] = {}
    for alias, number in ledger.aliases(model).items():
        aliases.setdefault(number, []).append(alias)
    return [
        {
            "version": version.version,
            "sha256": version.sha256,
            "aliases": sorted(aliases.get(version.version, [])),
            "pr_auc": version.metrics.get("pr_auc"),
            "f1": version.metrics.get("f1"),
            "created_at": version.created_at.isoformat(),
            "created_by": version.created_by,
            "trained_until": version.tags.get("trained_until", ""),
            "checks": _check_summary(ledger, model, version.version),
        }
        for version in ledger.list_versions(model)
    ]


def _version_cells(row: dict[str, Any]) -> list[str]:
    return [
        f"v{row['version']}",
        row["sha256"][:12],
        ",".join(row["aliases"]) or "-",
        _number(row["pr_auc"]),
        _number(row["f1"]),
        row["checks"],
        row["trained_until"] or "-",
        row["created_by"],
    ]


def _check_summary(ledger: Ledger, model: str, version: int) -> str:
    checks = ledger.version_checks(model, version)
    failed = sum(1 for check in checks if not check.passed)
    return f"{len(checks) - failed} ok / {failed} failed" if checks else "none"


@registry.command()
@common_options
@model_option
@click.option("--alias", help="only this alias (champion, challenger, shadow)")
def history(home: Path | None, as_json: bool, model: str, alias: str | None) -> int:
    """Every alias change: from, to, who, when, why, run."""
    with ledger_of(load_settings(home), read_only=True) as ledger:
        changes = ledger.alias_history(model, alias)
        url = ledger.url
    rows: list[dict[str, Any]] = [
        {
            "at": change.at.isoformat(),
            "alias": change.alias,
            "from": change.from_version,
            "to": change.to_version,
            "kind": change.kind,
            "actor": change.actor,
            "reason": change.reason,
            "run_id": change.run_id,
        }
        for change in changes
    ]
    if as_json:
        print_json(rows)
    elif not rows:
        click.echo(f"no alias changes for {model} in {url}")
    else:
        print_table(
            ["at", "alias", "from", "to", "kind", "actor", "run", "reason"],
            [_change_cells(row) for row in rows],
        )
    return 0


def _change_cells(row: dict[str, Any]) -> list[str]:
    return [
        row["at"][:19],
        row["alias"],
        f"v{row['from']}" if row["from"] else "-",
        f"v{row['to']}",
        row["kind"],
        row["actor"],
        (row["run_id"] or "-")[:8],
        # One line per change: a multi-line reason would break the table.
        " ".join(str(row["reason"]).split()),
    ]


@registry.command()
@common_options
@location_options
@click.argument("version", type=int)
@click.option("--reason", required=True, help="why; recorded in the audit log")
def promote(home: Path | None, as_json: bool, version: int, reason: str) -> int:
    """Make a version champion now, skipping the gate (needs the promote permission)."""
    return _change_champion("promote", home, version, reason, as_json=as_json)


@registry.command()
@common_options
@location_options
@click.option("--to", "to", type=int, default=0, help="a specific earlier version")
@click.option("--reason", required=True, help="why; recorded in the audit log")
def rollback(home: Path | None, as_json: bool, to: int, reason: str) -> int:
    """Point champion back at the last version whose checks passed (or --to VERSION)."""
    return _change_champion("rollback", home, to, reason, as_json=as_json)


def _change_champion(
    action: str, home: Path | None, version: int, reason: str, *, as_json: bool
) -> int:
    from aiops_assets.core.registry import CHAMPION, MODEL_NAME
    from aiops_assets.reference.definitions import ROLLBACK_ASSETS

    settings = load_settings(home)
    champion_assets(settings, ROLLBACK_ASSETS)  # a location without one is refused first
    with ledger_of(settings) as ledger:
        if version:
            require_version(ledger, MODEL_NAME, version)
        actor = authorized_actor(settings, ledger, action, f"{MODEL_NAME}:{CHAMPION}")
    config: dict[str, Any] = {"action": action, "reason": reason}
    if version:
        config["version"] = version
    run = materialize_champion(
        settings, home_given=home is not None, assets=ROLLBACK_ASSETS, config=config, actor=actor
    )
    with ledger_of(settings) as ledger:
        champion = ledger.get_alias(MODEL_NAME, CHAMPION)
    if champion is None:  # the run just set it
        raise CliError("the run succeeded but left no champion", 1)
    instance = settings.instance_home(home_given=home is not None)
    emit(
        {"champion": champion.version, "sha256": champion.sha256, "run_id": run.run_id},
        f"{MODEL_NAME} champion is now v{champion.version} ({champion.sha256[:12]}); "
        f"run {run.run_id} in {instance}",
        as_json=as_json,
    )
    return 0


def require_version(ledger: Ledger, model: str, version: int) -> None:
    """A version the ledger does not hold is a typo, refused before any run starts."""
    if ledger.get_version(model, version) is None:
        known = [f"v{item.version}" for item in ledger.list_versions(model)]
        raise CliError(
            f"{model} has no version {version} in {ledger.url} "
            f"(registered: {', '.join(known) or 'none'}; see `aiops registry list`)"
        )


def _number(value: Any) -> str:
    return "-" if value is None else f"{float(value):.3f}"


# The MLflow mirror (cli/mlflow.py: click only at import, MLflow inside the handlers).
from aiops_assets.cli.mlflow import mlflow_drift, mlflow_sync  # noqa: E402

registry.add_command(mlflow_sync)
registry.add_command(mlflow_drift)
