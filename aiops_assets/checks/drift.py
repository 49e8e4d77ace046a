"""Drift asset checks: each partition of an asset against a stored baseline profile.

The check never reads the reference data: it loads the baseline profile (an artifact of the
baseline asset, see ``assets/drift.py``) and the current partition only. Persistence ("k of the
last n partitions drifted") needs the verdicts of earlier partitions; they are read back from this
check's own earlier results in the Dagster instance, so no extra state exists to drift out of sync.

When the baseline has per-slice profiles (one per service), each service's rows of the partition
are also judged against that service's own reference. The slices are reported next to the overall
verdict and never change it: the check passes or fails, and at what severity, on the overall
evaluation alone. Persistence applies within a slice too, from the drifted features that earlier
partitions recorded per slice (``slice_feature_verdicts``).
"""

import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import dagster as dg

from aiops_assets.check_history import check_execution_page, check_execution_pages, evaluation_of
from aiops_assets.core.drift import (
    VERDICTS,
    BaselineProfile,
    DriftPolicy,
    DriftResult,
    evaluate_drift,
    evaluate_slices,
    load_policy,
    slices_markdown,
)
from aiops_assets.core.drift.acknowledgements import (
    Acknowledgement,
    acknowledged_by,
    acknowledgements,
)
from aiops_assets.core.drift.episodes import EpisodeState, next_episode
from aiops_assets.core.store import ArtifactRef
from aiops_assets.io import partition_frame
from aiops_assets.keys import DRIFT_CHECK_NAME
from aiops_assets.metadata import table_metadata
from aiops_assets.resources import ArtifactStoreResource

_SEVERITY = {"warn": dg.AssetCheckSeverity.WARN, "error": dg.AssetCheckSeverity.ERROR}


BaselineJudgement = Callable[
    [dg.AssetCheckExecutionContext, BaselineProfile, ArtifactRef, Any], dg.AssetCheckResult
]


