"""``aiops demo``: the whole reference pipeline on a generated scenario, in a project-local home.

The arguments are checked before anything moves: a demo archives the previous one (ledger,
alerts, Dagster history) so that it replays the same story, and a typo must not cost a user their
working instance. The archive is named when it is made, with the command that brings it back
(``aiops demo --restore``).
"""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Any

import click

from aiops_assets.cli._common import (
    EXIT_FAILED,
    STATE,
    CliError,
    Command,
    common_options,
    iso_date,
    load_settings,
    make_progress,
    print_json,
    print_table,
    say,
)


@click.command(
    cls=Command,
    help="Materialize the reference pipeline (snapshot, features, training set, candidate and "
    "champion model) in a project-local Dagster instance, then print where to look. The "
    "previous demo in the same home is archived first and can be restored with --restore.",
)
@common_options
@click.option("--days", type=int, help="number of daily partitions (default: AIOPS_DAYS or 14)")
@click.option(
    "--start", callback=iso_date, help="first day, ISO date (default: AIOPS_START or 2026-01-05)"
)
@click.option("--seed", type=int, help="scenario seed (default: AIOPS_SEED or 20260105)")
@click.option("--list-archives", is_flag=True, help="list the archived earlier demos and exit")
@click.option(
    "--restore",
    metavar="[NAME|latest]",
    is_flag=False,
    flag_value="latest",
    default=None,
    help="bring an archived demo back (the newest without NAME); the current one is archived",
)
def demo(
    home: Path | None,
    as_json: bool,
    days: int | None,
    start: date | None,
    seed: int | None,
    list_archives: bool,
    restore: str | None,
) -> int:
    settings = load_settings(home, days=days, start=start, seed=seed)
    if list_archives:
        return _list_archives(settings, as_json=as_json)
    if restore is not None:
        return _restore(settings, restore, home_given=home is not None, as_json=as_json)
    from aiops_assets.reference.demo import validate_demo_settings

    _checked(validate_demo_settings, settings)
    return _run(settings, home_given=home is not None, as_json=as_json)


def _checked(function: Any, *args: Any) -> Any:
    try:
        return function(*args)
    except ValueError as error:
        raise CliError(str(error)) from error


def _home_flag(settings: Any, home_given: bool) -> str:
    return f" --home {settings.home}" if home_given else ""


def _run(settings: Any, *, home_given: bool, as_json: bool) -> int:
    import dagster as dg

    from aiops_assets.reference import demo as reference_demo
    from aiops_assets.runner import prepare_instance

    dagster_home = settings.instance_home(home_given=home_given)
    archived = reference_demo.archive_previous_demo(settings, dagster_home)
    if archived is not None:
        say(
            f"the previous demo is archived in {archived}; bring it back with "
            f"`aiops demo --restore {archived.name}{_home_flag(settings, home_given)}`"
        )
    instance = prepare_instance(dagster_home)
    say(
        f"{settings.days} days from {settings.start}; instance {dagster_home}; "
        f"artifacts {settings.store_root}"
    )
    try:
        result = reference_demo.run_demo(
            settings, instance=instance, progress=make_progress(), verbose=STATE.verbose
        )
    except ValueError as error:
        raise CliError(str(error)) from error
    except dg.DagsterError as error:
        # Everything materialized before the failure stays in the instance and the store.
        raise CliError(
            f"a run failed: {error}; its logs are in the UI (`make dev`, instance {dagster_home})",
            EXIT_FAILED,
        ) from error
    finally:
        instance.dispose()
    if as_json:
        click.echo(json.dumps(result.to_json_dict(), sort_keys=True))
    else:
        click.echo(reference_demo.format_summary(result))
    return 0


def _list_archives(settings: Any, *, as_json: bool) -> int:
    from aiops_assets.reference.demo import list_demo_archives

    archives = list_demo_archives(settings)
    if as_json:
        print_json([{"name": path.name, "path": str(path)} for path in archives])
    elif not archives:
        click.echo(f"no archived demos in {settings.home.absolute() / 'archive'}")
    else:
        print_table(["name", "path"], [[path.name, str(path)] for path in archives])
    return 0


def _restore(settings: Any, name: str, *, home_given: bool, as_json: bool) -> int:
    from aiops_assets.reference.demo import restore_demo_archive

    chosen = None if name == "latest" else name
    restored = _checked(restore_demo_archive, settings, chosen)
    if as_json:
        print_json({"restored": str(restored)})
    else:
        click.echo(
            f"restored the demo archived in {restored}; the state it replaced is archived too "
            f"(`aiops demo --list-archives{_home_flag(settings, home_given)}`)"
        )
    return 0
