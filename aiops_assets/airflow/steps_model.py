"""Training, the promotion gate and rollback, on the same registry and audit chain as Dagster.

The same calls as ``reference/assets/models.py`` in the same order, so the same training set
gives the same model bytes (the model hash) and the same ledger facts whichever orchestrator ran
it. A promotion, a refused promotion, a rollback and a refused permission alert through the same
sink and wording as the Dagster champion asset (``alerting.py``).
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from aiops_assets.airflow.alerting import champion_alert
from aiops_assets.airflow.config import ProviderConfig
from aiops_assets.airflow.records import (
    StepFailed,
    StepResult,
    asset_ref_name,
    current_ref,
    get_facts,
    put_facts,
)
from aiops_assets.airflow.steps_data import feature_days, scored_days
from aiops_assets.core.features import TIMESTAMP
from aiops_assets.core.ledger import Ledger, LedgerError, ModelVersion, StaleChampionError
from aiops_assets.core.lifecycle import LifecycleError, feature_set_mix
from aiops_assets.core.model_codec import put_detector
from aiops_assets.core.models import (
    HOLDOUT,
    SPLIT,
    DetectorConfig,
    TrainingSetConfig,
    assemble_training_set,
    evaluate_detector,
    train_detector,
)
from aiops_assets.core.pipeline.features import FEATURES_ASSET
from aiops_assets.core.pipeline.snapshot import SNAPSHOT_ASSET
from aiops_assets.core.pipeline.training import (
    CANDIDATE_MODEL_CODE_VERSION,
    CHAMPION_MODEL_CODE_VERSION,
    TRAINING_SET_CODE_VERSION,
    CandidateSettings,
    TrainingSetSettings,
    model_capsule,
    scored_pair,
    settings_hash,
    training_set_capsule,
)
from aiops_assets.core.policy import AccessPolicy, authorize, identify
from aiops_assets.core.promotion import GateConfig, decide
from aiops_assets.core.registration import Training, record_capsule, register_training
from aiops_assets.core.registry import (
    CHAMPION,
    MODEL_NAME,
    describe,
    load_model,
    verify_model,
)
from aiops_assets.core.rollout import running_rollout

TRAINING_SET = "training_set"
CANDIDATE = "candidate_model"
CHAMPION_ASSET = "champion_model"
GATE_ATTEMPTS = 5
SHADOW_PARTITIONS = 2


def training_set_step(
    config: ProviderConfig, run_id: str, settings: TrainingSetSettings | None = None
) -> StepResult:
    """Every feature day up to ``until``, split by time into train and holdout, with its capsule."""
    chosen = settings or TrainingSetSettings()
    store, registry = config.store(), config.ledger()
    used = feature_days(config, chosen.until)
    if not used:
        raise StepFailed(f"no feature day exists up to {chosen.until!r}; nothing to train on")
    facts = {day: get_facts(store, FEATURES_ASSET, day) or {} for day in used}
    try:
        mix = feature_set_mix(
            registry,
            {day: str(item["feature_set_version"]) for day, item in facts.items() if item},
        )
    except LifecycleError as error:
        raise StepFailed(str(error)) from error
    frames = {day: store.get_frame(current_ref(store, FEATURES_ASSET, day)) for day in used}
    frame = assemble_training_set(
        frames,
        TrainingSetConfig(
            holdout_days=chosen.holdout_days,
            max_train_rows=chosen.max_train_rows,
            seed=chosen.seed,
        ),
    )
    ref = store.put_frame(frame)
    for day in used:
        facts[day]["sha256"] = current_ref(store, FEATURES_ASSET, day).sha256
    capsule = training_set_capsule(
        run_id=run_id, settings=chosen, feature_facts=facts, training_set_sha256=ref.sha256
    )
    recorded = record_capsule(registry, store, capsule)
    versions = sorted({str(item["feature_set_version"]) for item in facts.values() if item})
    summary = {
        **recorded,
        "sha256": ref.sha256,
        "seed": chosen.seed,
        "config_hash": settings_hash(chosen),
        "partitions": ", ".join(used),
        "until": chosen.until or used[-1],
        "feature_set_version": ", ".join(versions),
        "feature_set_mix": mix or "none: one feature-set version",
    }
    put_facts(store, TRAINING_SET, None, summary)
    store.set_ref(asset_ref_name(TRAINING_SET, None), ref)
    return StepResult(
        asset=TRAINING_SET,
        partition=None,
        sha256=ref.sha256,
        code_version=TRAINING_SET_CODE_VERSION,
        facts=summary,
    )


def candidate_step(
    config: ProviderConfig,
    run_id: str,
    settings: CandidateSettings | None = None,
    tags: dict[str, str] | None = None,
) -> StepResult:
    """The detector trained with a recorded seed, registered as the challenger with its capsule."""
    chosen = settings or CandidateSettings()
    store, registry = config.store(), config.ledger()
    training_ref = current_ref(store, TRAINING_SET, None)
    training_facts = get_facts(store, TRAINING_SET, None) or {}
    frame = store.get_frame(training_ref)
    detector = train_detector(
        frame,
        DetectorConfig(
            n_estimators=chosen.n_estimators,
            max_samples=chosen.max_samples,
            seed=chosen.seed,
            alert_quantile=chosen.alert_quantile or None,
        ),
    )
    metrics = evaluate_detector(detector, frame[frame[SPLIT] == HOLDOUT])
    ref = put_detector(store, detector)
    actor = identify(registry, action="register", subject=MODEL_NAME, tags=tags, run_id=run_id)
    parent_id = str(training_facts.get("capsule_id", ""))
    parent = registry.get_capsule(parent_id) if parent_id else None
    capsule = model_capsule(
        run_id=run_id,
        parent=parent,
        settings=chosen,
        training_set_sha256=training_ref.sha256,
        model_sha256=ref.sha256,
        metrics=metrics,
    )
    feature_set_version = str(training_facts.get("feature_set_version", ""))
    registered = register_training(
        registry,
        store,
        Training(
            model_name=MODEL_NAME,
            model=ref,
            capsule=capsule,
            metrics=metrics,
            training_set_version=training_ref.sha256,
            actor=actor,
            run_id=run_id,
            feature_set_version=feature_set_version,
            tags={
                "seed": str(chosen.seed),
                "config_hash": settings_hash(chosen),
                "trained_until": str(training_facts.get("until", "")),
            },
            run_tags=tags,
            hypothesis=chosen.hypothesis,
            success_criterion=chosen.success_criterion,
        ),
    )
    recorded, version = registered.capsule_facts, registered.version
    store.set_ref(asset_ref_name(CANDIDATE, None), ref)
    return StepResult(
        asset=CANDIDATE,
        partition=None,
        sha256=ref.sha256,
        code_version=CANDIDATE_MODEL_CODE_VERSION,
        facts={
            **recorded,
            **{name: float(value) for name, value in metrics.items()},
            "model_version": version.version,
            "training_set_sha256": training_ref.sha256,
            "seed": chosen.seed,
            "config_hash": settings_hash(chosen),
        },
    )


def _champion_result(
    store: Any, version: ModelVersion, decision: str, reason: str, extra: dict[str, Any]
) -> StepResult:
    ref = verify_model(store, version)
    store.set_ref(asset_ref_name(CHAMPION_ASSET, None), ref)
    return StepResult(
        asset=CHAMPION_ASSET,
        partition=None,
        sha256=ref.sha256,
        code_version=CHAMPION_MODEL_CODE_VERSION,
        checks={},
        facts={"model_version": version.version, "decision": decision, "reason": reason, **extra},
    )


def _blocking_checks(config: ProviderConfig, days: list[str]) -> dict[str, bool]:
    """Each trained day's snapshot quality gate: a day never judged counts as not passed."""
    store = config.store()
    outcomes: dict[str, bool] = {}
    suite = config.suite()
    name = f"{suite.name}_error"
    for day in days:
        facts = get_facts(store, "checks/" + SNAPSHOT_ASSET, day) or {}
        result = dict(facts.get("checks", {})).get(name, {})
        outcomes[f"{SNAPSHOT_ASSET}:{name}[{day}]"] = bool(result.get("passed", False))
    return outcomes


