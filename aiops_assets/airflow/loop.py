"""The closed loop's decisions, with the Dagster sensors' run keys and cooldown.

``sensors/retrain.py``: an ERROR drift result requests one retraining per drifted day (the run
key names the day), and none within the cooldown of the last request. ``sensors/rollback.py``:
a failed performance check of the version that is champion *now* requests one rollback per
failing version. In Airflow a request is an asset event (the retraining and rollback DAGs are
scheduled on those assets); the earlier events of the same asset play the part of the sensor's
run history, so a restarted scheduler remembers them as the Dagster daemon does.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from aiops_assets.airflow.records import StepSkipped
from aiops_assets.core.ledger import ModelVersion
from aiops_assets.core.registry import MODEL_NAME

RETRAIN_SENSOR = "retrain_on_drift"
ROLLBACK_SENSOR = "rollback_on_regression"
DRIFT_CHECK_LABEL = "features:drift"


@dataclass(frozen=True)
class PriorRequest:
    """An earlier request (an asset event): its run key and when it was made (epoch seconds)."""

    run_key: str
    at: float

    @classmethod
    def from_extra(cls, extra: Mapping[str, Any], at: float) -> PriorRequest:
        return cls(run_key=str(extra.get("run_key", "")), at=at)


def retrain_request(
    day: str,
    drift_check: Mapping[str, Any],
    prior: Sequence[PriorRequest],
    *,
    now: float,
    cooldown_seconds: float,
) -> dict[str, Any]:
    """The retraining request for ``day``'s drift result, or ``StepSkipped`` saying why not."""
    label = f"{DRIFT_CHECK_LABEL}[{day}]"
    if drift_check.get("verdict") != "error":
        verdict = drift_check.get("verdict", "none")
        raise StepSkipped(f"no ERROR drift in {label} (verdict {verdict})")
    run_key = f"{RETRAIN_SENSOR}:{DRIFT_CHECK_LABEL}:{day}"
    if any(item.run_key == run_key for item in prior):
        raise StepSkipped(f"ERROR drift in {label} was already requested (run key {run_key})")
    if prior:
        last = max(prior, key=lambda item: item.at)
        elapsed = now - last.at
        if elapsed < cooldown_seconds:
            raise StepSkipped(
                f"ERROR drift in {label}, but {last.run_key} was requested {elapsed:.0f}s ago; "
                f"cooldown {cooldown_seconds:.0f}s ({cooldown_seconds - elapsed:.0f}s left)"
            )
    drifted = str(drift_check.get("drifted", ""))
    return {
        "run_key": run_key,
        "until": day,
        "reason": f"ERROR drift in {label}" + (f": {drifted}" if drifted else ""),
        "requested_at": now,
    }


def rollback_request(
    day: str,
    performance_check: Mapping[str, Any],
    champion: ModelVersion | None,
    prior: Sequence[PriorRequest],
) -> dict[str, Any]:
    """The rollback request for a regression of the current champion, or ``StepSkipped``."""
    if performance_check.get("passed", True):
        raise StepSkipped(f"the performance check of {day} passed")
    if champion is None:
        raise StepSkipped(f"{MODEL_NAME} has no champion")
    if performance_check.get("model_sha256") != champion.sha256:
        raise StepSkipped(
            f"the failed performance check of {day} is not of the current champion "
            f"v{champion.version}"
        )
    run_key = f"{ROLLBACK_SENSOR}:{MODEL_NAME}:v{champion.version}"
    if any(item.run_key == run_key for item in prior):
        raise StepSkipped(f"a rollback of v{champion.version} was already requested ({run_key})")
    observed = ", ".join(
        f"{name} {float(performance_check[name]):.4f}"
        for name in ("false_alarm_rate", "f1")
        if name in performance_check
    )
    return {
        "run_key": run_key,
        "model_version": champion.version,
        "reason": f"anomaly_scores:performance[{day}] failed for v{champion.version}: {observed}",
    }
