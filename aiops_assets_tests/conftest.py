from __future__ import annotations

import io
import os
import tempfile
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import dagster as dg
import pytest

from aiops_assets.reference.demo import DemoResult, run_demo
from aiops_assets.reference.settings import PipelineSettings
from aiops_assets_tests.paths import NAB_ROOT


def pytest_configure(config: pytest.Config) -> None:
    """Audit keys live outside the home, by default in ``~/.config/aiops/keys``: point the
    config folder at a per-session temporary one (per xdist worker too), so no test writes keys
    into the real one. XDG_CONFIG_HOME, not AIOPS_KEY_DIR: the CLI tests clear AIOPS_*."""
    del config
    os.environ.pop("AIOPS_KEY_DIR", None)
    os.environ["XDG_CONFIG_HOME"] = tempfile.mkdtemp(prefix="aiops-test-config-")


@pytest.fixture
def nab_root() -> Path:
    """The shared NAB folder; missing, a test fails in CI and is skipped elsewhere (said why)."""
    if (NAB_ROOT / "MANIFEST.tsv").is_file():
        return NAB_ROOT
    reason = f"shared NAB data not found at {NAB_ROOT}"
    if os.environ.get("CI") == "true":
        pytest.fail(reason)
    print(reason)
    pytest.skip(reason)


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


@pytest.fixture(scope="session")
def trained_home(tmp_path_factory: pytest.TempPathFactory) -> PipelineSettings:
    """A home (store + ledger) after a short demo: a champion with its capsule chain.

    Shared read-only by the reproducibility tests; a test that alters anything copies it first.
    """
    settings = PipelineSettings(
        start=date(2026, 1, 5), days=TEST_DAYS, home=tmp_path_factory.mktemp("trained") / "aiops"
    )
    with dg.DagsterInstance.ephemeral() as instance:
        run_quietly(settings, instance)
    from aiops_assets.resources import close_ledgers

    close_ledgers()
    return settings


@pytest.fixture(autouse=True)
def _no_inherited_terminal_width(monkeypatch: pytest.MonkeyPatch) -> None:
    """pytest-xdist workers inherit COLUMNS=80, which the CLI's printer honours; a test that
    wants a width sets COLUMNS itself."""
    monkeypatch.delenv("COLUMNS", raising=False)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """A test on a trained home waits for a six-day demo first: it belongs to the full lane."""
    for item in items:
        if "trained_home" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.slow)
