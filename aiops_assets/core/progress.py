"""Progress of long work (demo, backfill, NAB evaluation, reproduce, incident), told to whoever shows it.

The engine only says what it is doing; the CLI decides how it looks: a bar on a terminal, one
plain line per step otherwise (logs, CI), nothing for ``--json`` consumers that read stdout only.
"""

from __future__ import annotations

import sys
from typing import Protocol, TextIO


class Progress(Protocol):
    """Steps of a known (possibly growing) total, with detail lines between them."""

    def begin(self, total: int, label: str = "") -> None: ...

    def step(self, label: str) -> None:
        """The next step starts; ``label`` says what it does."""

    def note(self, line: str) -> None:
        """A detail worth reading (a failed check, a skipped day), shown under the current step."""

    def end(self, summary: str = "") -> None: ...


class LineProgress:
    """One numbered line per step: what a log file or a pipe should get."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self._stream = stream
        self.total = 0
        self.number = 0

    @property
    def stream(self) -> TextIO:
        # Looked up at use, not bound at import: a test (or pytest) may replace stderr meanwhile.
        return self._stream if self._stream is not None else sys.stderr

    def begin(self, total: int, label: str = "") -> None:
        self.total, self.number = total, 0
        if label:
            self._print(label)

    def step(self, label: str) -> None:
        self.number += 1
        self.total = max(self.total, self.number)
        self._print(f"[{self.number:>2}/{self.total}] {label}")

    def note(self, line: str) -> None:
        self._print(f"        {line}")

    def end(self, summary: str = "") -> None:
        if summary:
            self._print(summary)

    def _print(self, line: str) -> None:
        print(line, file=self.stream, flush=True)


class NoProgress:
    """Says nothing: for library callers and tests that only want the result."""

    def begin(self, total: int, label: str = "") -> None:
        return None

    def step(self, label: str) -> None:
        return None

    def note(self, line: str) -> None:
        return None

    def end(self, summary: str = "") -> None:
        return None
