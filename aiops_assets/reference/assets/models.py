"""``training_set``, ``candidate_model`` and ``champion_model``: from features to the model in service.

The registry in the ledger is the source of truth for which version is champion; the
``champion_model`` asset is how every change of that alias happens (the promotion gate, a manual
promotion, a rollback), so each change is also a materialization the UI shows with its evidence,
and ``anomaly_scores`` downstream always scores with the model the registry says is in service.
"""

from datetime import UTC, datetime
from typing import Any, Literal

import dagster as dg
import pandas as pd

from aiops_assets.audit_head import observe_audit_head
from aiops_assets.capsules import package_version, record_capsule
from aiops_assets.core.capsule import Capsule, build_capsule
from aiops_assets.core.experiments import ExperimentRun, criterion_met
from aiops_assets.core.features import SERVICE, TIMESTAMP
from aiops_assets.core.ledger import Ledger, LedgerError, ModelVersion, StaleChampionError
from aiops_assets.core.lifecycle import LifecycleError, feature_set_mix
from aiops_assets.core.model_codec import put_detector
from aiops_assets.core.models import (
    HOLDOUT,
    SPLIT,
    TRAIN,
    AnomalyDetector,
    DetectorConfig,
    TrainingSetConfig,
    assemble_training_set,
    evaluate_detector,
    train_detector,
)
from aiops_assets.core.policy import authorize, identify
from aiops_assets.core.promotion import GateConfig, decide
from aiops_assets.core.registry import (
    CHALLENGER,
    CHAMPION,
    MODEL_NAME,
    artifact_tags,
    describe,
    load_model,
    verify_model,
)
from aiops_assets.core.rollout import RolloutError, RolloutPlan, running_rollout, start_rollout
from aiops_assets.core.store import ArtifactRef, ArtifactStore
from aiops_assets.io import ALLOW_MISSING_PARTITIONS, asset_ref_name
from aiops_assets.keys import FEATURES_KEY, SCORES_KEY
from aiops_assets.metadata import (
    artifact_metadata,
    config_hash,
    float_metrics,
    frame_metadata,
    latest_materialization_metadata,
    versioned_output,
)
from aiops_assets.reference.assets.features import FEATURES_CODE_VERSION
from aiops_assets.reference.assets.gate_evidence import (
    gate_numbers,
    latest_check_outcomes,
    scored_pair,
)
from aiops_assets.resources import (
    AccessPolicyResource,
    AlertSinkResource,
    ArtifactStoreResource,
    LedgerResource,
    PromotionGateResource,
)

TRAINING_SET_CODE_VERSION = "training_set-2"
# -3: stored with skops instead of pickle, so the same training gives new bytes.
CANDIDATE_MODEL_CODE_VERSION = "candidate_model-3"
CHAMPION_MODEL_CODE_VERSION = "champion_model-2"
# A gate that lost a race with another gate decides again against the new champion; more
# losses in a row than this mean something keeps moving the champion, which a person should see.
GATE_ATTEMPTS = 5


class TrainingSetRunConfig(dg.Config):
    """The last ``holdout_days`` days are the holdout; ``seed`` drives any train subsampling.

    ``until`` (a partition key) trains on the world as it was that day: a retraining triggered by
    drift in a partition uses the features up to and including it, never later ones.
    """

    holdout_days: int = 4
    max_train_rows: int = 200_000
    seed: int = 17
    until: str = ""


class CandidateModelConfig(dg.Config):
    """Isolation-forest settings; ``seed`` drives every random choice in training.

    ``alert_quantile`` sets an alert budget (the share of train rows below the threshold) instead
    of the F1-optimal threshold; 0 keeps the F1-optimal one. ``hypothesis`` and
    ``success_criterion`` (e.g. ``pr_auc>=0.95, false_alarm_rate<0.02``) are declared before the
    run and go into the experiment ledger with whether the criterion was met.
    """

    n_estimators: int = 200
    max_samples: int = 512
    seed: int = 7
    alert_quantile: float = 0.0
    hypothesis: str = ""
    success_criterion: str = ""


# One source for the gate's defaults: the run config shown in the launchpad mirrors GateConfig.
_GATE_DEFAULTS = GateConfig()


