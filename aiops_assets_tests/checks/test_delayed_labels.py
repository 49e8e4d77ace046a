"""Labels that arrive late: the performance check estimates until they are mature, then judges.

Through ``dg.materialize`` (in-process) with a fixed pipeline clock: a real detector trained on
synthetic telemetry, registered in a real ledger, its scores partitioned by day, its labels in a
CSV of incident windows (the telemetry carries none). The rollback sensor then sees a failed
estimate and ignores it unless told to act on estimates.
"""

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import dagster as dg
import numpy as np
import pandas as pd
import pytest

from aiops_assets.baselines import store_profile
from aiops_assets.checks.estimate import DelayedLabels
from aiops_assets.checks.performance import build_performance_check
from aiops_assets.core.delayed_labels import join_incident_labels, read_incident_csv
from aiops_assets.core.drift import build_profile
from aiops_assets.core.ledger import Ledger, ModelVersion
from aiops_assets.core.model_codec import put_detector
from aiops_assets.core.models import (
    HOLDOUT,
    SCORE,
    SPLIT,
    AnomalyDetector,
    DetectorConfig,
    TrainingSetConfig,
    build_training_set,
    evaluate_detector,
    score_frame,
    train_detector,
)
from aiops_assets.core.registry import CHAMPION, MODEL_NAME, artifact_tags
from aiops_assets.core.store import ArtifactRef, ArtifactStore
from aiops_assets.io import ArtifactRefIOManager
from aiops_assets.resources import ArtifactStoreResource, LedgerResource, close_ledgers
from aiops_assets.sensors import build_rollback_on_regression_sensor

SERVICES = ("checkout", "search", "payments")
STEP = pd.Timedelta(minutes=5)
TRAIN_START = pd.Timestamp("2026-01-05", tz="UTC")
SCORED_START = "2026-01-09"
CHECK = dg.AssetCheckKey(dg.AssetKey("anomaly_scores"), "performance")
DELAY = timedelta(days=2)


def _incidents() -> pd.DataFrame:
    """One incident an afternoon, on a rotating service, every day (training, holdout, scored)."""
    rows = []
    for day in range(8):
        start = TRAIN_START + pd.Timedelta(days=day, hours=10 + day % 5)
        rows.append((SERVICES[day % 3], start, start + pd.Timedelta(minutes=60)))
    return pd.DataFrame(rows, columns=["service", "start", "end"])


def _day(day: pd.Timestamp, incidents: pd.DataFrame, *, broken: bool, seed: int) -> pd.DataFrame:
    """A day of features; incident rows stand out. The telemetry's own label series is all 0:
    the labels live in the incident file only."""
    rng = np.random.default_rng(seed)
    parts = []
    for service in SERVICES:
        stamps = pd.date_range(day, periods=288, freq=STEP)
        inside = np.zeros(288, dtype=bool)
        for _, window in incidents[incidents["service"] == service].iterrows():
            inside |= (stamps >= window["start"]) & (stamps < window["end"])
        # A broken collector: every row looks like an incident row, though none is one.
        inside |= broken
        parts.append(
            pd.DataFrame(
                {
                    "timestamp": stamps,
                    "service": service,
                    "latency__z_12": rng.normal(0.0, 1.0, 288) + 6.0 * inside,
                    "ratio__errors": rng.uniform(0, 0.05, 288) + 0.5 * inside,
                    "label": np.zeros(288, dtype="int8"),
                }
            )
        )
    return pd.concat(parts, ignore_index=True).sort_values(["timestamp", "service"])


@dataclass
class Pipeline:
    """A trained, registered champion and what the check needs around it."""

    store: ArtifactStore
    resources: dict[str, Any]
    ledger: Ledger
    version: ModelVersion
    detector: AnomalyDetector
    incidents_csv: Path
    incidents: pd.DataFrame


