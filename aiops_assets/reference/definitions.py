"""The code location: assembles the reference pipeline and its resources into one ``dg.Definitions``."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import dagster as dg

from aiops_assets import (
    AccessPolicyResource,
    AlertSinkResource,
    ArtifactRefIOManager,
    ArtifactStoreResource,
    DelayedLabels,
    LedgerResource,
    build_alert_on_check_failure_sensor,
    build_alert_on_run_failure_sensor,
    build_alert_on_stale_asset_sensor,
    build_audit_verify_job,
    build_baseline_quality_checks,
    build_drift_baseline_asset,
    build_drift_checks,
    build_label_collapse_checks,
    build_label_health_checks,
    build_performance_check,
    build_quality_checks,
    build_redeliver_alerts_sensor,
    build_rejudge_job,
    build_rejudge_on_mature_labels_sensor,
    build_reproducible_check,
    build_retrain_on_drift_sensor,
    build_rollback_on_regression_sensor,
    build_staged_rollout_sensor,
)
from aiops_assets.core.baseline_quality import BaselineTolerances
from aiops_assets.core.features import model_input_columns
from aiops_assets.core.quality import DEFAULT_FEATURES_SUITE, Severity
from aiops_assets.keys import (
    ADOPT_JOB,
    BASELINE_QUALITY_CHECK_NAME,
    DAILY_JOB,
    DRIFT_CHECK_NAME,
    FEATURES_KEY,
    LABEL_HEALTH_CHECK_NAME,
    PERFORMANCE_CHECK_NAME,
    REPRODUCIBLE_CHECK_NAME,
    ROLLBACK_JOB,
    SCORES_KEY,
    SNAPSHOT_KEY,
    TELEMETRY_BASELINE_KEY,
    TRAIN_JOB,
)
from aiops_assets.reference import automation
from aiops_assets.reference import clock as pipeline_clock
from aiops_assets.reference.assets import build_reference_assets
from aiops_assets.reference.assets.monitoring_report import build_monitoring_report_asset
from aiops_assets.reference.labels import delayed_labels
from aiops_assets.reference.leakage import build_leakage_check
from aiops_assets.reference.settings import PipelineSettings
from aiops_assets.resources import (
    FeatureFlagsResource,
    PromotionGateResource,
    TelemetrySourceResource,
)

# The pipeline's stages, in the order a first run needs them: daily ingest, then training and the
# drift baselines (which need some days of features), then daily scoring and drift checks (which
# need the champion and the baselines).
INGEST_ASSETS = ("telemetry_snapshot", "features")
TRAINING_ASSETS = (
    "drift_baseline",
    TELEMETRY_BASELINE_KEY.to_user_string(),
    "training_set",
    "candidate_model",
    "champion_model",
    "score_baseline",
)
SCORING_ASSETS = ("anomaly_scores",)
PARTITIONED_ASSETS = (*INGEST_ASSETS, *SCORING_ASSETS)
UNPARTITIONED_ASSETS = TRAINING_ASSETS
# Daily, but in no job: the automation sensor materializes it after the scores' run ended, so it
# reads their checks' verdicts (inside the run it could go before them).
REPORT_ASSETS = ("monitoring_report",)
ROLLBACK_ASSETS = ("champion_model", "score_baseline")
DAILY_FORMAT = "%Y-%m-%d"
# No colon (Dagster's default "%Y-%m-%d-%H:%M" has one): a partition key is part of an artifact
# ref's name in the store, and object stores and some file systems refuse colons.
HOURLY_FORMAT = "%Y-%m-%dT%H"
REPRODUCIBLE_CHECK = dg.AssetCheckKey(dg.AssetKey("champion_model"), REPRODUCIBLE_CHECK_NAME)
# Checks that cost a training each: launched by a person (UI, `aiops reproduce`), never by a job.
ON_DEMAND_CHECKS = (REPRODUCIBLE_CHECK,)


def without_on_demand_checks(selection: dg.AssetSelection) -> dg.AssetSelection:
    return selection - dg.AssetSelection.checks(*ON_DEMAND_CHECKS)


FEATURES_DRIFT_CHECK = dg.AssetCheckKey(FEATURES_KEY, DRIFT_CHECK_NAME)
SCORES_DRIFT_CHECK = dg.AssetCheckKey(SCORES_KEY, DRIFT_CHECK_NAME)
PERFORMANCE_CHECK = dg.AssetCheckKey(SCORES_KEY, PERFORMANCE_CHECK_NAME)
REJUDGE_JOB = "rejudge_performance_job"
SNAPSHOT_BASELINE_CHECKS = (
    dg.AssetCheckKey(SNAPSHOT_KEY, BASELINE_QUALITY_CHECK_NAME),
    dg.AssetCheckKey(SNAPSHOT_KEY, LABEL_HEALTH_CHECK_NAME),
)
# Checks that read a baseline built by training: they run with scoring, once a baseline exists.
BASELINE_CHECKS = (FEATURES_DRIFT_CHECK, *SNAPSHOT_BASELINE_CHECKS)

# Level tolerances of the snapshot's baseline-quality check. Measured on generated days without
# any fault (seeds 1-40, 28 days, a reference of the first 3 days starting on each weekday): the
# median of a service's latency stayed within x1.15 of the reference, its memory within x1.12,
# its request and error rates within x1.85 (weekends) and its CPU within x1.6. The default x2.25
# holds the rates and CPU; latency and memory, far steadier, get tighter factors, so a bad config
# (latency x1.8) or a leak (memory x1.25) fails too. docs/checks.md has the held-out figures.
SNAPSHOT_TOLERANCES = BaselineTolerances(
    columns={"latency_p50_ms": 1.4, "latency_p99_ms": 1.4, "memory_pct": 1.25}
)


def ingest_selection() -> dg.AssetSelection:
    """Snapshot and features with their checks, except those that read a baseline (drift, the
    snapshot's baseline quality and label health): it may not exist yet."""
    return dg.AssetSelection.assets(*INGEST_ASSETS) - dg.AssetSelection.checks(*BASELINE_CHECKS)


def scoring_selection() -> dg.AssetSelection:
    """The champion's scores with their drift check, and the baseline checks of the day's
    features and snapshot."""
    return dg.AssetSelection.assets(*SCORING_ASSETS) | dg.AssetSelection.checks(*BASELINE_CHECKS)


def time_partitions(settings: PipelineSettings) -> dg.TimeWindowPartitionsDefinition:
    """Daily (or hourly) partitions from ``AIOPS_START`` up to the last closed window.

    On the live clock they are open-ended: Dagster adds each window as it closes, and a lag of
    whole periods holds the newest ones back (``end_offset``). A fixed clock (the default, and
    any ``AIOPS_NOW=<datetime>``) ends them at its last closed window instead, because Dagster's
    webserver and daemon read the real clock: the UI then shows the demo's partitions, no more.
    """
    kind = (
        dg.HourlyPartitionsDefinition
        if settings.partition == "hourly"
        else dg.DailyPartitionsDefinition
    )
    start = pipeline_clock.start_of(settings.start)
    fmt = HOURLY_FORMAT if settings.partition == "hourly" else DAILY_FORMAT
    now = settings.now
    if now is None:
        whole_periods, _ = pipeline_clock.lag_split(settings.lag, settings.partition)
        return kind(
            start_date=start.strftime(fmt), end_offset=-whole_periods, timezone="UTC", fmt=fmt
        )
    end = pipeline_clock.closed_until(now, settings.lag, settings.partition)
    if end <= start:
        raise ValueError(
            f"the clock ({now.isoformat()}, lag {pipeline_clock.format_duration(settings.lag)}) "
            f"closes no partition after the start {settings.start}: set AIOPS_NOW later"
        )
    return kind(start_date=start.strftime(fmt), end_date=end.strftime(fmt), timezone="UTC", fmt=fmt)


def daily_partitions(settings: PipelineSettings) -> dg.TimeWindowPartitionsDefinition:
    """The pipeline's time partitions (daily by default); kept under its first name for callers."""
    return time_partitions(settings)


CELERY_BROKER_ENV = "AIOPS_CELERY_BROKER"
CELERY_BACKEND_ENV = "AIOPS_CELERY_BACKEND"


def build_executor(settings: PipelineSettings) -> dg.ExecutorDefinition:
    """The executor ``AIOPS_EXECUTOR`` names, so a laptop and a cluster run the same jobs.

    Celery's broker and result-backend URLs may hold passwords, and configured values show in the
    UI, so the executor is given the names of the variables, which it reads when a run starts.
    """
    if settings.executor == "multiprocess":
        return dg.multiprocess_executor
    if settings.executor == "celery":
        # Imported only when chosen: the laptop default does not pay for Celery's import, and
        # dagster-celery is an extra.
        try:
            from dagster_celery import celery_executor
        except ModuleNotFoundError as error:
            raise ValueError(
                "AIOPS_EXECUTOR=celery needs dagster-celery, which is not installed: "
                "pip install 'aiops-assets[celery]'"
            ) from error

        if not os.environ.get(CELERY_BROKER_ENV):
            raise ValueError(
                f"AIOPS_EXECUTOR=celery needs the broker URL in {CELERY_BROKER_ENV} "
                "(e.g. amqp://guest:guest@127.0.0.1:5672//)"
            )
        config: dict[str, Any] = {
            "broker": {"env": CELERY_BROKER_ENV},
            "config_source": {"task_default_queue": settings.celery_queue},
        }
        if os.environ.get(CELERY_BACKEND_ENV):
            config["backend"] = {"env": CELERY_BACKEND_ENV}
        return celery_executor.configured(config)
    return dg.in_process_executor


LEDGER_URL_ENV = "AIOPS_LEDGER_URL"
ALERT_WEBHOOK_ENV = "AIOPS_ALERT_WEBHOOK"
SOURCE_URL_ENV = "AIOPS_SOURCE_URL"
ALERTMANAGER_URL_ENV = "AIOPS_ALERTMANAGER_URL"


def by_name(value: str, env_var: str) -> str:
    """A setting that may hold a secret, by the name of the variable it came from.

    Configured values show in the UI, so a ledger URL with its password or a webhook URL read
    from ``env_var`` is handed over as ``dg.EnvVar(env_var)``, which Dagster resolves when a run
    or tick starts. The embedded defaults (a SQLite ledger in the home, the outbox file) hold no
    secret and pass as they are, so nothing needs to be set for them.
    """
    if value and os.environ.get(env_var) == value:
        return dg.EnvVar(env_var)
    return value


def build_resources(
    settings: PipelineSettings, *, gate_checks: Sequence[dg.AssetCheckKey] = ()
) -> dict[str, object]:
    artifact_store = ArtifactStoreResource(root=settings.store_root)
    ledger_url = by_name(settings.ledger_url, LEDGER_URL_ENV)
    return {
        "artifact_store": artifact_store,
        "artifact_io_manager": ArtifactRefIOManager(root=settings.store_root),
        "telemetry_source": TelemetrySourceResource(
            kind=settings.source_kind,
            path=settings.source_path or None,
            url=by_name(settings.source_url, SOURCE_URL_ENV),
            mapping=settings.source_mapping,
            scenario_start=settings.start.isoformat(),
            scenario_days=settings.days,
            seed=settings.seed,
        ),
        "ledger": LedgerResource(
            url=ledger_url,
            key_file=str(settings.audit_key_file),
            witness_file=str(settings.audit_witness_file),
        ),
        "feature_flags": FeatureFlagsResource(
            ledger_url=ledger_url,
            key_file=str(settings.audit_key_file),
            environment=settings.environment,
        ),
        "access_policy": AccessPolicyResource(path=settings.access_policy),
        "alert_sink": AlertSinkResource(
            webhook_url=by_name(settings.alert_webhook, ALERT_WEBHOOK_ENV),
            alertmanager_urls=by_name(settings.alertmanager_url, ALERTMANAGER_URL_ENV),
            service=settings.alert_service,
            runbook_url=settings.alert_runbook_url,
            outbox_path=str(settings.alert_outbox),
            ui_url=settings.ui_url,
        ),
        "promotion_gate": PromotionGateResource(
            blocking_checks=[key.to_user_string() for key in gate_checks]
        ),
    }


def blocking_checks_upstream(
    assets: Sequence[dg.AssetsDefinition], asset_key: dg.AssetKey
) -> list[dg.AssetCheckKey]:
    """Every blocking check on an asset upstream of ``asset_key``.

    Computed once from the whole graph because a run sees only the part of the graph it selected:
    a training run does not know the snapshot's gate exists, yet the gate must require it.
    """
    parents: dict[dg.AssetKey, set[dg.AssetKey]] = {}
    checks: list[dg.AssetCheckSpec] = []
    for definition in assets:
        for spec in definition.specs:
            parents.setdefault(spec.key, set()).update(dep.asset_key for dep in spec.deps)
        checks.extend(definition.check_specs)
    pending = set(parents.get(asset_key, set()))
    ancestors: set[dg.AssetKey] = set()
    while pending:
        key = pending.pop()
        if key not in ancestors:
            ancestors.add(key)
            pending |= parents.get(key, set())
    return sorted(
        (spec.key for spec in checks if spec.asset_key in ancestors and spec.blocking),
        key=lambda key: key.to_user_string(),
    )


def build_sensors(
    alert_status: dg.DefaultSensorStatus = dg.DefaultSensorStatus.STOPPED,
    *,
    rollback_on_estimate: bool = False,
) -> list[dg.SensorDefinition]:
    """The closed loop. Stopped by default: a team switches each on in the UI when it is ready
    (``AIOPS_SCHEDULES=on`` starts the check alerts, with the schedules they report on)."""
    return [
        build_retrain_on_drift_sensor(
            job=TRAIN_JOB, drift_checks=[FEATURES_DRIFT_CHECK, SCORES_DRIFT_CHECK]
        ),
        build_rollback_on_regression_sensor(
            job=ROLLBACK_JOB,
            performance_checks=[PERFORMANCE_CHECK],
            act_on_estimates=rollback_on_estimate,
        ),
        build_alert_on_check_failure_sensor(default_status=alert_status),
        build_staged_rollout_sensor(job=ADOPT_JOB, performance_checks=[PERFORMANCE_CHECK]),
    ]


def build_report(
    settings: PipelineSettings,
    partitions_def: dg.TimeWindowPartitionsDefinition,
    data_checks: Sequence[dg.AssetsDefinition],
) -> dg.AssetsDefinition:
    """``monitoring_report``: the drift checks, every other data check (the snapshot's suites
    among them) as quality, and the performance check, by partition day."""
    return build_monitoring_report_asset(
        partitions_def,
        scores_key=SCORES_KEY,
        drift_checks=(FEATURES_DRIFT_CHECK, SCORES_DRIFT_CHECK),
        quality_checks=[
            key
            for check in data_checks
            for key in sorted(check.check_keys, key=str)
            if key not in (FEATURES_DRIFT_CHECK, SCORES_DRIFT_CHECK)
        ],
        performance_check=PERFORMANCE_CHECK,
        automation_condition=automation.late_data_condition(settings),
        # Shown in the UI like the others'; not paged on: a stale scores asset already is.
        freshness_policy=automation.freshness_policy(settings),
    )


@dataclass(frozen=True)
class LateLabelParts:
    jobs: list[dg.UnresolvedAssetJobDefinition]
    sensors: list[dg.SensorDefinition]


def _late_label_parts(
    labels: DelayedLabels | None,
    partitions_def: dg.TimeWindowPartitionsDefinition,
    settings: PipelineSettings,
) -> LateLabelParts:
    """With labels that arrive late, the sensor that judges an estimated partition again once
    they are mature, and its job; nothing when labels come with the telemetry."""
    if labels is None:
        return LateLabelParts([], [])
    job = build_rejudge_job(REJUDGE_JOB, PERFORMANCE_CHECK)
    sensor = build_rejudge_on_mature_labels_sensor(
        performance_check=PERFORMANCE_CHECK,
        labels=labels,
        partitions_def=partitions_def,
        job=job,
        default_status=automation.sensor_status(settings),
    )
    return LateLabelParts([job], [sensor])


def build_definitions(settings: PipelineSettings) -> dg.Definitions:
    partitions_def = daily_partitions(settings)
    assets = build_reference_assets(partitions_def, settings.quality_suite)
    by_name = {asset.key.to_user_string(): asset for asset in assets}
    snapshot = by_name[SNAPSHOT_KEY.to_user_string()]
    # The raw snapshots' profile, per service, of the first days (the days the model trains on):
    # a fixed reference, so a fault that lasts keeps failing the checks below.
    telemetry_baseline = build_drift_baseline_asset(
        snapshot, name=TELEMETRY_BASELINE_KEY.to_user_string()
    )
    assets = [*assets, telemetry_baseline]
    features = by_name["features"]
    data_checks = [
        *build_baseline_quality_checks(
            snapshot, telemetry_baseline, tolerances=SNAPSHOT_TOLERANCES
        ),
        *build_label_health_checks(snapshot, telemetry_baseline),
        *build_quality_checks(features, DEFAULT_FEATURES_SUITE, severity=Severity.WARN),
        build_leakage_check(partitions_def),
        *build_drift_checks(features, by_name["drift_baseline"], slice_columns=model_input_columns),
        *build_drift_checks(by_name["anomaly_scores"], by_name["score_baseline"]),
        # Labels that vanish while the model alerts as usual: the labels' fault, not the model's.
        *build_label_collapse_checks(by_name["anomaly_scores"]),
    ]
    reproducible = build_reproducible_check(by_name["champion_model"].key)
    # The performance check never blocks, so the gate's checks are found without it.
    gate_checks = blocking_checks_upstream(
        [*assets, *data_checks, reproducible], dg.AssetKey("champion_model")
    )
    resources = build_resources(settings, gate_checks=gate_checks)
    labels = delayed_labels(settings)
    performance = build_performance_check(
        by_name["anomaly_scores"],
        # The incident report walks the whole lineage, which a run that selected only the scores
        # does not see: the check is given it now, as everything in the location but itself.
        incident_lineage=dg.Definitions(
            assets=assets, asset_checks=[*data_checks, reproducible], resources=resources
        ),
        drift_checks=(FEATURES_DRIFT_CHECK, SCORES_DRIFT_CHECK),
        labels=labels,
    )
    checks = [*data_checks, performance, reproducible]
    report = build_report(settings, partitions_def, [snapshot, *data_checks])
    executor = build_executor(settings)
    daily_job = dg.define_asset_job(
        DAILY_JOB,
        selection=dg.AssetSelection.assets(*PARTITIONED_ASSETS),
        executor_def=executor,
        description=(
            "Snapshot, featurize and score one partition of telemetry, with every check "
            "(the drift baselines and a champion must exist: run train_and_promote_job once)."
        ),
    )
    audit_jobs = [automation.reproducibility_job(REPRODUCIBLE_CHECK), build_audit_verify_job()]
    late_label_parts = _late_label_parts(labels, partitions_def, settings)
    policed = automation.apply_policies(assets, settings)
    return dg.Definitions(
        assets=[*policed, report],
        asset_checks=checks,
        schedules=automation.build_schedules(settings, daily_job),
        jobs=[
            daily_job,
            *audit_jobs,
            *late_label_parts.jobs,
            dg.define_asset_job(
                TRAIN_JOB,
                selection=without_on_demand_checks(dg.AssetSelection.assets(*UNPARTITIONED_ASSETS)),
                executor_def=executor,
                description=(
                    "Profile the drift baselines, build the training set, train a candidate and "
                    "decide on the champion through the promotion gate."
                ),
            ),
            dg.define_asset_job(
                ROLLBACK_JOB,
                selection=without_on_demand_checks(dg.AssetSelection.assets(*ROLLBACK_ASSETS)),
                executor_def=executor,
                config={"ops": {"champion_model": {"config": {"action": "rollback"}}}},
                description=(
                    "Point the champion back at the most recent earlier version whose checks "
                    "passed (or a chosen one), and re-profile its scores. Deletes nothing."
                ),
            ),
            dg.define_asset_job(
                ADOPT_JOB,
                selection=without_on_demand_checks(dg.AssetSelection.assets(*ROLLBACK_ASSETS)),
                executor_def=executor,
                config={"ops": {"champion_model": {"config": {"action": "adopt"}}}},
                description=(
                    "After a staged rollout completed (the registry moved the champion), "
                    "materialize the new champion and re-profile its scores. Records nothing."
                ),
            ),
        ],
        sensors=[
            *build_sensors(
                automation.sensor_status(settings),
                rollback_on_estimate=settings.rollback_on_estimate,
            ),
            automation.build_automation_sensor(settings),
            build_alert_on_stale_asset_sensor(
                policed, default_status=automation.sensor_status(settings)
            ),
            build_alert_on_run_failure_sensor(
                [daily_job, audit_jobs[0]], default_status=automation.sensor_status(settings)
            ),
            build_redeliver_alerts_sensor(default_status=automation.sensor_status(settings)),
            *late_label_parts.sensors,
        ],
        resources=resources,
        executor=executor,
    )


defs = build_definitions(PipelineSettings.from_env())
