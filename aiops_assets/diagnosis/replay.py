"""Counterfactual replays: re-run one partition with one suspect reverted, and measure.

Correlation is not causation: a config change that lands with a data regression looks as guilty
as the regression until the failing day is re-run without it. A replay materializes the day's
features and scores again in an ephemeral Dagster instance over an *overlay* of the store (the
objects hard-linked, the refs copied), so nothing the pipeline serves is touched, and judges the
replayed scores with the performance check's own judge.

A deploy (code, a library) cannot be reverted: the old code is gone. It is replayed the other way:
the last good partition is re-run with today's code, and the share of the drop that reproduces is
its effect. Each replay is content-addressed by its inputs, so asking again costs nothing.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import shutil
import tempfile
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dagster as dg
import pandas as pd

from aiops_assets.checks.judge import PerformanceLimits, judge_scores
from aiops_assets.core import telemetry
from aiops_assets.core.incidents.evidence import DECOY_EFFECT, Replay, change_key, recovery
from aiops_assets.core.incidents.records import Change
from aiops_assets.core.ledger import Ledger
from aiops_assets.core.rollout import MODEL_VERSION_COLUMN
from aiops_assets.core.store import ArtifactRef, ArtifactStore, canonical_json_bytes, sha256_hex
from aiops_assets.io import ArtifactRefIOManager, asset_ref_name
from aiops_assets.keys import CHAMPION_KEY, FEATURES_KEY, SCORES_KEY, SNAPSHOT_KEY
from aiops_assets.metadata import package_versions
from aiops_assets.resources import ArtifactStoreResource, FeatureFlagsResource
from aiops_assets.runner import materialize_selection, quiet, run_failure_message

# Bumped whenever what a replay measures changes, so old cached results are not reused.
REPLAY_ENGINE_VERSION = "replay-6"
_CACHE_PREFIX = "replays"
# The share of the unrecovered rest a replay earns by flipping the check's verdict.
VERDICT_SHARE = 0.5
_LIBRARIES = ("pandas", "numpy", "scikit-learn", "scipy")


@dataclass(frozen=True)
class ReplaySpec:
    """One planned replay: which suspect, which way, on which partition, and what is swapped."""

    change: Change
    direction: str  # "revert" (the failing partition without it) or "apply" (the good one with it)
    partition: str
    action: str
    snapshot_config: Mapping[str, Any] | None = None  # re-run the snapshot with this op config
    rematerialize_snapshot: bool = False
    rematerialize_features: bool = True  # False: score the stored features (a scoring deploy)
    services: tuple[str, ...] = ()  # replace these services' rows ...
    good_partition: str | None = None  # ... with this partition's
    replaced_partitions: tuple[str, ...] = ()  # the snapshot partitions whose rows are replaced
    features_config: Mapping[str, Any] | None = None
    model_version: int | None = None  # serve this version instead of the champion
    flags_version: int | None = None  # compute features with this flag version (0: default)
    shared_with: tuple[Change, ...] = ()  # other suspects this same replay measures

    def identity(self) -> dict[str, Any]:
        return {
            "change": change_key(self.change),
            "direction": self.direction,
            "partition": self.partition,
            "snapshot_config": self.snapshot_config,
            "rematerialize_snapshot": self.rematerialize_snapshot,
            "rematerialize_features": self.rematerialize_features,
            "services": list(self.services),
            "good_partition": self.good_partition,
            "replaced_partitions": list(self.replaced_partitions),
            "features_config": self.features_config,
            "model_version": self.model_version,
            "flags_version": self.flags_version,
        }


@dataclass
class ReplayContext:
    """What every replay of one incident shares: the definitions, the real store and ledger,
    the metric and the check's limits, and the measured baseline values."""

    definitions: dg.Definitions
    store: ArtifactStore
    ledger: Ledger
    model_name: str
    metric: str
    limits: PerformanceLimits = field(default_factory=lambda: PerformanceLimits())
    use_cache: bool = True
    scores_key: dg.AssetKey = SCORES_KEY  # a host model's own scores asset
    _workdir: Path | None = None

    def close(self) -> None:
        if self._workdir is not None:
            shutil.rmtree(self._workdir, ignore_errors=True)
            self._workdir = None

    def measure(self, scores: pd.DataFrame) -> tuple[float | None, bool]:
        """The metric and the verdict of the performance check on one partition's scores."""
        served = scores.get(MODEL_VERSION_COLUMN)
        version_number = int(served.mode().iloc[0]) if served is not None and len(served) else 0
        passed, observed, _implicated = judge_scores(
            scores, self._holdout(version_number), self.limits
        )
        value = observed.get(self.metric)
        return (None if value is None else float(value)), passed

    def holdout_value(self, partition: str) -> float | None:
        """The metric on the holdout of the version that served ``partition``."""
        value = self._holdout(self.served_version(partition) or 0).get(self.metric)
        return None if value is None else float(value)

    def _holdout(self, version_number: int) -> dict[str, Any]:
        """The metrics a version was registered with (none for 0 or an unknown version)."""
        version = (
            self.ledger.get_version(self.model_name, version_number) if version_number else None
        )
        return dict(version.metrics) if version is not None else {}

    def served_version(self, partition: str) -> int | None:
        """The version that scored most of the partition's rows when it was served."""
        scores = self.stored_scores(partition)
        served = None if scores is None else scores.get(MODEL_VERSION_COLUMN)
        if served is None or not len(served):
            return None
        number = int(served.mode().iloc[0])
        return number or None

    def stored_scores(self, partition: str) -> pd.DataFrame | None:
        ref = self.store.get_ref(asset_ref_name(self.scores_key, partition))
        return None if ref is None else self.store.get_frame(ref)


