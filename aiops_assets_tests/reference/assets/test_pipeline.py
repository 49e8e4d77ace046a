"""The reference pipeline materialized in-process, as the demo and the UI run it."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from aiops_assets.core.quality import list_quarantine
from aiops_assets.core.store import ArtifactStore
from aiops_assets.reference.assets.snapshot import SNAPSHOT_CODE_VERSION
from aiops_assets.reference.definitions import BASELINE_CHECKS, build_definitions
from aiops_assets.reference.settings import PipelineSettings
from aiops_assets.runner import materialize_selection
from aiops_assets_tests.conftest import TEST_DAYS, run_quietly

# Whole-graph materializations in fresh places: the full lane's, not the fast lane's.
pytestmark = pytest.mark.slow


def _latest(
    instance: dg.DagsterInstance, name: str, partition: str | None = None
) -> dg.AssetMaterialization:
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(
            asset_key=dg.AssetKey(name), asset_partitions=[partition] if partition else None
        ),
        limit=1,
    ).records
    assert records, f"{name}[{partition}] was not materialized"
    materialization = records[0].asset_materialization
    assert materialization is not None
    return materialization


def _value(materialization: dg.AssetMaterialization, key: str) -> object:
    return materialization.metadata[key].value


def test_the_whole_graph_materializes_with_content_hash_data_versions(
    small_settings: PipelineSettings, instance: dg.DagsterInstance
) -> None:
    result = run_quietly(small_settings, instance)
    # Three partitioned assets a day, and six unpartitioned: the training set, the two models and
    # the three baselines (drift, scores, telemetry).
    assert len(result.data_versions) == 3 * TEST_DAYS + 6
    store = ArtifactStore(small_settings.store_root)

    snapshot = _latest(instance, "telemetry_snapshot", "2026-01-07")
    assert snapshot.tags is not None
    assert snapshot.tags["dagster/data_version"] == _value(snapshot, "sha256")
    assert snapshot.tags["dagster/code_version"] == SNAPSHOT_CODE_VERSION
    assert _value(snapshot, "dagster/row_count") == 6 * 288
    schema = _value(snapshot, "dagster/column_schema")
    assert isinstance(schema, dg.TableSchema)
    assert [column.name for column in schema.columns][:2] == ["timestamp", "service"]
    frame = store.get_frame(str(_value(snapshot, "sha256")))
    assert frame["timestamp"].min() == pd.Timestamp("2026-01-07")
    assert frame["timestamp"].max() < pd.Timestamp("2026-01-08")

    features = _latest(instance, "features", "2026-01-07")
    assert str(_value(features, "feature_set_version")).startswith("telemetry_core-v1-")
    assert features.tags is not None
    assert features.tags["dagster/input_data_version/telemetry_snapshot"]

    candidate = _latest(instance, "candidate_model")
    for metric in ("precision", "recall", "f1", "pr_auc"):
        assert isinstance(candidate.metadata[metric], dg.FloatMetadataValue)
    assert _value(candidate, "seed") == 7
    assert _value(candidate, "training_set_sha256") == _value(
        _latest(instance, "training_set"), "sha256"
    )

    champion = _latest(instance, "champion_model")
    assert result.model_sha256 == _value(champion, "sha256")
    assert result.registry["champion"] == f"v{_value(champion, 'model_version')}"
    assert result.registry["promotions"][0]["promoted"], "the first model is promoted"
    assert store.verify(result.model_sha256)
    # The generated incidents are real anomalies: the detector must do much better than chance.
    assert result.metrics["pr_auc"] > 3 * float(str(_value(candidate, "positive_rate")))


def test_a_worse_candidate_does_not_replace_the_champion(
    small_settings: PipelineSettings, instance: dg.DagsterInstance
) -> None:
    first = run_quietly(small_settings, instance)
    definitions = build_definitions(small_settings)
    trained_until = first.registry["versions"][first.registry["champion"]]["trained_until"]
    # Retraining on the champion's own days reproduces its bytes: nothing to decide.
    materialize_selection(
        definitions,
        instance,
        selection=["training_set", "candidate_model", "champion_model"],
        run_config={"ops": {"training_set": {"config": {"until": trained_until}}}},
    )
    again = _latest(instance, "champion_model")
    assert _value(again, "decision") == "kept"
    assert "already the champion" in str(_value(again, "reason"))
    assert _value(again, "sha256") == first.model_sha256
    crippled = {
        "ops": {"candidate_model": {"config": {"n_estimators": 1, "max_samples": 8, "seed": 3}}}
    }
    materialize_selection(
        definitions,
        instance,
        selection=["candidate_model", "champion_model"],
        run_config=crippled,
    )
    candidate = _latest(instance, "candidate_model")
    champion = _latest(instance, "champion_model")
    assert _value(candidate, "sha256") != first.model_sha256
    assert float(str(_value(candidate, "pr_auc"))) < first.metrics["pr_auc"]
    assert _value(champion, "decision") == "kept"
    assert str(_value(champion, "reason")).startswith("holdout_improvement failed")
    assert _value(champion, "sha256") == first.model_sha256
    assert champion.tags is not None and champion.tags["dagster/data_version"] == first.model_sha256


def test_a_missing_upstream_partition_fails_with_a_clear_message(
    small_settings: PipelineSettings, instance: dg.DagsterInstance
) -> None:
    definitions = build_definitions(small_settings)
    with pytest.raises(
        dg.Failure, match=r"telemetry_snapshot\[2026-01-07\] has no accepted snapshot"
    ):
        materialize_selection(
            definitions,
            instance,
            selection=["features"],
            partition_key="2026-01-07",
        )

    with pytest.raises(dg.Failure, match=r"training_set has no current version"):
        materialize_selection(definitions, instance, selection=["candidate_model"])


def test_a_directory_of_csv_files_is_a_source_by_configuration_alone(
    tmp_path: Path, instance: dg.DagsterInstance
) -> None:
    source = tmp_path / "telemetry"
    source.mkdir()
    timestamps = pd.date_range("2026-01-05", periods=2 * 288, freq="5min")
    for service in ("api", "db"):
        pd.DataFrame(
            {"timestamp": timestamps.strftime("%Y-%m-%dT%H:%M:%SZ"), "cpu_pct": 40.0, "label": 0}
        ).to_csv(source / f"{service}.csv", index=False)
    suite = tmp_path / "cpu_only.yaml"
    suite.write_text(
        "name: cpu_only\nversion: 1\nexpectations:\n"
        "  - {type: expect_column_values_to_be_between, kwargs: {column: cpu_pct, min_value: 0, max_value: 100}}\n"
    )
    settings = PipelineSettings(
        days=2,
        home=tmp_path / "aiops",
        source_kind="directory",
        source_path=str(source),
        quality_suite=str(suite),
    )
    definitions = build_definitions(settings)
    materialize_selection(
        definitions,
        instance,
        # Ingest alone: the checks that read the training-window baseline need a trained home.
        selection=dg.AssetSelection.assets("telemetry_snapshot")
        - dg.AssetSelection.checks(*BASELINE_CHECKS),
        partition_key="2026-01-06",
    )
    snapshot = _latest(instance, "telemetry_snapshot", "2026-01-06")
    assert _value(snapshot, "dagster/row_count") == 2 * 288
    assert str(_value(snapshot, "source")) == f"directory({source})"
    frame = ArtifactStore(settings.store_root).get_frame(str(_value(snapshot, "sha256")))
    assert sorted(frame["service"].unique()) == ["api", "db"]
    assert frame["timestamp"].min() == pd.Timestamp("2026-01-06")


def test_the_null_injection_day_is_quarantined_and_nothing_else_is_affected(
    tmp_path: Path, instance: dg.DagsterInstance
) -> None:
    settings = PipelineSettings(days=8, home=tmp_path / "aiops")
    result = run_quietly(settings, instance)
    store = ArtifactStore(settings.store_root)
    null_day = "2026-01-11"

    failed = {label for label, outcome in result.checks.items() if not outcome["passed"]}
    # Drift checks flag the slow memory drift and the weekend (real changes), and so does the
    # snapshot's baseline quality once catalog's memory leak leaves the training range; the
    # performance check fails where the demo's fire drill forced a model that pages too often
    # into service. Every other quality and leakage check passes except the null day's gate.
    real_changes = (".drift[", ".performance[", ".baseline_quality[")
    assert {label for label in failed if not any(kind in label for kind in real_changes)} == {
        f"telemetry_snapshot.telemetry_default_error[{null_day}]"
    }
    baseline_failures = {label for label in failed if ".baseline_quality[" in label}
    assert all(
        label > f"telemetry_snapshot.baseline_quality[{null_day}]" for label in baseline_failures
    )
    assert f"telemetry_snapshot[{null_day}]" not in result.data_versions
    assert f"features[{null_day}]" not in result.data_versions
    assert store.get_ref(f"assets/telemetry_snapshot/{null_day}") is None
    assert store.get_ref(f"assets/features/{null_day}") is None

    (record,) = list_quarantine(store, "telemetry_snapshot")
    assert record.partition == null_day and store.verify(record.artifact)
    for fragment in (
        "latency_p99_ms",
        "cpu_pct",
        "expect_column_values_to_not_be_null",
        "service=search",
    ):
        assert fragment in record.message
    assert "2026-01-11T00:00:00" in record.message, "the first failing rows are named"
    assert store.get_frame(record.artifact)["latency_p99_ms"].isna().sum() > 0, (
        "the bad data is kept"
    )

    next_day = _latest(instance, "features", "2026-01-12")
    assert _value(next_day, "history_partitions") == "2026-01-12"
    # A training set over every day leaves the refused day out and says so.
    materialize_selection(build_definitions(settings), instance, selection=["training_set"])
    training = _latest(instance, "training_set")
    assert _value(training, "missing_feature_partitions") == null_day
    assert _value(training, "feature_partitions") == 7