@pytest.fixture
def pipeline(tmp_path: Path) -> Iterator[Pipeline]:
    root = str(tmp_path / "store")
    store = ArtifactStore(root)
    incidents = _incidents()
    incidents_csv = tmp_path / "incidents.csv"
    incidents.assign(
        start=incidents["start"].dt.strftime("%Y-%m-%dT%H:%M"),
        end=incidents["end"].dt.strftime("%Y-%m-%dT%H:%M"),
    ).to_csv(incidents_csv, index=False)
    windows = read_incident_csv(incidents_csv)
    history = pd.concat(
        [
            _day(TRAIN_START + pd.Timedelta(days=d), incidents, broken=False, seed=d)
            for d in range(4)
        ],
        ignore_index=True,
    )
    # The training pipeline labels its history from the same incident file.
    history["label"] = join_incident_labels(history["timestamp"], history["service"], windows)
    training = build_training_set(history, _training_config())
    detector = train_detector(training, DetectorConfig(n_estimators=30, max_samples=128, seed=1))
    # The stored training set keeps the telemetry's labels (none): calibration must join the file.
    training_ref = store.put_frame(training.assign(label=np.int8(0)))
    model_ref = put_detector(store, detector)
    ledger_resource = LedgerResource(
        url=f"sqlite:///{tmp_path / 'ledger.db'}", key_file=str(tmp_path / "audit.key")
    )
    ledger = ledger_resource.get_ledger()
    version = ledger.register_model_version(
        MODEL_NAME,
        model_ref.sha256,
        metrics=evaluate_detector(detector, training[training[SPLIT] == HOLDOUT]),
        training_set_version=training_ref.sha256,
        feature_set_version="test",
        actor="test",
        tags=artifact_tags(model_ref),
    )
    ledger.set_alias(MODEL_NAME, CHAMPION, version.version, actor="test", reason="trained")
    resources = {
        "artifact_store": ArtifactStoreResource(root=root),
        "artifact_io_manager": ArtifactRefIOManager(root=root),
        "ledger": ledger_resource,
    }
    yield Pipeline(store, resources, ledger, version, detector, incidents_csv, incidents)
    close_ledgers()


def _training_config() -> TrainingSetConfig:
    return TrainingSetConfig(holdout_days=2)


def _assets(pipeline: Pipeline) -> tuple[dg.AssetsDefinition, dg.AssetsDefinition]:
    partitions = dg.DailyPartitionsDefinition(start_date=SCORED_START, end_date="2026-01-13")

    @dg.asset(partitions_def=partitions, io_manager_key="artifact_io_manager")
    def anomaly_scores(context: dg.AssetExecutionContext) -> dg.Output[ArtifactRef]:
        day = pd.Timestamp(context.partition_key, tz="UTC")
        broken = context.partition_key == "2026-01-10"
        features = _day(day, pipeline.incidents, broken=broken, seed=day.day)
        ref = pipeline.store.put_frame(score_frame(pipeline.detector, features))
        return dg.Output(ref, metadata={"model_sha256": pipeline.version.sha256})

    @dg.asset(io_manager_key="artifact_io_manager")
    def score_baseline() -> dg.Output[ArtifactRef]:
        training = pipeline.store.get_frame(pipeline.version.training_set_version)
        scores = score_frame(pipeline.detector, training[training[SPLIT] != HOLDOUT])
        ref = store_profile(
            pipeline.store, build_profile(scores, numeric=[], predictions=[SCORE], labels=["label"])
        )
        return dg.Output(ref, metadata={"sha256": ref.sha256})

    return anomaly_scores, score_baseline


def _evaluate(
    pipeline: Pipeline, instance: dg.DagsterInstance, partition: str, now: datetime
) -> dg.AssetCheckEvaluation:
    scores, baseline = _assets(pipeline)
    labels = DelayedLabels(
        delay=DELAY,
        windows=lambda: read_incident_csv(pipeline.incidents_csv),
        now=lambda: now,
        score_baseline=baseline.key,
    )
    check = build_performance_check(scores, labels=labels)
    if not instance.get_latest_materialization_event(baseline.key):
        dg.materialize([baseline], instance=instance, resources=pipeline.resources)
    result = dg.materialize(
        [scores, check], partition_key=partition, instance=instance, resources=pipeline.resources
    )
    [evaluation] = result.get_asset_check_evaluations()
    return evaluation


