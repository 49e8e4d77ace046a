"""The ``aiops`` command."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from datetime import date
from pathlib import Path
from typing import Any

from aiops_assets.reference.settings import PipelineSettings

# Spelled here, not imported from core.registry, so `aiops --help` does not import SQLAlchemy.
MODEL_NAME_DEFAULT = "anomaly_detector"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="aiops", description="AIOps model operations on Dagster.")
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser(
        "demo",
        help="materialize the whole reference pipeline on a generated two-week scenario",
        description=(
            "Materialize the reference pipeline (snapshot, features, training set, candidate and "
            "champion model) in a project-local Dagster instance, then print where to look."
        ),
    )
    demo.add_argument("--json", action="store_true", help="print the result as one JSON line, last")
    demo.add_argument(
        "--days", type=int, help="number of daily partitions (default: AIOPS_DAYS or 14)"
    )
    demo.add_argument(
        "--start", type=date.fromisoformat, help="first day, ISO date (default 2026-01-05)"
    )
    demo.add_argument("--seed", type=int, help="scenario seed (default: AIOPS_SEED or 20260105)")
    demo.add_argument(
        "--home", type=Path, help="folder for the instance and the artifact store (default .aiops)"
    )
    _add_registry_commands(commands)
    _add_reproduce_commands(commands)
    from aiops_assets.runs_cli import add_runs_commands

    add_runs_commands(commands)
    from aiops_assets.experiment_cli import add_experiment_commands

    add_experiment_commands(commands)
    from aiops_assets.nab_cli import add_nab_commands

    add_nab_commands(commands)
    from aiops_assets.backfill_cli import add_backfill_command

    add_backfill_command(commands)
    from aiops_assets.rollout_cli import add_rollout_commands

    add_rollout_commands(commands)
    incident = commands.add_parser(
        "incident",
        help="line a model's performance drop up with the changes before it, ranked",
        description=(
            "Find the last passing and first failing performance check, collect every data, "
            "code, feature-set, config, environment, alias and policy change upstream of the "
            "model around them, and rank the likely causes with the evidence."
        ),
    )
    add_common_options(incident)
    incident.add_argument("--model", default=MODEL_NAME_DEFAULT, help="model name")
    incident.add_argument(
        "--at", help="the incident at or before this time (ISO, or 2d ago); default the latest"
    )
    incident.add_argument("--metric", default="f1", help="performance metric to explain")
    incident.add_argument("--top", type=int, default=5, help="suspects to show")
    incident.add_argument(
        "--png", type=Path, help="also write the timeline plot (performance and top drift) here"
    )
    incident.add_argument(
        "--history-days",
        type=float,
        default=30.0,
        help="how far back to read changes and evaluations (default 30 days)",
    )
    audit = commands.add_parser("audit", help="the tamper-evident audit log")
    audit_commands = audit.add_subparsers(dest="audit_command", required=True)
    verify = audit_commands.add_parser(
        "verify",
        help="check the hash chain and HMAC of every entry; exit 1 naming each broken entry",
    )
    add_common_options(verify)
    return parser


def add_common_options(parser: argparse.ArgumentParser) -> None:
    """``--home`` and ``--json``, spelled the same on every aiops command."""
    parser.add_argument(
        "--home", type=Path, help="folder of the instance, store and ledger (default .aiops)"
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")


def _add_reproduce_commands(commands: Any) -> None:
    reproduce = commands.add_parser(
        "reproduce",
        help="re-run a model's training from its capsule and verify hashes and metrics",
        description=(
            "Re-execute the training recorded in a capsule (same feature snapshots from the store, "
            "same config and seeds) in a fresh process; compare the training-set and model hashes "
            "and the metrics; list every environment difference. Exits 1 on a mismatch."
        ),
    )
    add_common_options(reproduce)
    reproduce.add_argument(
        "target", help="champion | challenger | v3 | 3 | a capsule id | a run id (or a prefix)"
    )
    reproduce.add_argument(
        "--model", default=MODEL_NAME_DEFAULT, help="model name for aliases/versions"
    )
    capsule = commands.add_parser("capsule", help="export or import a portable capsule bundle")
    capsule_commands = capsule.add_subparsers(dest="capsule_command", required=True)
    export = capsule_commands.add_parser(
        "export", help="the capsule, its data and model, and uv.lock in one .tar.gz"
    )
    add_common_options(export)
    export.add_argument("target", help="as for `aiops reproduce`")
    export.add_argument("file", type=Path, help="the bundle to write (FILE.tar.gz)")
    export.add_argument(
        "--model", default=MODEL_NAME_DEFAULT, help="model name for aliases/versions"
    )
    imported = capsule_commands.add_parser("import", help="load a bundle into this store")
    add_common_options(imported)
    imported.add_argument("file", type=Path, help="a bundle written by `aiops capsule export`")


def _add_registry_commands(commands: Any) -> None:
    registry = commands.add_parser("registry", help="model versions, aliases and their history")
    registry_commands = registry.add_subparsers(dest="registry_command", required=True)
    listing = registry_commands.add_parser("list", help="every registered model version")
    add_common_options(listing)
    listing.add_argument("--model", default=MODEL_NAME_DEFAULT, help="model name")
    history = registry_commands.add_parser(
        "history", help="every alias change: from, to, who, when, why, run"
    )
    add_common_options(history)
    history.add_argument("--model", default=MODEL_NAME_DEFAULT, help="model name")
    history.add_argument("--alias", help="only this alias (champion, challenger, shadow)")
    promote = registry_commands.add_parser(
        "promote",
        help="make a version champion now, skipping the gate (needs the promote permission)",
    )
    add_common_options(promote)
    promote.add_argument("version", type=int, help="the version number to promote")
    promote.add_argument("--reason", required=True, help="why; recorded in the audit log")
    rollback = registry_commands.add_parser(
        "rollback",
        help="point champion back at the last version whose checks passed (or --to VERSION)",
    )
    add_common_options(rollback)
    rollback.add_argument("--to", type=int, default=0, help="a specific earlier version")
    rollback.add_argument("--reason", required=True, help="why; recorded in the audit log")


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "demo":
        return _demo(args)
    if args.command in ("reproduce", "capsule"):
        from aiops_assets.reproduce_cli import run_reproduce_command

        return run_reproduce_command(args, _settings(args))
    if args.command == "incident":
        from aiops_assets.incident_cli import run_incident_command

        return run_incident_command(args, _settings(args))
    if args.command == "runs":
        from aiops_assets.runs_cli import run_runs_command

        return run_runs_command(args, _settings(args))
    if args.command in ("featureset", "flags", "env"):
        from aiops_assets.experiment_cli import run_experiment_command

        return run_experiment_command(args, _settings(args))
    if args.command == "backfill":
        from aiops_assets.backfill_cli import run_backfill_command

        return run_backfill_command(args, _settings(args))
    if args.command == "rollout":
        from aiops_assets.rollout_cli import run_rollout_command

        return run_rollout_command(args, _settings(args))
    if args.command == "nab":
        from aiops_assets.nab_cli import run_nab_command

        return run_nab_command(args)
    if args.command in ("registry", "audit"):
        from aiops_assets.registry_cli import run_registry_command

        return run_registry_command(args, _settings(args))
    raise AssertionError(f"unhandled command {args.command}")


def _settings(args: argparse.Namespace) -> PipelineSettings:
    settings = PipelineSettings.from_env()
    return settings.with_overrides(home=args.home) if args.home is not None else settings


def _demo(args: argparse.Namespace) -> int:
    settings = PipelineSettings.from_env()
    overrides = {
        name: value
        for name, value in (
            ("days", args.days),
            ("start", args.start),
            ("seed", args.seed),
            ("home", args.home),
        )
        if value is not None
    }
    settings = settings.with_overrides(**overrides)
    # Only now import Dagster: `aiops --help` should answer at once.
    import dagster as dg

    from aiops_assets.reference.demo import archive_previous_demo, format_summary, run_demo
    from aiops_assets.runner import prepare_instance

    dagster_home = settings.instance_home(home_given=args.home is not None)
    archived = archive_previous_demo(settings, dagster_home)
    if archived is not None:
        print(f"aiops demo: the previous demo is kept in {archived}", file=sys.stderr)
    instance = prepare_instance(dagster_home)
    print(
        f"aiops demo: {settings.days} days from {settings.start}; instance {dagster_home}; "
        f"artifacts {settings.store_root}",
        file=sys.stderr,
    )
    try:
        result = run_demo(settings, instance=instance)
    except ValueError as error:
        print(f"aiops demo: error: {error}", file=sys.stderr)
        return 2
    except dg.DagsterError as error:
        # Everything materialized before the failure stays in the instance and the store.
        print(f"aiops demo: a run failed: {error}", file=sys.stderr)
        print(
            f"aiops demo: its logs are in the UI (`make dev`, instance {dagster_home})",
            file=sys.stderr,
        )
        return 1
    if args.json:
        print(json.dumps(result.to_json_dict(), sort_keys=True))
    else:
        print(format_summary(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
