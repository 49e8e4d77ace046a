"""What every ``aiops`` command shares: the home, ``--home``/``--json``/``--verbose``, the code
location (``-m``/``-f``/``-w``), the ledger, the acting identity, one table/JSON printer, progress,
and the one way a mistake is reported.

This module is imported by ``aiops --help``: it imports click and the standard library only. The
ledger (SQLAlchemy), the policy and Dagster are imported inside the functions that need them.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import sys
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO, TypeVar

import click

from aiops_assets.core.progress import LineProgress

if TYPE_CHECKING:
    import dagster as dg

    from aiops_assets.cli.location import Pointer
    from aiops_assets.core.ledger import Ledger
    from aiops_assets.core.progress import Progress
    from aiops_assets.reference.settings import PipelineSettings

EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_DENIED = 3
# Spelled here, not imported from core.registry, so `aiops --help` does not import SQLAlchemy.
MODEL_NAME_DEFAULT = "anomaly_detector"
ELLIPSIS = "…"
_MIN_CELL = 6

F = TypeVar("F", bound=Callable[..., Any])


class CliError(click.ClickException):
    """A mistake the user can fix: shown as one line ``aiops <command>: <message>``, no
    traceback, exit 2 (or ``status``: 3 for a refused permission, 1 for a failed action)."""

    def __init__(self, message: str, status: int = EXIT_USAGE) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class _State:
    """What ``main`` needs to know after the command ran: which one it was, how loudly to fail."""

    verbose: bool = False
    command: str = "aiops"


STATE = _State()


class Command(click.Command):
    """A command that remembers its name for the error line ``main`` prints after it ended."""

    def invoke(self, ctx: click.Context) -> Any:
        STATE.command = ctx.command_path
        return super().invoke(ctx)


class Group(click.Group):
    """A command group whose commands are :class:`Command` (and subgroups :class:`Group`)."""

    command_class = Command

    def invoke(self, ctx: click.Context) -> Any:
        STATE.command = ctx.command_path
        return super().invoke(ctx)


Group.group_class = Group


# --- options ----------------------------------------------------------------------------------


def _set_verbose(ctx: click.Context, param: click.Parameter, value: bool) -> bool:
    if value:
        STATE.verbose = True
    return value


def verbose_option(command: F) -> F:
    return click.option(
        "--verbose",
        is_flag=True,
        expose_value=False,
        is_eager=True,
        callback=_set_verbose,
        help="show Dagster's own log and full tracebacks",
    )(command)


def json_option(command: F) -> F:
    return click.option("--json", "as_json", is_flag=True, help="print JSON instead of a table")(
        command
    )


def home_option(command: F) -> F:
    return click.option(
        "--home",
        type=click.Path(path_type=Path, file_okay=False),
        default=None,
        help="folder of the instance, store and ledger (default: AIOPS_HOME or .aiops)",
    )(command)


def common_options(command: F) -> F:
    """``--home``, ``--json`` and ``--verbose``, spelled the same on every command."""
    return home_option(json_option(verbose_option(command)))


def model_option(command: F) -> F:
    return click.option(
        "--model", default=MODEL_NAME_DEFAULT, show_default=True, help="model name"
    )(command)


_LOCATION = "aiops.location"


def _remember_location(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
    # ctx.meta is shared by the whole command chain: the handler reads it back by name.
    ctx.meta.setdefault(_LOCATION, {})[param.name] = value
    return value


def location_options(command: F) -> F:
    """The code location's options, spelled and read as Dagster's CLI spells them (``-m``, ``-f``,
    ``-w``, ``-a``, ``-d``, ``-l`` and their ``DAGSTER_*`` variables); the handler asks
    :func:`location_definitions` for what they name."""
    remember: dict[str, Any] = {"expose_value": False, "callback": _remember_location}
    options = [
        click.option(
            "-w",
            "--workspace",
            multiple=True,
            type=click.Path(dir_okay=False),
            help="a workspace.yaml naming the code location",
            **remember,
        ),
        click.option(
            "-f",
            "--python-file",
            multiple=True,
            type=click.Path(dir_okay=False),
            envvar="DAGSTER_PYTHON_FILE",
            help="a Python file whose top-level dg.Definitions is the code location",
            **remember,
        ),
        click.option(
            "-m",
            "--module-name",
            multiple=True,
            envvar="DAGSTER_MODULE_NAME",
            metavar="MODULE",
            help="a module whose top-level dg.Definitions is the code location",
            **remember,
        ),
        click.option("--package-name", multiple=True, hidden=True, **remember),
        click.option(
            "--autoload-defs-module-name",
            metavar="MODULE",
            help="a defs module (dg project) to load every definition from",
            **remember,
        ),
        click.option(
            "-a",
            "--attribute",
            envvar="DAGSTER_ATTRIBUTE",
            metavar="NAME",
            help="the Definitions attribute, when the module defines several",
            **remember,
        ),
        click.option(
            "-d",
            "--working-directory",
            envvar="DAGSTER_WORKING_DIRECTORY",
            metavar="DIR",
            help="where local modules are imported from (default: the current folder)",
            **remember,
        ),
        click.option(
            "-l",
            "--location",
            metavar="NAME",
            help="the code location's name, when the workspace has several",
            **remember,
        ),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def command_name() -> str:
    """``aiops registry promote``: how messages name the command that is running."""
    ctx = click.get_current_context(silent=True)
    return ctx.command_path if ctx is not None else STATE.command


# --- settings, home and ledger ----------------------------------------------------------------


def load_settings(home: Path | None = None, **overrides: Any) -> PipelineSettings:
    """The environment's settings with what the command line named; a bad variable is a
    user mistake (exit 2), not a traceback."""
    from aiops_assets.reference.settings import PipelineSettings

    try:
        settings = PipelineSettings.from_env()
        changes = {name: value for name, value in overrides.items() if value is not None}
        if home is not None:
            changes["home"] = home
        return settings.with_overrides(**changes) if changes else settings
    except ValueError as error:
        raise CliError(str(error)) from error


def sqlite_file(url: str) -> Path | None:
    prefix = "sqlite:///"
    return Path(url[len(prefix) :]) if url.startswith(prefix) else None


def require_home(settings: PipelineSettings) -> None:
    """A read-only command reads an existing home or says there is none: it never makes one
    (an empty ledger and a fresh key would "verify" nothing and look like a real home)."""
    ledger_file = sqlite_file(settings.ledger_url)
    if ledger_file is not None and not ledger_file.is_file():
        raise CliError(
            f"no aiops home at {settings.root.absolute()} (run `aiops demo` or set "
            "--home/AIOPS_HOME)"
        )


def open_ledger(settings: PipelineSettings, *, read_only: bool = False) -> Ledger:
    """The project's ledger; ``read_only`` refuses to create one (or a key) where there is none,
    and says when the key sits beside the data (a warning on stderr, not a failure)."""
    if read_only:
        require_home(settings)
    from aiops_assets.core.ledger import Ledger, LedgerError

    try:
        ledger = Ledger.from_env(
            settings.ledger_url, default_key_file=settings.audit_key_file, create_key=not read_only
        )
    except LedgerError as error:
        raise CliError(str(error)) from error
    ledger.anchor_to(settings.audit_witness_file)
    if read_only:
        for warning in ledger.key_warnings:
            say(f"warning: {warning}")
    return ledger


@contextlib.contextmanager
def ledger_of(settings: PipelineSettings, *, read_only: bool = False) -> Iterator[Ledger]:
    ledger = open_ledger(settings, read_only=read_only)
    try:
        yield ledger
    finally:
        ledger.dispose()


def authorized_actor(settings: PipelineSettings, ledger: Ledger, action: str, subject: str) -> str:
    """Who is acting, if the identity is well formed and the access policy lets them ``action``
    ``subject``; a refusal (audited by ``identify`` or ``authorize``) is ``refused: ...``, exit 3."""
    from aiops_assets.core.policy import (
        AccessDenied,
        AccessPolicy,
        ActorError,
        authorize,
        identify,
    )

    try:
        actor = identify(ledger, action=action, subject=subject)
        policy = AccessPolicy.load(settings.access_policy or None)
        authorize(policy, ledger, actor=actor, action=action, subject=subject)
    except (AccessDenied, ActorError) as error:
        raise CliError(f"refused: {error}", EXIT_DENIED) from error
    return actor


# --- the code location -----------------------------------------------------------------------


def location_pointer() -> Pointer:
    """The location the command's ``-m``/``-f``/``-w`` (or the current project) names; a
    location that cannot be resolved is one line, exit 2."""
    from aiops_assets.cli.location import LocationError, LocationOptions, resolve

    ctx = click.get_current_context(silent=True)
    given = dict(ctx.meta.get(_LOCATION, {})) if ctx is not None else {}
    options = LocationOptions(**{key: value for key, value in given.items() if value})
    try:
        return resolve(options)
    except LocationError as error:
        raise CliError(str(error)) from error


def location_definitions(settings: PipelineSettings) -> dg.Definitions:
    """The named location's definitions, loaded once per command; the reference is built from
    ``settings`` (so ``--home`` reaches its resources), any other location imported as is."""
    from aiops_assets.cli.location import LocationError, load_definitions

    ctx = click.get_current_context(silent=True)
    cached = ctx.meta.get(f"{_LOCATION}.definitions") if ctx is not None else None
    if cached is not None:
        return cached
    pointer = location_pointer()
    with dagster_output():
        if pointer.is_reference:
            from aiops_assets.reference.definitions import build_definitions

            definitions = build_definitions(settings)
        else:
            try:
                definitions = load_definitions(pointer)
            except LocationError as error:
                raise CliError(str(error)) from error
        definitions.resolve_asset_graph()  # once, here: Dagster's warnings stay quiet
    if ctx is not None:
        ctx.meta[f"{_LOCATION}.definitions"] = definitions
    return definitions


def require_reference(what: str) -> None:
    """Refuse a foreign location in a command built on the reference pipeline's specifics;
    ``what`` names what the location lacks."""
    pointer = location_pointer()
    if not pointer.is_reference:
        raise CliError(f"code location {pointer.name} ({pointer.describe()}) has no {what}")


def require_assets(definitions: dg.Definitions, names: Sequence[str], why: str) -> list[str]:
    """Those of ``names`` the location defines; the first one is required (``why`` says what
    for), the others are materialized with it when the location has them."""
    import dagster as dg

    graph = definitions.resolve_asset_graph()
    present = [name for name in names if dg.AssetKey(name) in graph.materializable_asset_keys]
    if not present or present[0] != names[0]:
        pointer = location_pointer()
        raise CliError(
            f"code location {pointer.name} ({pointer.describe()}) has no {names[0]} asset, "
            f"which {why}"
        )
    return present


def champion_assets(settings: PipelineSettings, assets: Sequence[str]) -> list[str]:
    """Which of ``assets`` (the champion asset first) the command materializes; a location
    without the champion asset is refused before anything is opened or run."""
    if location_pointer().is_reference:
        return list(assets)
    why = f"`{command_name()}` moves the champion with"
    return require_assets(location_definitions(settings), assets, why)


def materialize_champion(
    settings: PipelineSettings,
    *,
    home_given: bool,
    assets: Sequence[str],
    config: dict[str, Any],
    actor: str,
) -> Any:
    """One run of ``champion_model`` (and ``assets``' other members) with ``config``, in the
    project's instance, exactly as the sensors and the launchpad change the champion. A failed
    run is reported step by step and exits 1."""
    import dagster as dg

    from aiops_assets.core.policy import ACTOR_TAG
    from aiops_assets.runner import materialize_selection, prepare_instance, quiet

    selected = champion_assets(settings, assets)
    definitions = location_definitions(settings)
    run_config: dict[str, Any] = {"ops": {selected[0]: {"config": config}}}
    with dagster_output():
        run = materialize_selection(
            definitions,
            prepare_instance(settings.instance_home(home_given=home_given)),
            dg.AssetSelection.assets(*selected),
            run_config=run_config if STATE.verbose else quiet(run_config),
            tags={ACTOR_TAG: actor, "aiops/source": "cli"},
            raise_on_error=False,
        )
    if run.success:
        return run
    messages = [
        (event.step_failure_data.error.message.strip() if event.step_failure_data.error else "")
        or "step failed"
        for event in run.get_step_failure_events()
    ]
    raise CliError("; ".join(messages) or f"run {run.run_id} failed", EXIT_FAILED)


@contextlib.contextmanager
def dagster_output() -> Iterator[None]:
    """Dagster's own Python log and warnings stay out of the user's output unless --verbose."""
    if STATE.verbose:
        yield
        return
    logger = logging.getLogger("dagster")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.setLevel(level)


# --- output -----------------------------------------------------------------------------------


def print_json(payload: Any) -> None:
    click.echo(json.dumps(payload, sort_keys=True, default=str))


def emit(payload: Any, text: str, *, as_json: bool) -> None:
    """``payload`` as one JSON line for scripts, ``text`` for people."""
    if as_json:
        print_json(payload)
    else:
        click.echo(text)


def output_width() -> int | None:
    """The columns a table may use: ``COLUMNS``, else the terminal's; a pipe or a file gets
    whole rows (a script wanting every value uses ``--json``)."""
    if os.environ.get("COLUMNS", "").isdigit():
        return int(os.environ["COLUMNS"])
    if sys.stdout.isatty():
        return shutil.get_terminal_size().columns
    return None


def format_table(
    header: Sequence[str],
    rows: Sequence[Sequence[Any]],
    *,
    indent: str = "",
    width: int | None = None,
) -> str:
    """Left-aligned columns two spaces apart; with ``width``, the widest cells are cut (with an
    ellipsis) until each line fits."""
    table = [[str(cell) for cell in row] for row in [header, *rows]]
    widths = [max(len(cell) for cell in column) for column in zip(*table, strict=True)]
    if width is not None:
        widths = _fit(widths, width - len(indent) - 2 * (len(widths) - 1))
    return "\n".join(
        indent
        + "  ".join(
            _cut(cell, size).ljust(size) for cell, size in zip(row, widths, strict=True)
        ).rstrip()
        for row in table
    )


def print_table(header: Sequence[str], rows: Sequence[Sequence[Any]], *, indent: str = "") -> None:
    click.echo(format_table(header, rows, indent=indent, width=output_width()))


def _fit(widths: list[int], available: int) -> list[int]:
    fitted = list(widths)
    while sum(fitted) > available:
        widest = max(range(len(fitted)), key=lambda index: fitted[index])
        if fitted[widest] <= _MIN_CELL:
            break
        fitted[widest] -= 1
    return fitted


def _cut(cell: str, size: int) -> str:
    return cell if len(cell) <= size else cell[: max(size - 1, 0)] + ELLIPSIS


def say(message: str) -> None:
    """A line for the person at the terminal (stderr: stdout stays the command's result)."""
    click.echo(f"{command_name()}: {message}", err=True)


# --- progress ---------------------------------------------------------------------------------


class TerminalProgress(LineProgress):
    """A bar redrawn in place on stderr, with notes printed above it: for a person watching."""

    def __init__(self, stream: TextIO | None = None) -> None:
        super().__init__(stream)
        self._label = ""

    def step(self, label: str) -> None:
        self.number += 1
        self.total = max(self.total, self.number)
        self._label = label
        self._draw()

    def note(self, line: str) -> None:
        super().note(line)
        self._draw()

    def end(self, summary: str = "") -> None:
        self._clear()
        super().end(summary)

    def _draw(self) -> None:
        columns = shutil.get_terminal_size().columns
        done = int(20 * self.number / max(self.total, 1))
        bar = f"[{'#' * done}{' ' * (20 - done)}] {self.number}/{self.total} "
        self.stream.write("\r\x1b[2K" + _cut(bar + self._label, columns - 1))
        self.stream.flush()

    def _clear(self) -> None:
        self.stream.write("\r\x1b[2K")
        self.stream.flush()

    def _print(self, line: str) -> None:
        self._clear()
        self.stream.write(line + "\n")
        self.stream.flush()


def make_progress(stream: TextIO | None = None) -> Progress:
    """A bar on a terminal, plain numbered lines otherwise (logs, CI, a pipe)."""
    target = stream if stream is not None else sys.stderr
    if target.isatty():
        return TerminalProgress(stream)
    return LineProgress(stream)


def iso_date(ctx: click.Context, param: click.Parameter, value: str | None) -> date | None:
    """A click callback: an ISO date, or a one-line usage error showing the expected form."""
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError as error:
        raise click.BadParameter(
            f"expected an ISO date such as 2026-01-05, got {value!r}"
        ) from error


def parse_with(parser: Callable[[str], Any], text: str, what: str) -> Any:
    """``parser(text)``, a ValueError becoming one line naming the option."""
    try:
        return parser(text)
    except ValueError as error:
        raise CliError(f"{what}: {error}") from error


def mapping_rows(payload: Mapping[str, Any]) -> list[list[str]]:
    return [[str(key), str(value)] for key, value in payload.items()]