class ChampionModelConfig(dg.Config):
    """What this materialization of the champion does.

    ``gate`` (the default, what training runs do) promotes the challenger only when the promotion
    gate passes; ``promote`` moves the alias to ``version`` (default: the challenger) by the
    acting identity's authority, skipping the gate; ``rollback`` restores the most recent earlier
    champion whose checks passed (or ``version``). ``rollout`` starts a staged rollout of
    ``version`` (default: the challenger) by the plan in ``rollout_plan`` (a YAML path; empty for
    ``core/rollout_plan.yaml``): the champion stays, and the ``staged_rollout`` sensor moves the
    new version slice by slice. ``adopt`` materializes the champion the registry already names,
    after a completed rollout moved the alias; it records nothing. ``reason`` is recorded with
    the change.
    The remaining fields configure the gate (see ``core/promotion.py``).
    """

    action: Literal["gate", "promote", "rollback", "rollout", "adopt"] = "gate"
    version: int = 0
    reason: str = ""
    rollout_plan: str = ""
    # A rollout of a version the gate refused: allowed only with both, audited with the refusal.
    override_gate: bool = False
    override_reason: str = ""
    metric: str = _GATE_DEFAULTS.metric
    margin: float = _GATE_DEFAULTS.margin
    bootstrap_samples: int = _GATE_DEFAULTS.bootstrap_samples
    confidence: float = _GATE_DEFAULTS.confidence
    block_rows: int = _GATE_DEFAULTS.block_rows
    seed: int = _GATE_DEFAULTS.seed
    shadow_partitions: int = 2
    shadow_metric: str = _GATE_DEFAULTS.shadow_metric
    shadow_tolerance: float = _GATE_DEFAULTS.shadow_tolerance
    max_alert_rate_increase: float = _GATE_DEFAULTS.max_alert_rate_increase

    def gate_config(self) -> GateConfig:
        return GateConfig(
            metric=self.metric,
            margin=self.margin,
            bootstrap_samples=self.bootstrap_samples,
            confidence=self.confidence,
            block_rows=self.block_rows,
            seed=self.seed,
            shadow_metric=self.shadow_metric,
            shadow_tolerance=self.shadow_tolerance,
            max_alert_rate_increase=self.max_alert_rate_increase,
        )


@dg.asset(
    code_version=TRAINING_SET_CODE_VERSION,
    io_manager_key="artifact_io_manager",
    group_name="aiops",
    kinds={"pandas", "parquet"},
    ins={"features": dg.AssetIn(metadata={ALLOW_MISSING_PARTITIONS: True})},
    description="All feature partitions split by time into train and holdout; never shuffled across time.",
)
def training_set(
    context: dg.AssetExecutionContext,
    config: TrainingSetRunConfig,
    artifact_store: ArtifactStoreResource,
    ledger: LedgerResource,
    features: dict[str, pd.DataFrame],
) -> dg.Output[ArtifactRef]:
    used = sorted(key for key in features if not config.until or key <= config.until)
    if not used:
        raise dg.Failure(
            description=f"no feature partition exists up to {config.until!r}; nothing to train on"
        )
    feature_metadata = _latest_feature_metadata(context, used)
    mix = _feature_set_mix(feature_metadata, ledger.get_ledger())
    if mix:
        context.log.warning(mix)
    frame = assemble_training_set(
        {key: features[key] for key in used},
        TrainingSetConfig(
            holdout_days=config.holdout_days, max_train_rows=config.max_train_rows, seed=config.seed
        ),
    )
    store = artifact_store.get_store()
    ref = store.put_frame(frame)
    capsule_inputs, features_config = _features_capsule_parts(store, used, feature_metadata)
    capsule = build_capsule(
        kind="training_set",
        asset="training_set",
        run_id=context.run.run_id,
        seeds={"training_set": config.seed},
        config={"features": features_config, "training_set": config.model_dump()},
        inputs=capsule_inputs,
        code_versions={
            "features": FEATURES_CODE_VERSION,
            "training_set": TRAINING_SET_CODE_VERSION,
            "aiops_assets": package_version(),
        },
        outputs={"training_set": ref.sha256},
        metrics={},
    )
    feature_set_versions = sorted(
        {
            str(facts["feature_set_version"])
            for facts in feature_metadata.values()
            if "feature_set_version" in facts
        }
    )
    metadata: dict[str, object] = {
        **artifact_metadata(ref),
        **frame_metadata(frame),
        **record_capsule(ledger.get_ledger(), store, capsule),
        "seed": dg.MetadataValue.int(config.seed),
        "config_hash": dg.MetadataValue.text(config_hash(config)),
        "feature_partitions": dg.MetadataValue.int(len(used)),
        "partitions": dg.MetadataValue.text(", ".join(used)),
        "until": dg.MetadataValue.text(config.until or used[-1]),
        "feature_set_version": dg.MetadataValue.text(", ".join(feature_set_versions)),
        "feature_set_mix": dg.MetadataValue.text(mix or "none: one feature-set version"),
        "missing_feature_partitions": dg.MetadataValue.text(
            ", ".join(
                sorted(
                    key
                    for key in set(context.asset_partition_keys_for_input("features"))
                    - set(features)
                    if not config.until or key <= config.until
                )
            )
        ),
    }
    for split in (TRAIN, HOLDOUT):
        part = frame[frame[SPLIT] == split]
        metadata[f"{split}_rows"] = dg.MetadataValue.int(len(part))
        metadata[f"{split}_positive_rate"] = dg.MetadataValue.float(float(part["label"].mean()))
        metadata[f"{split}_start"] = dg.MetadataValue.text(str(part[TIMESTAMP].min()))
        metadata[f"{split}_end"] = dg.MetadataValue.text(str(part[TIMESTAMP].max()))
    return versioned_output(ref, metadata)


