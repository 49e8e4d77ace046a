"""The baseline-quality and label-health checks stay red for as long as a data fault lasts."""

from collections.abc import Callable
from datetime import date
from typing import Any

import dagster as dg
import numpy as np
import pandas as pd
import pytest

from aiops_assets.baselines import build_drift_baseline_asset
from aiops_assets.checks.baseline_quality import (
    build_baseline_quality_checks,
    build_label_collapse_checks,
    build_label_health_checks,
)
from aiops_assets.core.baseline_quality import BaselineTolerances
from aiops_assets.core.telemetry import DEFAULT_SERVICES, LABEL, Scenario, generate_day
from aiops_assets.keys import BASELINE_QUALITY_CHECK_NAME, LABEL_HEALTH_CHECK_NAME
from aiops_assets.resources import ArtifactStoreResource

START = date(2026, 1, 5)
PARTITIONS = dg.DailyPartitionsDefinition(start_date="2026-01-05", end_date="2026-01-13")
KEYS = PARTITIONS.get_partition_keys()
REFERENCE, CHECKED = KEYS[:3], KEYS[3:]
# Three faults at once, each on its own service, on two days; the next day the data is back.
FAULTY = ("2026-01-09", "2026-01-10")
FAULTS = {
    "checkout": {"latency_p99_ms": 0.001},  # seconds where milliseconds were
    "payments": {"latency_p50_ms": 3.0, "latency_p99_ms": 3.0},
    "search": {"error_rate": 12.0},
}
# A clean scenario: labeled incidents on every service, no scripted event.
SCENARIO = Scenario(start=START, days=len(KEYS), services=DEFAULT_SERVICES, seed=11)

Edit = Callable[[str, pd.DataFrame], pd.DataFrame]
CheckBuilder = Callable[[dg.AssetsDefinition, dg.AssetsDefinition], dg.AssetChecksDefinition]


def _telemetry_asset(name: str, edit: Edit) -> dg.AssetsDefinition:
    @dg.asset(name=name, partitions_def=PARTITIONS, io_manager_key="artifact_io_manager")
    def telemetry(context: dg.AssetExecutionContext, artifact_store: ArtifactStoreResource):
        day = context.partition_key
        frame = edit(day, generate_day(SCENARIO, date.fromisoformat(day)))
        return artifact_store.get_store().put_frame(frame)

    return telemetry


def _faults(day: str, frame: pd.DataFrame) -> pd.DataFrame:
    if day in FAULTY:
        for service, factors in FAULTS.items():
            rows = frame["service"] == service
            for column, factor in factors.items():
                frame.loc[rows, column] = frame.loc[rows, column] * factor
    if day == "2026-01-12":
        frame = frame[frame["service"] != "auth"].reset_index(drop=True)  # auth stops reporting
    return frame


def _value(evaluation: dg.AssetCheckEvaluation, key: str) -> Any:
    """A metadata entry's plain value (the entries' union type is no use to a test)."""
    return evaluation.metadata[key].value


def _evaluations(
    asset: dg.AssetsDefinition,
    build: CheckBuilder,
    resources: dict[str, object],
    instance: dg.DagsterInstance,
) -> dict[str, dg.AssetCheckEvaluation]:
    """Materialize the reference days, build the baseline, then check each later day in order."""
    baseline = build_drift_baseline_asset(asset, name=f"{asset.key.path[-1]}_baseline")
    for day in REFERENCE:
        dg.materialize([asset], instance=instance, resources=resources, partition_key=day)
    dg.materialize(
        [asset, baseline], instance=instance, resources=resources, selection=[baseline.key]
    )
    check = build(asset, baseline)
    evaluations = {}
    for day in CHECKED:
        result = dg.materialize(
            [asset, baseline, check],
            instance=instance,
            resources=resources,
            partition_key=day,
            selection=dg.AssetSelection.assets(asset),
        )
        (evaluations[day],) = result.get_asset_check_evaluations()
    return evaluations