def run_replay(context: ReplayContext, spec: ReplaySpec, *, target: float | None) -> Replay:
    """Run (or recall) one replay; a replay that cannot run says why instead of failing."""
    key = _cache_key(context, spec, target)
    if context.use_cache:
        cached = _cached(context.store, key)
        if cached is not None:
            return cached
    started = time.perf_counter()
    try:
        replay = _execute(context, spec, key=key, target=target)
    except Exception as error:  # a replay is evidence, never a reason for the report to fail
        replay = _failed(context, spec, key, f"{type(error).__name__}: {error}")
    replay = dataclasses.replace(replay, seconds=time.perf_counter() - started)
    if replay.error is None:
        context.store.set_ref(f"{_CACHE_PREFIX}/{key}", context.store.put_json(replay.to_dict()))
    return replay


def _outcome(context: ReplayContext, spec: ReplaySpec, key: str, **measured: Any) -> Replay:
    """A replay's record: what was replayed (from the spec) and what it measured; a replay
    that could not run measured nothing and says why (``error``)."""
    fields: dict[str, Any] = {
        "observed": None,
        "replayed": None,
        "target": None,
        "passed": None,
        "changed_output": False,
        "effect": 0.0,
        **measured,
    }
    return Replay(
        change=change_key(spec.change),
        action=spec.action,
        direction=spec.direction,
        partition=spec.partition,
        metric=context.metric,
        key=key,
        replaces_rows=bool(spec.services),
        **fields,
    )


def _failed(context: ReplayContext, spec: ReplaySpec, key: str, error: str) -> Replay:
    return _outcome(context, spec, key, error=error)


def _cached(store: ArtifactStore, key: str) -> Replay | None:
    ref = store.get_ref(f"{_CACHE_PREFIX}/{key}")
    if ref is None:
        return None
    try:
        data = store.get_json(ref)
    except (OSError, ValueError):
        return None
    return Replay.from_dict({**data, "cached": True})


def _cache_key(context: ReplayContext, spec: ReplaySpec, target: float | None) -> str:
    """Everything the outcome depends on: the spec, the input artifacts, code and libraries,
    and the value that would mean "fully explained"."""
    refs: dict[str, Any] = {}
    for asset_key in (SNAPSHOT_KEY, FEATURES_KEY, SCORES_KEY):
        for partition in {spec.partition, *spec.replaced_partitions, spec.good_partition or ""}:
            if partition:
                ref = context.store.get_ref(asset_ref_name(asset_key, partition))
                refs[f"{asset_key.to_user_string()}[{partition}]"] = ref.sha256 if ref else None
    refs["served_version"] = spec.model_version or context.served_version(spec.partition)
    code = {
        key.to_user_string(): version
        for definition in context.definitions.assets or []
        if isinstance(definition, dg.AssetsDefinition)
        for key, version in definition.code_versions_by_key.items()
    }
    identity = {
        "engine": REPLAY_ENGINE_VERSION,
        "spec": spec.identity(),
        "metric": context.metric,
        "target": target,
        "limits": json.loads(json.dumps(context.limits.__dict__, default=str)),
        "refs": refs,
        "code": code,
        "libraries": package_versions(_LIBRARIES),
    }
    return sha256_hex(canonical_json_bytes(identity))