def _feature_set_mix(feature_metadata: dict[str, dict[str, Any]], registry: Ledger) -> str | None:
    """None, or the lifecycle's own switch said in words; any other mix is refused."""
    versions = {
        day: str(facts["feature_set_version"])
        for day, facts in feature_metadata.items()
        if facts.get("feature_set_version")
    }
    try:
        return feature_set_mix(registry, versions)
    except LifecycleError as error:
        raise dg.Failure(description=str(error)) from error


def _features_data_version(store: ArtifactStore, partition: str) -> str:
    """The data version of a feature partition as the IO manager stored it (what was loaded)."""
    ref = store.get_ref(asset_ref_name(FEATURES_KEY, partition))
    if ref is None:
        raise dg.Failure(description=f"features[{partition}] has no stored version")
    return ref.sha256


def _latest_feature_metadata(
    context: dg.AssetExecutionContext, partitions: list[str]
) -> dict[str, dict[str, Any]]:
    """Each feature partition's latest materialization metadata, as plain values."""
    result = context.instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=FEATURES_KEY, asset_partitions=partitions),
        limit=max(100, 4 * len(partitions)),
    )
    latest: dict[str, dict[str, Any]] = {}
    for record in result.records:  # newest first
        materialization = record.asset_materialization
        if materialization is None or materialization.partition is None:
            continue
        latest.setdefault(
            materialization.partition,
            {
                name: getattr(value, "value", value)
                for name, value in materialization.metadata.items()
            },
        )
    return latest


def _features_capsule_parts(
    store: ArtifactStore, used: list[str], feature_metadata: dict[str, dict[str, Any]]
) -> tuple[dict[str, str], dict[str, Any]]:
    """The inputs (feature and snapshot data versions) and the feature config of a training set.

    With the snapshots each feature day was computed from, and the spec and window it used, a
    re-run can start from the snapshots rather than trust the stored features.
    """
    inputs: dict[str, str] = {}
    features_config: dict[str, Any] = {}
    for key in used:
        inputs[f"features[{key}]"] = _features_data_version(store, key)
        facts = feature_metadata.get(key, {})
        snapshots = facts.get("history_snapshots")
        spec = facts.get("feature_spec")
        if not isinstance(snapshots, dict) or not isinstance(spec, dict):
            continue  # materialized before provenance was recorded: the re-run starts at features
        for snapshot_key, sha in snapshots.items():
            inputs[f"telemetry_snapshot[{snapshot_key}]"] = str(sha)
        start = pd.Timestamp(key)
        features_config[key] = {
            "spec": spec,
            "history": sorted(snapshots),
            "window": [start.isoformat(), (start + pd.Timedelta(days=1)).isoformat()],
        }
    return inputs, features_config