def champion_gate_step(
    config: ProviderConfig,
    run_id: str,
    gate: GateConfig | None = None,
    tags: dict[str, str] | None = None,
) -> StepResult:
    """Promote the challenger only through the gate; decide again when a race moved the champion."""
    for attempt in range(1, GATE_ATTEMPTS + 1):
        try:
            return _gate_once(config, run_id, gate or GateConfig(), tags)
        except StaleChampionError as error:
            if attempt == GATE_ATTEMPTS:
                raise StepFailed(str(error)) from error
    raise AssertionError("unreachable")


def _gate_once(
    config: ProviderConfig, run_id: str, gate: GateConfig, tags: dict[str, str] | None
) -> StepResult:
    store, registry = config.store(), config.ledger()
    actor = identify(
        registry, action="gate", subject=f"{MODEL_NAME}:champion", tags=tags, run_id=run_id
    )
    candidate_ref = current_ref(store, CANDIDATE, None)
    candidate = registry.find_version(MODEL_NAME, candidate_ref.sha256)
    if candidate is None:
        raise StepFailed(
            f"candidate {candidate_ref.sha256[:12]} is not registered in the ledger; run the "
            "candidate task first"
        )
    champion = registry.get_alias(MODEL_NAME, CHAMPION)
    if champion is not None and champion.version == candidate.version:
        return _champion_result(
            store,
            champion,
            "kept",
            f"{describe(candidate)} already the champion; nothing to decide",
            {},
        )
    rollout = running_rollout(registry, MODEL_NAME)
    if rollout is not None and champion is not None:
        return _champion_result(
            store,
            champion,
            "kept",
            f"staged rollout {rollout.rollout_id} of v{rollout.to_version} is running; the gate "
            f"does not judge {describe(candidate)} until it completes or halts",
            {},
        )
    training = store.get_frame(current_ref(store, TRAINING_SET, None))
    holdout = training[training[SPLIT] == HOLDOUT]
    trained_days = sorted(training[TIMESTAMP].dt.strftime("%Y-%m-%d").unique())
    candidate_model = load_model(store, candidate)
    champion_model = load_model(store, champion) if champion is not None else None
    shadow_keys = list(scored_days(config, trained_days[-1]))[-SHADOW_PARTITIONS:]
    shadow_frame = (
        pd.concat(
            [store.get_frame(current_ref(store, FEATURES_ASSET, key)) for key in shadow_keys],
            ignore_index=True,
        )
        if shadow_keys
        else None
    )
    decision = decide(
        candidate_id=describe(candidate),
        champion_id=None if champion is None else describe(champion),
        blocking_checks=_blocking_checks(config, trained_days),
        holdout=scored_pair(candidate_model, champion_model, holdout),
        shadow=None
        if shadow_frame is None
        else scored_pair(candidate_model, champion_model, shadow_frame),
        config=gate,
        shadow_partitions=shadow_keys,
    )
    if decision.promote:
        _authorize(config, registry, actor, "promote", run_id)
    registry.record_promotion(
        MODEL_NAME,
        candidate.version,
        champion_version=None if champion is None else champion.version,
        promoted=decision.promote,
        reason=decision.reason,
        evidence=decision.evidence,
        actor=actor,
        run_id=run_id,
    )
    if decision.promote:
        _alert(
            config,
            "promotion",
            "INFO",
            f"{describe(candidate)} promoted: {decision.reason}",
            run_id,
        )
    elif champion is not None:
        _alert(
            config,
            "promotion_refused",
            "INFO",
            f"{describe(candidate)} not promoted: {decision.reason}",
            run_id,
        )
    serving = candidate if decision.promote or champion is None else champion
    return _champion_result(
        store,
        serving,
        "promoted" if decision.promote else "kept",
        decision.reason,
        {
            "candidate_version": candidate.version,
            "previous_champion_version": 0 if champion is None else champion.version,
        },
    )


