"""``aiops rollout status|start|halt``: start, watch and halt a staged model rollout.

``start`` goes through the ``champion_model`` asset (``action: rollout``), exactly as the
launchpad does, so the start is a materialization the UI shows and the asset's access check
applies; ``status`` only reads the ledger; ``halt`` is the switch for "it hurts": every service
goes back to the champion at once, without waiting for the next check, audited with the reason.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from aiops_assets.cli._common import (
    EXIT_FAILED,
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
)

if TYPE_CHECKING:
    from aiops_assets.core.ledger import Rollout

REASON_HELP = "why; recorded in the audit log"


@click.group(cls=Group)
def rollout() -> None:
    """Staged model rollouts: start one, see its stages, halt it."""


@rollout.command()
@common_options
@model_option
def status(home: Path | None, as_json: bool, model: str) -> int:
    """Every rollout: stages, services, verdicts and who serves what now."""
    with ledger_of(load_settings(home), read_only=True) as ledger:
        rows = [_rollout_row(item) for item in ledger.rollouts(model)]
    if as_json:
        print_json(rows)
    elif not rows:
        click.echo("no staged rollouts")
    for row in [] if as_json else rows:
        click.echo(
            f"rollout {row['id']}: {row['model']} v{row['from']} -> v{row['version']} "
            f"{row['status']} (check {row['check']!r}, started by {row['started_by']})"
        )
        for stage in row["stages"]:
            numbers = ", ".join(f"{k} {v:.4g}" for k, v in sorted(stage["metrics"].items()))
            detail = stage["reason"] or numbers
            click.echo(
                f"  {stage['name']:<10} {stage['status']:<12} {', '.join(stage['services'])}"
                + (f"  [{detail}]" if detail else "")
            )
    return 0


def _rollout_row(item: Rollout) -> dict[str, Any]:
    from aiops_assets.core.rollout import assignments

    return {
        "id": item.rollout_id,
        "model": item.model_name,
        "version": item.to_version,
        "from": item.from_version,
        "status": item.status,
        "started_by": item.actor,
        "started_at": item.started_at.isoformat(),
        "check": item.plan.get("check"),
        "stages": [
            {
                "name": stage.name,
                "services": list(stage.services),
                "status": stage.status,
                "metrics": stage.evidence.get("metrics", {}),
                "reason": stage.evidence.get("reason", ""),
                "by": stage.actor,
            }
            for stage in item.stages
        ],
        "serving": assignments(item),
    }


@rollout.command()
@common_options
@location_options
@click.argument("version", type=int)
@click.option(
    "--plan",
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
    help="a rollout plan YAML (default: the packaged one)",
)
@click.option("--reason", required=True, help=REASON_HELP)
@click.option(
    "--override-gate",
    is_flag=True,
    help="roll out a version the promotion gate refused (needs --override-reason)",
)
@click.option("--override-reason", default="", help="why the gate's refusal is overridden; audited")
def start(
    home: Path | None,
    as_json: bool,
    version: int,
    plan: Path | None,
    reason: str,
    override_gate: bool,
    override_reason: str,
) -> int:
    """Roll a version out by stages (needs the promote permission).

    A version the promotion gate refused rolls out only with --override-gate and a reason.
    """
    from aiops_assets.cli.registry import require_version
    from aiops_assets.core.registry import CHAMPION, MODEL_NAME

    if override_gate != bool(override_reason.strip()):
        raise CliError("--override-gate and --override-reason go together (the reason is audited)")
    settings = load_settings(home)
    champion_assets(settings, ("champion_model",))  # a location without one is refused first
    with ledger_of(settings) as ledger:
        require_version(ledger, MODEL_NAME, version)
        # A rollout ends in a promotion: whoever starts one must be allowed to promote.
        actor = authorized_actor(settings, ledger, "promote", f"{MODEL_NAME}:{CHAMPION}")
    config: dict[str, Any] = {"action": "rollout", "version": version, "reason": reason}
    if plan is not None:
        config["rollout_plan"] = str(plan.absolute())
    if override_gate:
        config.update(override_gate=True, override_reason=override_reason)
    run = materialize_champion(
        settings,
        home_given=home is not None,
        assets=("champion_model",),
        config=config,
        actor=actor,
    )
    [materialization] = run.asset_materializations_for_node("champion_model")
    instance = settings.instance_home(home_given=home is not None)
    message = materialization.metadata["reason"].value
    emit(
        {"message": message, "run_id": run.run_id},
        f"{message}; run {run.run_id} in {instance}",
        as_json=as_json,
    )
    return 0


@rollout.command()
@common_options
@model_option
@click.option("--reason", required=True, help=REASON_HELP)
def halt(home: Path | None, as_json: bool, model: str, reason: str) -> int:
    """Stop the running rollout now: every service back on the champion (needs rollback)."""
    from aiops_assets.core.registry import CHAMPION, MODEL_NAME
    from aiops_assets.core.rollout import RolloutError
    from aiops_assets.core.rollout import halt as halt_rollout

    settings = load_settings(home)
    with ledger_of(settings, read_only=True) as ledger:
        actor = authorized_actor(settings, ledger, "rollback", f"{MODEL_NAME}:{CHAMPION}")
        running = [item for item in ledger.rollouts(model) if item.status == "running"]
        if not running:
            raise CliError(f"{model} has no running rollout", EXIT_FAILED)
        try:
            halted = halt_rollout(ledger, running[-1].rollout_id, actor=actor, reason=reason)
        except RolloutError as error:
            raise CliError(str(error), EXIT_FAILED) from error
    emit(
        {"rollout_id": halted.rollout_id, "stage": halted.stages[-1].name},
        f"rollout {halted.rollout_id} halted at stage {halted.stages[-1].name}: every service is "
        f"back on v{halted.from_version}",
        as_json=as_json,
    )
    return 0
