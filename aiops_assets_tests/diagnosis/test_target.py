"""Which model `aiops incident` explains, found from a location's definitions: a host's models by
what ``build_model_lifecycle`` records on their scores assets, the reference layout by its asset,
and one-line refusals for a location with none (or not the one asked for)."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from aiops_assets import SklearnModel, build_model_lifecycle, lifecycle_resources
from aiops_assets.diagnosis.target import TargetError, find_target, host_targets

DAYS = dg.DailyPartitionsDefinition(start_date="2025-03-01")


@dg.asset
def history() -> pd.DataFrame:
    return pd.DataFrame()


@dg.asset(partitions_def=DAYS)
def metrics() -> pd.DataFrame:
    return pd.DataFrame()


@dg.asset(partitions_def=DAYS)
def other_metrics() -> pd.DataFrame:
    return pd.DataFrame()


@dg.asset_check(asset=metrics, name="drift")
def metrics_drift() -> dg.AssetCheckResult:
    return dg.AssetCheckResult(passed=True)


def _model() -> SklearnModel:
    return SklearnModel(
        LogisticRegression(), features=["x"], label="y", time_column="ts", service_column="svc"
    )


def _defs(tmp_path: Path, *names: str) -> dg.Definitions:
    lifecycles = [
        build_model_lifecycle(
            _model(),
            name=name,
            training_set=history,
            serve=metrics if index == 0 else other_metrics,
            drift_checks=[metrics_drift.check_key] if index == 0 else [],
            performance_limits={"false_alarm_budget": 0.07},
        )
        for index, name in enumerate(names)
    ]
    resources = lifecycle_resources(tmp_path)
    return dg.Definitions.merge(
        dg.Definitions(assets=[history, metrics, other_metrics], asset_checks=[metrics_drift]),
        *(
            lifecycle.definitions(resources if i == 0 else None)
            for i, lifecycle in enumerate(lifecycles)
        ),
    )


def test_a_lifecycle_model_is_found_with_its_own_assets_checks_and_scoring(tmp_path: Path) -> None:
    (target,) = host_targets(_defs(tmp_path, "breach"))
    assert target.model_name == "breach"
    assert target.scores == dg.AssetKey("breach_scores")
    assert target.performance_check == dg.AssetCheckKey(dg.AssetKey("breach_scores"), "performance")
    assert target.data == dg.AssetKey("metrics")
    assert target.drift_checks == (metrics_drift.check_key,)
    assert target.is_host
    # The model the factory was given, and the limits its check judges with.
    assert target.served is not None
    assert target.served.model.label == "y"
    assert target.served.limits.false_alarm_budget == 0.07


def test_the_only_model_is_chosen_and_several_need_a_name(tmp_path: Path) -> None:
    one = _defs(tmp_path, "breach")
    assert find_target(one, None, location="here").model_name == "breach"
    several = _defs(tmp_path, "breach", "latency")
    assert find_target(several, "latency", location="here").scores == dg.AssetKey("latency_scores")
    with pytest.raises(TargetError) as refused:
        find_target(several, None, location="here")
    assert str(refused.value) == (
        "code location here serves several models (breach, latency); pick one with --model"
    )
    with pytest.raises(TargetError) as unknown:
        find_target(several, "nope", location="here")
    assert (
        str(unknown.value) == "code location here serves no model nope (it serves breach, latency)"
    )


def test_the_reference_layout_is_the_fallback_and_a_monitoring_location_is_refused() -> None:
    @dg.asset(name="anomaly_scores")
    def scores() -> int:
        return 1

    reference_like = find_target(dg.Definitions(assets=[scores]), None, location="ref")
    assert (reference_like.model_name, reference_like.scores, reference_like.is_host) == (
        "anomaly_detector",
        dg.AssetKey("anomaly_scores"),
        False,
    )
    with pytest.raises(TargetError) as refused:
        find_target(dg.Definitions(assets=[metrics]), None, location="mon")
    assert "has no scored model with a performance check" in str(refused.value)
