"""Sensors that close the loop without a person: retrain on drift, roll back on regression,
alert, and move a staged rollout on."""

from aiops_assets.sensors.alerts import build_alert_on_check_failure_sensor
from aiops_assets.sensors.freshness import build_alert_on_stale_asset_sensor
from aiops_assets.sensors.retrain import build_retrain_on_drift_sensor
from aiops_assets.sensors.rollback import build_rollback_on_regression_sensor
from aiops_assets.sensors.rollout import build_staged_rollout_sensor
from aiops_assets.sensors.run_failure import build_alert_on_run_failure_sensor

__all__ = [
    "build_alert_on_check_failure_sensor",
    "build_alert_on_run_failure_sensor",
    "build_alert_on_stale_asset_sensor",
    "build_retrain_on_drift_sensor",
    "build_rollback_on_regression_sensor",
    "build_staged_rollout_sensor",
]
