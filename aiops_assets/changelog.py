"""The change log, captured from what Dagster and the ledger already record.

An incident report lines a model's performance drop up with every change upstream of it. Nobody
keeps a change log by hand reliably, and nobody has to: each materialization already carries its
data version, code version and config hash, each capsule its environment, each drift check its
policy hash, and the ledger every alias move. This module reads those records back (through
indexed queries: per asset key, per check key, per run id) and turns each difference between
consecutive records into a ``Change``; the correlation engine in ``core/incidents.py`` does the
rest without touching Dagster.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import dagster as dg

from aiops_assets.core.capsule import Capsule, diff_environments
from aiops_assets.core.flags import FlagError, diff_flags, flag_history
from aiops_assets.core.incidents import CHANGE_KINDS, Change, DriftPoint, PerformancePoint
from aiops_assets.core.ledger import Ledger
from aiops_assets.metadata import NULL_FRACTION_PREFIX, PACKAGES_KEY

DATA_VERSION_TAG = "dagster/data_version"
CODE_VERSION_TAG = "dagster/code_version"
ROW_COUNT = "dagster/row_count"
COLUMN_SCHEMA = "dagster/column_schema"
POLICY_SHA256 = "policy_sha256"
# Assets whose capsules are found by run when a materialization does not name its capsule (runs
# recorded before the capsule id went into the metadata).
CAPSULE_ASSETS = ("training_set", "candidate_model")
# Numeric metadata that identifies rather than describes the data: not part of a distribution.
_NOT_DISTRIBUTION = frozenset({"seed", "size_bytes"})
_PAGE = 500
MODEL_ASSET = dg.AssetKey("anomaly_scores")
PERFORMANCE_CHECK = dg.AssetCheckKey(MODEL_ASSET, "performance")


def upstream_distances(
    asset_graph_or_defs: dg.Definitions | Any, model_asset: dg.AssetKey
) -> dict[dg.AssetKey, int]:
    """Hops from each ancestor to ``model_asset`` (0 for the model itself), shortest path.

    The incident report ranks suspects by distance: a change one hop away explains a drop more
    directly than one five hops away. The full graph is used because a run only sees what it
    selected, and a change made in a run that never touched the model still reaches it.
    """
    graph: Any = (
        asset_graph_or_defs.resolve_asset_graph()
        if hasattr(asset_graph_or_defs, "resolve_asset_graph")
        else asset_graph_or_defs
    )
    if not graph.has(model_asset):
        raise KeyError(f"{model_asset.to_user_string()} is not an asset of these definitions")
    distances = {model_asset: 0}
    pending = deque([model_asset])
    while pending:
        key = pending.popleft()
        for parent in sorted(graph.get(key).parent_keys, key=lambda item: item.to_user_string()):
            if parent not in distances and graph.has(parent):
                distances[parent] = distances[key] + 1
                pending.append(parent)
    return distances


@dataclass(frozen=True)
class _Materialization:
    """One materialization reduced to what a comparison needs, metadata as plain values."""

    storage_id: int
    at: datetime
    run_id: str
    partition: str | None
    tags: Mapping[str, str]
    metadata: Mapping[str, Any]

    def tag(self, name: str) -> str | None:
        return self.tags.get(name)

    def text(self, name: str) -> str | None:
        value = self.metadata.get(name)
        return None if value is None else str(value)


def collect_changes(
    instance: dg.DagsterInstance,
    ledger: Ledger,
    definitions: dg.Definitions,
    *,
    model_asset: dg.AssetKey = MODEL_ASSET,
    model_name: str = "anomaly_detector",
    since: datetime | None = None,
    until: datetime | None = None,
) -> list[Change]:
    """Every change upstream of (and at) ``model_asset`` in ``[since, until)``, oldest first.

    A change is a difference from the previous record of the same thing, so the record just
    before ``since`` is read too (one indexed query per partition): a window that starts right
    after a deploy must still show the deploy's first materialization as a code change. Data
    changes are reported for ancestors only, not for the model's own output, which is the effect
    under investigation rather than a cause.
    """
    since, until = _utc(since), _utc(until)
    distances = upstream_distances(definitions, model_asset)
    graph = definitions.resolve_asset_graph()
    reader = _ChangeReader(instance, ledger, graph, distances, since, until)
    changes: list[Change] = []
    for asset_key in sorted(distances, key=lambda key: (-distances[key], key.to_user_string())):
        changes += reader.asset_changes(asset_key)
    for check_key in sorted(graph.asset_check_keys, key=lambda key: key.to_user_string()):
        if check_key.asset_key in distances:
            changes += reader.policy_changes(check_key)
    changes += _alias_changes(ledger, model_name, since, until)
    changes += _flag_changes(ledger, since, until)
    changes += _feature_set_status_changes(
        ledger, since, until, distances.get(dg.AssetKey("features"))
    )
    order = {kind: position for position, kind in enumerate(CHANGE_KINDS)}
    return sorted(
        changes,
        key=lambda change: (
            change.at,
            order.get(change.kind, len(order)),
            -(change.lineage_distance or 0),
            change.subject,
            change.partition or "",
        ),
    )


class _ChangeReader:
    """Reads one asset's (or check's) records and compares consecutive ones."""

    def __init__(
        self,
        instance: dg.DagsterInstance,
        ledger: Ledger,
        graph: Any,
        distances: Mapping[dg.AssetKey, int],
        since: datetime | None,
        until: datetime | None,
    ) -> None:
        self.instance = instance
        self.ledger = ledger
        self.graph = graph
        self.distances = distances
        self.since = since
        self.until = until
        self._runs: dict[str, Any] = {}

    # --- materializations -------------------------------------------------------------------

    def asset_changes(self, asset_key: dg.AssetKey) -> list[Change]:
        records = list(
            _materializations(
                self.instance,
                asset_key,
                after=_timestamp(self.since),
                before=_timestamp(self.until),
            )
        )
        if not records:
            return []
        distance = self.distances[asset_key]
        previous_any: _Materialization | None = None
        previous: dict[str | None, _Materialization | None] = {}
        if self.since is not None:
            previous_any = _previous(self.instance, asset_key, records[0].storage_id)
            for record in records:
                if record.partition not in previous:
                    previous[record.partition] = (
                        previous_any
                        if record.partition is None
                        else _previous(
                            self.instance, asset_key, record.storage_id, record.partition
                        )
                    )
        previous_capsule = self._capsule(asset_key, previous_any) if previous_any else None
        changes: list[Change] = []
        for record in records:
            before = previous.get(record.partition)
            changes += self._code_change(asset_key, distance, previous_any, record)
            if distance > 0:
                changes += _data_change(asset_key, distance, before, record, previous_any)
            # A config or feature-set change is a decision about the asset, not one partition: a
            # new day computed with a new config must show even though that day has no past.
            if previous_any is not None:
                changes += _package_change(asset_key, distance, previous_any, record)
                changes += _feature_set_change(asset_key, distance, previous_any, record)
                changes += self._config_change(asset_key, distance, previous_any, record)
                changes += _threshold_change(asset_key, distance, previous_any, record)
            capsule = self._capsule(asset_key, record)
            if capsule is not None:
                if previous_capsule is not None:
                    changes += _environment_change(
                        asset_key, distance, previous_capsule, capsule, record
                    )
                previous_capsule = capsule
            previous[record.partition] = record
            previous_any = record
        return changes

    def _code_change(
        self,
        asset_key: dg.AssetKey,
        distance: int,
        before: _Materialization | None,
        after: _Materialization,
    ) -> list[Change]:
        if before is None:
            return []
        old, new = before.tag(CODE_VERSION_TAG), after.tag(CODE_VERSION_TAG)
        # A reported (runless) materialization has no code version: that is no deploy.
        if old is None or new is None or old == new:
            return []
        return [
            _change(
                "code",
                asset_key,
                after,
                distance,
                summary=f"{_label(asset_key, after.partition)}: code version {old} -> {new}",
                before=old,
                after=new,
            )
        ]

    def _config_change(
        self,
        asset_key: dg.AssetKey,
        distance: int,
        before: _Materialization,
        after: _Materialization,
    ) -> list[Change]:
        old, new = before.text("config_hash"), after.text("config_hash")
        if old is None or new is None or old == new:
            return []
        op_name = self._op_name(asset_key)
        details: dict[str, Any] = {}
        config = self._op_config(after.run_id, op_name)
        if config is not None:
            details["config"] = config
        previous_config = self._op_config(before.run_id, op_name)
        if previous_config is not None:
            details["previous_config"] = previous_config
        if config is not None or previous_config is not None:
            details["config_diff"] = {
                path: [a, b] for path, a, b in _diff(previous_config or {}, config or {})
            }
        paths = ", ".join(details.get("config_diff", {})) or "values not in the run config"
        # A config that names a column (a unit factor for latency_p99_ms, say) touches that column
        # and everything derived from it; the incident engine follows the names downstream.
        named = _columns_named_in(details.get("config_diff", {}), _columns(after.metadata) or [])
        return [
            _change(
                "config",
                asset_key,
                after,
                distance,
                summary=(
                    f"{_label(asset_key, after.partition)}: config {old[:12]} -> {new[:12]} "
                    f"({paths})"
                ),
                before=old,
                after=new,
                features=tuple(dict.fromkeys([*_touched_columns(before, after), *named])),
                details=details,
            )
        ]

    def _op_name(self, asset_key: dg.AssetKey) -> str:
        try:
            return str(self.graph.get(asset_key).assets_def.node_def.name)
        except (AttributeError, KeyError):
            return "__".join(asset_key.path)

    def _op_config(self, run_id: str, op_name: str) -> Any:
        """The op's config as the run was launched with it; None when the run used defaults."""
        if run_id not in self._runs:
            self._runs[run_id] = self.instance.get_run_by_id(run_id)
        run = self._runs[run_id]
        if run is None:
            return None
        ops = (run.run_config or {}).get("ops") or {}
        op_config = ops.get(op_name)
        return op_config.get("config") if isinstance(op_config, Mapping) else None

    def _capsule(self, asset_key: dg.AssetKey, record: _Materialization) -> Capsule | None:
        capsule_id = record.text("capsule_id")
        if capsule_id:
            return self.ledger.get_capsule(capsule_id)
        name = asset_key.to_user_string()
        if name not in CAPSULE_ASSETS:
            return None
        found = [item for item in self.ledger.capsules_for_run(record.run_id) if item.asset == name]
        return found[-1] if found else None

    # --- checks -----------------------------------------------------------------------------

    def policy_changes(self, check_key: dg.AssetCheckKey) -> list[Change]:
        """Policy hash changes between consecutive evaluations of one check, any partition.

        A policy is global to the check, so the previous evaluation of any partition is the one
        to compare with; checks that record no policy hash contribute nothing.
        """
        since, until = _timestamp(self.since), _timestamp(self.until)
        window: list[tuple[Any, Any]] = []
        baseline: tuple[Any, Any] | None = None
        seen = 0
        for record, evaluation in _evaluations(self.instance, check_key):
            seen += 1
            at = _check_time(record)
            if POLICY_SHA256 not in evaluation.metadata:
                if seen >= _PAGE and not window and baseline is None:
                    break  # a page of evaluations and no policy hash: this check records none
                continue
            if until is not None and at >= until:
                continue
            if since is not None and at < since:
                baseline = (record, evaluation)
                break
            window.append((record, evaluation))
        window.reverse()
        previous = baseline
        distance = self.distances[check_key.asset_key]
        changes: list[Change] = []
        for record, evaluation in window:
            if previous is not None:
                old = _plain(previous[1].metadata[POLICY_SHA256])
                new = _plain(evaluation.metadata[POLICY_SHA256])
                if old != new:
                    name = check_key.to_user_string()
                    changes.append(
                        Change(
                            kind="policy",
                            subject=name,
                            at=datetime.fromtimestamp(_check_time(record), UTC),
                            summary=f"{name}: policy {str(old)[:12]} -> {str(new)[:12]}",
                            partition=record.partition,
                            run_id=record.run_id,
                            before=old,
                            after=new,
                            lineage_distance=distance,
                            details={"check": name},
                        )
                    )
            previous = (record, evaluation)
        return changes


