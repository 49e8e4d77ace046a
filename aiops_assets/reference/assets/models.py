"""``training_set``, ``candidate_model`` and ``champion_model``: from features to the model in service.

The registry in the ledger is the source of truth for which version is champion; the
``champion_model`` asset is how every change of that alias happens (the promotion gate, a manual
promotion, a rollback), so each change is also a materialization the UI shows with its evidence,
and ``anomaly_scores`` downstream always scores with the model the registry says is in service.
"""

from typing import Any

import dagster as dg
import pandas as pd

from aiops_assets import (
    AccessPolicyResource,
    AlertSinkResource,
    ArtifactRefIOManager,
    ArtifactStoreResource,
    LedgerResource,
    record_capsule,
    register_candidate,
)
from aiops_assets.core.capsule import Capsule
from aiops_assets.core.features import SERVICE, TIMESTAMP
from aiops_assets.core.ledger import Ledger, ModelVersion
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
from aiops_assets.core.pipeline.training import (
    CANDIDATE_MODEL_CODE_VERSION,
    CHAMPION_MODEL_CODE_VERSION,
    TRAINING_SET_CODE_VERSION,
    CandidateSettings,
    TrainingSetSettings,
    model_capsule,
    scored_pair,
    training_set_capsule,
)
from aiops_assets.core.registry import (
    MODEL_NAME,
    load_model,
)
from aiops_assets.core.store import ArtifactRef, ArtifactStore
from aiops_assets.keys import FEATURES_KEY, SCORES_KEY
from aiops_assets.lifecycle.champion import (
    ChampionConfig,
    GateEvidence,
    acting_moves,
    move_champion,
)
from aiops_assets.lifecycle.evidence import blocking_outcomes
from aiops_assets.metadata import (
    artifact_metadata,
    config_hash,
    float_metrics,
    frame_metadata,
    latest_materialization_metadata,
    versioned_output,
)
from aiops_assets.resources import PromotionGateResource

# The code versions are the core's (``core/pipeline/training.py``): the Airflow tasks run the
# same computation under the same names.
__all__ = [
    "CANDIDATE_MODEL_CODE_VERSION",
    "CHAMPION_MODEL_CODE_VERSION",
    "TRAINING_SET_CODE_VERSION",
    "CandidateModelConfig",
    "ChampionModelConfig",
    "TrainingSetRunConfig",
    "candidate_model",
    "champion_model",
    "training_set",
]


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


# The champion's run config is the lifecycle's (gate, promote, rollback, rollout, adopt).
ChampionModelConfig = ChampionConfig


