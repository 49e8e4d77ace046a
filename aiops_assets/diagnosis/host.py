"""The diagnosis of a host's own model: its served rows as the data evidence, its own scoring in
the replays.

A model built with ``build_model_lifecycle`` scores a host asset the plugin did not write (any IO
manager): its partitions are read back through the location's own IO manager
(``Definitions.load_asset_value``), in the plugin's column names, and characterized as the
reference's snapshot is. A replay re-scores the failing partition in memory with the model the
lifecycle was given (``score``, ``threshold_of``) and the version that served it, and judges the
result with the performance check's own judge and limits. What cannot be replayed on a host model
(its code and config are the host's, and the old code is gone) is ranked without a replay, and
the report says so in the replay table.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import dagster as dg
import pandas as pd

from aiops_assets.core.data_changes import characterize
from aiops_assets.core.incidents import Change, IncidentWindow, Suspect
from aiops_assets.core.incidents.evidence import Replay, findings_of, recovery
from aiops_assets.core.rollout import MODEL_VERSION_COLUMN
from aiops_assets.core.store import canonical_json_bytes, sha256_hex
from aiops_assets.core.telemetry import LABEL, SERVICE, TIMESTAMP
from aiops_assets.diagnosis.evidence import REFERENCE_PARTITIONS, DataEvidence, _label_health
from aiops_assets.diagnosis.plan import _replay_order, is_model_move, model_revert
from aiops_assets.diagnosis.replay import ReplayContext, ReplaySpec, _effect, _outcome
from aiops_assets.diagnosis.target import DiagnosisTarget

# What a host model's replay cannot do, by kind of suspect: said in the report's replay table.
_NOT_REPLAYABLE = {
    "code": "the host's previous code is not recorded; a deploy is ranked on timing and lineage",
    "environment": "the host's previous environment cannot be re-created here",
    "config": "the host's assets run with the host's config; its revert is not replayed",
    "feature_set": "a host model has no plugin feature set to revert",
    "threshold": "a host model's threshold is its own; it is not replayed",
    "policy": "a check policy does not change the scores",
}
HOST_REPLAY_ENGINE = "host-replay-1"


@dataclass(frozen=True)
class HostRows:
    """Reads one partition of the host's served asset, once, in the plugin's column names."""

    definitions: dg.Definitions
    instance: dg.DagsterInstance
    target: DiagnosisTarget

    def load(self, partition: str) -> pd.DataFrame | None:
        """The partition's rows as the host's IO manager stored them; None when there are none."""
        assert self.target.data is not None
        try:
            value = self.definitions.load_asset_value(
                self.target.data, partition_key=partition, instance=self.instance
            )
        except Exception:  # a partition never stored, or an IO manager that cannot read here
            return None
        if isinstance(value, Mapping):
            value = pd.concat(list(value.values()), ignore_index=True)
        return value if isinstance(value, pd.DataFrame) else None

    def renamed(self, frame: pd.DataFrame) -> pd.DataFrame:
        """The host's rows with its service, time and label columns named as the plugin's."""
        served = self.target.served
        assert served is not None
        names = {
            served.model.service_column: SERVICE,
            served.model.time_column: TIMESTAMP,
            served.model.label: LABEL,
        }
        return frame.rename(columns={k: v for k, v in names.items() if k and k in frame})


def measure_host_data(
    rows: HostRows, store: Any, window: IncidentWindow, known: Sequence[str]
) -> DataEvidence:
    """The failing partitions of the host's served asset characterized against the last good
    ones (up to a week), and the labels' health from the host model's stored scores."""
    first_bad = window.first_bad.partition
    last_good = window.last_good.partition if window.last_good else None
    ordered = sorted(set(known) | {first_bad})
    failing = [p for p in ordered if (last_good is None or p > last_good) and p <= first_bad][-2:]
    evidence = DataEvidence(failing=failing, references=[])
    if rows.target.served is None or rows.target.data is None:
        return evidence
    references: dict[str, pd.DataFrame] = {}
    for partition in reversed([p for p in ordered if p <= (last_good or "") and p < failing[0]]):
        frame = rows.load(partition)
        if frame is not None and rows.target.served.model.service_column:
            references[partition] = rows.renamed(frame)
        if len(references) == REFERENCE_PARTITIONS:
            break
    evidence.references = sorted(references, reverse=True)
    if not references:
        return evidence
    for partition in failing:
        current = rows.load(partition)
        if current is not None:
            evidence.characterizations.append(
                characterize(
                    rows.renamed(current), references, layer="snapshot", partition=partition
                )
            )
    if store is not None:
        evidence.label_health = _label_health(
            store, first_bad, evidence.references, rows.target.scores
        )
    return evidence


def host_replays(
    context: ReplayContext,
    rows: HostRows,
    suspects: Sequence[Suspect],
    window: IncidentWindow,
    *,
    limit: int,
    good_value: float | None,
    bad_value: float | None,
) -> list[Replay]:
    """Up to ``limit`` replays of the strongest suspects, re-scored with the host's own model;
    a suspect whose kind cannot be replayed on a host model gets a record saying why."""
    bad = window.first_bad.partition
    replays: list[Replay] = []
    for suspect in _replay_order(suspects):
        if len(replays) >= limit:
            break
        change = suspect.change
        spec = _spec(change, window, rows.target)
        if spec is not None:
            target = good_value if spec.direction == "revert" else bad_value
            replays.append(_run(context, rows, spec, target))
        elif change.kind in _NOT_REPLAYABLE:
            action = f"{change.kind} of {change.subject}"
            spec = ReplaySpec(change=change, direction="revert", partition=bad, action=action)
            replays.append(
                _outcome(
                    context,
                    spec,
                    _key(spec, {}),
                    error=f"not replayed on a host model: {_NOT_REPLAYABLE[change.kind]}",
                )
            )
    return replays


def _spec(change: Change, window: IncidentWindow, target: DiagnosisTarget) -> ReplaySpec | None:
    """The revert that tests a suspect on a host model: one service's rows from a good day, or
    the version that served before an alias move."""
    bad = window.first_bad.partition
    details = change.details if isinstance(change.details, Mapping) else {}
    subject = target.data.to_user_string() if target.data is not None else None
    if change.kind == "data" and change.subject == subject and details.get("service"):
        if not findings_of(change) and not details.get("implicated"):
            return None
        services = tuple(str(s) for s in details.get("services") or [details["service"]])
        donor = str(
            details.get("donor") or (window.last_good.partition if window.last_good else "")
        )
        if not donor:
            return None
        return ReplaySpec(
            change=change,
            direction="revert",
            partition=bad,
            action=f"{', '.join(services)}: rows of {bad} replaced by {donor}'s, re-scored",
            services=services,
            good_partition=donor,
            replaced_partitions=(bad,),
        )
    if is_model_move(change):
        return model_revert(
            change, window, f"{bad} re-scored by v{change.before} instead of v{change.after}"
        )
    return None


def _run(context: ReplayContext, rows: HostRows, spec: ReplaySpec, target: float | None) -> Replay:
    """Re-score the partition with the revert applied; a replay that cannot run says why."""
    actual = context.stored_scores(spec.partition)
    current = rows.load(spec.partition)
    key = _key(spec, {"target": target, "rows": _digest(current), "scores": _digest(actual)})
    if actual is None or current is None:
        return _outcome(context, spec, key, error=f"{spec.partition} has no stored rows or scores")
    try:
        replayed_rows = current
        if spec.services and spec.good_partition is not None:
            donor = rows.load(spec.good_partition)
            if donor is None:
                return _outcome(context, spec, key, error=f"{spec.good_partition} has no rows")
            replayed_rows = _with_rows_of(rows, current, donor, spec)
        version = spec.model_version or context.served_version(spec.partition)
        scores = _score(context, rows, replayed_rows, version)
    except Exception as error:  # a replay is evidence, never a reason for the report to fail
        return _outcome(context, spec, key, error=f"{type(error).__name__}: {error}")
    observed, _ = context.measure(actual)
    replayed, passed = context.measure(scores)
    changed = spec.model_version is not None or not replayed_rows.equals(current)
    if changed and (observed is None or replayed is None):
        return _outcome(
            context, spec, key, error=f"{context.metric} is not computable on the replayed rows"
        )
    effect = _effect(spec, recovery(observed, replayed, target), passed) if changed else 0.0
    return _outcome(
        context,
        spec,
        key,
        observed=observed,
        replayed=replayed,
        target=target,
        passed=passed,
        changed_output=changed,
        effect=effect,
    )


def _score(
    context: ReplayContext, rows: HostRows, frame: pd.DataFrame, version: int | None
) -> pd.DataFrame:
    """The rows scored by one registered version, as the lifecycle's scores asset scores them."""
    from aiops_assets.lifecycle.serving import scores_frame, vouched_model

    served = rows.target.served
    assert served is not None
    if not version:
        raise RuntimeError(f"no registered {context.model_name} version served the partition")
    fitted = vouched_model(
        context.store, context.ledger, served.model, context.model_name, version=version
    )
    scores = scores_frame(served.model, fitted, frame)
    scores[MODEL_VERSION_COLUMN] = version
    return scores