def _alert(config: ProviderConfig, kind: str, severity: str, summary: str, run_id: str) -> None:
    champion_alert(config, kind, severity, summary, asset=CHAMPION_ASSET, run_id=run_id)


def _authorize(
    config: ProviderConfig, registry: Ledger, actor: str, action: str, run_id: str
) -> None:
    try:
        authorize(
            AccessPolicy.load(None),
            registry,
            actor=actor,
            action=action,
            subject=f"{MODEL_NAME}:{CHAMPION}",
            run_id=run_id,
        )
    except PermissionError as error:
        _alert(config, "access_denied", "WARN", str(error), run_id)
        raise StepFailed(str(error)) from error


def rollback_step(
    config: ProviderConfig, run_id: str, reason: str, tags: dict[str, str] | None = None
) -> StepResult:
    """Restore the most recent earlier champion whose checks pass; records why, deletes nothing."""
    store, registry = config.store(), config.ledger()
    actor = identify(
        registry, action="rollback", subject=f"{MODEL_NAME}:champion", tags=tags, run_id=run_id
    )
    _authorize(config, registry, actor, "rollback", run_id)
    current = registry.get_alias(MODEL_NAME, CHAMPION)
    if current is None:
        raise StepFailed(f"{MODEL_NAME} has no champion to roll back")
    target = registry.last_known_good(MODEL_NAME, alias=CHAMPION)
    if target is None or target.version == current.version:
        message = (
            f"cannot roll back {describe(current)}: no earlier champion has passing checks on "
            "record; it stays in service"
        )
        _alert(config, "rollback", "ERROR", message, run_id)
        raise StepFailed(message)
    verify_model(store, target)
    reason = reason or f"rollback by {actor}"
    try:
        registry.set_alias(
            MODEL_NAME,
            CHAMPION,
            target.version,
            actor=actor,
            reason=reason,
            kind="rollback",
            run_id=run_id,
        )
    except LedgerError as error:
        raise StepFailed(f"cannot roll back: {error}") from error
    _alert(
        config,
        "rollback",
        "ERROR",
        f"{describe(current)} rolled back to {describe(target)}: {reason}",
        run_id,
    )
    return _champion_result(
        store, target, "rolled back", reason, {"rolled_back_version": current.version}
    )


__all__ = [
    "CANDIDATE",
    "CHAMPION_ASSET",
    "TRAINING_SET",
    "candidate_step",
    "champion_gate_step",
    "rollback_step",
    "training_set_step",
]