def _execute(context: ReplayContext, spec: ReplaySpec, *, key: str, target: float | None) -> Replay:
    actual = context.stored_scores(spec.partition)
    if actual is None:
        return _failed(context, spec, key, f"anomaly_scores[{spec.partition}] is not in the store")
    observed, _ = context.measure(actual)
    with _overlay(context) as overlay:
        _prepare(overlay, context, spec)
        result = materialize_selection(
            _overlay_definitions(context.definitions, Path(str(overlay.root)), spec.flags_version),
            dg.DagsterInstance.ephemeral(),
            _selection(spec),
            partition_key=spec.partition,
            run_config=quiet(_run_config(spec)),
            raise_on_error=False,
        )
        if not result.success:
            return _failed(context, spec, key, run_failure_message(result))
        replayed_ref = overlay.require_ref(asset_ref_name(SCORES_KEY, spec.partition))
        replayed_scores = overlay.get_frame(replayed_ref)
        changed = _input_changed(context.store, overlay, spec)
    replayed, passed = context.measure(replayed_scores)
    if changed and (observed is None or replayed is None):
        return _failed(
            context, spec, key, f"{context.metric} is not computable on the replayed partition"
        )
    return _outcome(
        context,
        spec,
        key,
        observed=observed,
        replayed=replayed,
        target=target,
        passed=passed,
        changed_output=changed,
        effect=_effect(spec, recovery(observed, replayed, target), passed) if changed else 0.0,
    )


def _effect(spec: ReplaySpec, recovered: float, passed: bool | None) -> float:
    """The share of the drop recovered, and half the rest when the replay also flips the check's
    verdict (a revert that passes, an apply that fails): the last good day's value is one
    noisy reading, the check's verdict is what paged. A move too small to count is not lifted,
    so a borderline day nudged across the line stays a decoy."""
    flipped = passed is (spec.direction == "revert")
    if recovered < DECOY_EFFECT or not flipped:
        return recovered
    return recovered + (1.0 - recovered) * VERDICT_SHARE


def _input_changed(real: ArtifactStore, overlay: ArtifactStore, spec: ReplaySpec) -> bool:
    """Whether the replay fed the model anything different (other features, another model), or
    for a deploy of the scoring code, whether today's code scores the same inputs differently."""
    if spec.model_version is not None:
        return True
    if spec.change.subject == SCORES_KEY.to_user_string():
        return _scores_differ(real, overlay, spec.partition)
    name = asset_ref_name(FEATURES_KEY, spec.partition)
    before, after = real.get_ref(name), overlay.get_ref(name)
    return before is None or after is None or before.sha256 != after.sha256


def _scores_differ(real: ArtifactStore, overlay: ArtifactStore, partition: str) -> bool:
    name = asset_ref_name(SCORES_KEY, partition)
    before, after = real.get_ref(name), overlay.get_ref(name)
    if before is None or after is None:
        return True
    if before.sha256 == after.sha256:
        return False
    old, new = real.get_frame(before), overlay.get_frame(after)
    columns = [c for c in old.columns if c in new.columns]
    return len(columns) < len(old.columns) or not old[columns].equals(new[columns])


@contextlib.contextmanager
def _overlay(context: ReplayContext) -> Iterator[ArtifactStore]:
    """A store whose objects are the real ones (hard links, made once per incident) and whose
    refs are a copy: the replay can move refs freely and the pipeline never sees it."""
    root = _local_root(context.store)
    if context._workdir is None:
        context._workdir = Path(tempfile.mkdtemp(prefix="aiops-replay-"))
        _link_tree(root / "objects", context._workdir / "objects")
    objects = context._workdir / "objects"
    replay_root = Path(tempfile.mkdtemp(prefix="run-", dir=context._workdir))
    try:
        (replay_root / "objects").symlink_to(objects, target_is_directory=True)
        if (root / "refs").exists():
            shutil.copytree(root / "refs" / "assets", replay_root / "refs" / "assets")
        yield ArtifactStore(replay_root)
    finally:
        shutil.rmtree(replay_root, ignore_errors=True)


def _local_root(store: ArtifactStore) -> Path:
    root = Path(str(store.root))
    if not root.is_dir():
        raise RuntimeError(
            f"replays need a local artifact store; {store.root} is not a local directory"
        )
    return root


def _link_tree(source: Path, target: Path) -> None:
    def link(src: str, dst: str) -> None:
        try:
            os.link(src, dst)
        except OSError:  # another file system: copy instead
            shutil.copy2(src, dst)

    if source.exists():
        shutil.copytree(source, target, copy_function=link)
    else:
        target.mkdir(parents=True)


