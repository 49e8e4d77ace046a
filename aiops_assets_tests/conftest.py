from __future__ import annotations

import io
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import dagster as dg
import pytest

from aiops_assets.demo import DemoResult, run_demo
from aiops_assets.settings import PipelineSettings

# Six days: four for the holdout (the default) and two to train on; the smallest honest pipeline.
TEST_DAYS = 6


@pytest.fixture
def instance() -> Iterator[dg.DagsterInstance]:
    """An in-memory instance: the SQLite one spends most of a test run in fsync-ed event writes.

    The CLI tests run the real thing (a SQLite instance in DAGSTER_HOME) end to end.
    """
    with dg.DagsterInstance.ephemeral() as test_instance:
        yield test_instance


@pytest.fixture
def small_settings(tmp_path: Path) -> PipelineSettings:
    return PipelineSettings(start=date(2026, 1, 5), days=TEST_DAYS, home=tmp_path / "aiops")


def run_quietly(settings: PipelineSettings, instance: dg.DagsterInstance) -> DemoResult:
    return run_demo(settings, instance=instance, progress=io.StringIO())
