"""``AiopsMonitoring``: the plugin's checks, drift baselines, sensors and alert sink, from YAML.

A platform team that already has assets should not have to write Python to monitor them: the
component reads which assets to watch from ``defs.yaml``, finds their definitions (key and
partitions) where the project defines them, and builds the same checks, baseline assets and
sensors the factories build. Everything it adds is ordinary Dagster definitions merged into the
project's code location.
"""

import importlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal

import dagster as dg

from aiops_assets.baselines import build_drift_baseline_asset
from aiops_assets.checks.drift import build_drift_checks
from aiops_assets.checks.quality import build_quality_checks
from aiops_assets.components.scaffolder import MonitoringScaffolder
from aiops_assets.io import ArtifactRefIOManager
from aiops_assets.keys import DRIFT_CHECK_NAME
from aiops_assets.lifecycle.factory import ModelLifecycle, build_model_lifecycle
from aiops_assets.resources import (
    AccessPolicyResource,
    AlertSinkResource,
    ArtifactStoreResource,
    LedgerResource,
)
from aiops_assets.sensors.alerts import build_alert_on_check_failure_sensor
from aiops_assets.sensors.retrain import build_retrain_on_drift_sensor


def described(description: str) -> dg.Resolver:
    """Default resolution, with the description ``dg`` shows in the component's schema."""
    return dg.Resolver.default(description=description)


class DriftMonitor(dg.Resolvable, dg.Model):
    """Drift of every partition against a baseline profiled from the asset's first partitions."""

    columns: Annotated[
        Sequence[str] | None, described("Only these profiled columns are checked; default all.")
    ] = None
    exclude: Annotated[
        Sequence[str], described("Key or identifier columns that are never profiled.")
    ] = ()
    labels: Annotated[Sequence[str], described("0/1 columns profiled for label drift.")] = ()
    policy: Annotated[
        str | None,
        described("A drift policy YAML, relative to this defs.yaml; default the packaged one."),
    ] = None
    baseline: Annotated[
        str | None, described("The baseline asset's name; default <asset>_drift_baseline.")
    ] = None


class MonitoredAsset(dg.Resolvable, dg.Model):
    """One host asset and the checks to attach to it."""

    asset: Annotated[str, described("The asset key, as in the UI (a/b for a prefixed key).")]
    quality_suite: Annotated[
        str | None, described("A Great Expectations suite YAML, relative to this defs.yaml.")
    ] = None
    severity: Annotated[
        Literal["ERROR", "WARN"], described("Severity of suite entries that do not name one.")
    ] = "ERROR"
    blocking: Annotated[
        bool, described("Whether the ERROR quality check blocks downstream assets.")
    ] = True
    drift: Annotated[DriftMonitor | None, described("Drift checking, if wanted.")] = None


class RetrainOnDrift(dg.Resolvable, dg.Model):
    """Which job an ERROR drift result requests."""

    job: Annotated[str, described("The retraining job's name.")]
    assets: Annotated[
        Sequence[str] | None,
        described("If set, the component defines the job itself, materializing these assets."),
    ] = None
    run_config: Annotated[
        Mapping[str, Any] | None, described("The retraining run's config; default none.")
    ] = None
    cooldown_seconds: Annotated[float, described("Minimum time between two retraining runs.")] = (
        6 * 3600
    )


class ModelLifecycleSettings(dg.Resolvable, dg.Model):
    """A host model's lifecycle (``build_model_lifecycle``): registry, gate, serving, rollback."""

    name: Annotated[str, described("The registered model's name; prefixes every definition.")]
    spec: Annotated[
        str,
        described(
            "Where the model spec is: 'package.module:attribute', an importable SklearnModel "
            "(or any LifecycleModel)."
        ),
    ]
    training_set: Annotated[str, described("The training-set asset's key (in assets_from).")]
    serve: Annotated[
        str | None, described("The (partitioned) asset to score in service, if any.")
    ] = None
    blocking_checks: Annotated[
        Sequence[str], described("Checks (asset:check) that must pass on every trained day.")
    ] = ()
    drift_checks: Annotated[
        Sequence[str], described("Drift checks (asset:check) whose ERROR retrains the model.")
    ] = ()
    performance_limits: Annotated[
        Mapping[str, float] | None,
        described("Performance-check limits (false_alarm_budget, f1_tolerance, ...)."),
    ] = None
    code_version: Annotated[str, described("The candidate's and champion's code version.")] = "1"