def check_against_baseline(
    asset: dg.AssetsDefinition | dg.AssetSpec,
    baseline: dg.AssetsDefinition | dg.AssetSpec,
    *,
    name: str,
    description: str,
    purpose: str,
    judge: BaselineJudgement,
    blocking: bool = False,
) -> dg.AssetChecksDefinition:
    """One partitioned check of ``asset`` against a stored baseline profile: the wiring the
    drift, baseline-quality and label-health checks share (the profile loaded and verified, the
    partition's frame), so each of them states only its judgement.

    ``judge`` receives the context, the profile, the baseline's ref and the partition's frame.
    Partitioned asset checks are a Dagster preview; their notice is muted here, once.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", dg.PreviewWarning)

        @dg.asset_check(
            asset=asset.key,
            name=name,
            partitions_def=asset.partitions_def,
            blocking=blocking,
            additional_ins={"baseline": dg.AssetIn(key=baseline.key)},
            description=description,
        )
        def against_baseline(
            context: dg.AssetCheckExecutionContext,
            artifact_store: ArtifactStoreResource,
            frame: Any,
            baseline: ArtifactRef,
        ) -> dg.AssetCheckResult:
            profile = load_baseline(artifact_store, baseline)
            current = partition_frame(frame, context, purpose=purpose)
            return judge(context, profile, baseline, current)

    return against_baseline


def load_baseline(artifact_store: ArtifactStoreResource, ref: ArtifactRef) -> BaselineProfile:
    return BaselineProfile.from_bytes(artifact_store.get_store().get_bytes(ref))


def build_drift_checks(
    asset: dg.AssetsDefinition | dg.AssetSpec,
    baseline: dg.AssetsDefinition | dg.AssetSpec,
    columns: Sequence[str] | None = None,
    policy: DriftPolicy | str | Path | None = None,
    *,
    name: str = DRIFT_CHECK_NAME,
    slice_columns: Sequence[str] | Callable[[Any], Sequence[str]] | None = None,
) -> list[dg.AssetChecksDefinition]:
    """A drift check on each partition of ``asset`` against the profile that ``baseline`` stores.

    The result has a per-feature table (test, statistic, p, q, effect size, thresholds, verdict),
    one float metadata entry per feature's main score (``score/<feature>``, plotted over time by
    the UI), and a markdown summary naming the drifted features. A WARN verdict fails the check
    at WARN severity, an ERROR verdict at ERROR; the check does not block downstream assets
    (drift is a reason to retrain, not to stop serving).

    When the baseline profiles slices (``slice_by``, by default each service), every slice the
    partition holds rows of is judged against its own reference too, and the result adds
    ``slice_verdicts`` (``{service: ok|warn|error}``), ``drifted_slices`` (text, e.g.
    ``service=checkout, service=payments``; empty when none), ``slices_drifted`` and, per slice,
    ``slice_drifted_features/service=<name>`` (floats, plotted by the UI), plus a "Per-service
    slices" section in the summary. Slices inform; the pass/fail verdict stays the overall one.

    Args:
        asset: The checked asset; its IO manager must load a DataFrame (or, for our artifact IO
            manager, a dict of one partition's DataFrame).
        baseline: An asset whose value is an ``ArtifactRef`` to a ``BaselineProfile`` (see
            ``build_drift_baseline_asset``).
        columns: Only these profiled columns; default all the baseline profiles.
        policy: A ``DriftPolicy`` or the path of a policy YAML; default ``core/drift_policy.yaml``.
        name: The check's name (two drift checks on one asset need different names).
        slice_columns: The columns judged per slice, or a function of the partition's frame
            that names them; default every checked column. Within one service, raw levels
            (a mean, a spread) wander from week to week without harm and would mark every
            service drifted; the reference pipeline judges slices on the scale-free columns
            its model reads (``core.features.model_input_columns``) and leaves levels to the
            overall verdict.

    Example:
        >>> baseline = build_drift_baseline_asset(my_asset, exclude=["ts", "host"])  # doctest: +SKIP
        >>> checks = build_drift_checks(my_asset, baseline, columns=["cpu_pct"])  # doctest: +SKIP
    """
    resolved = policy if isinstance(policy, DriftPolicy) else load_policy(policy)
    selected = list(columns) if columns is not None else None
    partitions_def = asset.partitions_def
    check_key = dg.AssetCheckKey(asset.key, name)

    def judge(
        context: dg.AssetCheckExecutionContext,
        profile: BaselineProfile,
        baseline_ref: ArtifactRef,
        current: Any,
    ) -> dg.AssetCheckResult:
        if selected is not None:
            missing = sorted(set(selected) - set(profile.names))
            if missing:
                raise dg.Failure(description=f"the baseline does not profile columns {missing}")
            profile = profile.select(selected)
        previous, previous_slices, before = _previous_verdicts(
            context, check_key, partitions_def, max(resolved.persistence_window - 1, 1)
        )
        result = evaluate_drift(profile, current, resolved, previous=previous)
        episode, ack = _episode(context, check_key, before, result, baseline_ref, resolved)
        sliced = profile
        if slice_columns is not None:
            wanted = slice_columns(current) if callable(slice_columns) else slice_columns
            sliced = profile.select([column for column in wanted if column in profile.names])
        slices = evaluate_slices(sliced, current, resolved, previous=previous_slices)
        return drift_check_result(
            result,
            baseline_sha256=baseline_ref.sha256,
            slices=slices,
            slice_column=profile.slice_column,
            episode=episode,
            acknowledgement=ack,
        )

    description = (
        f"Drift of each partition against {baseline.key.to_user_string()} under policy "
        f"{resolved.name} v{resolved.version}"
    )
    return [
        check_against_baseline(
            asset, baseline, name=name, description=description, purpose="drift checks", judge=judge
        )
    ]


_FEATURE_COLUMNS = [
    ("feature", "string"),
    ("kind", "string"),
    ("test", "string"),
    ("statistic", "float"),
    ("p", "float"),
    ("q", "float"),
    ("effect", "string"),
    ("thresholds", "string"),
    ("verdict", "string"),
]


def _episode(
    context: dg.AssetCheckExecutionContext,
    check_key: dg.AssetCheckKey,
    before: EpisodeState | None,
    result: DriftResult,
    baseline_ref: ArtifactRef,
    policy: DriftPolicy,
) -> tuple[EpisodeState | None, Acknowledgement | None]:
    """This partition's episode, continued from the previous partition's, and the person's
    acknowledgement covering it, if any. An unpartitioned check has no episodes."""
    if not context.has_partition_key:
        return None, None
    episode = next_episode(
        before,
        partition=context.partition_key,
        verdict=result.verdict,
        baseline_sha256=baseline_ref.sha256,
        bridge=policy.episode_bridge,
    )
    if not episode.open:
        return episode, None
    store = context.resources.artifact_store.get_store()
    ack = acknowledged_by(
        acknowledgements(store, check_key.to_user_string()),
        episode_id=episode.episode_id,
        baseline_sha256=baseline_ref.sha256,
        partition=context.partition_key,
        drifted=[name for name in result.drifted if result.feature(name).verdict == "error"],
    )
    return episode, ack


def _episode_metadata(
    episode: EpisodeState | None, ack: Acknowledgement | None
) -> tuple[dict[str, dg.MetadataValue], str]:
    """The episode's fields for the next partition and the alert sensor, and a summary line."""
    if episode is None:
        return {}, ""
    metadata: dict[str, dg.MetadataValue] = {
        name: (
            dg.MetadataValue.int(value) if isinstance(value, int) else dg.MetadataValue.text(value)
        )
        for name, value in episode.to_metadata().items()
    }
    metadata["episode_acknowledged"] = dg.MetadataValue.bool(ack is not None)
    if ack is not None:
        metadata["acknowledged_by"] = dg.MetadataValue.text(
            f"{ack.actor} at {ack.at} (partition {ack.partition}): {ack.reason}"
        )
    line = ""
    if episode.open:
        line = (
            f"**Drift episode** `{episode.episode_id}`: {episode.length} ERROR partition(s) since "
            f"{episode.start}" + (", acknowledged" if ack is not None else "") + "."
        )
    elif episode.ended_id:
        line = f"**Drift episode** `{episode.ended_id}` ended."
    return metadata, line


def drift_check_result(
    result: DriftResult,
    *,
    baseline_sha256: str,
    slices: Mapping[str, DriftResult] | None = None,
    slice_column: str | None = None,
    episode: EpisodeState | None = None,
    acknowledgement: Acknowledgement | None = None,
) -> dg.AssetCheckResult:
    rows = [
        {
            "feature": item.feature,
            "kind": item.kind,
            "test": item.test,
            "statistic": float(item.statistic),
            "p": float(item.p_value),
            "q": float(item.q_value),
            "effect": f"{item.effect_name} {item.effect:.4g}",
            "thresholds": f"{item.warn_threshold:.3g} / {item.error_threshold:.3g}",
            "verdict": item.verdict + (" (persistent)" if item.persistent else ""),
        }
        for item in result.features
    ]
    scores = {
        f"score/{item.feature}": dg.MetadataValue.float(float(item.score))
        for item in result.features
    }
    summary = result.to_markdown()
    slice_metadata: dict[str, dg.MetadataValue] = {}
    if slice_column is not None:
        slice_metadata = _slice_metadata(slices or {}, slice_column)
        section = slices_markdown(slices or {}, slice_column)
        summary += f"\n\n{section}" if section else ""
    episode_metadata, episode_line = _episode_metadata(episode, acknowledgement)
    summary += f"\n\n{episode_line}" if episode_line else ""
    return dg.AssetCheckResult(
        passed=result.verdict == "ok",
        severity=_SEVERITY.get(result.verdict, dg.AssetCheckSeverity.WARN),
        metadata={
            "summary": dg.MetadataValue.md(summary),
            "features": table_metadata(rows, _FEATURE_COLUMNS),
            "verdict": dg.MetadataValue.text(result.verdict),
            "drifted": dg.MetadataValue.text(", ".join(result.drifted)),
            "drifted_features": dg.MetadataValue.float(float(len(result.drifted))),
            "feature_verdicts": dg.MetadataValue.json(dict(result.feature_verdicts())),
            "policy_sha256": dg.MetadataValue.text(result.policy_sha256),
            "baseline_sha256": dg.MetadataValue.text(baseline_sha256),
            **scores,
            **slice_metadata,
            **episode_metadata,
        },
    )


def _slice_metadata(slices: Mapping[str, DriftResult], column: str) -> dict[str, dg.MetadataValue]:
    """Per-slice verdicts and counts; ``slice_feature_verdicts`` feeds the next persistence."""
    drifted = sorted(
        (value for value, result in slices.items() if result.verdict != "ok"),
        key=lambda value: (-VERDICTS.index(slices[value].verdict), value),
    )
    return {
        "slice_verdicts": dg.MetadataValue.json(
            {value: result.verdict for value, result in slices.items()}
        ),
        "drifted_slices": dg.MetadataValue.text(", ".join(f"{column}={v}" for v in drifted)),
        "slices_drifted": dg.MetadataValue.float(float(len(drifted))),
        # Only the drifted features: persistence counts nothing else, and it keeps this small.
        "slice_feature_verdicts": dg.MetadataValue.json(
            {
                value: {name: result.feature(name).verdict for name in result.drifted}
                for value, result in slices.items()
                if result.drifted
            }
        ),
        **{
            f"slice_drifted_features/{column}={value}": dg.MetadataValue.float(
                float(len(result.drifted))
            )
            for value, result in slices.items()
        },
    }


def _previous_verdicts(
    context: dg.AssetCheckExecutionContext,
    check_key: dg.AssetCheckKey,
    partitions_def: dg.PartitionsDefinition | None,
    count: int,
) -> tuple[list[dict[str, str]], list[dict[str, dict[str, str]]], EpisodeState | None]:
    """Feature verdicts of the ``count`` partitions just before this one, oldest first, overall
    and per slice (``{slice value: {feature: verdict}}``), and the episode state the partition
    just before this one left.

    A partition never checked contributes an empty mapping (it did not drift, as far as we know)
    and no episode (one that was open ends there).
    """
    if count <= 0 or partitions_def is None or not context.has_partition_key:
        return [], [], None
    keys = list(partitions_def.get_partition_keys())
    position = keys.index(context.partition_key)
    wanted = keys[max(0, position - count) : position]
    if not wanted:
        return [], [], None
    latest: dict[str, dict[str, str]] = {}
    latest_slices: dict[str, dict[str, dict[str, str]]] = {}
    episode: EpisodeState | None = None
    records = check_execution_page(context.instance, check_key, limit=max(50, 4 * count))
    for record in records:  # newest first
        partition = getattr(record, "partition", None)
        if partition not in wanted or partition in latest or record.event is None:
            continue
        evaluation = evaluation_of(record)
        metadata = evaluation.metadata if evaluation is not None else {}
        verdicts = metadata.get("feature_verdicts")
        if verdicts is not None:
            latest[partition] = dict(verdicts.value)
            per_slice = metadata.get("slice_feature_verdicts")
            latest_slices[partition] = dict(per_slice.value) if per_slice is not None else {}
            if partition == wanted[-1]:
                plain = {name: getattr(value, "value", value) for name, value in metadata.items()}
                episode = EpisodeState.from_metadata(plain)
    return (
        [latest.get(key, {}) for key in wanted],
        [latest_slices.get(key, {}) for key in wanted],
        episode,
    )


def drifted_slices(
    instance: dg.DagsterInstance, check_keys: Sequence[dg.AssetCheckKey], partition: str | None
) -> list[str]:
    """The slices (``service=checkout``) the latest evaluation of ``partition`` found drifted, in
    any of ``check_keys``; empty when none did or the checks have no slices.
    """
    found: list[str] = []
    for check_key in check_keys:
        metadata = _latest_evaluation_metadata(instance, check_key, partition)
        text = str(getattr(metadata.get("drifted_slices"), "value", "") or "")
        found += [name.strip() for name in text.split(",") if name.strip()]
    return sorted(set(found))


def latest_evaluation_metadata(
    instance: dg.DagsterInstance, check_key: dg.AssetCheckKey, partition: str | None
) -> Mapping[str, Any]:
    """The metadata of the latest evaluation of one partition of a check (empty when none)."""
    return _latest_evaluation_metadata(instance, check_key, partition)


def _latest_evaluation_metadata(
    instance: dg.DagsterInstance,
    check_key: dg.AssetCheckKey,
    partition: str | None,
    page: int = 100,
) -> Mapping[str, Any]:
    """The metadata of the latest evaluation of one partition (newest first, paged; stops there)."""
    for records in check_execution_pages(instance, check_key, page_size=page):
        for record in records:
            if getattr(record, "partition", None) != partition:
                continue
            evaluation = evaluation_of(record)
            if evaluation is not None:  # planned or raised: no evaluation; an older one may count
                return dict(evaluation.metadata)
    return {}