def _alias_changes(
    ledger: Ledger, model_name: str, since: datetime | None, until: datetime | None
) -> list[Change]:
    changes = []
    for entry in ledger.alias_history(model_name):
        if (since is not None and entry.at < since) or (until is not None and entry.at >= until):
            continue
        old = f"v{entry.from_version}" if entry.from_version is not None else "-"
        changes.append(
            Change(
                kind="alias",
                subject=f"{model_name}:{entry.alias}",
                at=entry.at,
                summary=(
                    f"{model_name}:{entry.alias} {entry.kind} {old} -> v{entry.to_version} "
                    f"by {entry.actor}: {entry.reason}"
                ),
                run_id=entry.run_id,
                before=entry.from_version,
                after=entry.to_version,
                lineage_distance=0,
                details={
                    "to_version": entry.to_version,
                    "kind": entry.kind,
                    "actor": entry.actor,
                    "reason": entry.reason,
                },
            )
        )
    return changes


def _flag_changes(ledger: Ledger, since: datetime | None, until: datetime | None) -> list[Change]:
    """Each new flag version, as a serving-config change at the model (distance 0).

    Flags decide which feature set and model serve each service without any materialization,
    so nothing in the instance records them: the ledger's flag versions are the only trace.
    """
    changes = []
    previous = None
    try:
        history = flag_history(ledger)
    except FlagError:
        return []  # a stored version is validated when applied; an unparsable one was tampered
    for version, flags in history:
        inside = (since is None or version.at >= since) and (until is None or version.at < until)
        if inside:
            lines = diff_flags(previous[1] if previous else None, flags)
            what = "; ".join(lines) or "no flag changed"
            old = f"v{previous[0].version}" if previous else "-"
            changes.append(
                Change(
                    kind="config",
                    subject="flags",
                    at=version.at,
                    summary=(
                        f"flags {old} -> v{version.version} by {version.actor}: {what} "
                        f"({version.reason})"
                    ),
                    before=previous[0].sha256 if previous else None,
                    after=version.sha256,
                    lineage_distance=0,
                    details={
                        "flag_version": version.version,
                        "actor": version.actor,
                        "reason": version.reason,
                        "diff": lines,
                    },
                )
            )
        previous = (version, flags)
    return changes


