"""The shared printer and progress: tables fit the terminal, a bar on a terminal only."""

from __future__ import annotations

import io

import pytest

from aiops_assets.cli._common import (
    TerminalProgress,
    format_table,
    make_progress,
    output_width,
)
from aiops_assets.core.progress import LineProgress


def test_a_table_fits_the_width_by_cutting_the_widest_cells() -> None:
    rows = [["v1", "champion", "x" * 700], ["v2", "-", "short"]]
    text = format_table(["version", "alias", "reason"], rows, width=60)
    lines = text.splitlines()
    assert all(len(line) <= 60 for line in lines)
    assert lines[1].startswith("v1       champion  xxx") and lines[1].endswith("…")
    assert lines[2].rstrip().endswith("short")


def test_without_a_width_nothing_is_cut() -> None:
    text = format_table(["a", "b"], [["1" * 300, "2"]])
    assert "1" * 300 in text and "…" not in text


def test_the_width_comes_from_columns_and_a_pipe_gets_whole_rows(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("COLUMNS", "77")
    assert output_width() == 77
    monkeypatch.delenv("COLUMNS")
    monkeypatch.setattr("sys.stdout", io.StringIO())
    assert output_width() is None


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_terminal_gets_a_bar_and_a_pipe_numbered_lines() -> None:
    assert isinstance(make_progress(io.StringIO()), LineProgress)
    terminal = _Terminal()
    progress = make_progress(terminal)
    assert isinstance(progress, TerminalProgress)
    progress.begin(2, "two steps")
    progress.step("first")
    progress.note("a detail")
    progress.step("second")
    progress.end("done")
    shown = terminal.getvalue()
    assert "two steps\n" in shown and "        a detail\n" in shown
    assert "] 2/2 second" in shown and shown.endswith("done\n")