def test_unit_change_x3_latency_and_x12_errors_fail_every_day_they_last_and_only_then(
    resources: dict[str, object], instance: dg.DagsterInstance
) -> None:
    asset = _telemetry_asset("telemetry", _faults)
    evaluations = _evaluations(asset, _quality_checks, resources, instance)

    for day in ("2026-01-08", "2026-01-11"):  # before the faults, and the day the data is back
        assert evaluations[day].passed, _value(evaluations[day], "summary")
        assert _value(evaluations[day], "drifted_slices") == ""
    for day in FAULTY:
        evaluation = evaluations[day]
        assert not evaluation.passed
        assert evaluation.severity == dg.AssetCheckSeverity.ERROR  # the unit change
        verdicts = _value(evaluation, "slice_verdicts")
        assert verdicts == {
            "auth": "ok",
            "catalog": "ok",
            "checkout": "error",
            "gateway": "ok",
            "payments": "warn",
            "search": "warn",
        }
        medians = {
            (finding["slice"], finding["column"]): finding
            for finding in _value(evaluation, "findings")
            if finding["statistic"] == "median"
        }
        assert set(medians) == {
            ("checkout", "latency_p99_ms"),
            ("payments", "latency_p50_ms"),
            ("payments", "latency_p99_ms"),
            ("search", "error_rate"),
        }
        unit = medians["checkout", "latency_p99_ms"]
        assert unit["factor"] == pytest.approx(0.001, rel=0.1)
        assert unit["unit_change"] and unit["since"] == "2026-01-09"
        assert unit["words"].startswith("checkout latency_p99_ms median x0.001 vs baseline")
        assert unit["words"].endswith("(probable unit change)")
        assert medians["payments", "latency_p99_ms"]["factor"] == pytest.approx(3.0, rel=0.1)
        # x12 on top of the day's own level (a Saturday has about 0.7 of a weekday's traffic).
        assert 6.0 < medians["search", "error_rate"]["factor"] < 16.0
        assert not medians["search", "error_rate"]["unit_change"]
        assert "since 2026-01-09" in _value(evaluation, "summary")
        factor = _value(evaluation, "median_factor/service=checkout/latency_p99_ms")
        assert factor == pytest.approx(unit["factor"])

    missing = evaluations["2026-01-12"]
    assert not missing.passed and missing.severity == dg.AssetCheckSeverity.ERROR
    assert _value(missing, "drifted_slices") == "service=auth"
    (finding,) = _value(missing, "findings")
    assert finding["statistic"] == "presence" and "missing service" in finding["words"]


def _quality_checks(
    asset: dg.AssetsDefinition, baseline: dg.AssetsDefinition
) -> dg.AssetChecksDefinition:
    (check,) = build_baseline_quality_checks(asset, baseline)
    return check


def _label_checks(
    asset: dg.AssetsDefinition, baseline: dg.AssetsDefinition
) -> dg.AssetChecksDefinition:
    (check,) = build_label_health_checks(asset, baseline, quiet_partitions=2)
    return check


def _labels_broken(day: str, frame: pd.DataFrame) -> pd.DataFrame:
    if "2026-01-09" <= day <= "2026-01-11":
        frame[LABEL] = np.int8(0)  # the labeler stopped: every label 0
    if day == "2026-01-12":
        frame[LABEL] = frame[LABEL].astype("float64")
        frame.loc[frame.index[:10], LABEL] = np.nan
    return frame


def test_labels_constant_for_two_days_then_missing_fail_and_recover(
    resources: dict[str, object], instance: dg.DagsterInstance
) -> None:
    asset = _telemetry_asset("labeled", _labels_broken)
    evaluations = _evaluations(asset, _label_checks, resources, instance)
    runs = {
        day: _value(evaluation, "constant_partitions") for day, evaluation in evaluations.items()
    }

    assert evaluations["2026-01-08"].passed  # a day with incidents
    assert runs["2026-01-08"] == 0
    # The first all-zero day is no evidence (quiet days happen); from the second one it fails.
    assert evaluations["2026-01-09"].passed and runs["2026-01-09"] == 1
    for day in ("2026-01-10", "2026-01-11"):
        evaluation = evaluations[day]
        assert not evaluation.passed and evaluation.severity == dg.AssetCheckSeverity.WARN
        assert "every label is 0" in _value(evaluation, "problems")
        assert _value(evaluation, "positive_labels") == 0.0
    assert runs["2026-01-10"] == 2 and runs["2026-01-11"] == 3
    missing = evaluations["2026-01-12"]
    assert not missing.passed and missing.severity == dg.AssetCheckSeverity.ERROR
    assert _value(missing, "missing_labels") == 10
    assert "10 of" in _value(missing, "problems")


