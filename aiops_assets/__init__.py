"""aiops_assets: AIOps model operations on Dagster, as checks, sensors and resources to reuse.

Everything a host project needs is importable from here, and nothing else is public:

- check factories: :func:`build_quality_checks`, :func:`build_drift_checks`,
  :func:`build_performance_check` (late labels: :class:`DelayedLabels`),
  :func:`build_baseline_quality_checks`, :func:`build_label_health_checks`,
  :func:`build_label_collapse_checks`, :func:`build_reproducible_check`;
- the drift baseline asset factory: :func:`build_drift_baseline_asset`;
- sensors: :func:`build_retrain_on_drift_sensor`, :func:`build_alert_on_check_failure_sensor`,
  :func:`build_rollback_on_regression_sensor`, :func:`build_staged_rollout_sensor`,
  :func:`build_alert_on_stale_asset_sensor`, :func:`build_alert_on_run_failure_sensor`; the audit
  job :func:`build_audit_verify_job`;
- resources: :class:`ArtifactStoreResource`, :class:`ArtifactRefIOManager`,
  :class:`AlertSinkResource`, :class:`AccessPolicyResource`, and the registry,
  :class:`LedgerResource`;
- the Dagster Component :class:`AiopsMonitoring` (``type: aiops_assets.AiopsMonitoring``);
- the model lifecycle for a host's own model: :func:`build_model_lifecycle`, :class:`SklearnModel`,
  :class:`PyfuncModel` (an MLflow pyfunc model) and :func:`lifecycle_resources`; for a training
  asset of the host's own, :func:`register_candidate` and :func:`record_capsule`.

The names load on first use: importing the package stays free of Dagster, so the ``aiops``
command answers ``--help`` without paying for Dagster's import.

Example:
    >>> import aiops_assets as aiops  # doctest: +SKIP
    >>> checks = aiops.build_quality_checks(service_metrics, "suites/metrics.yaml")  # doctest: +SKIP
"""

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from aiops_assets.audits import build_audit_verify_job
    from aiops_assets.baselines import build_drift_baseline_asset
    from aiops_assets.capsules import record_capsule
    from aiops_assets.checks.baseline_quality import (
        build_baseline_quality_checks,
        build_label_collapse_checks,
        build_label_health_checks,
    )
    from aiops_assets.checks.drift import build_drift_checks
    from aiops_assets.checks.estimate import DelayedLabels
    from aiops_assets.checks.performance import build_performance_check
    from aiops_assets.checks.quality import build_quality_checks
    from aiops_assets.checks.reproducibility import build_reproducible_check
    from aiops_assets.components.monitoring import AiopsMonitoring
    from aiops_assets.io import ArtifactRefIOManager
    from aiops_assets.lifecycle.candidate import register_candidate
    from aiops_assets.lifecycle.factory import build_model_lifecycle, lifecycle_resources
    from aiops_assets.lifecycle.models import SklearnModel
    from aiops_assets.lifecycle.pyfunc import PyfuncModel
    from aiops_assets.resources import (
        AccessPolicyResource,
        AlertSinkResource,
        ArtifactStoreResource,
        LedgerResource,
    )
    from aiops_assets.sensors.alerts import build_alert_on_check_failure_sensor
    from aiops_assets.sensors.freshness import build_alert_on_stale_asset_sensor
    from aiops_assets.sensors.mature_labels import (
        build_rejudge_job,
        build_rejudge_on_mature_labels_sensor,
    )
    from aiops_assets.sensors.redeliver import build_redeliver_alerts_sensor
    from aiops_assets.sensors.retrain import build_retrain_on_drift_sensor
    from aiops_assets.sensors.rollback import build_rollback_on_regression_sensor
    from aiops_assets.sensors.rollout import build_staged_rollout_sensor
    from aiops_assets.sensors.run_failure import build_alert_on_run_failure_sensor

_SOURCES = {
    "AccessPolicyResource": "aiops_assets.resources",
    "AiopsMonitoring": "aiops_assets.components.monitoring",
    "AlertSinkResource": "aiops_assets.resources",
    "ArtifactRefIOManager": "aiops_assets.io",
    "ArtifactStoreResource": "aiops_assets.resources",
    "DelayedLabels": "aiops_assets.checks.estimate",
    "LedgerResource": "aiops_assets.resources",
    "PyfuncModel": "aiops_assets.lifecycle.pyfunc",
    "SklearnModel": "aiops_assets.lifecycle.models",
    "build_alert_on_check_failure_sensor": "aiops_assets.sensors.alerts",
    "build_alert_on_run_failure_sensor": "aiops_assets.sensors.run_failure",
    "build_alert_on_stale_asset_sensor": "aiops_assets.sensors.freshness",
    "build_audit_verify_job": "aiops_assets.audits",
    "build_baseline_quality_checks": "aiops_assets.checks.baseline_quality",
    "build_drift_baseline_asset": "aiops_assets.baselines",
    "build_drift_checks": "aiops_assets.checks.drift",
    "build_label_collapse_checks": "aiops_assets.checks.baseline_quality",
    "build_label_health_checks": "aiops_assets.checks.baseline_quality",
    "build_model_lifecycle": "aiops_assets.lifecycle.factory",
    "build_performance_check": "aiops_assets.checks.performance",
    "build_quality_checks": "aiops_assets.checks.quality",
    "build_redeliver_alerts_sensor": "aiops_assets.sensors.redeliver",
    "build_rejudge_job": "aiops_assets.sensors.mature_labels",
    "build_rejudge_on_mature_labels_sensor": "aiops_assets.sensors.mature_labels",
    "build_reproducible_check": "aiops_assets.checks.reproducibility",
    "build_retrain_on_drift_sensor": "aiops_assets.sensors.retrain",
    "build_rollback_on_regression_sensor": "aiops_assets.sensors.rollback",
    "build_staged_rollout_sensor": "aiops_assets.sensors.rollout",
    "lifecycle_resources": "aiops_assets.lifecycle.factory",
    "record_capsule": "aiops_assets.capsules",
    "register_candidate": "aiops_assets.lifecycle.candidate",
}

__all__ = [
    "AccessPolicyResource",
    "AiopsMonitoring",
    "AlertSinkResource",
    "ArtifactRefIOManager",
    "ArtifactStoreResource",
    "DelayedLabels",
    "LedgerResource",
    "PyfuncModel",
    "SklearnModel",
    "build_alert_on_check_failure_sensor",
    "build_alert_on_run_failure_sensor",
    "build_alert_on_stale_asset_sensor",
    "build_audit_verify_job",
    "build_baseline_quality_checks",
    "build_drift_baseline_asset",
    "build_drift_checks",
    "build_label_collapse_checks",
    "build_label_health_checks",
    "build_model_lifecycle",
    "build_performance_check",
    "build_quality_checks",
    "build_redeliver_alerts_sensor",
    "build_rejudge_job",
    "build_rejudge_on_mature_labels_sensor",
    "build_reproducible_check",
    "build_retrain_on_drift_sensor",
    "build_rollback_on_regression_sensor",
    "build_staged_rollout_sensor",
    "lifecycle_resources",
    "record_capsule",
    "register_candidate",
]


def __getattr__(name: str) -> Any:
    source = _SOURCES.get(name)
    if source is None:
        raise AttributeError(f"module 'aiops_assets' has no attribute {name!r}")
    value = getattr(importlib.import_module(source), name)
    globals()[name] = value  # later lookups are plain attribute reads
    return value


def __dir__() -> list[str]:
    # dg discovers components by listing the registry module: the public names, loaded or not.
    return list(__all__)
