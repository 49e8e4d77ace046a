"""build_drift_checks and build_drift_baseline_asset on a host-style partitioned asset."""

import dagster as dg
import numpy as np
import pandas as pd
import pytest

from aiops_assets.baselines import build_drift_baseline_asset
from aiops_assets.checks.drift import build_drift_checks
from aiops_assets.core.drift import load_policy
from aiops_assets.resources import ArtifactStoreResource

PARTITIONS = dg.DailyPartitionsDefinition(start_date="2026-03-01", end_date="2026-03-09")
SHIFTED_FROM = "2026-03-06"


@dg.asset(partitions_def=PARTITIONS, io_manager_key="artifact_io_manager")
def latency(context: dg.AssetExecutionContext, artifact_store: ArtifactStoreResource):
    day = context.partition_key
    rng = np.random.default_rng(int(day.replace("-", "")))
    shift = 3.0 if day >= SHIFTED_FROM else 0.0
    frame = pd.DataFrame(
        {
            "timestamp": pd.date_range(day, periods=1440, freq="min"),
            "service": pd.Series(["api"] * 1440, dtype=object),
            "p99_ms": rng.normal(200.0 + shift * 20.0, 20.0, 1440),
            "queue_depth": rng.normal(5.0, 1.0, 1440),
            "label": np.zeros(1440, dtype="int8"),
        }
    )
    return artifact_store.get_store().put_frame(frame)


baseline = build_drift_baseline_asset(latency, name="latency_baseline", group_name=None)


def _materialize_days(
    days: list[str],
    resources: dict[str, object],
    instance: dg.DagsterInstance,
    checks: list[dg.AssetChecksDefinition],
) -> dict[str, dg.AssetCheckEvaluation]:
    evaluations = {}
    for day in days:
        result = dg.materialize(
            [latency, baseline, *checks],
            instance=instance,
            resources=resources,
            partition_key=day,
            selection=dg.AssetSelection.assets(latency),
        )
        for evaluation in result.get_asset_check_evaluations():
            evaluations[day] = evaluation
    return evaluations


def test_the_baseline_profiles_the_first_partitions_and_the_check_flags_the_shift(
    resources: dict[str, object], instance: dg.DagsterInstance
) -> None:
    checks = build_drift_checks(latency, baseline)
    keys = PARTITIONS.get_partition_keys()
    for day in keys[:3]:
        dg.materialize([latency], instance=instance, resources=resources, partition_key=day)
    built = dg.materialize(
        [latency, baseline], instance=instance, resources=resources, selection=[baseline.key]
    )
    (materialization,) = built.asset_materializations_for_node("latency_baseline")
    assert materialization.metadata["reference_partitions"].value == ", ".join(keys[:3])
    assert materialization.metadata["profiled_features"].value == 3  # p99_ms, queue_depth, label

    evaluations = _materialize_days(list(keys[3:]), resources, instance, checks)
    quiet, shifted = evaluations["2026-03-04"], evaluations["2026-03-07"]
    assert quiet.passed, quiet.metadata["summary"].value
    assert not shifted.passed and shifted.severity == dg.AssetCheckSeverity.ERROR
    assert shifted.metadata["drifted"].value == "p99_ms"
    assert "p99_ms" in str(shifted.metadata["summary"].value)
    assert isinstance(shifted.metadata["score/p99_ms"], dg.FloatMetadataValue)
    assert isinstance(shifted.metadata["score/queue_depth"], dg.FloatMetadataValue)
    table = shifted.metadata["features"]
    assert isinstance(table, dg.TableMetadataValue)
    rows = {record.data["feature"]: record.data for record in table.value.records}
    assert str(rows["p99_ms"]["verdict"]).startswith("error")
    assert rows["queue_depth"]["verdict"] == "ok"
    assert float(str(rows["p99_ms"]["q"])) < 0.05
    assert len(str(shifted.metadata["policy_sha256"].value)) == 64


def test_columns_restrict_the_check_and_unknown_columns_are_refused(
    resources: dict[str, object], instance: dg.DagsterInstance
) -> None:
    keys = PARTITIONS.get_partition_keys()
    for day in keys[:3]:
        dg.materialize([latency], instance=instance, resources=resources, partition_key=day)
    dg.materialize(
        [latency, baseline], instance=instance, resources=resources, selection=[baseline.key]
    )
    only_queue = build_drift_checks(latency, baseline, columns=["queue_depth"], name="queue_drift")
    evaluations = _materialize_days([keys[6]], resources, instance, only_queue)
    assert evaluations[keys[6]].passed, "the shifted p99 is not checked"
    assert "score/p99_ms" not in evaluations[keys[6]].metadata

    unknown = build_drift_checks(latency, baseline, columns=["nope"], name="bad_drift")
    with pytest.raises(dg.Failure, match="does not profile columns"):
        _materialize_days([keys[6]], resources, instance, unknown)


@dg.asset(partitions_def=PARTITIONS, io_manager_key="artifact_io_manager", key="creeping")
def creeping(context: dg.AssetExecutionContext, artifact_store: ArtifactStoreResource):
    day = context.partition_key
    rng = np.random.default_rng(int(day.replace("-", "")))
    # A modest shift: alone only worth a warning, but it does not go away.
    shift = 4.0 if day >= SHIFTED_FROM else 0.0
    frame = pd.DataFrame({"p99_ms": rng.normal(200.0 + shift, 20.0, 1440)})
    return artifact_store.get_store().put_frame(frame)


creeping_baseline = build_drift_baseline_asset(creeping, name="creeping_baseline", group_name=None)


def test_a_modest_drift_that_persists_becomes_an_error(
    resources: dict[str, object], instance: dg.DagsterInstance
) -> None:
    # The packaged policy escalates lasting drift only near the error floor (calibrated on real
    # telemetry); this test is about the persistence mechanism, so it escalates any.
    escalating = load_policy().replace({"persistence": {"escalate_at": 0.0}})
    checks = build_drift_checks(creeping, creeping_baseline, policy=escalating)
    keys = PARTITIONS.get_partition_keys()
    for day in keys[:3]:
        dg.materialize([creeping], instance=instance, resources=resources, partition_key=day)
    dg.materialize(
        [creeping, creeping_baseline],
        instance=instance,
        resources=resources,
        selection=[creeping_baseline.key],
    )
    verdicts = {}
    for day in keys[3:]:
        result = dg.materialize(
            [creeping, creeping_baseline, *checks],
            instance=instance,
            resources=resources,
            partition_key=day,
            selection=dg.AssetSelection.assets(creeping),
        )
        (evaluation,) = result.get_asset_check_evaluations()
        verdicts[day] = str(evaluation.metadata["verdict"].value)
    assert verdicts["2026-03-04"] == "ok"
    assert verdicts["2026-03-06"] == "warn", "a first modest drift is a warning"
    assert verdicts["2026-03-07"] == "error", "the second drifted day of three is persistent"
