"""The whole reference pipeline on the real local PostgreSQL: Dagster's instance and the ledger.

The demo (ingest, training, the promotion gate, scoring with its checks and the sensors' loop)
runs once against an instance built from the documented ``docker/dagster.postgres.yaml`` and a
ledger whose URL comes from ``AIOPS_LEDGER_URL``, each in its own throwaway database. The tests
then read back what landed in PostgreSQL, and compare the demo's summary with the same demo on
the embedded defaults: equal summaries mean PostgreSQL is reached by configuration alone.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import pytest
import sqlalchemy as sa
from dagster_postgres import (
    PostgresEventLogStorage,
    PostgresRunStorage,
    PostgresScheduleStorage,
)

from aiops_assets.core.ledger import Ledger
from aiops_assets.core.registry import CHAMPION, MODEL_NAME, verify_model
from aiops_assets.core.store import ArtifactStore
from aiops_assets.reference.demo import DemoResult, run_demo
from aiops_assets.reference.settings import PipelineSettings
from aiops_assets.resources import LedgerResource, close_ledgers
from aiops_assets_tests.conftest import TEST_DAYS, run_quietly
from aiops_assets_tests.postgres import throwaway_database
from aiops_assets_tests.postgres_instance import postgres_instance_home

START = "2026-01-05"

pytestmark = pytest.mark.services


@dataclass(frozen=True)
class PostgresDemo:
    settings: PipelineSettings
    result: DemoResult
    instance: dg.DagsterInstance
    instance_url: str
    ledger_url: str


@pytest.fixture(scope="module")
def postgres_demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PostgresDemo]:
    root = tmp_path_factory.mktemp("pipeline_postgres")
    with (
        postgres_instance_home(root / "dagster_home", "aiops_pipeline") as instance_home,
        throwaway_database("aiops_pipeline_ledger") as ledger_url,
    ):
        ledger_text = ledger_url.render_as_string(hide_password=False)
        # Exactly what a deployment sets: the settings come from the environment.
        settings = PipelineSettings.from_env(
            {
                "AIOPS_HOME": str(root / "aiops"),
                "AIOPS_START": START,
                "AIOPS_DAYS": str(TEST_DAYS),
                "AIOPS_LEDGER_URL": ledger_text,
            }
        )
        try:
            with instance_home.open() as instance:
                result = run_demo(settings, instance=instance, progress=io.StringIO())
                yield PostgresDemo(
                    settings=settings,
                    result=result,
                    instance=instance,
                    instance_url=instance_home.database_url.render_as_string(hide_password=False),
                    ledger_url=ledger_text,
                )
        finally:
            close_ledgers()


def _scalar(url: str, query: str) -> int:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as connection:
            return int(connection.execute(sa.text(query)).scalar_one())
    finally:
        engine.dispose()


def test_the_instance_is_the_documented_postgres_variant_and_holds_the_events(
    postgres_demo: PostgresDemo,
) -> None:
    instance = postgres_demo.instance
    assert isinstance(instance.run_storage, PostgresRunStorage)
    assert isinstance(instance.event_log_storage, PostgresEventLogStorage)
    assert isinstance(instance.schedule_storage, PostgresScheduleStorage)
    # Read straight from the database: the events are in PostgreSQL, not in a local file. The
    # monitoring report is a view of the checks, not a data version of the demo's result.
    stored = _scalar(
        postgres_demo.instance_url,
        "SELECT count(DISTINCT asset_key || coalesce(partition, '')) FROM event_logs "
        "WHERE dagster_event_type = 'ASSET_MATERIALIZATION' "
        "AND asset_key NOT LIKE '%monitoring_report%'",
    )
    assert stored == len(postgres_demo.result.data_versions) == 3 * TEST_DAYS + 6
    assert not list(Path(str(instance.root_directory)).glob("**/*.db"))


def test_every_data_version_and_check_result_is_the_one_in_the_postgres_event_log(
    postgres_demo: PostgresDemo,
) -> None:
    instance = postgres_demo.instance
    result = postgres_demo.result
    store = ArtifactStore(postgres_demo.settings.store_root)
    for label, version in result.data_versions.items():
        name, _, partition = label.rstrip("]").partition("[")
        records = instance.fetch_materializations(
            dg.AssetRecordsFilter(
                asset_key=dg.AssetKey(name), asset_partitions=[partition] if partition else None
            ),
            limit=1,
        ).records
        assert records, f"{label} is not in the PostgreSQL event log"
        materialization = records[0].asset_materialization
        assert materialization is not None and materialization.tags is not None
        assert materialization.tags["dagster/data_version"] == version, label
        assert materialization.metadata["sha256"].value == version, label
        assert store.verify(version), label

    assert len(result.checks) > 2 * TEST_DAYS
    for label, outcome in result.checks.items():
        name, _, partition = label.rstrip("]").partition("[")
        asset, check_name = name.rsplit(".", 1)
        history = instance.event_log_storage.get_asset_check_execution_history(
            dg.AssetCheckKey(dg.AssetKey(asset), check_name), limit=100
        )
        latest = next(record for record in history if record.partition == (partition or None))
        assert latest.status.value == ("SUCCEEDED" if outcome["passed"] else "FAILED"), label


def test_the_ledger_on_postgresql_holds_the_registry_and_a_valid_audit_chain(
    postgres_demo: PostgresDemo,
) -> None:
    settings = postgres_demo.settings
    result = postgres_demo.result
    ledger: Ledger = LedgerResource(
        url=settings.ledger_url, key_file=str(settings.audit_key_file)
    ).get_ledger()
    assert ledger.url.startswith("postgresql+psycopg2://")
    assert not (settings.home / "ledger.db").exists()
    versions = ledger.list_versions(MODEL_NAME)
    assert result.registry["versions"]
    assert (
        len(versions)
        == len(result.registry["versions"])
        == _scalar(postgres_demo.ledger_url, "SELECT count(*) FROM model_versions")
    )
    champion = ledger.get_alias(MODEL_NAME, CHAMPION)
    assert champion is not None and result.registry["champion"] == f"v{champion.version}"
    store = ArtifactStore(settings.store_root)
    assert verify_model(store, champion).sha256 == result.model_sha256
    verification = ledger.verify_audit()
    assert verification.ok, verification.summary()
    assert verification.entries == result.audit["entries"] > len(versions)


def test_the_summary_equals_the_same_demo_on_the_embedded_defaults(
    postgres_demo: PostgresDemo, tmp_path: Path
) -> None:
    embedded = PipelineSettings.from_env(
        {"AIOPS_HOME": str(tmp_path / "aiops"), "AIOPS_START": START, "AIOPS_DAYS": str(TEST_DAYS)}
    )
    assert embedded.ledger_url.startswith("sqlite:///")
    try:
        with dg.DagsterInstance.ephemeral() as instance:
            reference = run_quietly(embedded, instance)
    finally:
        close_ledgers()
    assert postgres_demo.result.to_json_dict() == reference.to_json_dict()