class AlertSinkSettings(dg.Resolvable, dg.Model):
    """Where alerts go (see ``AlertSinkResource``)."""

    webhook_url: Annotated[
        str, described("A Slack-compatible webhook; empty writes to outbox_path only.")
    ] = ""
    webhook_url_env: Annotated[
        str,
        described(
            "The environment variable holding the webhook, used instead of webhook_url: the "
            "webhook is a credential, and passed by name the UI never shows it."
        ),
    ] = ""
    outbox_path: Annotated[
        str, described("The JSON-lines outbox, relative to the project root.")
    ] = ".aiops/alerts.jsonl"
    ui_url: Annotated[str, described("The Dagster UI, for run links in alerts.")] = (
        "http://127.0.0.1:3000"
    )
    alertmanager_urls: Annotated[
        str,
        described(
            "Comma-separated Alertmanager base URLs (every instance of an HA cluster); each "
            "alert goes to all of them and to the webhook. Empty sends none there."
        ),
    ] = ""
    alertmanager_urls_env: Annotated[
        str,
        described(
            "The environment variable holding alertmanager_urls, used instead of it: a URL "
            "with user:password@ is a credential, and passed by name the UI never shows it."
        ),
    ] = ""
    service: Annotated[
        str, described("Alertmanager's service label (the team's routing key) on every alert.")
    ] = "aiops"
    runbook_url: Annotated[
        str,
        described(
            "Alertmanager's runbook_url annotation; may use {asset}, {check}, {partition}, "
            "{kind} and {alertname}."
        ),
    ] = ""

    def resource(self, project_root: Path) -> AlertSinkResource:
        """The ``alert_sink`` these settings describe; credentials named stay ``dg.EnvVar``."""
        return AlertSinkResource(
            webhook_url=_by_name(self.webhook_url_env, self.webhook_url),
            alertmanager_urls=_by_name(self.alertmanager_urls_env, self.alertmanager_urls),
            service=self.service,
            runbook_url=self.runbook_url,
            outbox_path=_under(project_root, self.outbox_path),
            ui_url=self.ui_url,
        )


def _by_name(env_var: str, value: str) -> Any:
    """``dg.EnvVar(env_var)`` when a variable is named, else the literal ``value``."""
    return dg.EnvVar(env_var) if env_var else value