def test_checks_are_non_blocking_and_named_by_the_shared_keys() -> None:
    asset = _telemetry_asset("named", _faults)
    baseline = build_drift_baseline_asset(asset, name="named_baseline")
    (quality,) = build_baseline_quality_checks(asset, baseline)
    (labels,) = build_label_health_checks(asset, baseline)
    specs = [*quality.check_specs, *labels.check_specs]
    assert [spec.name for spec in specs] == [BASELINE_QUALITY_CHECK_NAME, LABEL_HEALTH_CHECK_NAME]
    assert not any(spec.blocking for spec in specs)
    assert all(spec.partitions_def == PARTITIONS for spec in specs)


def test_a_column_the_baseline_does_not_profile_is_refused_in_one_line(
    resources: dict[str, object], instance: dg.DagsterInstance
) -> None:
    asset = _telemetry_asset("refused", _faults)
    baseline = build_drift_baseline_asset(asset, name="refused_baseline")
    (check,) = build_baseline_quality_checks(
        asset, baseline, columns=["queue_depth"], tolerances=BaselineTolerances(level=3.0)
    )
    for day in REFERENCE:
        dg.materialize([asset], instance=instance, resources=resources, partition_key=day)
    dg.materialize(
        [asset, baseline], instance=instance, resources=resources, selection=[baseline.key]
    )
    with pytest.raises(dg.Failure, match=r"profiles no numeric columns \['queue_depth'\]"):
        dg.materialize(
            [asset, baseline, check],
            instance=instance,
            resources=resources,
            partition_key=CHECKED[0],
            selection=dg.AssetSelection.assets(asset),
        )


SCORE_PARTITIONS = dg.DailyPartitionsDefinition(start_date="2026-02-01", end_date="2026-02-07")


@dg.asset(name="scores", partitions_def=SCORE_PARTITIONS, io_manager_key="artifact_io_manager")
def scores(context: dg.AssetExecutionContext, artifact_store: ArtifactStoreResource):
    """Alerts on 5 % of rows, 60 % of them real; on the 5th the labeler stops, on the 6th a model
    alerts on a quarter of the rows (its precision falls, but the labels are not to blame)."""
    day = context.partition_key
    rng = np.random.default_rng(int(day.replace("-", "")))
    rows = 2000
    alert = rng.random(rows) < (0.25 if day == "2026-02-06" else 0.05)
    label = np.where(alert, rng.random(rows) < 0.6, rng.random(rows) < 0.01).astype(np.int8)
    if day == "2026-02-05":
        label[:] = 0
    frame = pd.DataFrame({"label": label, "alert": alert.astype(np.int8)})
    return artifact_store.get_store().put_frame(frame)


def test_labels_vanishing_while_the_model_alerts_as_usual_fail_a_noisier_model_does_not(
    resources: dict[str, object], instance: dg.DagsterInstance
) -> None:
    (check,) = build_label_collapse_checks(scores)
    evaluations = {}
    for day in SCORE_PARTITIONS.get_partition_keys():
        result = dg.materialize(
            [scores, check], instance=instance, resources=resources, partition_key=day
        )
        (evaluations[day],) = result.get_asset_check_evaluations()

    assert _value(evaluations["2026-02-01"], "summary") == "No reference partition yet."
    assert evaluations["2026-02-04"].passed
    assert _value(evaluations["2026-02-04"], "reference_partitions") == (
        "2026-02-01, 2026-02-02, 2026-02-03"
    )
    collapsed = evaluations["2026-02-05"]
    assert not collapsed.passed and collapsed.severity == dg.AssetCheckSeverity.WARN
    assert _value(collapsed, "problems") == "collapse"
    assert _value(collapsed, "p_value") < 1e-6
    assert _value(collapsed, "reference_precision") == pytest.approx(0.6, abs=0.1)
    noisy = evaluations["2026-02-06"]
    assert noisy.passed, _value(noisy, "summary")
    assert _value(noisy, "alert_rate") > 2 * _value(noisy, "reference_alert_rate")