@dg.asset(
    code_version=CANDIDATE_MODEL_CODE_VERSION,
    io_manager_key="artifact_io_manager",
    group_name="aiops",
    kinds={"scikitlearn"},
    description=(
        "An isolation-forest anomaly detector trained on the train split with a recorded seed, "
        "registered in the ledger as the challenger."
    ),
)
def candidate_model(
    context: dg.AssetExecutionContext,
    config: CandidateModelConfig,
    artifact_store: ArtifactStoreResource,
    ledger: LedgerResource,
    training_set: ArtifactRef,
) -> dg.Output[ArtifactRef]:
    store = artifact_store.get_store()
    frame = store.get_frame(training_set)
    detector_config = DetectorConfig(
        n_estimators=config.n_estimators,
        max_samples=config.max_samples,
        seed=config.seed,
        alert_quantile=config.alert_quantile or None,
    )
    detector = train_detector(frame, detector_config)
    metrics = evaluate_detector(detector, frame[frame[SPLIT] == HOLDOUT])
    ref = put_detector(store, detector)
    training_metadata = latest_materialization_metadata(
        context.instance, dg.AssetKey("training_set")
    )
    registry = ledger.get_ledger()
    actor = identify(
        registry,
        action="register",
        subject=MODEL_NAME,
        tags=context.run.tags,
        run_id=context.run.run_id,
    )
    capsule = _model_capsule(context, registry, config, training_set, ref, metrics)
    capsule_metadata = record_capsule(registry, store, capsule)
    version = registry.register_model_version(
        MODEL_NAME,
        ref.sha256,
        metrics=metrics,
        training_set_version=training_set.sha256,
        feature_set_version=str(training_metadata.get("feature_set_version", "")),
        actor=actor,
        capsule_ref=capsule.capsule_id,
        run_id=context.run.run_id,
        tags={
            **artifact_tags(ref),
            "seed": str(config.seed),
            "config_hash": config_hash(config),
            "trained_until": str(training_metadata.get("until", "")),
        },
    )
    registry.record_experiment_run(
        ExperimentRun(
            run_id=context.run.run_id,
            model_name=MODEL_NAME,
            model_version=version.version,
            capsule_id=capsule.capsule_id,
            at=capsule.created_at or datetime.now(UTC),
            config=dict(capsule.config),
            metrics=dict(metrics),
            tags={k: v for k, v in context.run.tags.items() if not k.startswith("dagster/")},
            dataset_version=training_set.sha256,
            feature_set_version=str(training_metadata.get("feature_set_version", "")),
            hypothesis=config.hypothesis,
            success_criterion=config.success_criterion,
            criterion_met=criterion_met(config.success_criterion, metrics),
        )
    )
    current = registry.get_alias(MODEL_NAME, CHALLENGER)
    if current is None or current.version != version.version:
        registry.set_alias(
            MODEL_NAME,
            CHALLENGER,
            version.version,
            actor=actor,
            reason=f"trained in run {context.run.run_id}",
            run_id=context.run.run_id,
        )
    observe_audit_head(context, registry)
    return versioned_output(
        ref,
        {
            **artifact_metadata(ref),
            **float_metrics(metrics),
            **capsule_metadata,
            "model_version": dg.MetadataValue.int(version.version),
            "threshold": dg.MetadataValue.float(detector.threshold),
            "input_features": dg.MetadataValue.int(len(detector.feature_columns)),
            "seed": dg.MetadataValue.int(config.seed),
            "config_hash": dg.MetadataValue.text(config_hash(config)),
            "training_set_sha256": dg.MetadataValue.text(training_set.sha256),
        },
    )