def _feature_set_status_changes(
    ledger: Ledger, since: datetime | None, until: datetime | None, distance: int | None
) -> list[Change]:
    """Feature-set lifecycle moves (a set promoted to production, retired, ...)."""
    changes = []
    for entry in ledger.feature_set_history():
        if (since is not None and entry.at < since) or (until is not None and entry.at >= until):
            continue
        old = entry.from_status or "-"
        changes.append(
            Change(
                kind="feature_set",
                subject=f"feature_set:{entry.version_id}",
                at=entry.at,
                summary=(
                    f"feature set {entry.version_id} {old} -> {entry.to_status} by "
                    f"{entry.actor}: {entry.reason}"
                ),
                run_id=entry.run_id,
                before=entry.from_status,
                after=entry.to_status,
                lineage_distance=distance,
                details={"actor": entry.actor, "reason": entry.reason},
            )
        )
    return changes


def _data_change(
    asset_key: dg.AssetKey,
    distance: int,
    before: _Materialization | None,
    after: _Materialization,
    previous_any: _Materialization | None = None,
) -> list[Change]:
    """A partition's data changed: ``before`` is the same partition's previous version; nulls
    are compared with ``previous_any`` (usually yesterday), since a new day has no past."""
    new = after.tag(DATA_VERSION_TAG)
    old = before.tag(DATA_VERSION_TAG) if before is not None else None
    if new is None or (before is not None and old == new):
        return []
    distribution = _distribution(after.metadata)
    rows = after.metadata.get(ROW_COUNT)
    old_columns = _columns(before.metadata) if before is not None else None
    new_columns = _columns(after.metadata)
    added = sorted(set(new_columns or ()) - set(old_columns or ())) if old_columns else []
    removed = sorted(set(old_columns or ()) - set(new_columns or ())) if new_columns else []
    parts = [f"{rows} rows"] if rows is not None else []
    if before is not None and rows is not None and before.metadata.get(ROW_COUNT) is not None:
        parts[-1] += f" ({int(rows) - int(before.metadata[ROW_COUNT]):+d})"
    if added:
        parts.append(f"+{len(added)} columns")
    if removed:
        parts.append(f"-{len(removed)} columns")
    what = "new data" if before is None else f"data {str(old)[:12]} -> {new[:12]}"
    details: dict[str, Any] = {"distribution": distribution}
    if before is not None:
        details["previous_distribution"] = _distribution(before.metadata)
    compared = before if before is not None else previous_any
    nulls_rose: list[str] = []
    if compared is not None:
        nulls_rose = _null_fraction_rises(compared.metadata, after.metadata)
    if compared is not None and nulls_rose:
        parts.append(
            "nulls up in "
            + ", ".join(
                f"{column} {float(compared.metadata[NULL_FRACTION_PREFIX + column]):.2f}"
                f" -> {float(after.metadata[NULL_FRACTION_PREFIX + column]):.2f}"
                for column in nulls_rose
            )
        )
        details["null_fractions_rose"] = nulls_rose
    if added or removed:
        details["columns_added"] = added
        details["columns_removed"] = removed
    summary = f"{_label(asset_key, after.partition)}: {what}" + (
        f" ({', '.join(parts)})" if parts else ""
    )
    return [
        _change(
            "data",
            asset_key,
            after,
            distance,
            summary=summary,
            before=old,
            after=new,
            features=tuple(added + removed + nulls_rose),
            details=details,
        )
    ]