def _day_end(partition: str) -> datetime:
    return datetime.fromisoformat(partition).replace(tzinfo=UTC) + timedelta(days=1)


def _plain(evaluation: dg.AssetCheckEvaluation) -> dict[str, Any]:
    return {name: getattr(value, "value", value) for name, value in evaluation.metadata.items()}


def test_an_immature_partition_gets_an_estimate_and_a_mature_one_the_verdict(
    pipeline: Pipeline, instance: dg.DagsterInstance
) -> None:
    partition = SCORED_START
    before = _evaluate(pipeline, instance, partition, _day_end(partition) + DELAY / 2)
    estimate = _plain(before)
    assert estimate["label_status"] == "estimate"
    assert (before.description or "").startswith("Label-free estimate")
    assert str(estimate["summary"]).startswith("**ESTIMATE, labels not yet mature**")
    assert before.severity == dg.AssetCheckSeverity.WARN
    assert "f1" not in estimate and "false_alarm_rate" not in estimate
    assert 0.0 <= estimate["estimated_precision"] <= 1.0
    assert 0.0 <= estimate["estimated_recall"] <= 1.0
    assert "calibrated on" in estimate["estimate_notes"]
    assert "score_shift" in estimate
    # An estimate is no evidence that a version is good: the ledger records nothing for it.
    assert pipeline.ledger.version_checks(MODEL_NAME, pipeline.version.version) == []

    after = _evaluate(pipeline, instance, partition, _day_end(partition) + DELAY)
    judged = _plain(after)
    assert judged["label_status"] == "mature"
    assert after.severity == dg.AssetCheckSeverity.ERROR
    # The labels come from the incident file, joined by service and time window.
    day = pd.Timestamp(partition, tz="UTC")
    own = pipeline.incidents[
        (pipeline.incidents["start"] >= day)
        & (pipeline.incidents["start"] < day + pd.Timedelta(days=1))
    ]
    expected_rows = sum(int((w["end"] - w["start"]) / STEP) for _, w in own.iterrows())
    assert judged["labeled_anomalies"] == expected_rows > 0
    assert "f1" in judged
    # The estimate told what the labels later confirmed, roughly: CBPE on a well-calibrated day.
    assert estimate["estimated_recall"] == pytest.approx(judged["recall"], abs=0.15)
    assert estimate["estimated_precision"] == pytest.approx(judged["precision"], abs=0.15)
    [record] = pipeline.ledger.version_checks(MODEL_NAME, pipeline.version.version)
    assert record.partition == partition


def _tick(
    pipeline: Pipeline, instance: dg.DagsterInstance, cursor: str | None, *, act: bool
) -> tuple[str, list[dg.RunRequest], str | None]:
    sensor = build_rollback_on_regression_sensor(
        job="rollback_job", performance_checks=[CHECK], act_on_estimates=act
    )
    context = dg.build_sensor_context(
        instance=instance, cursor=cursor, resources={"ledger": pipeline.resources["ledger"]}
    )
    data = sensor.evaluate_tick(context)
    assert data.cursor is not None
    return data.cursor, list(data.run_requests or []), data.skip_message


def test_the_rollback_sensor_ignores_a_failed_estimate_unless_configured(
    pipeline: Pipeline, instance: dg.DagsterInstance
) -> None:
    start, requests, _ = _tick(pipeline, instance, None, act=False)
    assert requests == []
    partition = "2026-01-10"  # a broken day: nearly every row alerts
    evaluation = _evaluate(pipeline, instance, partition, _day_end(partition))
    metadata = _plain(evaluation)
    assert metadata["label_status"] == "estimate" and not evaluation.passed
    assert metadata["alert_rate"] > metadata["alert_rate_ceiling"]

    _, requests, message = _tick(pipeline, instance, start, act=False)
    assert requests == []
    assert message is not None and "1 failed estimate(s) ignored" in message

    _, [request], _ = _tick(pipeline, instance, start, act=True)
    assert request.run_key == f"rollback_on_regression:{MODEL_NAME}:v{pipeline.version.version}"
    reason = request.run_config["ops"]["champion_model"]["config"]["reason"]
    assert "ESTIMATE" in reason
