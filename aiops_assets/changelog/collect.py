"""Collecting the changes upstream of a model: the lineage walk and the per-asset reader.

The reader compares consecutive records of each ancestor (its materializations, its checks' policy)
and the ledger adds what it alone records (alias moves, flags, feature-set status).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import dagster as dg

from aiops_assets.changelog.changes import (
    _alias_changes,
    _change,
    _data_change,
    _environment_change,
    _feature_set_change,
    _feature_set_status_changes,
    _flag_changes,
    _package_change,
    _threshold_change,
)
from aiops_assets.changelog.history import _check_time, _evaluations
from aiops_assets.changelog.records import (
    _PAGE,
    CAPSULE_ASSETS,
    CODE_VERSION_TAG,
    MODEL_ASSET,
    POLICY_SHA256,
    _columns,
    _columns_named_in,
    _diff,
    _label,
    _Materialization,
    _materializations,
    _plain,
    _previous,
    _timestamp,
    _touched_columns,
    _utc,
)
from aiops_assets.core.capsule import Capsule
from aiops_assets.core.code_fingerprint import FINGERPRINT_KEY
from aiops_assets.core.incidents import CHANGE_KINDS, Change
from aiops_assets.core.ledger import Ledger


def whole_graph(asset_graph_or_defs: dg.Definitions | Any) -> Any:
    """The asset graph of definitions, or the graph itself (a check reads its code location's
    graph from ``context.repository_def.asset_graph``)."""
    if hasattr(asset_graph_or_defs, "resolve_asset_graph"):
        return asset_graph_or_defs.resolve_asset_graph()
    return asset_graph_or_defs


def upstream_distances(
    asset_graph_or_defs: dg.Definitions | Any, model_asset: dg.AssetKey
) -> dict[dg.AssetKey, int]:
    """Hops from each ancestor to ``model_asset`` (0 for the model itself), shortest path.

    The incident report ranks suspects by distance: a change one hop away explains a drop more
    directly than one five hops away. The full graph is used because a run only sees what it
    selected, and a change made in a run that never touched the model still reaches it.
    """
    graph = whole_graph(asset_graph_or_defs)
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


def collect_changes(
    instance: dg.DagsterInstance,
    ledger: Ledger,
    definitions: dg.Definitions | Any,
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
    under investigation rather than a cause. ``definitions`` may also be the asset graph itself.
    """
    since, until = _utc(since), _utc(until)
    graph = whole_graph(definitions)
    distances = upstream_distances(graph, model_asset)
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
        # An asset that declares no code version gets its run's id as one: every run is not a
        # deploy (a host's own assets and the lifecycle's scores often declare none).
        if old == before.run_id and new == after.run_id:
            return []
        details: dict[str, Any] = {}
        fingerprints = before.text(FINGERPRINT_KEY), after.text(FINGERPRINT_KEY)
        if None not in fingerprints:
            details["code_fingerprints"] = list(fingerprints)
            details["code_unchanged"] = fingerprints[0] == fingerprints[1]
        same = " (same code fingerprint)" if details.get("code_unchanged") else ""
        return [
            _change(
                "code",
                asset_key,
                after,
                distance,
                summary=f"{_label(asset_key, after.partition)}: code version {old} -> {new}{same}",
                before=old,
                after=new,
                details=details,
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