def _overlay_definitions(
    definitions: dg.Definitions, root: Path, flags_version: int | None = None
) -> dg.Definitions:
    resources = dict(definitions.resources or {})
    resources["artifact_store"] = ArtifactStoreResource(root=str(root))
    resources["artifact_io_manager"] = ArtifactRefIOManager(root=str(root))
    flags = resources.get("feature_flags")
    if flags_version is not None and isinstance(flags, FeatureFlagsResource):
        resources["feature_flags"] = FeatureFlagsResource(
            ledger_url=flags.ledger_url,
            key_file=flags.key_file,
            default_path=flags.default_path,
            environment=flags.environment,
            as_of_version=flags_version,
        )
    return dg.Definitions(
        assets=definitions.assets, asset_checks=definitions.asset_checks, resources=resources
    )


def _prepare(overlay: ArtifactStore, context: ReplayContext, spec: ReplaySpec) -> None:
    real = context.store
    if spec.services and spec.good_partition is not None:
        for partition in spec.replaced_partitions:
            _replace_service_rows(overlay, real, partition, spec.services, spec.good_partition)
    # The model that served the partition, not today's champion: a rollback since must not
    # make every replay look like a recovery.
    served = spec.model_version or context.served_version(spec.partition)
    if served is None:
        return
    version = context.ledger.get_version(context.model_name, served)
    if version is None:
        raise RuntimeError(f"{context.model_name} v{served} is not in the ledger")
    champion = real.require_ref(asset_ref_name(CHAMPION_KEY, None))
    size = len(real.get_bytes(version.sha256))
    overlay.set_ref(
        asset_ref_name(CHAMPION_KEY, None),
        ArtifactRef(sha256=version.sha256, size=size, media_type=champion.media_type),
    )


def _replace_service_rows(
    overlay: ArtifactStore,
    real: ArtifactStore,
    partition: str,
    services: tuple[str, ...],
    good: str,
) -> None:
    name = asset_ref_name(SNAPSHOT_KEY, partition)
    current_ref = real.get_ref(name)
    good_ref = real.require_ref(asset_ref_name(SNAPSHOT_KEY, good))
    current = real.get_frame(current_ref) if current_ref is not None else None
    donor = real.get_frame(good_ref)
    rows = donor[donor[telemetry.SERVICE].isin(services)].copy()
    rows[telemetry.TIMESTAMP] = rows[telemetry.TIMESTAMP] + (
        pd.Timestamp(partition) - pd.Timestamp(good)
    )
    kept: list[pd.DataFrame] = []
    if current is not None:
        kept = [current[~current[telemetry.SERVICE].isin(services)]]
        incidents = _labelled_incident_rows(current, services)
        kept.append(incidents)
        rows = rows[~_same_rows(rows, incidents)]
    frame = telemetry.canonical_telemetry(pd.concat([*kept, rows], ignore_index=True))
    overlay.set_ref(name, overlay.put_frame(frame))


def _labelled_incident_rows(current: pd.DataFrame, services: tuple[str, ...]) -> pd.DataFrame:
    """The failing day's labelled incidents on the replaced services, kept as they were: they are
    what the model is judged on finding, and replacing them with a quiet day's rows would make
    the drop vanish (or grow) whatever the change did."""
    if telemetry.LABEL not in current:
        return current.iloc[0:0]
    labelled = current[telemetry.LABEL].fillna(0).to_numpy(dtype=float) > 0
    return current[current[telemetry.SERVICE].isin(services).to_numpy() & labelled]


def _same_rows(rows: pd.DataFrame, others: pd.DataFrame) -> pd.Series:
    keys = pd.MultiIndex.from_frame(others[[telemetry.SERVICE, telemetry.TIMESTAMP]])
    return pd.Series(
        pd.MultiIndex.from_frame(rows[[telemetry.SERVICE, telemetry.TIMESTAMP]]).isin(keys),
        index=rows.index,
    )


def _selection(spec: ReplaySpec) -> dg.AssetSelection:
    keys = [FEATURES_KEY, SCORES_KEY] if spec.rematerialize_features else [SCORES_KEY]
    selection = dg.AssetSelection.assets(*keys).without_checks()
    if spec.rematerialize_snapshot:
        # The snapshot's quality gate is part of the asset; it runs with it.
        selection = selection | dg.AssetSelection.assets(SNAPSHOT_KEY)
    return selection


def _run_config(spec: ReplaySpec) -> dict[str, Any]:
    ops: dict[str, Any] = {}
    if spec.rematerialize_snapshot:
        ops[SNAPSHOT_KEY.to_python_identifier()] = {"config": dict(spec.snapshot_config or {})}
    if spec.features_config is not None:
        ops[FEATURES_KEY.to_python_identifier()] = {"config": dict(spec.features_config)}
    return {"ops": ops} if ops else {}