def _feature_set_change(
    asset_key: dg.AssetKey, distance: int, before: _Materialization, after: _Materialization
) -> list[Change]:
    old, new = before.text("feature_set_version"), after.text("feature_set_version")
    if old is None or new is None or old == new:
        return []
    return [
        _change(
            "feature_set",
            asset_key,
            after,
            distance,
            summary=f"{_label(asset_key, after.partition)}: feature set {old} -> {new}",
            before=old,
            after=new,
            features=_touched_columns(before, after),
        )
    ]


def _threshold_change(
    asset_key: dg.AssetKey, distance: int, before: _Materialization, after: _Materialization
) -> list[Change]:
    """A model's alert threshold moved: the same scores now page more, or less."""
    old, new = before.metadata.get("threshold"), after.metadata.get("threshold")
    if not isinstance(old, int | float) or not isinstance(new, int | float) or old == new:
        return []
    return [
        _change(
            "threshold",
            asset_key,
            after,
            distance,
            summary=f"{_label(asset_key, after.partition)}: alert threshold {old:.4g} -> {new:.4g}",
            before=float(old),
            after=float(new),
        )
    ]


def _package_change(
    asset_key: dg.AssetKey, distance: int, before: _Materialization, after: _Materialization
) -> list[Change]:
    """A library the asset's computation depends on changed version between two runs."""
    old, new = before.metadata.get(PACKAGES_KEY), after.metadata.get(PACKAGES_KEY)
    if not isinstance(old, Mapping) or not isinstance(new, Mapping) or old == new:
        return []
    moved = {
        str(name): [old.get(name), new.get(name)]
        for name in sorted(set(old) | set(new))
        if old.get(name) != new.get(name)
    }
    lines = [f"{name} {a or '-'} -> {b or '-'}" for name, (a, b) in moved.items()]
    return [
        _change(
            "environment",
            asset_key,
            after,
            distance,
            summary=f"{_label(asset_key, after.partition)}: {', '.join(lines)}",
            before=dict(old),
            after=dict(new),
            details={"packages": moved, "lines": lines},
        )
    ]