def _model_capsule(
    context: dg.AssetExecutionContext,
    registry: Ledger,
    config: CandidateModelConfig,
    training_set: ArtifactRef,
    model: ArtifactRef,
    metrics: dict[str, float],
) -> Capsule:
    """The model's capsule: its training set's capsule (feature versions, config, seed) plus
    this step, so the whole chain from features to model can be re-run from it alone."""
    parent = _training_set_capsule(context, registry, training_set)
    return build_capsule(
        kind="model",
        asset="candidate_model",
        run_id=context.run.run_id,
        seeds={**(parent.seeds if parent else {}), "candidate_model": config.seed},
        config={
            **(parent.config if parent else {}),
            "candidate_model": config.model_dump(),
        },
        inputs={**(parent.inputs if parent else {}), "training_set": training_set.sha256},
        code_versions={
            **(parent.code_versions if parent else {}),
            "candidate_model": CANDIDATE_MODEL_CODE_VERSION,
            "aiops_assets": package_version(),
        },
        outputs={"training_set": training_set.sha256, "candidate_model": model.sha256},
        metrics=metrics,
        parent=parent.capsule_id if parent else None,
    )


def _training_set_capsule(
    context: dg.AssetExecutionContext, registry: Ledger, training_set: ArtifactRef
) -> Capsule | None:
    """The capsule of the training set this model learned from, if it was recorded."""
    result = context.instance.fetch_materializations(dg.AssetKey("training_set"), limit=20)
    for record in result.records:  # newest first
        metadata = record.asset_materialization.metadata if record.asset_materialization else {}
        sha = metadata.get("sha256")
        capsule_id = metadata.get("capsule_id")
        if sha is None or capsule_id is None or getattr(sha, "value", sha) != training_set.sha256:
            continue
        capsule = registry.get_capsule(str(getattr(capsule_id, "value", capsule_id)))
        if capsule is not None:
            return capsule
    context.log.warning(
        f"training set {training_set.sha256[:12]} has no recorded capsule; the model's capsule "
        "cannot name the feature partitions it came from"
    )
    return None


@dg.asset(
    code_version=CHAMPION_MODEL_CODE_VERSION,
    io_manager_key="artifact_io_manager",
    group_name="aiops",
    kinds={"scikitlearn"},
    description=(
        "The model in service, as the registry's `champion` alias says. The challenger replaces "
        "it only through the promotion gate (blocking checks passed, better on the holdout beyond "
        "bootstrap noise, no regression in shadow); manual promotions and rollbacks also go "
        "through this asset, so every change is recorded and audited."
    ),
)
def champion_model(
    context: dg.AssetExecutionContext,
    config: ChampionModelConfig,
    artifact_store: ArtifactStoreResource,
    ledger: LedgerResource,
    access_policy: AccessPolicyResource,
    alert_sink: AlertSinkResource,
    promotion_gate: PromotionGateResource,
    candidate_model: ArtifactRef,
    training_set: ArtifactRef,
) -> dg.Output[ArtifactRef]:
    registry = ledger.get_ledger()
    actor = identify(
        registry,
        action=config.action,
        subject=f"{MODEL_NAME}:champion",
        tags=context.run.tags,
        run_id=context.run.run_id,
    )
    change = _ChampionChange(context, registry, artifact_store.get_store(), alert_sink, actor)
    # Whatever happened (a move, a refusal), the head it left is witnessed outside the ledger.
    try:
        if config.action == "gate":
            return change.gate(
                config, candidate_model, training_set, access_policy, promotion_gate.check_keys()
            )
        if config.action == "adopt":
            return change.adopt()
        policy = access_policy.get_policy()
        subject = f"{MODEL_NAME}:{CHAMPION}"
        try:
            authorize(
                policy,
                registry,
                actor=actor,
                # A rollout ends in a promotion: whoever may start one must be allowed to promote.
                action="promote" if config.action == "rollout" else config.action,
                subject=subject,
                run_id=context.run.run_id,
            )
        except PermissionError as error:
            change.alert("access_denied", "WARN", str(error))
            raise dg.Failure(description=str(error)) from error
        if config.action == "promote":
            return change.promote(config)
        if config.action == "rollout":
            return change.start_rollout(config, training_set)
        return change.rollback(config)
    finally:
        observe_audit_head(context, registry)


