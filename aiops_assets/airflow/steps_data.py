"""The daily steps: snapshot (quality gate, quarantine), features, the drift check against the
stored baseline, and the champion's scores with its performance check.

Plain functions of a :class:`ProviderConfig` and a day, so the Airflow tasks stay wiring; each
returns a :class:`StepResult` (the asset event's lineage) or raises ``StepFailed`` /
``StepSkipped`` with the one line the operator reads.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd

from aiops_assets.airflow.alerting import check_alert
from aiops_assets.airflow.config import ConfigError, ProviderConfig
from aiops_assets.airflow.records import (
    DRIFT_CHECK,
    StepFailed,
    StepResult,
    StepSkipped,
    asset_ref_name,
    current_ref,
    get_facts,
    put_facts,
)
from aiops_assets.checks.judge import judge_scores
from aiops_assets.core import telemetry
from aiops_assets.core.drift import (
    BaselineProfile,
    build_profile,
    calibrate,
    evaluate_drift,
    evaluate_slices,
    load_policy,
)
from aiops_assets.core.features import (
    KEY_COLUMNS,
    LABEL,
    SERVICE,
    FeatureSetSpec,
    MixedColumnsError,
    model_input_columns,
)
from aiops_assets.core.ledger import Ledger, LedgerError
from aiops_assets.core.models import SCORE, score_frame
from aiops_assets.core.pipeline.baselines import SCORE_BASELINE_ASSET
from aiops_assets.core.pipeline.features import (
    FEATURES_ASSET,
    FEATURES_CODE_VERSION,
    FeatureSetRefused,
    compute_day_features,
    history_frame,
)
from aiops_assets.core.pipeline.scoring import (
    PERFORMANCE_CHECK_NAME,
    SCORES_ASSET,
    groups_by_version,
)
from aiops_assets.core.pipeline.snapshot import (
    SNAPSHOT_ASSET,
    SNAPSHOT_CODE_VERSION,
    gate_snapshot,
    replay_refusal,
)
from aiops_assets.core.quality import Severity
from aiops_assets.core.registry import CHAMPION, MODEL_NAME, load_model
from aiops_assets.core.rollout import MODEL_VERSION_COLUMN, running_rollout, serving_versions
from aiops_assets.core.store import ArtifactRef, ArtifactStore

BASELINE_ASSET = "drift_baseline"
BASELINE_CODE_VERSION = "drift_baseline-2"  # baselines.BASELINE_CODE_VERSION
PROFILE_MEDIA_TYPE = "application/x-aiops-drift-profile"
REFERENCE_PARTITIONS = 3
SCORES_CODE_VERSION = "anomaly_scores-3"
SCORE_DRIFT_FACTS = f"checks/{SCORES_ASSET}.{DRIFT_CHECK}"


def day_window(day: str) -> tuple[pd.Timestamp, pd.Timestamp]:
    start = pd.Timestamp(day)
    return start, start + pd.Timedelta(days=1)


def _previous_day(day: str) -> str:
    return (pd.Timestamp(day) - pd.Timedelta(days=1)).strftime("%Y-%m-%d")


def snapshot_step(config: ProviderConfig, day: str) -> StepResult:
    """One day of telemetry, content-addressed and quality-gated; a failing day is quarantined."""
    start, end = day_window(day)
    source = config.describe_source()
    try:
        frame = config.load_window(start.to_pydatetime(), end.to_pydatetime())
    except telemetry.TelemetryFormatError as error:
        raise StepFailed(f"telemetry from {source} is malformed: {error}") from error
    except (telemetry.TelemetrySourceError, telemetry.MappingError, ConfigError) as error:
        # Already one line that names the source (its password hidden): the operator's message.
        raise StepFailed(str(error)) from error
    if frame.empty:
        raise StepFailed(f"source {source} has no telemetry in [{start}, {end})")
    store = config.store()
    previous_key = _previous_day(day)
    previous_ref = store.get_ref(asset_ref_name(SNAPSHOT_ASSET, previous_key))
    if previous_ref is not None:
        refusal = replay_refusal(
            frame,
            store.get_frame(previous_ref),
            previous_key=previous_key,
            previous_sha256=previous_ref.sha256,
            source=source,
        )
        if refusal:
            raise StepFailed(refusal)
    suite = config.suite()
    gated = gate_snapshot(store, frame, suite, partition=day, window=(start, end), source=source)
    checks = {
        f"{suite.name}_{severity.value.lower()}": {
            "passed": gated.report.passed(severity),
            "severity": severity.value,
            "failed_expectations": len(gated.report.failures(severity)),
        }
        for severity in suite.severities()
    }
    put_facts(store, "checks/" + SNAPSHOT_ASSET, day, {"checks": checks})
    if not gated.accepted:
        raise StepFailed(
            f"{gated.message}. Quarantined as {gated.quarantined_as}; the day keeps its last "
            "good snapshot"
        )
    store.set_ref(asset_ref_name(SNAPSHOT_ASSET, day), gated.ref)
    return StepResult(
        asset=SNAPSHOT_ASSET,
        partition=day,
        sha256=gated.ref.sha256,
        code_version=SNAPSHOT_CODE_VERSION,
        checks=checks,
        facts={
            "rows": len(frame),
            "services": int(frame[telemetry.SERVICE].nunique()),
            "source": source,
            "quality_suite": suite.version_id,
        },
    )


def features_step(
    config: ProviderConfig, day: str, spec: FeatureSetSpec | None = None
) -> StepResult:
    """The day's features from its snapshot and the day before's (when there is one)."""
    store = config.store()
    history: dict[str, ArtifactRef] = {}
    for key in (_previous_day(day), day):
        ref = store.get_ref(asset_ref_name(SNAPSHOT_ASSET, key))
        if ref is not None:
            history[key] = ref
    if day not in history:
        raise StepFailed(
            f"{SNAPSHOT_ASSET}[{day}] has no accepted snapshot (it was quarantined or never "
            "made); features cannot be computed for this day"
        )
    chosen = spec or FeatureSetSpec()
    frame = history_frame(store, history)
    services = sorted(str(service) for service in frame[SERVICE].unique())
    by_service = dict.fromkeys(services, chosen)
    start, end = day_window(day)
    try:
        computed = compute_day_features(store, frame, by_service, start=start, end=end)
    except (FeatureSetRefused, MixedColumnsError) as error:
        raise StepFailed(str(error)) from error
    facts = computed.facts(history, by_service)
    put_facts(store, FEATURES_ASSET, day, facts)
    store.set_ref(asset_ref_name(FEATURES_ASSET, day), computed.ref)
    return StepResult(
        asset=FEATURES_ASSET,
        partition=day,
        sha256=computed.ref.sha256,
        code_version=FEATURES_CODE_VERSION,
        facts={
            "feature_set_version": facts["feature_set_version"],
            "history_snapshots": facts["history_snapshots"],
        },
    )


def feature_days(config: ProviderConfig, until: str = "") -> list[str]:
    """The configured days that have a current feature version, up to ``until``."""
    store = config.store()
    return [
        day
        for day in config.day_keys()
        if (not until or day <= until)
        and store.get_ref(asset_ref_name(FEATURES_ASSET, day)) is not None
    ]


def drift_baseline_step(config: ProviderConfig) -> StepResult:
    """The features' drift reference: the first days' profile, per service too, calibrated on
    each day (as ``build_drift_baseline_asset``); kept once made, as the Dagster baseline is."""
    store = config.store()
    existing = store.get_ref(asset_ref_name(BASELINE_ASSET, None))
    keys = feature_days(config)[:REFERENCE_PARTITIONS]
    if existing is None:
        if len(keys) < min(2, REFERENCE_PARTITIONS):
            raise StepFailed(
                f"the drift baseline needs {REFERENCE_PARTITIONS} days of features; only "
                f"{keys} have a current version"
            )
        chunks = [store.get_frame(current_ref(store, FEATURES_ASSET, key)) for key in keys]
        reference = pd.concat(chunks, ignore_index=True)
        labels = [LABEL] if LABEL in reference else []
        numeric = [
            str(column)
            for column in reference.columns
            if column not in (*KEY_COLUMNS, *labels)
            and pd.api.types.is_numeric_dtype(reference[column])
        ]
        slice_by = SERVICE if SERVICE in reference else None
        profile = build_profile(reference, numeric=numeric, labels=labels, slice_by=slice_by)
        existing = store.put_bytes(calibrate(profile, chunks).to_bytes(), PROFILE_MEDIA_TYPE)
        store.set_ref(asset_ref_name(BASELINE_ASSET, None), existing)
    return StepResult(
        asset=BASELINE_ASSET,
        partition=None,
        sha256=existing.sha256,
        code_version=BASELINE_CODE_VERSION,
        facts={"reference_partitions": ", ".join(keys)},
    )


def _previous_verdicts(
    config: ProviderConfig,
    store: ArtifactStore,
    day: str,
    count: int,
    facts_name: str = "checks/" + DRIFT_CHECK,
) -> tuple[list[dict[str, str]], list[dict[str, dict[str, str]]]]:
    """The drift verdicts of the ``count`` days before ``day``, oldest first (persistence)."""
    keys = config.day_keys()
    if count <= 0 or day not in keys:
        return [], []
    position = keys.index(day)
    overall: list[dict[str, str]] = []
    sliced: list[dict[str, dict[str, str]]] = []
    for key in keys[max(0, position - count) : position]:
        facts = get_facts(store, facts_name, key) or {}
        overall.append(dict(facts.get("feature_verdicts", {})))
        sliced.append(dict(facts.get("slice_feature_verdicts", {})))
    return overall, sliced


def drift_step(config: ProviderConfig, day: str, run_id: str | None = None) -> StepResult:
    """The day's features against the stored baseline, by the packaged drift policy; an ERROR
    verdict pages (once per day), an ``ok`` re-run of a paged day sends the recovery."""
    store = config.store()
    baseline = store.get_ref(asset_ref_name(BASELINE_ASSET, None))
    if baseline is None:
        raise StepSkipped("no drift baseline yet: the training DAG makes it from the first days")
    profile = BaselineProfile.from_bytes(store.get_bytes(baseline))
    current = store.get_frame(current_ref(store, FEATURES_ASSET, day))
    policy = load_policy(None)
    previous, previous_slices = _previous_verdicts(
        config, store, day, policy.persistence_window - 1
    )
    result = evaluate_drift(profile, current, policy, previous=previous)
    wanted = [column for column in model_input_columns(current) if column in profile.names]
    slices = evaluate_slices(profile.select(wanted), current, policy, previous=previous_slices)
    check = {
        "passed": result.verdict == "ok",
        "severity": "ERROR" if result.verdict == "error" else "WARN",
        "verdict": result.verdict,
        "drifted": ", ".join(result.drifted),
        "policy_sha256": result.policy_sha256,
        "baseline_sha256": baseline.sha256,
        "drifted_slices": sorted(name for name, item in slices.items() if item.verdict != "ok"),
    }
    put_facts(
        store,
        "checks/" + DRIFT_CHECK,
        day,
        {
            **check,
            "feature_verdicts": dict(result.feature_verdicts()),
            "feature_effects": {item.feature: float(item.effect) for item in result.features},
            "slice_feature_verdicts": {
                name: dict(item.feature_verdicts()) for name, item in slices.items()
            },
        },
    )
    if result.verdict != "warn":  # WARN is shown on the asset event, it does not page
        check_alert(
            config,
            asset=FEATURES_ASSET,
            check=DRIFT_CHECK,
            partition=day,
            failing=result.verdict == "error",
            severity="ERROR",
            summary=f"ERROR drift in {check['drifted']}",
            run_id=run_id,
        )
    return StepResult(
        asset=FEATURES_ASSET,
        partition=day,
        sha256=current_ref(store, FEATURES_ASSET, day).sha256,
        code_version=FEATURES_CODE_VERSION,
        checks={DRIFT_CHECK: check},
    )


def vouched_detector(registry: Ledger, store: ArtifactStore, version: int) -> Any:
    """Loaded only as a version the audit chain vouches for (invariant 4)."""
    try:
        vouched = registry.vouched_version(MODEL_NAME, version=version)
    except LedgerError as error:
        raise StepFailed(str(error)) from error
    if vouched is None:
        raise StepFailed(
            f"refusing to load {MODEL_NAME} v{version}: no version the ledger vouches for has "
            "it; run `aiops audit verify`"
        )
    return load_model(store, vouched)


def score_step(config: ProviderConfig, day: str, run_id: str) -> StepResult:
    """The day scored by the version serving each service, and the champion's performance check
    on the day's labels, recorded against the version in the ledger (what makes it known good)."""
    store = config.store()
    registry = config.ledger()
    champion = registry.get_alias(MODEL_NAME, CHAMPION)
    if champion is None:
        raise StepSkipped(f"{MODEL_NAME} has no champion yet: nothing scores {day}")
    features = store.get_frame(current_ref(store, FEATURES_ASSET, day))
    services = sorted(str(service) for service in features[SERVICE].unique())
    serving = serving_versions(
        services, champion=champion.version, rollout=running_rollout(registry, MODEL_NAME)
    )
    parts = []
    for served, rows in groups_by_version(features, serving, champion):
        part = score_frame(vouched_detector(registry, store, served or champion.version), rows)
        part[MODEL_VERSION_COLUMN] = served or champion.version
        parts.append(part)
    frame = pd.concat(parts, ignore_index=True).sort_values(
        list(KEY_COLUMNS), kind="mergesort", ignore_index=True
    )
    frame[MODEL_VERSION_COLUMN] = frame[MODEL_VERSION_COLUMN].astype("int64")
    ref = store.put_frame(frame)
    store.set_ref(asset_ref_name(SCORES_ASSET, day), ref)
    own = frame[frame[MODEL_VERSION_COLUMN] == champion.version]
    passed, observed, implicated = judge_scores(own, champion.metrics)
    registry.record_check(
        MODEL_NAME,
        champion.version,
        PERFORMANCE_CHECK_NAME,
        passed=passed,
        partition=day,
        severity=Severity.ERROR.value,
        metrics=observed,
        run_id=run_id,
    )
    check = {
        "passed": passed,
        "severity": Severity.ERROR.value,
        "model_version": champion.version,
        "model_sha256": champion.sha256,
        "implicated": implicated,
        **observed,
    }
    put_facts(store, "checks/" + PERFORMANCE_CHECK_NAME, day, check)
    checks = {PERFORMANCE_CHECK_NAME: check}
    prediction_drift = _score_drift(config, store, day, frame)
    if prediction_drift is not None:
        checks[DRIFT_CHECK] = prediction_drift
    return StepResult(
        asset=SCORES_ASSET,
        partition=day,
        sha256=ref.sha256,
        code_version=SCORES_CODE_VERSION,
        checks=checks,
        facts={
            "mean_score": float(frame[SCORE].mean()),
            "alert_rate": float(frame["alert"].mean()),
        },
    )


