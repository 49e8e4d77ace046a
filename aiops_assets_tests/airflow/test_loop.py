"""The loop's decisions: the Dagster sensors' run keys and cooldown, as asset events."""

from __future__ import annotations

import pytest

from aiops_assets.airflow.loop import PriorRequest, retrain_request, rollback_request
from aiops_assets.airflow.records import StepSkipped
from aiops_assets.core.ledger import ModelVersion
from aiops_assets.core.pipeline.training import (
    CANDIDATE_MODEL_CODE_VERSION,
    CHAMPION_MODEL_CODE_VERSION,
    TRAINING_SET_CODE_VERSION,
)

ERROR = {"verdict": "error", "drifted": "cpu_pct__mean_1h"}


def test_an_error_drift_requests_retraining_until_the_drifted_day() -> None:
    request = retrain_request("2026-01-10", ERROR, [], now=1000.0, cooldown_seconds=60)
    assert request["run_key"] == "retrain_on_drift:features:drift:2026-01-10"
    assert request["until"] == "2026-01-10"
    assert request["reason"] == "ERROR drift in features:drift[2026-01-10]: cpu_pct__mean_1h"


@pytest.mark.parametrize("verdict", ["ok", "warn"])
def test_warn_or_no_drift_never_retrains(verdict: str) -> None:
    with pytest.raises(StepSkipped, match=f"no ERROR drift.*verdict {verdict}"):
        retrain_request("2026-01-10", {"verdict": verdict}, [], now=0.0, cooldown_seconds=0)


def test_one_drifted_day_retrains_once_and_the_cooldown_holds_the_next() -> None:
    first = PriorRequest("retrain_on_drift:features:drift:2026-01-10", at=1000.0)
    with pytest.raises(StepSkipped, match="already requested"):
        retrain_request("2026-01-10", ERROR, [first], now=10**9, cooldown_seconds=60)
    with pytest.raises(StepSkipped, match=r"requested 30s ago; cooldown 60s \(30s left\)"):
        retrain_request("2026-01-11", ERROR, [first], now=1030.0, cooldown_seconds=60)
    after = retrain_request("2026-01-11", ERROR, [first], now=1060.0, cooldown_seconds=60)
    assert after["until"] == "2026-01-11"


def _version(number: int, sha: str) -> ModelVersion:
    from datetime import UTC, datetime

    return ModelVersion(
        model_name="anomaly_detector",
        version=number,
        sha256=sha,
        metrics={},
        training_set_version="",
        feature_set_version="",
        created_at=datetime(2026, 1, 1, tzinfo=UTC),
        created_by="local:test",
        capsule_ref=None,
        run_id=None,
        tags={},
    )


def test_only_a_failure_of_the_current_champion_rolls_back_once_per_version() -> None:
    champion = _version(2, "b" * 64)
    failed = {"passed": False, "model_sha256": "b" * 64, "false_alarm_rate": 0.2}
    request = rollback_request("2026-01-10", failed, champion, [])
    assert request["run_key"] == "rollback_on_regression:anomaly_detector:v2"
    assert "false_alarm_rate 0.2000" in request["reason"]
    with pytest.raises(StepSkipped, match="already requested"):
        rollback_request("2026-01-10", failed, champion, [PriorRequest(request["run_key"], 0.0)])
    with pytest.raises(StepSkipped, match="not of the current champion v2"):
        rollback_request("2026-01-10", {**failed, "model_sha256": "a" * 64}, champion, [])
    with pytest.raises(StepSkipped, match="passed"):
        rollback_request("2026-01-10", {"passed": True}, champion, [])


def test_the_code_versions_are_the_dagster_assets_own() -> None:
    from aiops_assets.reference.assets import models

    # The Dagster assets' own code versions, as their definitions carry them.
    versions = {
        key.to_user_string(): version
        for asset in (models.training_set, models.candidate_model, models.champion_model)
        for key, version in asset.code_versions_by_key.items()
    }
    assert versions == {
        "training_set": TRAINING_SET_CODE_VERSION,
        "candidate_model": CANDIDATE_MODEL_CODE_VERSION,
        "champion_model": CHAMPION_MODEL_CODE_VERSION,
    }
    assert versions == {
        "training_set": "training_set-2",
        "candidate_model": "candidate_model-3",
        "champion_model": "champion_model-2",
    }, "a code version changed: say in the change why the computation changed"