class _ChampionChange:
    """The three ways the champion alias moves, sharing the run's ledger, store and alert sink."""

    def __init__(
        self,
        context: dg.AssetExecutionContext,
        registry: Ledger,
        store: ArtifactStore,
        alert_sink: AlertSinkResource,
        actor: str,
    ) -> None:
        self.context = context
        self.registry = registry
        self.store = store
        self.alert_sink = alert_sink
        self.actor = actor
        self.run_id = context.run.run_id

    def alert(self, kind: str, severity: str, summary: str) -> bool:
        """Send an alert; a sink that is down is logged, never fails the registry change."""
        return self.alert_sink.notify(
            self.context.log,
            kind=kind,
            severity=severity,
            summary=summary,
            asset="champion_model",
            run_id=self.run_id,
        )

    def output(
        self, version: ModelVersion, decision: str, reason: str, extra: dict[str, object]
    ) -> dg.Output[ArtifactRef]:
        ref = verify_model(self.store, version)
        self.context.log.info(f"champion: {decision}: {reason}")
        return versioned_output(
            ref,
            {
                **artifact_metadata(ref),
                **float_metrics(version.metrics),
                "model_version": dg.MetadataValue.int(version.version),
                "decision": dg.MetadataValue.text(decision),
                "reason": dg.MetadataValue.text(reason),
                "actor": dg.MetadataValue.text(self.actor),
                **extra,
            },
        )

    def gate(
        self,
        config: ChampionModelConfig,
        candidate_ref: ArtifactRef,
        training_set_ref: ArtifactRef,
        access_policy: AccessPolicyResource,
        gate_checks: list[dg.AssetCheckKey],
    ) -> dg.Output[ArtifactRef]:
        """Decide, and decide again when a concurrent run moved the champion meanwhile."""
        for attempt in range(1, GATE_ATTEMPTS + 1):
            try:
                return self._gate_once(
                    config, candidate_ref, training_set_ref, access_policy, gate_checks
                )
            except StaleChampionError as error:
                if attempt == GATE_ATTEMPTS:
                    raise dg.Failure(description=str(error)) from error
                self.context.log.warning(f"{error}; deciding again (attempt {attempt + 1})")
        raise AssertionError("unreachable")

    def _gate_once(
        self,
        config: ChampionModelConfig,
        candidate_ref: ArtifactRef,
        training_set_ref: ArtifactRef,
        access_policy: AccessPolicyResource,
        gate_checks: list[dg.AssetCheckKey],
    ) -> dg.Output[ArtifactRef]:
        candidate = self.registry.find_version(MODEL_NAME, candidate_ref.sha256)
        if candidate is None:
            raise dg.Failure(
                description=(
                    f"candidate {candidate_ref.sha256[:12]} is not registered in the ledger at "
                    f"{self.registry.url}; materialize candidate_model first"
                )
            )
        champion = self.registry.get_alias(MODEL_NAME, CHAMPION)
        if champion is not None and champion.version == candidate.version:
            # Nothing to decide: re-running the gate on the champion must not record a decision.
            return self.output(
                champion,
                "kept",
                f"{describe(candidate)} already the champion; nothing to decide",
                {"candidate_version": dg.MetadataValue.int(candidate.version)},
            )
        rollout = running_rollout(self.registry, MODEL_NAME)
        if rollout is not None and champion is not None:
            # Two ways of moving the champion at once would fight: the rollout finishes first.
            return self.output(
                champion,
                "kept",
                f"staged rollout {rollout.rollout_id} of v{rollout.to_version} is running; the "
                f"gate does not judge {describe(candidate)} until it completes or halts",
                {},
            )
        training = self.store.get_frame(training_set_ref)
        holdout = training[training[SPLIT] == HOLDOUT]
        trained_days = sorted(training[TIMESTAMP].dt.strftime("%Y-%m-%d").unique())
        candidate_model_obj: AnomalyDetector = load_model(self.store, candidate)
        champion_model_obj: AnomalyDetector | None = None
        if champion is not None:
            champion_model_obj = load_model(self.store, champion)
        holdout_pair = scored_pair(candidate_model_obj, champion_model_obj, holdout)
        shadow_keys = self._shadow_partitions(config.shadow_partitions, trained_days[-1])
        shadow_frame = (
            pd.concat(
                [self.store.get_frame(self._features_ref(key)) for key in shadow_keys],
                ignore_index=True,
            )
            if shadow_keys
            else None
        )
        shadow_pair = (
            scored_pair(candidate_model_obj, champion_model_obj, shadow_frame)
            if shadow_frame is not None
            else None
        )
        decision = decide(
            candidate_id=describe(candidate),
            champion_id=None if champion is None else describe(champion),
            blocking_checks=self._blocking_checks(gate_checks, trained_days),
            holdout=holdout_pair,
            shadow=shadow_pair,
            config=config.gate_config(),
            shadow_partitions=shadow_keys,
        )
        if decision.promote:
            try:
                authorize(
                    access_policy.get_policy(),
                    self.registry,
                    actor=self.actor,
                    action="promote",
                    subject=f"{MODEL_NAME}:{CHAMPION}",
                    run_id=self.run_id,
                )
            except PermissionError as error:
                self.alert("access_denied", "WARN", str(error))
                raise dg.Failure(description=str(error)) from error
        self.registry.record_promotion(
            MODEL_NAME,
            candidate.version,
            champion_version=None if champion is None else champion.version,
            promoted=decision.promote,
            reason=decision.reason,
            evidence=decision.evidence,
            actor=self.actor,
            run_id=self.run_id,
        )
        if decision.promote:
            self.alert("promotion", "INFO", f"{describe(candidate)} promoted: {decision.reason}")
        elif champion is not None:
            self.alert(
                "promotion_refused",
                "INFO",
                f"{describe(candidate)} not promoted: {decision.reason}",
            )
        serving = candidate if decision.promote or champion is None else champion
        return self.output(
            serving,
            "promoted" if decision.promote else "kept",
            decision.reason,
            {
                "candidate_version": dg.MetadataValue.int(candidate.version),
                "previous_champion_version": dg.MetadataValue.int(
                    0 if champion is None else champion.version
                ),
                "gate_report": dg.MetadataValue.md(decision.markdown()),
                **gate_numbers(decision),
                **float_metrics(candidate.metrics, prefix="candidate_"),
            },
        )

    def promote(self, config: ChampionModelConfig) -> dg.Output[ArtifactRef]:
        target = (
            self.registry.get_version(MODEL_NAME, config.version)
            if config.version
            else self.registry.get_alias(MODEL_NAME, CHALLENGER)
        )
        if target is None:
            raise dg.Failure(description=f"{MODEL_NAME} has no challenger to promote")
        verify_model(self.store, target)
        previous = self.registry.get_alias(MODEL_NAME, CHAMPION)
        reason = config.reason or f"manual promotion by {self.actor} (gate skipped)"
        self.registry.record_promotion(
            MODEL_NAME,
            target.version,
            champion_version=None if previous is None else previous.version,
            promoted=True,
            reason=reason,
            evidence={"manual": True, "gate": "skipped"},
            actor=self.actor,
            run_id=self.run_id,
        )
        self.alert("promotion", "WARN", f"{describe(target)} promoted manually: {reason}")
        return self.output(target, "promoted manually", reason, {})

    def start_rollout(
        self, config: ChampionModelConfig, training_set_ref: ArtifactRef
    ) -> dg.Output[ArtifactRef]:
        """Open a staged rollout; the champion keeps serving every service outside its canary."""
        target = (
            self.registry.get_version(MODEL_NAME, config.version)
            if config.version
            else self.registry.get_alias(MODEL_NAME, CHALLENGER)
        )
        current = self.registry.get_alias(MODEL_NAME, CHAMPION)
        if target is None or current is None:
            raise dg.Failure(
                description=(
                    f"a staged rollout needs a champion and a version to roll out; {MODEL_NAME} "
                    f"has {'no champion' if current is None else 'no such version'}"
                )
            )
        verify_model(self.store, target)
        services = sorted(
            str(service) for service in self.store.get_frame(training_set_ref)[SERVICE].unique()
        )
        reason = config.reason or f"staged rollout of {describe(target)} by {self.actor}"
        if config.override_gate and not config.override_reason.strip():
            raise dg.Failure(
                description="override_gate needs an override_reason; it is recorded in the audit log"
            )
        try:
            plan = RolloutPlan.load(config.rollout_plan or None)
            rollout = start_rollout(
                self.registry,
                MODEL_NAME,
                target.version,
                plan,
                services,
                actor=self.actor,
                reason=reason,
                override_reason=config.override_reason if config.override_gate else None,
            )
        except (RolloutError, LedgerError) as error:
            raise dg.Failure(description=f"cannot start the rollout: {error}") from error
        canary = rollout.stages[0]
        summary = (
            f"staged rollout {rollout.rollout_id} of {describe(target)} started: stage "
            f"{canary.name} serves {', '.join(canary.services)}; {describe(current)} serves the rest"
        )
        self.alert("rollout", "INFO", summary)
        return self.output(
            current,
            "rollout started",
            summary,
            {
                "rollout_id": dg.MetadataValue.int(rollout.rollout_id),
                "rollout_version": dg.MetadataValue.int(target.version),
                "rollout_plan": dg.MetadataValue.json(rollout.plan),
            },
        )

    def adopt(self) -> dg.Output[ArtifactRef]:
        """The champion the registry names, as this asset's value (after a rollout completed)."""
        current = self.registry.get_alias(MODEL_NAME, CHAMPION)
        if current is None:
            raise dg.Failure(description=f"{MODEL_NAME} has no champion to adopt")
        history = self.registry.alias_history(MODEL_NAME, CHAMPION)
        reason = history[-1].reason if history else "the registry's champion"
        return self.output(current, "adopted", reason, {})

    def rollback(self, config: ChampionModelConfig) -> dg.Output[ArtifactRef]:
        current = self.registry.get_alias(MODEL_NAME, CHAMPION)
        if current is None:
            raise dg.Failure(description=f"{MODEL_NAME} has no champion to roll back")
        target = (
            self.registry.get_version(MODEL_NAME, config.version)
            if config.version
            else self.registry.last_known_good(MODEL_NAME, alias=CHAMPION)
        )
        if target is None or target.version == current.version:
            message = (
                f"cannot roll back {describe(current)}: no earlier champion has passing checks "
                "on record; it stays in service"
            )
            self.alert("rollback", "ERROR", message)
            raise dg.Failure(description=message)
        verify_model(self.store, target)
        reason = config.reason or f"manual rollback by {self.actor}"
        self.registry.set_alias(
            MODEL_NAME,
            CHAMPION,
            target.version,
            actor=self.actor,
            reason=reason,
            kind="rollback",
            run_id=self.run_id,
        )
        self.alert(
            "rollback",
            "ERROR",
            f"{describe(current)} rolled back to {describe(target)}: {reason}",
        )
        return self.output(
            target,
            "rolled back",
            reason,
            {"rolled_back_version": dg.MetadataValue.int(current.version)},
        )

    def _features_ref(self, partition: str) -> ArtifactRef:
        ref = self.store.get_ref(asset_ref_name(FEATURES_KEY, partition))
        if ref is None:
            raise dg.Failure(description=f"features[{partition}] has no current version")
        return ref

    def _shadow_partitions(self, count: int, until: str) -> list[str]:
        """The latest ``count`` days the champion served (scored) with features, up to ``until``."""
        if count <= 0:
            return []
        # From the instance, not the run's graph: a training run's graph does not hold the
        # scores downstream, nor the partitioning of assets more than one step upstream.
        served = [
            key
            for key in sorted(self.context.instance.get_materialized_partitions(SCORES_KEY))
            if key <= until
            and self.store.get_ref(asset_ref_name(SCORES_KEY, key)) is not None
            and self.store.get_ref(asset_ref_name(FEATURES_KEY, key)) is not None
        ]
        return served[-count:]

    def _blocking_checks(
        self, check_keys: list[dg.AssetCheckKey], partitions: list[str]
    ) -> dict[str, bool]:
        """Each required check, per trained partition: did its latest completed execution pass?

        A check that never completed for a partition the model learned from counts as not
        passed, because nothing proves that data was good.
        """
        outcomes: dict[str, bool] = {}
        for check_key in check_keys:
            latest = latest_check_outcomes(self.context.instance, check_key, set(partitions))
            # The run's own graph may not include the checked asset, so its history says
            # whether the check is per partition.
            partitioned = any(partition is not None for partition in latest)
            wanted: list[str | None] = list(partitions) if partitioned else [None]
            for partition in wanted:
                label = check_key.to_user_string() + (f"[{partition}]" if partition else "")
                outcomes[label] = latest.get(partition, False)
        return outcomes
