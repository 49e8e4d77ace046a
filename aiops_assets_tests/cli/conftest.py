"""What the CLI tests share: `aiops` called in-process, in a folder of the test's own, with no
AIOPS_/DAGSTER_ variable (or terminal width) of the developer's leaking in."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from aiops_assets.cli import main
from aiops_assets.reference.settings import PipelineSettings
from aiops_assets.resources import close_ledgers

Aiops = Callable[..., tuple[int, str, str]]


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    for name in list(os.environ):
        if name.startswith(("AIOPS_", "DAGSTER_")) or name == "COLUMNS":
            monkeypatch.delenv(name)
    # No project dagster.yaml here: an instance gets the minimal offline one.
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture
def aiops(clean_env: Path, capsys: pytest.CaptureFixture[str]) -> Aiops:
    """``aiops(*argv)`` -> (exit code, stdout, stderr), in-process."""

    def run(*argv: str) -> tuple[int, str, str]:
        code = main(list(argv))
        close_ledgers()
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return run


@pytest.fixture
def copied_home(trained_home: PipelineSettings, clean_env: Path) -> Path:
    """A private copy of the trained home, free to change."""
    home = clean_env / "aiops"
    shutil.copytree(trained_home.home, home)
    return home