def _score_drift(
    config: ProviderConfig, store: ArtifactStore, day: str, scores: pd.DataFrame
) -> dict[str, Any] | None:
    """The day's scores against ``score_baseline`` (prediction drift, the Dagster
    ``anomaly_scores:drift`` check), by the packaged policy; None until a baseline exists."""
    baseline = store.get_ref(asset_ref_name(SCORE_BASELINE_ASSET, None))
    if baseline is None:
        return None
    profile = BaselineProfile.from_bytes(store.get_bytes(baseline))
    policy = load_policy(None)
    previous, _ = _previous_verdicts(
        config, store, day, max(policy.persistence_window - 1, 1), SCORE_DRIFT_FACTS
    )
    result = evaluate_drift(profile, scores, policy, previous=previous)
    check = {
        "passed": result.verdict == "ok",
        "severity": "ERROR" if result.verdict == "error" else "WARN",
        "verdict": result.verdict,
        "drifted": ", ".join(result.drifted),
        "policy_sha256": result.policy_sha256,
        "baseline_sha256": baseline.sha256,
    }
    put_facts(
        store,
        SCORE_DRIFT_FACTS,
        day,
        {
            **check,
            "feature_verdicts": dict(result.feature_verdicts()),
            "feature_effects": {item.feature: float(item.effect) for item in result.features},
        },
    )
    return check


def scored_days(config: ProviderConfig, until: str) -> Sequence[str]:
    store = config.store()
    return [
        day
        for day in config.day_keys()
        if day <= until
        and store.get_ref(asset_ref_name(SCORES_ASSET, day)) is not None
        and store.get_ref(asset_ref_name(FEATURES_ASSET, day)) is not None
    ]
