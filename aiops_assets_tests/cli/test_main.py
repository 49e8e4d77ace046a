"""The `aiops` entry point: cheap help, a version, and one line for every mistake."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import aiops_assets.cli as cli
from aiops_assets.cli import main
from aiops_assets_tests.cli.conftest import Aiops

# Airflow too: the provider is an extra, and its home is read by `aiops incident` without it.
HEAVY = ("dagster", "pandas", "sqlalchemy", "numpy", "airflow")


@pytest.mark.subprocess
@pytest.mark.parametrize(
    "argv", [["--help"], ["registry", "--help"], ["demo", "--help"], ["incident", "--help"]]
)
def test_help_imports_no_heavy_dependency(argv: list[str]) -> None:
    probe = (
        "import sys\n"
        "from aiops_assets.cli import main\n"
        f"code = main({argv!r})\n"
        f"heavy = sorted(name for name in {HEAVY!r} if name in sys.modules)\n"
        "assert code == 0 and not heavy, heavy\n"
    )
    completed = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=120
    )
    assert completed.returncode == 0, completed.stderr
    assert "Usage: aiops" in completed.stdout


def test_every_command_is_listed_and_loads(aiops: Aiops) -> None:
    code, out, _ = aiops("--help")
    assert code == 0
    for name in cli.COMMANDS:
        assert f"  {name} " in out
        assert aiops(name, "--help")[0] == 0
    assert "_AIOPS_COMPLETE=bash_source aiops" in out


def test_version(aiops: Aiops) -> None:
    code, out, _ = aiops("--version")
    assert code == 0 and out.startswith("aiops ")


@pytest.mark.parametrize(
    ("argv", "start"),
    [
        (["registry", "promote", "x", "--reason", "r"], "aiops registry promote: error: "),
        (["registry", "promote", "1"], "aiops registry promote: error: Missing option '--reason'"),
        (["regsitry"], "aiops: error: No such command 'regsitry'"),
        (["runs", "search", "--metrc", "f1>0"], "aiops runs search: error: No such option"),
    ],
)
def test_a_usage_mistake_is_one_line_and_exit_2(aiops: Aiops, argv: list[str], start: str) -> None:
    code, out, err = aiops(*argv)
    assert code == 2 and out == ""
    assert len(err.splitlines()) == 1, err
    assert err.startswith(start), err
    assert "--help`)" in err


def test_an_internal_error_is_one_line_unless_verbose(
    aiops: Aiops, monkeypatch: pytest.MonkeyPatch, clean_env: Path
) -> None:
    from aiops_assets.cli import experiment

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("the disk is on fire")

    monkeypatch.setattr(experiment, "load_settings", broken)
    code, _, err = aiops("env")
    assert code == 1
    assert err.splitlines() == [
        "aiops env: internal error: RuntimeError: the disk is on fire",
        "aiops env: rerun with --verbose for the traceback",
    ]
    code, _, err = aiops("env", "--verbose")
    assert code == 1 and "Traceback (most recent call last)" in err


def test_main_reads_the_process_arguments(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "argv", ["aiops", "--version"])
    assert main() == 0


def test_a_group_without_a_command_shows_its_help(aiops: Aiops) -> None:
    code, out, err = aiops("registry")
    assert code == 2 and out == ""
    assert err.startswith("Usage: aiops registry") and "promote" in err
