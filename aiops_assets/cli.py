"""The ``aiops`` command."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from datetime import date
from pathlib import Path

from aiops_assets.settings import PipelineSettings


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
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "demo":
        return _demo(args)
    raise AssertionError(f"unhandled command {args.command}")


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

    from aiops_assets.demo import format_summary, prepare_instance, run_demo

    dagster_home = (
        Path(os.environ["DAGSTER_HOME"])
        if os.environ.get("DAGSTER_HOME") and args.home is None
        else settings.dagster_home
    )
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
