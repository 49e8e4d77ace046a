"""``score_baseline``: the prediction-drift reference, rebuilt whenever the champion changes (after
the promotion gate and after a rollback, as the Dagster side's ``ROLLBACK_ASSETS``), with the
same calls (``core/pipeline/baselines.py``) so the same champion and training set give the same
profile bytes. The daily ``anomaly_scores`` step judges each day's scores against it."""

from __future__ import annotations

from aiops_assets.airflow.config import ProviderConfig
from aiops_assets.airflow.records import (
    StepResult,
    StepSkipped,
    asset_ref_name,
    current_ref,
    get_facts,
)
from aiops_assets.airflow.steps_data import PROFILE_MEDIA_TYPE, vouched_detector
from aiops_assets.airflow.steps_model import TRAINING_SET
from aiops_assets.core.pipeline.baselines import (
    SCORE_BASELINE_ASSET,
    SCORE_BASELINE_CODE_VERSION,
    score_profile,
)
from aiops_assets.core.registry import CHAMPION, MODEL_NAME


def _training_partitions(facts: dict[str, object], training_sha256: str) -> list[str]:
    """The days the current training set recorded it was built from; none when the facts are
    another training set's (the Dagster asset reads its materialization metadata the same way)."""
    if facts.get("sha256") != training_sha256:
        return []
    return [key.strip() for key in str(facts.get("partitions", "")).split(",") if key.strip()]


def score_baseline_step(config: ProviderConfig) -> StepResult:
    """The champion's scores on its training rows, profiled and calibrated per training day."""
    store, registry = config.store(), config.ledger()
    champion = registry.get_alias(MODEL_NAME, CHAMPION)
    if champion is None:
        raise StepSkipped(f"{MODEL_NAME} has no champion yet: no score baseline")
    training_ref = current_ref(store, TRAINING_SET, None)
    partitions = _training_partitions(
        get_facts(store, TRAINING_SET, None) or {}, training_ref.sha256
    )
    profile, calibrated_on, scores = score_profile(
        vouched_detector(registry, store, champion.version),
        store.get_frame(training_ref),
        partitions,
    )
    ref = store.put_bytes(profile.to_bytes(), PROFILE_MEDIA_TYPE)
    store.set_ref(asset_ref_name(SCORE_BASELINE_ASSET, None), ref)
    return StepResult(
        asset=SCORE_BASELINE_ASSET,
        partition=None,
        sha256=ref.sha256,
        code_version=SCORE_BASELINE_CODE_VERSION,
        facts={
            "model_version": champion.version,
            "model_sha256": champion.sha256,
            "reference_rows": len(scores),
            "calibrated_on_partitions": calibrated_on,
        },
    )


__all__ = ["score_baseline_step"]
