"""The ``aiops`` command: a click group whose command modules load only when called.

As in Dagster's own CLI, each command group lives in its own module with its options and its
handler. Unlike it, the top-level help lists the commands from the table below without importing
them, so ``aiops --help`` costs click and nothing else; a command module imports its heavy
dependencies (Dagster, pandas, SQLAlchemy) inside its handler, so ``aiops registry --help`` stays
as cheap. Every failure leaves through :func:`main`: a user mistake is one line and exit 2, an
internal error one line (the traceback with ``--verbose``) and exit 1.
"""

from __future__ import annotations

import importlib
import sys
import traceback
from collections.abc import Sequence
from typing import Any

import click

from aiops_assets.cli._common import STATE, CliError, Group

# name -> (module:attribute, one-line help shown by `aiops --help`)
COMMANDS: dict[str, tuple[str, str]] = {
    "demo": (
        "demo:demo",
        "materialize the whole reference pipeline on a generated two-week scenario",
    ),
    "registry": ("registry:registry", "model versions, aliases and their history"),
    "audit": ("audit:audit", "the tamper-evident audit log"),
    "reproduce": (
        "reproduce:reproduce",
        "re-run a model's training from its capsule and verify hashes and metrics",
    ),
    "capsule": ("reproduce:capsule", "export or import a portable capsule bundle"),
    "runs": ("runs:runs", "search and compare recorded training runs"),
    "featureset": ("experiment:featureset", "feature-set versions and their lifecycle"),
    "flags": ("experiment:flags", "which versions serve which services"),
    "env": ("experiment:env", "the environment AIOPS_ENV selects, and what it allows"),
    "nab": (
        "nab:nab",
        "the Numenta Anomaly Benchmark: verify our scorer, evaluate the pipeline",
    ),
    "backfill": (
        "backfill:backfill",
        "materialize the daily assets for every day of a range, oldest first",
    ),
    "rollout": ("rollout:rollout", "staged model rollouts: start one, see its stages, halt it"),
    "incident": (
        "incident:incident",
        "line a model's performance drop up with the changes before it, ranked",
    ),
    "drift": ("drift:drift", "drift episodes: acknowledge a known shift so it stops paging"),
}


class LazyGroup(Group):
    """A group that imports a command's module the first time the command is asked for."""

    def __init__(self, *args: Any, lazy: dict[str, tuple[str, str]], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lazy = lazy

    def list_commands(self, ctx: click.Context) -> list[str]:
        return [*super().list_commands(ctx), *self.lazy]

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.commands or cmd_name not in self.lazy:
            return super().get_command(ctx, cmd_name)
        module_name, _, attribute = self.lazy[cmd_name][0].partition(":")
        module = importlib.import_module(f"{__name__}.{module_name}")
        command: click.Command = getattr(module, attribute)
        self.add_command(command, cmd_name)
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        # The table's help, not the modules': listing must not import them.
        rows = [(name, help_text) for name, (_, help_text) in self.lazy.items()]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("aiops-assets")
    except PackageNotFoundError:
        return "unknown (not installed)"


@click.group(
    cls=LazyGroup,
    lazy=COMMANDS,
    name="aiops",
    help="AIOps model operations on Dagster.",
    epilog='Shell completion: eval "$(_AIOPS_COMPLETE=bash_source aiops)" (zsh_source, '
    "fish_source for the others).",
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.version_option(_version(), "--version", prog_name="aiops", message="%(prog)s %(version)s")
def cli() -> None:
    """The group itself does nothing: each command does its own work."""


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``aiops`` with ``argv`` (default: the process's arguments); the exit code."""
    STATE.verbose, STATE.command = False, "aiops"
    arguments = list(sys.argv[1:] if argv is None else argv)
    try:
        result = cli.main(args=arguments, prog_name="aiops", standalone_mode=False)
    except click.exceptions.NoArgsIsHelpError as error:  # `aiops`, `aiops registry`: the help
        click.echo(error.format_message(), err=True)
        return error.exit_code
    except click.UsageError as error:
        name = error.ctx.command_path if error.ctx else STATE.command
        _fail(name, f"error: {error.format_message()} (see `{name} --help`)")
        return error.exit_code
    except CliError as error:
        _fail(STATE.command, error.format_message())
        return error.status
    except click.ClickException as error:
        _fail(STATE.command, error.format_message())
        return error.exit_code
    except click.Abort:
        _fail(STATE.command, "aborted")
        return 130
    except Exception as error:  # an internal error: one line, the traceback with --verbose
        if STATE.verbose:
            traceback.print_exc()
        _fail(STATE.command, f"internal error: {type(error).__name__}: {error}")
        if not STATE.verbose:
            click.echo(f"{STATE.command}: rerun with --verbose for the traceback", err=True)
        return 1
    return result if isinstance(result, int) else 0


def _fail(command: str, message: str) -> None:
    click.echo(f"{command}: {message}", err=True)


__all__ = ["COMMANDS", "cli", "main"]
