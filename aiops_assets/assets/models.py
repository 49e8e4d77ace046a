"""``training_set``, ``candidate_model`` and ``champion_model``: from features to the model in service."""

import dagster as dg
import pandas as pd

from aiops_assets.core.features import TIMESTAMP
from aiops_assets.core.models import (
    HOLDOUT,
    SPLIT,
    TRAIN,
    AnomalyDetector,
    DetectorConfig,
    TrainingSetConfig,
    build_training_set,
    decide_promotion,
    evaluate_detector,
    train_detector,
)
from aiops_assets.core.store import ArtifactRef
from aiops_assets.metadata import (
    artifact_metadata,
    config_hash,
    float_metrics,
    frame_metadata,
    versioned_output,
)
from aiops_assets.resources import ALLOW_MISSING_PARTITIONS, ArtifactStoreResource

TRAINING_SET_CODE_VERSION = "training_set-1"
CANDIDATE_MODEL_CODE_VERSION = "candidate_model-1"
CHAMPION_MODEL_CODE_VERSION = "champion_model-1"


class TrainingSetRunConfig(dg.Config):
    """The last ``holdout_days`` days are the holdout; ``seed`` drives any train subsampling."""

    holdout_days: int = 4
    max_train_rows: int = 200_000
    seed: int = 17


class CandidateModelConfig(dg.Config):
    """Isolation-forest settings; ``seed`` drives every random choice in training."""

    n_estimators: int = 200
    max_samples: int = 512
    seed: int = 7


class ChampionModelConfig(dg.Config):
    """The candidate replaces the champion only when it is better by more than ``min_improvement``."""

    metric: str = "pr_auc"
    min_improvement: float = 0.0


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
    features: dict[str, pd.DataFrame],
) -> dg.Output[ArtifactRef]:
    combined = pd.concat([features[key] for key in sorted(features)], ignore_index=True)
    frame = build_training_set(
        combined,
        TrainingSetConfig(
            holdout_days=config.holdout_days, max_train_rows=config.max_train_rows, seed=config.seed
        ),
    )
    ref = artifact_store.get_store().put_frame(frame)
    metadata: dict[str, object] = {
        **artifact_metadata(ref),
        **frame_metadata(frame),
        "seed": dg.MetadataValue.int(config.seed),
        "config_hash": dg.MetadataValue.text(config_hash(config)),
        "feature_partitions": dg.MetadataValue.int(len(features)),
        "missing_feature_partitions": dg.MetadataValue.text(
            ", ".join(
                sorted(set(context.asset_partition_keys_for_input("features")) - set(features))
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


@dg.asset(
    code_version=CANDIDATE_MODEL_CODE_VERSION,
    io_manager_key="artifact_io_manager",
    group_name="aiops",
    kinds={"scikitlearn"},
    description="An isolation-forest anomaly detector trained on the train split with a recorded seed.",
)
def candidate_model(
    config: CandidateModelConfig,
    artifact_store: ArtifactStoreResource,
    training_set: ArtifactRef,
) -> dg.Output[ArtifactRef]:
    store = artifact_store.get_store()
    frame = store.get_frame(training_set)
    detector_config = DetectorConfig(
        n_estimators=config.n_estimators, max_samples=config.max_samples, seed=config.seed
    )
    detector = train_detector(frame, detector_config)
    metrics = evaluate_detector(detector, frame[frame[SPLIT] == HOLDOUT])
    ref = store.put_pickle(detector)
    return versioned_output(
        ref,
        {
            **artifact_metadata(ref),
            **float_metrics(metrics),
            "threshold": dg.MetadataValue.float(detector.threshold),
            "input_features": dg.MetadataValue.int(len(detector.feature_columns)),
            "seed": dg.MetadataValue.int(config.seed),
            "config_hash": dg.MetadataValue.text(config_hash(config)),
            "training_set_sha256": dg.MetadataValue.text(training_set.sha256),
        },
    )


@dg.asset(
    code_version=CHAMPION_MODEL_CODE_VERSION,
    io_manager_key="artifact_io_manager",
    group_name="aiops",
    kinds={"scikitlearn"},
    description=(
        "The model in service: the candidate is promoted when it beats the current champion on the "
        "same holdout by more than the configured margin; otherwise the champion stays."
    ),
)
def champion_model(
    context: dg.AssetExecutionContext,
    config: ChampionModelConfig,
    artifact_store: ArtifactStoreResource,
    candidate_model: ArtifactRef,
    training_set: ArtifactRef,
) -> dg.Output[ArtifactRef]:
    store = artifact_store.get_store()
    holdout = store.get_frame(training_set)
    holdout = holdout[holdout[SPLIT] == HOLDOUT]
    candidate: AnomalyDetector = store.get_pickle(candidate_model)
    candidate_metrics = evaluate_detector(candidate, holdout)

    current_ref = artifact_store.current_ref(context.asset_key)
    champion_metrics: dict[str, float] | None = None
    if current_ref is not None and current_ref.sha256 != candidate_model.sha256:
        champion: AnomalyDetector = store.get_pickle(current_ref)
        try:
            champion_metrics = evaluate_detector(champion, holdout)
        except ValueError as error:
            context.log.warning(f"the current champion cannot score today's features ({error})")
    decision = decide_promotion(
        candidate_sha256=candidate_model.sha256,
        candidate_metrics=candidate_metrics,
        champion_sha256=None if current_ref is None else current_ref.sha256,
        champion_metrics=champion_metrics,
        metric=config.metric,
        min_improvement=config.min_improvement,
    )
    chosen = candidate_model if decision.promote or current_ref is None else current_ref
    chosen_metrics = candidate_metrics if chosen == candidate_model else champion_metrics or {}
    context.log.info(f"champion decision: {decision.reason}")
    return versioned_output(
        chosen,
        {
            **artifact_metadata(chosen),
            **float_metrics(chosen_metrics),
            **float_metrics(candidate_metrics, prefix="candidate_"),
            "decision": dg.MetadataValue.text("promoted" if decision.promote else "kept"),
            "reason": dg.MetadataValue.text(decision.reason),
            "previous_champion_sha256": dg.MetadataValue.text(
                "" if current_ref is None else current_ref.sha256
            ),
            "config_hash": dg.MetadataValue.text(config_hash(config)),
        },
    )