def _environment_change(
    asset_key: dg.AssetKey,
    distance: int,
    before: Capsule,
    after: Capsule,
    record: _Materialization,
) -> list[Change]:
    lines = diff_environments(before.environment, after.environment).lines()
    if not lines:
        return []
    more = f" (+{len(lines) - 1} more)" if len(lines) > 1 else ""
    return [
        _change(
            "environment",
            asset_key,
            record,
            distance,
            summary=f"{_label(asset_key, record.partition)}: {lines[0]}{more}",
            before=before.capsule_id,
            after=after.capsule_id,
            details={"lines": lines},
        )
    ]


def _change(
    kind: str,
    asset_key: dg.AssetKey,
    record: _Materialization,
    distance: int,
    *,
    summary: str,
    before: Any,
    after: Any,
    features: Sequence[str] = (),
    details: dict[str, Any] | None = None,
) -> Change:
    return Change(
        kind=kind,
        subject=asset_key.to_user_string(),
        at=record.at,
        summary=summary,
        partition=record.partition,
        run_id=record.run_id,
        before=before,
        after=after,
        features=tuple(features),
        lineage_distance=distance,
        details=details or {},
    )


# --- reading materializations ---------------------------------------------------------------


def _materializations(
    instance: dg.DagsterInstance,
    asset_key: dg.AssetKey,
    *,
    after: float | None,
    before: float | None,
) -> Iterator[_Materialization]:
    """Oldest first, a page at a time (the asset-key index; never the whole event log)."""
    records_filter = dg.AssetRecordsFilter(
        asset_key=asset_key, after_timestamp=after, before_timestamp=before
    )
    cursor: str | None = None
    while True:
        result = instance.fetch_materializations(
            records_filter, limit=_PAGE, cursor=cursor, ascending=True
        )
        for record in result.records:
            materialization = _reduce(record)
            if materialization is not None:
                yield materialization
        if not result.has_more or not result.records:
            return
        cursor = result.cursor