@dg.asset(
    code_version=TRAINING_SET_CODE_VERSION,
    io_manager_key="artifact_io_manager",
    group_name="aiops",
    kinds={"pandas", "parquet"},
    ins={"features": dg.AssetIn(metadata={ArtifactRefIOManager.ALLOW_MISSING_PARTITIONS: True})},
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
    capsule = training_set_capsule(
        run_id=context.run.run_id,
        settings=TrainingSetSettings(**config.model_dump()),
        feature_facts={
            key: {**feature_metadata.get(key, {}), "sha256": _features_data_version(store, key)}
            for key in used
        },
        training_set_sha256=ref.sha256,
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
    ref = store.get_ref(ArtifactRefIOManager.ref_name(FEATURES_KEY, partition))
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
    capsule = model_capsule(
        run_id=context.run.run_id,
        parent=_training_set_capsule(context, registry, training_set),
        settings=CandidateSettings(**config.model_dump()),
        training_set_sha256=training_set.sha256,
        model_sha256=ref.sha256,
        metrics=metrics,
    )
    version, capsule_links = register_candidate(
        context,
        registry,
        store,
        model_name=MODEL_NAME,
        model=ref,
        capsule=capsule,
        metrics=metrics,
        training_set_version=training_set.sha256,
        feature_set_version=str(training_metadata.get("feature_set_version", "")),
        tags={
            "seed": str(config.seed),
            "config_hash": config_hash(config),
            "trained_until": str(training_metadata.get("until", "")),
        },
        hypothesis=config.hypothesis,
        success_criterion=config.success_criterion,
    )
    return versioned_output(
        ref,
        {
            **artifact_metadata(ref),
            **float_metrics(metrics),
            **capsule_links,
            "model_version": dg.MetadataValue.int(version.version),
            "threshold": dg.MetadataValue.float(detector.threshold),
            "input_features": dg.MetadataValue.int(len(detector.feature_columns)),
            "seed": dg.MetadataValue.int(config.seed),
            "config_hash": dg.MetadataValue.text(config_hash(config)),
            "training_set_sha256": dg.MetadataValue.text(training_set.sha256),
        },
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
    store = artifact_store.get_store()
    moves = acting_moves(
        context,
        registry,
        store,
        alert_sink,
        action=config.action,
        model_name=MODEL_NAME,
        asset_name="champion_model",
    )
    evidence = _DetectorEvidence(context, store, config, training_set, promotion_gate.check_keys())
    return move_champion(
        context,
        config,
        moves,
        access_policy,
        candidate_sha256=candidate_model.sha256,
        evidence=evidence.weigh,
        services=lambda: sorted(
            str(service) for service in store.get_frame(training_set)[SERVICE].unique()
        ),
    )


class _DetectorEvidence:
    """The gate's evidence for the detector: both models on the training set's holdout days and
    on the latest days the champion served, and the blocking checks of every trained day."""

    def __init__(
        self,
        context: dg.AssetExecutionContext,
        store: ArtifactStore,
        config: ChampionModelConfig,
        training_set: ArtifactRef,
        gate_checks: list[dg.AssetCheckKey],
    ) -> None:
        self.context = context
        self.store = store
        self.config = config
        self.training_set = training_set
        self.gate_checks = gate_checks

    def weigh(self, candidate: ModelVersion, champion: ModelVersion | None) -> GateEvidence:
        training = self.store.get_frame(self.training_set)
        holdout = training[training[SPLIT] == HOLDOUT]
        trained_days = self._trained_partitions(training)
        candidate_model_obj: AnomalyDetector = load_model(self.store, candidate)
        champion_model_obj: AnomalyDetector | None = None
        if champion is not None:
            champion_model_obj = load_model(self.store, champion)
        holdout_pair = scored_pair(candidate_model_obj, champion_model_obj, holdout)
        shadow_keys = self._shadow_partitions(self.config.shadow_partitions, trained_days[-1])
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
        return GateEvidence(
            holdout=holdout_pair,
            blocking_checks=blocking_outcomes(
                self.context.instance, self.gate_checks, trained_days
            ),
            shadow=shadow_pair,
            shadow_partitions=shadow_keys,
        )

    def _trained_partitions(self, training: pd.DataFrame) -> list[str]:
        """The feature partitions the training set was built from, as its materialization
        recorded them: hourly partitions are checked per hour (their rows' days would name
        partitions that do not exist, and the gate would see no check pass). The rows' days
        when the record is not this training set's (a training set materialized elsewhere)."""
        recorded = latest_materialization_metadata(
            self.context.instance, dg.AssetKey("training_set")
        )
        partitions = str(recorded.get("partitions", ""))
        if recorded.get("sha256") == self.training_set.sha256 and partitions:
            return sorted(key.strip() for key in partitions.split(",") if key.strip())
        return sorted(training[TIMESTAMP].dt.strftime("%Y-%m-%d").unique())

    def _features_ref(self, partition: str) -> ArtifactRef:
        ref = self.store.get_ref(ArtifactRefIOManager.ref_name(FEATURES_KEY, partition))
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
            and self.store.get_ref(ArtifactRefIOManager.ref_name(SCORES_KEY, key)) is not None
            and self.store.get_ref(ArtifactRefIOManager.ref_name(FEATURES_KEY, key)) is not None
        ]
        return served[-count:]
