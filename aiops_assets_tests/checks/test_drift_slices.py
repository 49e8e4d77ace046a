"""The drift check judges each service against its own reference, next to the overall verdict."""

from typing import Any

import dagster as dg
import numpy as np
import pandas as pd

from aiops_assets.baselines import build_drift_baseline_asset
from aiops_assets.checks.drift import build_drift_checks, drifted_slices
from aiops_assets.core.drift import BaselineProfile, load_policy
from aiops_assets.core.store import ArtifactRef
from aiops_assets.keys import DRIFT_CHECK_NAME
from aiops_assets.resources import ArtifactStoreResource

PARTITIONS = dg.DailyPartitionsDefinition(start_date="2026-03-01", end_date="2026-03-09")
SHIFTED_FROM = "2026-03-06"
ROWS = 1440
# (level, spread) per service: three orders of magnitude apart.
SERVICES = {"checkout": (200.0, 20.0), "payments": (20_000.0, 2_000.0), "search": (2.0, 0.2)}


def _frame(day: str, shifted: str, sigmas: float) -> pd.DataFrame:
    rng = np.random.default_rng(int(day.replace("-", "")))
    parts = []
    for service, (level, spread) in SERVICES.items():
        offset = sigmas * spread if service == shifted and day >= SHIFTED_FROM else 0.0
        parts.append(
            pd.DataFrame(
                {
                    "timestamp": pd.date_range(day, periods=ROWS, freq="min"),
                    "service": pd.Series([service] * ROWS, dtype=object),
                    "p99_ms": rng.normal(level + offset, spread, ROWS),
                    "queue_depth": rng.normal(level / 100, spread / 100, ROWS),
                }
            )
        )
    return pd.concat(parts, ignore_index=True).sort_values(["timestamp", "service"])


@dg.asset(partitions_def=PARTITIONS, io_manager_key="artifact_io_manager")
def latency(context: dg.AssetExecutionContext, artifact_store: ArtifactStoreResource):
    # One standard deviation of checkout's own spread: a hundredth of the pooled one.
    frame = _frame(context.partition_key, shifted="checkout", sigmas=1.0)
    return artifact_store.get_store().put_frame(frame)


@dg.asset(partitions_def=PARTITIONS, io_manager_key="artifact_io_manager")
def creeping(context: dg.AssetExecutionContext, artifact_store: ArtifactStoreResource):
    # A fifth of a standard deviation: alone a warning, but it does not go away.
    frame = _frame(context.partition_key, shifted="search", sigmas=0.2)
    return artifact_store.get_store().put_frame(frame)


latency_baseline = build_drift_baseline_asset(latency, name="latency_baseline", group_name=None)
creeping_baseline = build_drift_baseline_asset(creeping, name="creeping_baseline", group_name=None)


def _evaluate(
    asset: dg.AssetsDefinition,
    baseline: dg.AssetsDefinition,
    resources: dict[str, object],
    instance: dg.DagsterInstance,
    **check_options: Any,
) -> dict[str, dg.AssetCheckEvaluation]:
    keys = PARTITIONS.get_partition_keys()
    for day in keys[:3]:
        dg.materialize([asset], instance=instance, resources=resources, partition_key=day)
    built = dg.materialize(
        [asset, baseline], instance=instance, resources=resources, selection=[baseline.key]
    )
    (materialization,) = built.asset_materializations_for_node(baseline.key.path[-1])
    assert materialization.metadata["profiled_slices"].value == ", ".join(
        f"service={service}" for service in sorted(SERVICES)
    )
    ref = built.output_for_node(baseline.key.path[-1])
    assert isinstance(ref, ArtifactRef)
    checks = build_drift_checks(asset, baseline, **check_options)
    evaluations = {}
    for day in keys[3:]:
        result = dg.materialize(
            [asset, baseline, *checks],
            instance=instance,
            resources=resources,
            partition_key=day,
            selection=dg.AssetSelection.assets(asset),
        )
        (evaluations[day],) = result.get_asset_check_evaluations()
    return evaluations


