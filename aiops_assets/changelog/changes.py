"""Turning the difference between two consecutive records into a ``Change``: data, code, feature
set, config, packages and environment, plus the changes only the ledger records.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import dagster as dg

from aiops_assets.changelog.records import (
    DATA_VERSION_TAG,
    ROW_COUNT,
    _columns,
    _distribution,
    _label,
    _Materialization,
    _null_fraction_rises,
    _touched_columns,
)
from aiops_assets.core.capsule import Capsule, diff_environments
from aiops_assets.core.flags import FlagError, diff_flags, flag_history
from aiops_assets.core.incidents import Change
from aiops_assets.core.ledger import Ledger
from aiops_assets.core.pipeline.incident import alias_changes
from aiops_assets.metadata import NULL_FRACTION_PREFIX, PACKAGES_KEY, REVISION_KEY


def _alias_changes(
    ledger: Ledger, model_name: str, since: datetime | None, until: datetime | None
) -> list[Change]:
    """Each alias move in ``[since, until)``, worded once for both orchestrators
    (``core/pipeline/incident.py``)."""
    return [
        change
        for change in alias_changes(ledger, model_name)
        if (since is None or change.at >= since) and (until is None or change.at < until)
    ]


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
    revision = _revision_of(after, old)
    late = revision is not None and bool(revision.get("late_data"))
    parts = [f"{rows} rows"] if rows is not None else []
    previous_rows = before.metadata.get(ROW_COUNT) if before is not None else None
    if not late and rows is not None and previous_rows is not None:
        parts[-1] += f" ({int(rows) - int(previous_rows):+d})"
    if added:
        parts.append(f"+{len(added)} columns")
    if removed:
        parts.append(f"-{len(removed)} columns")
    what = "new data" if before is None else f"data {str(old)[:12]} -> {new[:12]}"
    details: dict[str, Any] = {"distribution": distribution}
    if revision is not None:
        what, revision_parts = _revision_summary(revision, what)
        parts = revision_parts + parts
        details.update(_revision_details(revision))
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


def _revision_of(after: _Materialization, old: str | None) -> Mapping[str, Any] | None:
    """The re-ingest comparison ``after`` recorded, if it was made against ``old`` (the version
    this change replaces); a comparison against any other version says nothing about this one."""
    revision = after.metadata.get(REVISION_KEY)
    if not isinstance(revision, Mapping) or old is None:
        return None
    return revision if revision.get("previous_sha256") == old else None


def _revision_summary(revision: Mapping[str, Any], what: str) -> tuple[str, list[str]]:
    """Say "late data (+N rows)" when rows were only added; otherwise what was rewritten, so a
    changed or dropped row is never passed off as late data."""
    added = int(revision.get("rows_added", 0))
    if revision.get("late_data"):
        return f"late data (+{added} rows)", []
    rewritten = [f"+{added} rows"] if added else []
    rewritten += [
        f"{int(revision.get(key, 0))} rows {label}"
        for key, label in (("rows_changed", "changed"), ("rows_removed", "removed"))
        if int(revision.get(key, 0))
    ]
    if revision.get("columns_changed"):
        rewritten.append("columns changed")
    return what, rewritten


def _revision_details(revision: Mapping[str, Any]) -> dict[str, Any]:
    details: dict[str, Any] = {"revision": dict(revision)}
    if revision.get("late_data"):
        details["late_rows"] = int(revision.get("rows_added", 0))
        details["late_rows_by_service"] = dict(revision.get("rows_added_by_service") or {})
    return details


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
