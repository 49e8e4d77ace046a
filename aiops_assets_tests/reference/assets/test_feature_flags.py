"""The reference ``features`` asset computes, per service, the feature set the flags select:
among registered sets, the same columns for every service, and never what the environment
refuses."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from aiops_assets.core.features import FeatureSetSpec, compute_features
from aiops_assets.core.ledger import Ledger
from aiops_assets.core.lifecycle import register_feature_set
from aiops_assets.core.store import ArtifactStore
from aiops_assets.reference.definitions import build_definitions, ingest_selection
from aiops_assets.reference.settings import PipelineSettings
from aiops_assets.resources import close_ledgers
from aiops_assets.runner import daily_partition_keys, materialize_selection

PRODUCTION = FeatureSetSpec()
SAME_COLUMNS = FeatureSetSpec(version=2, min_periods=6)
OTHER_COLUMNS = FeatureSetSpec(version=3, windows=("1h", "12h"))
QUIET = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}


def flags_document(value: str, default: str = PRODUCTION.version_id) -> str:
    return f"""
version: 1
flags:
  features:
    kind: feature_set
    target: telemetry_core
    default: {default}
    rules: [{{value: {value}, services: [checkout]}}]
"""


@dataclass
class Home:
    settings: PipelineSettings
    definitions: dg.Definitions
    instance: dg.DagsterInstance
    ledger: Ledger
    days: list[str]

    def featurize(self, day: str) -> dg.ExecuteInProcessResult:
        return materialize_selection(
            self.definitions,
            self.instance,
            ingest_selection() - dg.AssetSelection.assets("telemetry_snapshot"),
            partition_key=day,
            run_config=QUIET,
            raise_on_error=False,
        )

    def history(self, day: str) -> pd.DataFrame:
        store = ArtifactStore(self.settings.store_root)
        frames = []
        for key in self.days[: self.days.index(day) + 1][-2:]:
            ref = store.get_ref(f"assets/telemetry_snapshot/{key}")
            assert ref is not None
            frames.append(store.get_frame(ref))
        return pd.concat(frames, ignore_index=True)


def _home(root: Path, instance: dg.DagsterInstance, environment: str = "dev") -> Home:
    settings = PipelineSettings(
        start=date(2026, 1, 5),
        days=2,
        home=root / "aiops",
        environment=environment,
        alert_webhook="http://127.0.0.1:9/never-called" if environment == "prod" else "",
    )
    definitions = build_definitions(settings)
    days = daily_partition_keys(definitions)
    for day in days:
        run = materialize_selection(
            definitions, instance, ingest_selection(), partition_key=day, run_config=QUIET
        )
        assert run.success
    ledger = Ledger.from_env(settings.ledger_url, default_key_file=settings.audit_key_file)
    register_feature_set(ledger, PRODUCTION, actor="local:ops", status="production")
    return Home(settings, definitions, instance, ledger, days)


@pytest.fixture
def home(tmp_path: Path, instance: dg.DagsterInstance) -> Iterator[Home]:
    built = _home(tmp_path, instance)
    yield built
    built.ledger.dispose()
    close_ledgers()


def test_a_flag_moves_one_service_to_a_registered_set_with_the_same_columns(home: Home) -> None:
    register_feature_set(home.ledger, SAME_COLUMNS, actor="local:ana")
    home.ledger.record_flags(
        flags_document(SAME_COLUMNS.version_id), actor="local:ana", reason="canary"
    )
    day = home.days[0]
    run = home.featurize(day)
    assert run.success
    [materialization] = run.asset_materializations_for_node("features")
    recorded = materialization.metadata["feature_sets_by_service"].value
    assert isinstance(recorded, dict)
    by_service = {str(service): str(version) for service, version in recorded.items()}
    assert by_service["checkout"] == SAME_COLUMNS.version_id
    assert {v for s, v in by_service.items() if s != "checkout"} == {PRODUCTION.version_id}
    # The set most services use names the partition.
    assert materialization.metadata["feature_set_version"].value == PRODUCTION.version_id

    stored = ArtifactStore(home.settings.store_root).get_frame(
        str(materialization.metadata["sha256"].value)
    )
    history = home.history(day)
    start, end = pd.Timestamp(day), pd.Timestamp(day) + pd.Timedelta(days=1)
    checkout = history[history["service"] == "checkout"]
    others = history[history["service"] != "checkout"]
    expected = (
        pd.concat(
            [
                compute_features(checkout, SAME_COLUMNS, output_start=start, output_end=end),
                compute_features(others, PRODUCTION, output_start=start, output_end=end),
            ],
            ignore_index=True,
        )
        .sort_values(["timestamp", "service"], kind="mergesort", ignore_index=True)
        .reset_index(drop=True)
    )
    # The store's canonical Parquet reads strings back as object; the values are what matters.
    expected = expected[stored.columns].astype({"service": stored["service"].dtype})
    pd.testing.assert_frame_equal(stored.reset_index(drop=True), expected)
    # The flag really changed checkout's values (on the first day, without a day of history,
    # a statistic over three points and one over six differ), and nobody else's.
    everyone_production = compute_features(history, PRODUCTION, output_start=start, output_end=end)
    production = everyone_production.astype({"service": stored["service"].dtype})
    is_checkout = stored["service"] == "checkout"
    assert (
        not stored[is_checkout]
        .reset_index(drop=True)
        .equals(
            production[production["service"] == "checkout"][stored.columns].reset_index(drop=True)
        )
    )
    pd.testing.assert_frame_equal(
        stored[~is_checkout].reset_index(drop=True),
        production[production["service"] != "checkout"][stored.columns].reset_index(drop=True),
    )


def test_a_split_that_would_mix_columns_fails_naming_the_services(home: Home) -> None:
    register_feature_set(home.ledger, OTHER_COLUMNS, actor="local:ana")
    home.ledger.record_flags(
        flags_document(OTHER_COLUMNS.version_id), actor="local:ana", reason="canary"
    )
    run = home.featurize(home.days[1])
    assert not run.success
    error = run.get_step_failure_events()[0].step_failure_data.error
    assert error is not None
    message = error.to_string()
    assert "different columns" in message
    assert f"{OTHER_COLUMNS.version_id} (checkout)" in message
    assert "auth" in message and "retraining" in message


def test_an_unregistered_set_named_by_a_flag_fails_with_the_fix(home: Home) -> None:
    home.ledger.record_flags(
        flags_document(SAME_COLUMNS.version_id), actor="local:ana", reason="typo"
    )
    run = home.featurize(home.days[1])
    assert not run.success
    error = run.get_step_failure_events()[0].step_failure_data.error
    assert error is not None
    assert "aiops featureset register" in error.to_string()


def test_prod_refuses_to_compute_an_experimental_set(
    tmp_path: Path, instance: dg.DagsterInstance
) -> None:
    prod = _home(tmp_path, instance, environment="prod")
    try:
        register_feature_set(prod.ledger, SAME_COLUMNS, actor="local:ana")
        # Written straight into the ledger, around `aiops flags set` and its environment check.
        prod.ledger.record_flags(
            flags_document(SAME_COLUMNS.version_id), actor="x", reason="around the CLI"
        )
        run = prod.featurize(prod.days[1])
        assert not run.success
        error = run.get_step_failure_events()[0].step_failure_data.error
        assert error is not None
        assert f"refuses feature set {SAME_COLUMNS.version_id}: it is experimental" in (
            error.to_string()
        )
    finally:
        prod.ledger.dispose()
        close_ledgers()
