"""Incident diagnosis on a live instance: the change log, what changed in the data, the label
health and counterfactual replays, ranked by evidence (``core/incidents``).

``diagnose`` is what ``aiops incident``, the performance check's failure metadata and the alert
share, so the three say the same thing.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import dagster as dg

from aiops_assets.changelog import collect_changes, drift_history, performance_history
from aiops_assets.checks.judge import PerformanceLimits, f1_failed
from aiops_assets.core.incidents import (
    IncidentReport,
    PerformancePoint,
    build_incident_report,
    find_incident_window,
    score_suspects,
)
from aiops_assets.core.incidents.evidence import EvidenceInputs, Replay, change_key
from aiops_assets.core.ledger import Ledger
from aiops_assets.core.progress import NoProgress, Progress
from aiops_assets.core.store import ArtifactStore
from aiops_assets.diagnosis.evidence import (
    DataEvidence,
    characterized_changes,
    measure_data,
    partitions_known,
)
from aiops_assets.diagnosis.host import HostRows, host_replays, measure_host_data
from aiops_assets.diagnosis.plan import plan_replays
from aiops_assets.diagnosis.replay import ReplayContext, run_replay
from aiops_assets.diagnosis.target import DiagnosisTarget, reference_target
from aiops_assets.keys import FEATURES_KEY, SNAPSHOT_KEY

# Labels come only on days with enough anomalies to judge F1; the false-alarm rate always exists.
FALLBACK_METRIC = "false_alarm_rate"
LOWER_IS_BETTER = frozenset({FALLBACK_METRIC})
DEFAULT_MAX_REPLAYS = 5


@dataclass(frozen=True)
class DiagnosisOptions:
    """How much work one diagnosis may do."""

    max_replays: int = DEFAULT_MAX_REPLAYS
    use_cache: bool = True
    metric: str = "f1"
    lookback: timedelta = timedelta(days=3)
    limits: PerformanceLimits = field(default_factory=lambda: PerformanceLimits())

    def __post_init__(self) -> None:
        if self.max_replays < 0:
            raise ValueError(f"max_replays must be >= 0, got {self.max_replays}")


def diagnose(
    instance: dg.DagsterInstance,
    ledger: Ledger,
    definitions: dg.Definitions,
    store: ArtifactStore | None,
    *,
    model_name: str,
    drift_checks: Sequence[dg.AssetCheckKey] = (),
    since: datetime | None = None,
    at: datetime | None = None,
    options: DiagnosisOptions = DiagnosisOptions(),
    progress: Progress | None = None,
    pending: PerformancePoint | None = None,
    target: DiagnosisTarget | None = None,
) -> IncidentReport | None:
    """The incident report for the latest failure (at or before ``at``), with its evidence.

    ``pending`` is an evaluation not yet recorded (the performance check diagnosing its own
    failure); it replaces any recorded one of its partition. ``target`` is the scored model to
    explain (``diagnosis.target``: a host's model follows its own assets, checks and scoring);
    None is the reference's ``anomaly_scores``.
    """
    target = target or reference_target(model_name)
    if target.served is not None:  # the host's check judged with the limits it was given
        options = dataclasses.replace(options, limits=target.served.limits)
    progress = progress or NoProgress()
    progress.begin(4, "diagnosis")
    progress.step("changes upstream of the model")
    changes = collect_changes(
        instance,
        ledger,
        definitions,
        model_asset=target.scores,
        model_name=target.model_name,
        since=since,
    )
    performance = performance_history(instance, check_key=target.performance_check, since=since)
    if pending is not None:
        performance = [p for p in performance if p.partition != pending.partition] + [pending]
    drift = drift_history(instance, list(drift_checks), since=since)
    window = find_incident_window(performance, at=at)
    if window is None:
        progress.end()
        return None
    model_name = target.model_name
    metric = _failing_metric(ledger, model_name, window.first_bad, options)
    progress.step("what changed in the data")
    rows = HostRows(definitions, instance, target) if target.is_host else None
    if rows is not None:
        data = measure_host_data(rows, store, window, partitions_known(changes))
    elif store is not None:
        data = measure_data(store, window, partitions_known(changes))
    else:
        data = DataEvidence(failing=[window.first_bad.partition], references=[])
    subject = (target.data or SNAPSHOT_KEY).to_user_string()
    changes = characterized_changes(changes, data, window.first_bad.implicated, subject)
    prior = score_suspects(
        changes, performance, drift, window, metric=metric, lookback=options.lookback
    )
    progress.step("counterfactual replays")
    measurable = sorted(p.partition for p in performance if p.passed and metric in p.metrics)
    replays = _replays(
        instance,
        ledger,
        definitions,
        store,
        model_name,
        window,
        prior,
        data.failing,
        metric,
        options,
        measurable,
        rows,
    )
    progress.step("ranking by evidence")
    report = build_incident_report(
        model_name,
        changes,
        performance,
        drift,
        at=at,
        metric=metric,
        lookback=options.lookback,
        inputs=EvidenceInputs(
            replays=dict(pair for replay in replays for pair in replay.for_each_change()),
            implicated_services=window.first_bad.implicated,
        ),
        data_changes=[item.to_dict() for item in data.characterizations if item.findings],
    )
    progress.end()
    return report


def _replays(
    instance: dg.DagsterInstance,
    ledger: Ledger,
    definitions: dg.Definitions,
    store: ArtifactStore | None,
    model_name: str,
    window: Any,
    prior: Sequence[Any],
    failing: Sequence[str],
    metric: str,
    options: DiagnosisOptions,
    measurable: Sequence[str] = (),
    rows: HostRows | None = None,
) -> list[Replay]:
    if options.max_replays == 0 or window.last_good is None or store is None:
        return []
    if rows is not None:
        return _host_replays(ledger, store, model_name, window, prior, metric, options, rows)

    def flags_version_at(partition: str) -> int | None:
        """The flag version in force when the partition's features were computed (0: none yet)."""
        records = instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=FEATURES_KEY, asset_partitions=[partition]), limit=1
        ).records
        if not records:
            return None
        computed = records[0].timestamp
        versions = [v.version for v in ledger.flag_versions() if v.at.timestamp() <= computed]
        return max(versions, default=0)

    def snapshot_config_at(partition: str) -> Any:
        return _op_config(instance, SNAPSHOT_KEY, partition)

    specs = plan_replays(
        prior,
        window,
        failing,
        limit=options.max_replays,
        flags_version_at=flags_version_at,
        snapshot_config_at=snapshot_config_at,
        measurable=measurable,
    )
    context = ReplayContext(
        definitions, store, ledger, model_name, metric, options.limits, options.use_cache
    )
    try:
        good = context.stored_scores(window.last_good.partition)
        bad = context.stored_scores(window.first_bad.partition)
        good_value = context.measure(good)[0] if good is not None else None
        bad_value = context.measure(bad)[0] if bad is not None else None
        if not _better(metric, good_value, bad_value):
            # The last good day had too few labels for the metric, or passed with a worse value
            # (the check failed on something else, one service's false alarms): recovering
            # means reaching what the check compares with, the serving version's holdout.
            good_value = context.holdout_value(window.first_bad.partition)
        measured: list[Replay] = []
        for spec in specs:
            replay = run_replay(
                context, spec, target=good_value if spec.direction == "revert" else bad_value
            )
            also = tuple(change_key(change) for change in spec.shared_with)
            measured.append(dataclasses.replace(replay, also=also))
        return measured
    finally:
        context.close()


