"""The scores asset: each partition of the host's data scored by the version serving its rows.

The registry decides who serves: the champion, or during a staged rollout the new version on its
slice of services. The output is the plugin's scores frame (``timestamp``, ``service``, ``score``,
``alert``, ``label``, ``model_version``) whatever the host's columns are called, with the
metadata the performance check and the staged-rollout sensor read (``model_sha256``, the
rollout's id, stage and slice), so both work on the host's model unchanged.
"""

from typing import Any

import dagster as dg
import numpy as np
import pandas as pd

from aiops_assets.core.features import LABEL, SERVICE, TIMESTAMP
from aiops_assets.core.ledger import Ledger, LedgerError, Rollout
from aiops_assets.core.models import ALERT, SCORE
from aiops_assets.core.registry import load_version
from aiops_assets.core.rollout import MODEL_VERSION_COLUMN, running_rollout, serving_versions
from aiops_assets.core.store import ArtifactRef, ArtifactStore
from aiops_assets.lifecycle.models import LifecycleModel
from aiops_assets.metadata import artifact_metadata, frame_metadata, versioned_output
from aiops_assets.resources import ArtifactStoreResource, LedgerResource

ALL_SERVICES = "-"


def vouched_model(
    store: ArtifactStore,
    registry: Ledger,
    model: LifecycleModel,
    model_name: str,
    *,
    version: int | None = None,
    sha256: str | None = None,
) -> Any:
    """A model loaded only as a version the audit chain vouches for, after its bytes verified."""
    try:
        found = registry.vouched_version(model_name, version=version, sha256=sha256)
    except LedgerError as error:
        raise dg.Failure(description=str(error)) from error
    if found is None:
        what = f"v{version}" if version is not None else f"object {str(sha256)[:12]}"
        raise dg.Failure(
            description=f"refusing to load {model_name} {what}: no version the ledger vouches "
            "for has it (a ref repointed around the ledger?); run `aiops audit verify`"
        )
    return load_version(store, found, model.format)


def scores_frame(model: LifecycleModel, fitted: Any, rows: pd.DataFrame) -> pd.DataFrame:
    """One model's scores on rows, in the plugin's column names."""
    scores = np.asarray(model.score(fitted, rows), dtype="float64")
    threshold = model.threshold_of(fitted)
    frame = pd.DataFrame(
        {
            TIMESTAMP: rows[model.time_column].to_numpy()
            if model.time_column
            else np.arange(len(rows)),
            SERVICE: rows[model.service_column].astype(str).to_numpy()
            if model.service_column
            else np.full(len(rows), ALL_SERVICES),
            SCORE: scores,
            ALERT: (scores >= threshold).astype("int8"),
        }
    )
    if model.label in rows:
        frame[LABEL] = rows[model.label].to_numpy().astype("int8")
    return frame


def build_scores_asset(
    *,
    name: str,
    model_name: str,
    data: dg.AssetsDefinition | dg.AssetSpec,
    champion: dg.AssetKey,
    model: LifecycleModel,
    group_name: str,
) -> dg.AssetsDefinition:
    """Each partition of ``data`` scored by the serving versions of ``model_name``."""

    @dg.asset(
        name=name,
        partitions_def=data.partitions_def,
        io_manager_key="artifact_io_manager",
        group_name=group_name,
        ins={"data": dg.AssetIn(key=data.key), "champion": dg.AssetIn(key=champion)},
        description=(
            f"{data.key.to_user_string()} scored by {model_name}: the champion, or a staged "
            "rollout's version on its slice (column `model_version`)."
        ),
    )
    def scores(
        context: dg.AssetExecutionContext,
        artifact_store: ArtifactStoreResource,
        ledger: LedgerResource,
        data: Any,
        champion: ArtifactRef,
    ) -> dg.Output[ArtifactRef]:
        store = artifact_store.get_store()
        registry = ledger.get_ledger()
        rows = data if isinstance(data, pd.DataFrame) else pd.concat(list(data.values()))
        version = registry.find_version(model_name, champion.sha256)
        champion_number = None if version is None else version.version
        services = (
            sorted(rows[model.service_column].astype(str).unique())
            if model.service_column
            else [ALL_SERVICES]
        )
        rollout = running_rollout(registry, model_name)
        serving = serving_versions(services, champion=champion_number, rollout=rollout)
        by_row = (
            rows[model.service_column].astype(str).map(serving)
            if model.service_column
            else pd.Series(champion_number, index=rows.index)
        )
        parts = []
        for served in sorted({v for v in serving.values() if v is not None}):
            chosen = rows[by_row.to_numpy() == served]
            if chosen.empty:
                continue
            fitted = vouched_model(store, registry, model, model_name, version=served)
            part = scores_frame(model, fitted, chosen)
            part[MODEL_VERSION_COLUMN] = served
            parts.append(part)
        if not parts:  # no registered champion: the bytes the asset holds, still vouched
            fitted = vouched_model(store, registry, model, model_name, sha256=champion.sha256)
            parts = [scores_frame(model, fitted, rows).assign(**{MODEL_VERSION_COLUMN: 0})]
        frame = pd.concat(parts, ignore_index=True).sort_values(
            [TIMESTAMP, SERVICE], kind="mergesort", ignore_index=True
        )
        frame[MODEL_VERSION_COLUMN] = frame[MODEL_VERSION_COLUMN].astype("int64")
        ref = store.put_frame(frame)
        return versioned_output(
            ref,
            {
                **artifact_metadata(ref),
                **frame_metadata(frame),
                "alert_rate": dg.MetadataValue.float(float(frame[ALERT].mean())),
                "mean_score": dg.MetadataValue.float(float(frame[SCORE].mean())),
                "model_sha256": dg.MetadataValue.text(champion.sha256),
                "model_version": dg.MetadataValue.int(champion_number or 0),
                "served_versions": dg.MetadataValue.json(
                    {service: served or 0 for service, served in serving.items()}
                ),
                **_rollout_metadata(rollout, serving),
            },
        )

    return scores


def _rollout_metadata(
    rollout: Rollout | None, serving: dict[str, int | None]
) -> dict[str, dg.MetadataValue]:
    """What the performance check needs to measure the active stage's slice apart."""
    active = rollout.stages[-1] if rollout is not None else None
    return {
        "rollout_id": dg.MetadataValue.int(0 if rollout is None else rollout.rollout_id),
        "rollout_stage": dg.MetadataValue.text("" if active is None else active.name),
        "rollout_version": dg.MetadataValue.int(0 if rollout is None else rollout.to_version),
        # The active stage's services the rollout's version really scored.
        "rollout_slice": dg.MetadataValue.json(
            []
            if rollout is None or active is None
            else [s for s in active.services if serving.get(s) == rollout.to_version]
        ),
    }
