"""The provider's Prometheus and SQL sources against the real servers the Dagster side's source
tests use (a backfilled Prometheus, the local PostgreSQL): the daily DAG snapshots the same
bytes from them as from CSV files of the same telemetry, and the null-injection day is
quarantined. Without the server a test fails in CI and is skipped elsewhere, saying why."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pandas as pd
import pytest

from aiops_assets.airflow.config import ConfigError, ProviderConfig
from aiops_assets.airflow.records import asset_ref_name
from aiops_assets.airflow.steps_data import snapshot_step
from aiops_assets.core.pipeline.snapshot import SNAPSHOT_ASSET
from aiops_assets_tests.airflow.helpers import asset_events, config, dags, run
from aiops_assets_tests.core.telemetry.snapshots import (
    DAYS,
    FIRST_DAY,
    scenario_days,
    write_directory,
)
from aiops_assets_tests.core.telemetry.test_prometheus_source import mapping_text
from aiops_assets_tests.core.telemetry.test_sql_source import mapping_yaml
from aiops_assets_tests.core.telemetry.test_sql_source import schema as schema  # its fixture
from aiops_assets_tests.postgres import SERVER_URL
from aiops_assets_tests.prometheus import backfilled_prometheus

pytestmark = pytest.mark.services

ORDINARY = [(FIRST_DAY + timedelta(days=offset)).isoformat() for offset in range(DAYS - 1)]
NULL_DAY = (FIRST_DAY + timedelta(days=DAYS - 1)).isoformat()  # the scenario's NaN injection


@pytest.fixture(scope="module")
def generated() -> pd.DataFrame:
    return scenario_days()


@pytest.fixture(scope="module")
def prometheus(generated: pd.DataFrame) -> Iterator[str]:
    with backfilled_prometheus(generated) as url:
        yield url


def _from_files(generated: pd.DataFrame, root: Path) -> dict[str, str]:
    """The snapshot hash of each ordinary day from CSV files of the same telemetry."""
    files = ProviderConfig(
        home=root / "files-home",
        start=FIRST_DAY,
        days=DAYS,
        source_kind="directory",
        source_path=str(write_directory(generated, root / "files")),
    )
    return {day: snapshot_step(files, day).sha256 for day in ORDINARY}


def _daily_snapshots(
    monkeypatch: pytest.MonkeyPatch, kind: str, url: str, mapping: Path
) -> dict[str, str]:
    """The daily DAG over the three days with the source ``kind``: each ordinary day's hash."""
    for name, value in {
        "AIOPS_START": FIRST_DAY.isoformat(),
        "AIOPS_DAYS": str(DAYS),
        "AIOPS_SOURCE_KIND": kind,
        "AIOPS_SOURCE_URL": url,
        "AIOPS_SOURCE_MAPPING": str(mapping),
    }.items():
        monkeypatch.setenv(name, value)
    daily = dags()["daily"]
    for day in ORDINARY:
        states = run(daily, day=day)
        assert states["telemetry_snapshot"] == "success", (kind, day, states)
        assert states["features"] == "success", (kind, day, states)
    assert run(daily, day=NULL_DAY)["telemetry_snapshot"] == "failed"  # quarantined
    store = config().store()
    assert store.get_ref(asset_ref_name(SNAPSHOT_ASSET, NULL_DAY)) is None
    hashes = {}
    for day in ORDINARY:
        ref = store.get_ref(asset_ref_name(SNAPSHOT_ASSET, day))
        assert ref is not None, day
        hashes[day] = ref.sha256
    return hashes


def test_the_daily_dag_snapshots_prometheus_as_it_snapshots_files(
    aiops_home: Path,
    prometheus: str,
    generated: pd.DataFrame,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    mapping = tmp_path / "prometheus.yaml"
    mapping.write_text(mapping_text())
    hashes = _daily_snapshots(monkeypatch, "prometheus", prometheus, mapping)
    assert hashes == _from_files(generated, tmp_path)
    assert len(set(hashes.values())) == len(ORDINARY)
    event = asset_events("telemetry_snapshot")[-2]  # the last ordinary day's
    assert event["source"] == f"prometheus({prometheus}, {mapping})"


def test_the_daily_dag_snapshots_sql_as_it_snapshots_files(
    aiops_home: Path,
    schema: str,
    generated: pd.DataFrame,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    mapping = tmp_path / "sql.yaml"
    mapping.write_text(mapping_yaml(schema))
    hashes = _daily_snapshots(monkeypatch, "sql", SERVER_URL, mapping)
    assert hashes == _from_files(generated, tmp_path)
    event = asset_events("telemetry_snapshot")[-2]
    assert event["source"].startswith("sql(postgresql") and str(mapping) in event["source"]


def test_an_unreachable_source_fails_the_snapshot_in_one_line(
    aiops_home: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from aiops_assets.airflow.records import StepFailed
    from aiops_assets_tests.loopback_server import free_port

    mapping = tmp_path / "prometheus.yaml"
    mapping.write_text(mapping_text())
    down = ProviderConfig(
        home=aiops_home,
        source_kind="prometheus",
        source_url=f"http://user:hunter2@127.0.0.1:{free_port()}",
        source_mapping=str(mapping),
    )
    with pytest.raises(StepFailed) as failed:
        snapshot_step(down, ORDINARY[0])
    message = str(failed.value)
    assert "\n" not in message and "hunter2" not in message and "127.0.0.1" in message
    with pytest.raises(ConfigError, match="needs AIOPS_SOURCE_URL and AIOPS_SOURCE_MAPPING"):
        ProviderConfig(source_kind="sql", source_mapping=str(mapping))