def _host_replays(
    ledger: Ledger,
    store: ArtifactStore,
    model_name: str,
    window: Any,
    prior: Sequence[Any],
    metric: str,
    options: DiagnosisOptions,
    rows: HostRows,
) -> list[Replay]:
    """A host model's replays, re-scored with its own model (none when the model was not built
    in this process: the ranking stands on the data and the timeline then)."""
    if rows.target.served is None:
        return []
    context = ReplayContext(
        definitions=rows.definitions,
        store=store,
        ledger=ledger,
        model_name=model_name,
        metric=metric,
        limits=options.limits,
        use_cache=options.use_cache,
        scores_key=rows.target.scores,
    )
    good_value, bad_value = _baseline_values(context, window)
    return host_replays(
        context,
        rows,
        prior,
        window,
        limit=options.max_replays,
        good_value=good_value,
        bad_value=bad_value,
    )


def _baseline_values(context: ReplayContext, window: Any) -> tuple[float | None, float | None]:
    """The metric on the last good and the first bad partition; recovering means reaching the
    serving version's holdout when the last good day is not better (too few labels)."""
    good = context.stored_scores(window.last_good.partition)
    bad = context.stored_scores(window.first_bad.partition)
    good_value = context.measure(good)[0] if good is not None else None
    bad_value = context.measure(bad)[0] if bad is not None else None
    if not _better(context.metric, good_value, bad_value):
        good_value = context.holdout_value(window.first_bad.partition)
    return good_value, bad_value


def _failing_metric(
    ledger: Ledger, model_name: str, first_bad: PerformancePoint, options: DiagnosisOptions
) -> str:
    """The metric to explain: the asked one when it is what failed the check; else the
    false-alarm rate. A day can fail on one service's false alarms with its F1 within
    tolerance (or uncomputable: too few labeled positives), and a replay measured by a metric
    that did not fail cannot show the failure going away."""
    metric = options.metric
    value = first_bad.metrics.get(metric)
    if metric == FALLBACK_METRIC:
        return metric
    if value is None:
        return FALLBACK_METRIC
    if metric != "f1" or first_bad.model_version is None:
        return metric
    version = ledger.get_version(model_name, first_bad.model_version)
    if version is None or "f1" not in version.metrics:
        return metric
    return metric if f1_failed(value, version.metrics, options.limits) else FALLBACK_METRIC


def _better(metric: str, value: float | None, than: float | None) -> bool:
    """Whether ``value`` is a better reading of ``metric`` than ``than`` (None is never)."""
    if value is None or than is None:
        return value is not None
    return value < than if metric in LOWER_IS_BETTER else value > than


def _op_config(instance: dg.DagsterInstance, asset_key: dg.AssetKey, partition: str) -> Any:
    """The op config of the run that materialized a partition (None for defaults)."""
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=asset_key, asset_partitions=[partition]), limit=1
    ).records
    if not records:
        return None
    run = instance.get_run_by_id(records[0].run_id)
    run_config: dict[str, Any] = dict(run.run_config or {}) if run is not None else {}
    ops: dict[str, Any] = dict(run_config.get("ops") or {})
    entry = ops.get(asset_key.to_python_identifier()) or {}
    return entry.get("config") if isinstance(entry, dict) else None


__all__ = [
    "DEFAULT_MAX_REPLAYS",
    "DiagnosisOptions",
    "DiagnosisTarget",
    "change_key",
    "diagnose",
]
