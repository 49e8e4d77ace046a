"""``aiops rollout ...``: start, watch and halt a staged model rollout from a terminal.

``start`` goes through the ``champion_model`` asset (``action: rollout``), exactly as the
launchpad does, so the start is a materialization the UI shows and the asset's access check
applies; ``status`` reads the ledger; ``halt`` is the switch for "it hurts": every service goes
back to the champion at once, without waiting for the next check, audited with the reason.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from aiops_assets.cli import add_common_options
from aiops_assets.core.ledger import Ledger, Rollout
from aiops_assets.core.registry import MODEL_NAME
from aiops_assets.core.rollout import RolloutError, assignments, halt
from aiops_assets.reference.settings import PipelineSettings
from aiops_assets.registry_cli import (
    EXIT_DENIED,
    authorized_actor,
    materialize_champion,
    open_ledger,
)


def add_rollout_commands(commands: Any) -> None:
    rollout = commands.add_parser(
        "rollout", help="staged model rollouts: start one, see its stages, halt it"
    )
    rollout_commands = rollout.add_subparsers(dest="rollout_command", required=True)
    status = rollout_commands.add_parser(
        "status", help="every rollout: stages, services, verdicts and who serves what now"
    )
    add_common_options(status)
    status.add_argument("--model", default=MODEL_NAME, help="model name")
    start = rollout_commands.add_parser(
        "start", help="roll a version out by stages (needs the promote permission)"
    )
    add_common_options(start)
    start.add_argument("version", type=int, help="the version to roll out")
    start.add_argument("--plan", type=Path, help="a rollout plan YAML (default: the packaged one)")
    start.add_argument("--reason", required=True, help="why; recorded in the audit log")
    stop = rollout_commands.add_parser(
        "halt",
        help="stop the running rollout now: every service back on the champion "
        "(needs the rollback permission)",
    )
    add_common_options(stop)
    stop.add_argument("--model", default=MODEL_NAME, help="model name")
    stop.add_argument("--reason", required=True, help="why; recorded in the audit log")


def run_rollout_command(args: argparse.Namespace, settings: PipelineSettings) -> int:
    if args.rollout_command == "start":
        return _start(args, settings)
    ledger = open_ledger(settings)
    try:
        if args.rollout_command == "status":
            return _status(ledger.rollouts(args.model), as_json=args.json)
        return _halt(args, settings, ledger)
    finally:
        ledger.dispose()


def _status(rollouts: list[Rollout], *, as_json: bool) -> int:
    rows: list[dict[str, Any]] = [
        {
            "id": rollout.rollout_id,
            "model": rollout.model_name,
            "version": rollout.to_version,
            "from": rollout.from_version,
            "status": rollout.status,
            "started_by": rollout.actor,
            "started_at": rollout.started_at.isoformat(),
            "check": rollout.plan.get("check"),
            "stages": [
                {
                    "name": stage.name,
                    "services": list(stage.services),
                    "status": stage.status,
                    "metrics": stage.evidence.get("metrics", {}),
                    "reason": stage.evidence.get("reason", ""),
                    "by": stage.actor,
                }
                for stage in rollout.stages
            ],
            "serving": assignments(rollout),
        }
        for rollout in rollouts
    ]
    if as_json:
        print(json.dumps(rows, sort_keys=True))
        return 0
    if not rows:
        print("no staged rollouts")
        return 0
    for row in rows:
        print(
            f"rollout {row['id']}: {row['model']} v{row['from']} -> v{row['version']} "
            f"{row['status']} (check {row['check']!r}, started by {row['started_by']})"
        )
        for stage in row["stages"]:
            numbers = ", ".join(f"{k} {v:.4g}" for k, v in sorted(stage["metrics"].items()))
            detail = stage["reason"] or numbers
            print(
                f"  {stage['name']:<10} {stage['status']:<12} {', '.join(stage['services'])}"
                + (f"  [{detail}]" if detail else "")
            )
    return 0


def _halt(args: argparse.Namespace, settings: PipelineSettings, ledger: Ledger) -> int:
    actor = authorized_actor(settings, ledger, "rollback", "rollout halt")
    if actor is None:
        return EXIT_DENIED
    running = [item for item in ledger.rollouts(args.model) if item.status == "running"]
    if not running:
        print(f"aiops rollout halt: {args.model} has no running rollout", file=sys.stderr)
        return 1
    try:
        halted = halt(ledger, running[-1].rollout_id, actor=actor, reason=args.reason)
    except RolloutError as error:
        print(f"aiops rollout halt: {error}", file=sys.stderr)
        return 1
    print(
        f"rollout {halted.rollout_id} halted at stage {halted.stages[-1].name}: every service is "
        f"back on v{halted.from_version}"
    )
    return 0


def _start(args: argparse.Namespace, settings: PipelineSettings) -> int:
    ledger = open_ledger(settings)
    try:
        # A rollout ends in a promotion: whoever starts one must be allowed to promote.
        actor = authorized_actor(settings, ledger, "promote", "rollout start")
    finally:
        ledger.dispose()
    if actor is None:
        return EXIT_DENIED
    config: dict[str, Any] = {"action": "rollout", "version": args.version, "reason": args.reason}
    if args.plan is not None:
        config["rollout_plan"] = str(args.plan.absolute())
    run = materialize_champion(
        settings,
        home_given=args.home is not None,
        assets=("champion_model",),
        config=config,
        actor=actor,
        command="rollout start",
    )
    if run is None:
        return 1
    [materialization] = run.asset_materializations_for_node("champion_model")
    home = settings.instance_home(home_given=args.home is not None)
    print(f"{materialization.metadata['reason'].value}; run {run.run_id} in {home}")
    return 0