def test_a_shift_in_one_service_names_that_slice_and_leaves_the_overall_verdict(
    resources: dict[str, object], instance: dg.DagsterInstance
) -> None:
    evaluations = _evaluate(latency, latency_baseline, resources, instance)
    quiet, shifted = evaluations["2026-03-04"], evaluations["2026-03-07"]

    assert quiet.metadata["drifted_slices"].value == ""
    assert quiet.metadata["slices_drifted"].value == 0.0
    assert quiet.metadata["slice_verdicts"].value == dict.fromkeys(sorted(SERVICES), "ok")

    assert shifted.metadata["drifted_slices"].value == "service=checkout"
    assert shifted.metadata["slices_drifted"].value == 1.0
    assert shifted.metadata["slice_verdicts"].value == {
        "checkout": "error",
        "payments": "ok",
        "search": "ok",
    }
    per_slice = {
        service: shifted.metadata[f"slice_drifted_features/service={service}"]
        for service in SERVICES
    }
    assert all(isinstance(value, dg.FloatMetadataValue) for value in per_slice.values())
    assert per_slice["checkout"].value == 1.0  # p99_ms; queue_depth did not move
    assert per_slice["payments"].value == per_slice["search"].value == 0.0
    summary = str(shifted.metadata["summary"].value)
    assert "Per-service slices" in summary and "- checkout: ERROR (`p99_ms`)" in summary

    # Against the pooled reference one checkout sigma is noise: the overall verdict, computed
    # exactly as without slices, passes.
    assert shifted.passed and shifted.metadata["verdict"].value == "ok"
    assert shifted.metadata["drifted"].value == ""

    # What the incident report reads: the drifted slices of a partition, from the check history.
    check_key = dg.AssetCheckKey(latency.key, DRIFT_CHECK_NAME)
    assert drifted_slices(instance, [check_key], "2026-03-07") == ["service=checkout"]
    assert drifted_slices(instance, [check_key], "2026-03-04") == []


def test_slices_are_judged_on_the_columns_chosen_for_them(
    resources: dict[str, object], instance: dg.DagsterInstance
) -> None:
    """The reference pipeline judges slices on its scale-free columns only; here a function of
    the frame keeps queue_depth, so checkout's p99 shift names no slice."""
    seen: list[list[str]] = []

    def queue_only(frame: pd.DataFrame) -> list[str]:
        seen.append(sorted(frame.columns))
        return ["queue_depth", "not_profiled"]

    evaluations = _evaluate(
        latency, latency_baseline, resources, instance, slice_columns=queue_only
    )
    shifted = evaluations["2026-03-07"]
    assert seen and "p99_ms" in seen[0]
    assert shifted.metadata["drifted_slices"].value == ""
    assert "slice_drifted_features/service=checkout" in shifted.metadata


def test_a_modest_drift_that_persists_in_one_slice_becomes_an_error(
    resources: dict[str, object], instance: dg.DagsterInstance
) -> None:
    # The packaged policy escalates lasting drift only near the error floor (calibrated on real
    # telemetry); this test is about persistence within a slice, so it escalates any.
    escalating = load_policy().replace({"persistence": {"escalate_at": 0.0}})
    evaluations = _evaluate(creeping, creeping_baseline, resources, instance, policy=escalating)
    verdicts = {}
    for day, evaluation in evaluations.items():
        slice_verdicts = evaluation.metadata["slice_verdicts"].value
        assert isinstance(slice_verdicts, dict)
        verdicts[day] = slice_verdicts["search"]
    assert verdicts["2026-03-04"] == "ok"
    assert verdicts["2026-03-06"] == "warn", "a first modest drift is a warning"
    assert verdicts["2026-03-07"] == "error", "the second drifted day of three is persistent"
    assert evaluations["2026-03-07"].metadata["drifted_slices"].value == "service=search"


def test_a_baseline_without_slices_adds_no_slice_metadata(
    resources: dict[str, object], instance: dg.DagsterInstance
) -> None:
    unsliced = build_drift_baseline_asset(
        latency, name="unsliced_baseline", group_name=None, slice_by=None
    )
    keys = PARTITIONS.get_partition_keys()
    for day in keys[:3]:
        dg.materialize([latency], instance=instance, resources=resources, partition_key=day)
    built = dg.materialize(
        [latency, unsliced], instance=instance, resources=resources, selection=[unsliced.key]
    )
    ref = built.output_for_node("unsliced_baseline")
    store = ArtifactStoreResource(root=str(resources["artifact_store"].root))  # type: ignore[attr-defined]
    assert BaselineProfile.from_bytes(store.get_store().get_bytes(ref)).slices == {}
    checks = build_drift_checks(latency, unsliced, name="unsliced_drift")
    result = dg.materialize(
        [latency, unsliced, *checks],
        instance=instance,
        resources=resources,
        partition_key=keys[6],
        selection=dg.AssetSelection.assets(latency),
    )
    (evaluation,) = result.get_asset_check_evaluations()
    assert not any(name.startswith("slice") for name in evaluation.metadata)
    assert "drifted_slices" not in evaluation.metadata
