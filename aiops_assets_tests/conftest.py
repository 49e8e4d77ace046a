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
    with dg.instance_for_test() as test_instance:
        yield test_instance


@pytest.fixture
def small_settings(tmp_path: Path) -> PipelineSettings:
    return PipelineSettings(start=date(2026, 1, 5), days=TEST_DAYS, home=tmp_path / "aiops")


def run_quietly(settings: PipelineSettings, instance: dg.DagsterInstance) -> DemoResult:
    return run_demo(settings, instance=instance, progress=io.StringIO())