def _previous(
    instance: dg.DagsterInstance,
    asset_key: dg.AssetKey,
    before_storage_id: int,
    partition: str | None = None,
) -> _Materialization | None:
    """The latest materialization before a storage id: the baseline a window starts from."""
    records_filter = dg.AssetRecordsFilter(
        asset_key=asset_key,
        asset_partitions=None if partition is None else [partition],
        before_storage_id=before_storage_id,
    )
    records = instance.fetch_materializations(records_filter, limit=1).records
    return _reduce(records[0]) if records else None


def _reduce(record: Any) -> _Materialization | None:
    materialization = record.asset_materialization
    if materialization is None:
        return None
    return _Materialization(
        storage_id=int(record.storage_id),
        at=datetime.fromtimestamp(float(record.timestamp), UTC),
        run_id=str(record.run_id),
        partition=materialization.partition,
        tags=dict(materialization.tags or {}),
        metadata={name: _plain(value) for name, value in materialization.metadata.items()},
    )


def _columns(metadata: Mapping[str, Any]) -> list[str] | None:
    schema = metadata.get(COLUMN_SCHEMA)
    columns = getattr(schema, "columns", None)
    return None if columns is None else [str(column.name) for column in columns]


def _touched_columns(before: _Materialization, after: _Materialization) -> tuple[str, ...]:
    """Columns added or removed between two materializations; empty when either has no schema."""
    old, new = _columns(before.metadata), _columns(after.metadata)
    if old is None or new is None:
        return ()
    return tuple(sorted(set(old) ^ set(new)))


# A rise in a column's null fraction smaller than this is noise, not a broken collector.
NULL_RISE = 0.01


def _null_fraction_rises(before: Mapping[str, Any], after: Mapping[str, Any]) -> list[str]:
    """Columns whose share of nulls rose noticeably between two materializations."""
    risen = []
    for name, value in sorted(after.items()):
        if not name.startswith(NULL_FRACTION_PREFIX) or not isinstance(value, int | float):
            continue
        previous = before.get(name)
        if isinstance(previous, int | float) and value - previous >= NULL_RISE:
            risen.append(name.removeprefix(NULL_FRACTION_PREFIX))
    return risen


def _columns_named_in(config_paths: Iterable[str], columns: Sequence[str]) -> list[str]:
    """The asset's columns that a changed config path names as one of its segments."""
    known = set(columns)
    named: list[str] = []
    for path in config_paths:
        for segment in str(path).replace("[", ".").replace("]", "").split("."):
            if segment in known and segment not in named:
                named.append(segment)
    return named


def _distribution(metadata: Mapping[str, Any]) -> dict[str, float | int]:
    """The numeric facts a materialization records about its data (rows, rates, counts)."""
    summary: dict[str, float | int] = {}
    for name, value in sorted(metadata.items()):
        if isinstance(value, bool) or not isinstance(value, int | float):
            continue
        if name == ROW_COUNT:
            summary["rows"] = value
        elif not name.startswith("dagster/") and name not in _NOT_DISTRIBUTION:
            summary[name] = value
    return summary


# --- reading check evaluations --------------------------------------------------------------


def _evaluations(
    instance: dg.DagsterInstance, check_key: dg.AssetCheckKey, since: float | None = None
) -> Iterator[tuple[Any, Any]]:
    """Completed evaluations of one check, newest first, with their evaluation data.

    Planned rows (a run still going, or a check skipped) and executions that raised have no
    evaluation: they say nothing about the data, so they are passed over.
    """
    cursor: int | None = None
    while True:
        records = instance.event_log_storage.get_asset_check_execution_history(
            check_key, limit=_PAGE, cursor=cursor
        )
        for record in records:
            if since is not None and _check_time(record) < since:
                return  # newest first: everything further is older still
            event = record.event
            data = (
                event.dagster_event.event_specific_data
                if event is not None and event.dagster_event is not None
                else None
            )
            if data is not None and hasattr(data, "passed"):
                yield record, data
        if len(records) < _PAGE:
            return
        cursor = records[-1].id