def _with_rows_of(
    rows: HostRows, current: pd.DataFrame, donor: pd.DataFrame, spec: ReplaySpec
) -> pd.DataFrame:
    """The partition with the services' rows taken from the donor day (moved to this day), its
    labelled incidents kept: they are what the model is judged on finding."""
    served = rows.target.served
    assert served is not None and spec.good_partition is not None
    service, time, label = (
        served.model.service_column,
        served.model.time_column,
        served.model.label,
    )
    assert service is not None
    mine = current[service].astype(str).isin(spec.services)
    taken = donor[donor[service].astype(str).isin(spec.services)].copy()
    if time:
        shift = pd.Timestamp(spec.partition) - pd.Timestamp(spec.good_partition)
        taken[time] = pd.to_datetime(taken[time]) + shift
    kept = [current[~mine]]
    if label in current:
        incidents = current[mine & (current[label].fillna(0).to_numpy(dtype=float) > 0)]
        kept.append(incidents)
        if time:
            known = pd.MultiIndex.from_frame(incidents[[service, time]].astype({service: str}))
            ours = pd.MultiIndex.from_frame(taken[[service, time]].astype({service: str}))
            taken = taken[~ours.isin(known)]
    frame = pd.concat([*kept, taken], ignore_index=True)
    return frame.sort_values([c for c in (time, service) if c], kind="mergesort", ignore_index=True)


def _digest(frame: pd.DataFrame | None) -> str | None:
    if frame is None:
        return None
    return str(pd.util.hash_pandas_object(frame, index=False).sum())


def _key(spec: ReplaySpec, inputs: Mapping[str, Any]) -> str:
    identity = {"engine": HOST_REPLAY_ENGINE, "spec": spec.identity(), "inputs": dict(inputs)}
    return sha256_hex(canonical_json_bytes(identity))