# `dg scaffold defs aiops_assets.AiopsMonitoring NAME` writes a starter that loads (scaffolder.py).
@dg.scaffold_with(MonitoringScaffolder)
class AiopsMonitoring(dg.Component, dg.Resolvable, dg.Model):
    """Quality and drift checks on a host project's assets, with baselines, sensors and alerts.

    For each entry of ``monitors`` the component attaches the quality checks of a Great
    Expectations suite (``<suite>_error`` / ``<suite>_warn``) and a ``drift`` check against a
    baseline asset it adds (``<asset>_drift_baseline``, profiling the asset's first partitions).
    It adds the ``alert_on_check_failure`` sensor over these checks, the ``retrain_on_drift``
    sensor when ``retrain`` names a job, and the resources they need: ``artifact_store`` and
    ``artifact_io_manager`` (where baselines live) and ``alert_sink``. Sensors are created stopped
    unless ``sensors_running`` is true. The monitored assets are looked up in the definitions
    at ``assets_from`` (paths in the project's defs folder), so the checks are partitioned like
    their assets without repeating the partitioning in YAML.

    Relative paths: suites and policies are relative to the ``defs.yaml`` folder; the store root
    and the alert outbox are relative to the project root (URLs such as ``s3://`` stay as given).

    Attributes:
        assets_from: Defs-folder paths (``assets.py``, ``ingest/``) that define the monitored assets.
        monitors: The assets to monitor and how.
        store_root: Artifact store root for baselines: a path or an fsspec URL.
        retrain: The job an ERROR drift result requests, if any.
        alerts: Where alerts go.
        sensors_running: Start the sensors running instead of stopped.
        group_name: The asset group of the baseline assets.
        models: Host models given the whole lifecycle (``build_model_lifecycle``).
        ledger_url: The ledger (model registry and audit log) for ``models``: a SQLAlchemy URL,
            or a path relative to the project root for SQLite.

    Example:
        A ``defs/monitoring/defs.yaml`` in a ``dg`` project:

        .. code-block:: yaml

            type: aiops_assets.AiopsMonitoring
            attributes:
              assets_from: [assets.py]
              monitors:
                - asset: service_metrics
                  quality_suite: suites/service_metrics.yaml
                  drift: {exclude: [ts, host], labels: [is_incident]}
              retrain: {job: refit_latency_model, assets: [latency_model]}
              alerts: {webhook_url: "{{ env.SLACK_WEBHOOK_URL }}"}

        >>> dg.load_from_defs_folder(path_within_project=Path("."))  # doctest: +SKIP
    """

    assets_from: Annotated[
        Sequence[str], described("Defs-folder paths that define the monitored assets.")
    ]
    monitors: Annotated[Sequence[MonitoredAsset], described("The assets to monitor and how.")]
    store_root: Annotated[
        str, described("Where baselines are stored: a path under the project, or a URL.")
    ] = ".aiops/store"
    retrain: Annotated[
        RetrainOnDrift | None, described("The job an ERROR drift result requests, if any.")
    ] = None
    alerts: Annotated[AlertSinkSettings, described("Where alerts go.")] = AlertSinkSettings()
    sensors_running: Annotated[
        bool, described("Create the sensors running instead of stopped.")
    ] = False
    group_name: Annotated[str, described("The asset group of the baseline assets.")] = (
        "aiops_monitoring"
    )
    models: Annotated[
        Sequence[ModelLifecycleSettings],
        described("Host models given the whole lifecycle: registry, gate, serving, rollback."),
    ] = ()
    ledger_url: Annotated[
        str, described("The models' ledger: a SQLAlchemy URL, or a SQLite path under the project.")
    ] = ".aiops/ledger.db"

    def build_defs(self, context: dg.ComponentLoadContext) -> dg.Definitions:
        here = context.path if context.path.is_dir() else context.path.parent
        hosts = self._host_assets(context)
        checks: list[dg.AssetChecksDefinition] = []
        baselines: list[dg.AssetsDefinition] = []
        drift_keys: list[dg.AssetCheckKey] = []
        for monitor in self.monitors:
            host = hosts[dg.AssetKey.from_user_string(monitor.asset)]
            if monitor.quality_suite is not None:
                checks += build_quality_checks(
                    host,
                    here / monitor.quality_suite,
                    severity=monitor.severity,
                    blocking=monitor.blocking,
                )
            if monitor.drift is not None:
                baseline = build_drift_baseline_asset(
                    host,
                    name=monitor.drift.baseline or f"{'__'.join(host.key.path)}_drift_baseline",
                    exclude=tuple(monitor.drift.exclude),
                    labels=tuple(monitor.drift.labels),
                    group_name=self.group_name,
                )
                baselines.append(baseline)
                checks += build_drift_checks(
                    host,
                    baseline,
                    columns=monitor.drift.columns,
                    policy=here / monitor.drift.policy if monitor.drift.policy else None,
                )
                drift_keys.append(dg.AssetCheckKey(host.key, DRIFT_CHECK_NAME))
        status = (
            dg.DefaultSensorStatus.RUNNING
            if self.sensors_running
            else dg.DefaultSensorStatus.STOPPED
        )
        lifecycles = [self._lifecycle(item, context, status) for item in self.models]
        model_checks = [check for item in lifecycles for check in item.asset_checks]
        sensors = [
            build_alert_on_check_failure_sensor(
                check_keys=[key for check in [*checks, *model_checks] for key in check.check_keys],
                default_status=status,
            )
        ]
        jobs: list[Any] = []  # define_asset_job returns a type Dagster does not export
        if self.retrain is not None:
            sensors.append(self._retrain_sensor(self.retrain, drift_keys, status, jobs))
        root = _under(context.project_root, self.store_root)
        resources: dict[str, Any] = {
            "artifact_store": ArtifactStoreResource(root=root),
            "artifact_io_manager": ArtifactRefIOManager(root=root),
            "alert_sink": self.alerts.resource(context.project_root),
        }
        if lifecycles:
            resources["ledger"] = LedgerResource(url=self._ledger_url(context.project_root))
            resources["access_policy"] = AccessPolicyResource()
        return dg.Definitions(
            assets=[*baselines, *(asset for item in lifecycles for asset in item.assets)],
            asset_checks=[*checks, *model_checks],
            sensors=[*sensors, *(sensor for item in lifecycles for sensor in item.sensors)],
            jobs=[*jobs, *(job for item in lifecycles for job in item.jobs)],
            resources=resources,
        )

    def _ledger_url(self, project_root: Path) -> str:
        if "://" in self.ledger_url:
            return self.ledger_url
        return f"sqlite:///{_under(project_root, self.ledger_url)}"

    def _lifecycle(
        self,
        settings: ModelLifecycleSettings,
        context: dg.ComponentLoadContext,
        status: dg.DefaultSensorStatus,
    ) -> ModelLifecycle:
        """One model's lifecycle, its spec imported from where the project defines it."""
        serve = None
        if settings.serve is not None:
            hosts = self._assets_in(context)
            key = dg.AssetKey.from_user_string(settings.serve)
            if key not in hosts:
                raise ValueError(
                    f"AiopsMonitoring: models[{settings.name}].serve {settings.serve} is not "
                    f"defined in {list(self.assets_from)}"
                )
            serve = hosts[key]
        return build_model_lifecycle(
            _import_model(settings.spec, settings.name),
            name=settings.name,
            training_set=settings.training_set,
            serve=serve,
            blocking_checks=[
                dg.AssetCheckKey.from_user_string(c) for c in settings.blocking_checks
            ],
            drift_checks=[dg.AssetCheckKey.from_user_string(c) for c in settings.drift_checks],
            performance_limits=settings.performance_limits,
            group_name=self.group_name,
            code_version=settings.code_version,
            default_status=status,
        )

    def _assets_in(self, context: dg.ComponentLoadContext) -> dict[dg.AssetKey, dg.AssetSpec]:
        """The specs (key and partitions) of every asset defined at ``assets_from``."""
        if not self.assets_from:
            raise ValueError("AiopsMonitoring needs assets_from: where the monitored assets live")
        found: dict[dg.AssetKey, dg.AssetSpec] = {}
        for location in self.assets_from:
            for item in context.build_defs(location).assets or ():
                if isinstance(item, dg.AssetsDefinition):
                    found.update((spec.key, spec) for spec in item.specs)
                elif isinstance(item, dg.AssetSpec):
                    found[item.key] = item
        return found

    def _host_assets(self, context: dg.ComponentLoadContext) -> dict[dg.AssetKey, dg.AssetSpec]:
        """The monitored assets' specs (key and partitions) from where the project defines them."""
        found = self._assets_in(context)
        missing = [
            monitor.asset
            for monitor in self.monitors
            if dg.AssetKey.from_user_string(monitor.asset) not in found
        ]
        if missing:
            known = ", ".join(sorted(key.to_user_string() for key in found)) or "no assets"
            raise ValueError(
                f"AiopsMonitoring: {', '.join(missing)} not defined in {list(self.assets_from)} "
                f"(found {known})"
            )
        return found

    def _retrain_sensor(
        self,
        retrain: RetrainOnDrift,
        drift_keys: Sequence[dg.AssetCheckKey],
        status: dg.DefaultSensorStatus,
        jobs: list[Any],
    ) -> dg.SensorDefinition:
        if not drift_keys:
            raise ValueError("AiopsMonitoring: retrain needs at least one monitor with drift")
        if retrain.assets:
            jobs.append(
                dg.define_asset_job(
                    retrain.job,
                    selection=dg.AssetSelection.assets(
                        *(dg.AssetKey.from_user_string(name) for name in retrain.assets)
                    ),
                    description="Retrains on ERROR drift (requested by retrain_on_drift).",
                )
            )
        run_config = dict(retrain.run_config or {})
        return build_retrain_on_drift_sensor(
            job=retrain.job,
            drift_checks=drift_keys,
            cooldown_seconds=retrain.cooldown_seconds,
            run_config=lambda _evaluation: run_config,
            default_status=status,
        )


def _import_model(location: str, name: str) -> Any:
    """The object at ``package.module:attribute``; a wrong path is one clear line."""
    module_name, _, attribute = location.partition(":")
    try:
        value = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError, ValueError) as error:
        raise ValueError(
            f"AiopsMonitoring: models[{name}].spec {location!r} cannot be imported "
            f"(expected 'package.module:attribute'): {error}"
        ) from error
    return value


def _under(project_root: Path, location: str) -> str:
    """A relative path is the project's; an absolute path or a URL stays as it is."""
    if "://" in location or Path(location).is_absolute():
        return location
    return str(project_root / location)