def _check_time(record: Any) -> float:
    """The evaluation's event time; the row's own timestamp is coarser in some storages."""
    event = record.event
    return float(event.timestamp if event is not None else record.create_timestamp)


def _latest_per_partition(
    instance: dg.DagsterInstance, check_key: dg.AssetCheckKey, since: datetime | None = None
) -> dict[str, tuple[Any, Any]]:
    latest: dict[str, tuple[Any, Any]] = {}
    for record, evaluation in _evaluations(instance, check_key, _timestamp(_utc(since))):
        latest.setdefault(record.partition or "", (record, evaluation))
    return latest


def performance_history(
    instance: dg.DagsterInstance,
    *,
    check_key: dg.AssetCheckKey = PERFORMANCE_CHECK,
    since: datetime | None = None,
) -> list[PerformancePoint]:
    """The model's performance per partition, by partition; a re-run partition counts once.

    Only the latest evaluation of a partition counts: a re-scored day replaces its earlier
    verdict, just as its materialization replaces the earlier scores. ``since`` bounds the
    read to recent evaluations, so the cost follows the window, not the whole history.
    """
    points = []
    for partition, (record, evaluation) in sorted(
        _latest_per_partition(instance, check_key, since).items()
    ):
        metadata = {name: _plain(value) for name, value in evaluation.metadata.items()}
        version = metadata.get("model_version")
        points.append(
            PerformancePoint(
                partition=partition,
                at=datetime.fromtimestamp(_check_time(record), UTC),
                passed=bool(evaluation.passed),
                metrics={
                    name: float(value)
                    for name, value in metadata.items()
                    if isinstance(value, float)
                },
                model_version=int(version) if isinstance(version, int | float) else None,
            )
        )
    return points


def drift_history(
    instance: dg.DagsterInstance,
    check_keys: Sequence[dg.AssetCheckKey],
    *,
    since: datetime | None = None,
) -> list[DriftPoint]:
    """Per feature and partition, the drift score the latest evaluation gave and its verdict."""
    points = []
    for check_key in check_keys:
        for partition, (_record, evaluation) in sorted(
            _latest_per_partition(instance, check_key, since).items()
        ):
            metadata = {name: _plain(value) for name, value in evaluation.metadata.items()}
            drifted = {name.strip() for name in str(metadata.get("drifted", "")).split(",")}
            for name, value in sorted(metadata.items()):
                if not name.startswith("score/") or not isinstance(value, int | float):
                    continue
                feature = name[len("score/") :]
                points.append(
                    DriftPoint(
                        partition=partition,
                        feature=feature,
                        effect=float(value),
                        drifted=feature in drifted,
                    )
                )
    return points


# --- small helpers ----------------------------------------------------------------------------


def _plain(value: Any) -> Any:
    return getattr(value, "value", value)


def _utc(moment: datetime | None) -> datetime | None:
    """Naive bounds are read as UTC, the zone every record here is kept in."""
    if moment is None:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _timestamp(moment: datetime | None) -> float | None:
    utc = _utc(moment)
    return None if utc is None else utc.timestamp()


def _label(asset_key: dg.AssetKey, partition: str | None) -> str:
    name = asset_key.to_user_string()
    return f"{name}[{partition}]" if partition else name


def _diff(before: Any, after: Any, path: str = "") -> list[tuple[str, Any, Any]]:
    """Leaf differences between two JSON-like values, as (dotted path, before, after)."""
    # A section that appears (or disappears) is compared leaf by leaf, so the diff names what
    # it sets (``unit_scale.checkout.error_rate``), not just the section.
    if isinstance(before, Mapping) and after is None:
        after = {}
    if isinstance(after, Mapping) and before is None:
        before = {}
    if isinstance(before, Mapping) and isinstance(after, Mapping):
        found: list[tuple[str, Any, Any]] = []
        for key in sorted(set(before) | set(after), key=str):
            child = f"{path}.{key}" if path else str(key)
            found += _diff(before.get(key), after.get(key), child)
        return found
    return [] if before == after else [(path or "(root)", before, after)]
