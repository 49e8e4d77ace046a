"""Where the tests find their files, so a test module can move without its paths breaking."""

from __future__ import annotations

from pathlib import Path

TESTS = Path(__file__).resolve().parent
REPO = TESTS.parent
DOCS = REPO / "docs"
BENCHMARKS = REPO / "benchmarks"
BAD_INPUTS = TESTS / "data" / "bad_inputs"
# The real NAB data lives beside the project (../shared), never inside it.
NAB_ROOT = REPO.parent / "shared" / "data" / "nab"
