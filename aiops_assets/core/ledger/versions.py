"""Model versions and their aliases: which bytes are which version, and which version is champion.

An alias is a pointer with a history: every move is a history row and an audit entry written with
it, so the pointer's past can be shown and re-derived, never lost.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Row, func, insert, select, update

from aiops_assets.core.ledger.base import LedgerCore
from aiops_assets.core.ledger.encoding import (
    canonical_json,
    float_metrics,
    loads_json,
    string_map,
    utc,
)
from aiops_assets.core.ledger.records import ALIAS_KINDS, AliasChange, LedgerError, ModelVersion
from aiops_assets.core.ledger.schema import alias_history, model_aliases, model_versions


class VersionsPart(LedgerCore):
    """Registering model versions and moving the aliases that point at them."""

    # --- versions ---------------------------------------------------------------------------

    def register_model_version(
        self,
        model_name: str,
        sha256: str,
        *,
        metrics: Mapping[str, float],
        training_set_version: str,
        feature_set_version: str,
        actor: str,
        capsule_ref: str | None = None,
        run_id: str | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> ModelVersion:
        """The version for these bytes: registering the same bytes again returns the first one.

        Retried runs and re-materializations must not mint new version numbers for a model
        that already exists, or the registry would stop meaning "distinct models".
        """
        with self._write() as conn:
            # The head lock serializes registrations on PostgreSQL too, so numbers never clash.
            self._lock_head(conn)
            existing = version_row(conn, model_name, sha256=sha256)
            if existing is not None:
                return to_version(existing)
            version = ModelVersion(
                model_name=model_name,
                version=_next_version(conn, model_name),
                sha256=sha256,
                metrics=float_metrics(metrics),
                training_set_version=training_set_version,
                feature_set_version=feature_set_version,
                capsule_ref=capsule_ref,
                run_id=run_id,
                created_at=self._now(),
                created_by=actor,
                tags=string_map(tags or {}),
            )
            conn.execute(insert(model_versions).values(**_version_values(version)))
            self._append(
                conn,
                "register_version",
                actor=actor,
                subject=f"{model_name}:v{version.version}",
                details=_registration_details(version),
                run_id=run_id,
                at=version.created_at,
            )
            return version

    def get_version(self, model_name: str, version: int) -> ModelVersion | None:
        with self._read() as conn:
            row = version_row(conn, model_name, version=version)
        return None if row is None else to_version(row)

    def vouched_version(
        self, model_name: str, *, version: int | None = None, sha256: str | None = None
    ) -> ModelVersion | None:
        """The version as the audit chain recorded it, for loading: a row edited around the
        ledger (its hash rewritten to a planted object's, say) is refused, never returned."""
        with self._read() as conn:
            row = version_row(conn, model_name, version=version, sha256=sha256)
            if row is None:
                return None
            self._require_vouched(conn, model_versions, row._mapping)
        return to_version(row)

    def find_version(self, model_name: str, sha256: str) -> ModelVersion | None:
        with self._read() as conn:
            row = version_row(conn, model_name, sha256=sha256)
        return None if row is None else to_version(row)

    def list_models(self) -> list[str]:
        with self._read() as conn:
            names = conn.execute(
                select(model_versions.c.model_name).distinct().order_by(model_versions.c.model_name)
            ).scalars()
            return [str(name) for name in names]

    def list_versions(self, model_name: str) -> list[ModelVersion]:
        with self._read() as conn:
            rows = conn.execute(
                select(model_versions)
                .where(model_versions.c.model_name == model_name)
                .order_by(model_versions.c.version)
            ).all()
        return [to_version(row) for row in rows]

    # --- aliases ----------------------------------------------------------------------------

    def set_alias(
        self,
        model_name: str,
        alias: str,
        version: int,
        *,
        actor: str,
        reason: str,
        kind: str = "assign",
        run_id: str | None = None,
    ) -> AliasChange:
        """Point an alias at a version; the old pointer survives in the history, never deleted."""
        with self._write() as conn:
            self._lock_head(conn)
            return self._move_alias(
                conn,
                model_name,
                alias,
                version,
                actor=actor,
                reason=reason,
                kind=kind,
                run_id=run_id,
                at=self._now(),
            )

    def _move_alias(
        self,
        conn: Connection,
        model_name: str,
        alias: str,
        version: int,
        *,
        actor: str,
        reason: str,
        kind: str,
        run_id: str | None,
        at: datetime,
    ) -> AliasChange:
        """Move the pointer, log the move and audit it, inside the caller's transaction."""
        if kind not in ALIAS_KINDS:
            raise LedgerError(f"alias change kind {kind!r} is not one of {', '.join(ALIAS_KINDS)}")
        if version_row(conn, model_name, version=version) is None:
            raise LedgerError(
                f"cannot point {model_name}:{alias} at v{version}: no such version is registered"
            )
        current = alias_version(conn, model_name, alias)
        _point_alias(
            conn, model_name, alias, version, exists=current is not None, actor=actor, at=at
        )
        change = AliasChange(
            model_name=model_name,
            alias=alias,
            from_version=None if current is None else int(current),
            to_version=version,
            actor=actor,
            at=at,
            reason=reason,
            run_id=run_id,
            kind=kind,
        )
        conn.execute(insert(alias_history).values(**_alias_change_values(change)))
        self._append(
            conn,
            "set_alias",
            actor=actor,
            subject=f"{model_name}:{alias}",
            details={
                "from_version": change.from_version,
                "to_version": version,
                "kind": kind,
                "reason": reason,
            },
            run_id=run_id,
            at=at,
        )
        return change

    def get_alias(self, model_name: str, alias: str) -> ModelVersion | None:
        with self._read() as conn:
            row = conn.execute(
                select(model_versions)
                .join(
                    model_aliases,
                    (model_aliases.c.model_name == model_versions.c.model_name)
                    & (model_aliases.c.version == model_versions.c.version),
                )
                .where(model_aliases.c.model_name == model_name, model_aliases.c.alias == alias)
            ).one_or_none()
        return None if row is None else to_version(row)

    def aliases(self, model_name: str) -> dict[str, int]:
        with self._read() as conn:
            rows = conn.execute(
                select(model_aliases.c.alias, model_aliases.c.version)
                .where(model_aliases.c.model_name == model_name)
                .order_by(model_aliases.c.alias)
            ).all()
        return {str(row.alias): int(row.version) for row in rows}

    def alias_history(self, model_name: str, alias: str | None = None) -> list[AliasChange]:
        query = select(alias_history).where(alias_history.c.model_name == model_name)
        if alias is not None:
            query = query.where(alias_history.c.alias == alias)
        with self._read() as conn:
            rows = conn.execute(query.order_by(alias_history.c.id)).all()
        return [_to_alias_change(row) for row in rows]


# --- rows -------------------------------------------------------------------------------------


def version_row(
    conn: Connection,
    model_name: str,
    *,
    version: int | None = None,
    sha256: str | None = None,
) -> Row[Any] | None:
    query = select(model_versions).where(model_versions.c.model_name == model_name)
    if version is not None:
        query = query.where(model_versions.c.version == version)
    if sha256 is not None:
        query = query.where(model_versions.c.sha256 == sha256)
    return conn.execute(query).one_or_none()


def alias_version(conn: Connection, model_name: str, alias: str) -> Any:
    """The version ``alias`` points at now, as stored, or None."""
    return conn.execute(
        select(model_aliases.c.version).where(
            model_aliases.c.model_name == model_name, model_aliases.c.alias == alias
        )
    ).scalar()


def to_version(row: Row[Any]) -> ModelVersion:
    return ModelVersion(
        model_name=row.model_name,
        version=int(row.version),
        sha256=row.sha256,
        metrics=float_metrics(loads_json(row.metrics)),
        training_set_version=row.training_set_version,
        feature_set_version=row.feature_set_version,
        capsule_ref=row.capsule_ref,
        run_id=row.run_id,
        created_at=utc(row.created_at),
        created_by=row.created_by,
        tags=string_map(loads_json(row.tags)),
    )


def _next_version(conn: Connection, model_name: str) -> int:
    latest = conn.execute(
        select(func.max(model_versions.c.version)).where(model_versions.c.model_name == model_name)
    ).scalar()
    return int(latest or 0) + 1


def _version_values(version: ModelVersion) -> dict[str, Any]:
    return {
        "model_name": version.model_name,
        "version": version.version,
        "sha256": version.sha256,
        "metrics": canonical_json(version.metrics),
        "training_set_version": version.training_set_version,
        "feature_set_version": version.feature_set_version,
        "capsule_ref": version.capsule_ref,
        "run_id": version.run_id,
        "created_at": version.created_at,
        "created_by": version.created_by,
        "tags": canonical_json(version.tags),
    }


def _registration_details(version: ModelVersion) -> dict[str, Any]:
    return {
        "version": version.version,
        "sha256": version.sha256,
        "metrics": version.metrics,
        "training_set_version": version.training_set_version,
        "feature_set_version": version.feature_set_version,
        "capsule_ref": version.capsule_ref,
        "tags": version.tags,
    }


def _point_alias(
    conn: Connection,
    model_name: str,
    alias: str,
    version: int,
    *,
    exists: bool,
    actor: str,
    at: datetime,
) -> None:
    if not exists:
        conn.execute(
            insert(model_aliases).values(
                model_name=model_name,
                alias=alias,
                version=version,
                updated_at=at,
                updated_by=actor,
            )
        )
        return
    conn.execute(
        update(model_aliases)
        .where(model_aliases.c.model_name == model_name, model_aliases.c.alias == alias)
        .values(version=version, updated_at=at, updated_by=actor)
    )


def _alias_change_values(change: AliasChange) -> dict[str, Any]:
    return {
        "model_name": change.model_name,
        "alias": change.alias,
        "from_version": change.from_version,
        "to_version": change.to_version,
        "actor": change.actor,
        "at": change.at,
        "reason": change.reason,
        "run_id": change.run_id,
        "kind": change.kind,
    }


def _to_alias_change(row: Row[Any]) -> AliasChange:
    return AliasChange(
        model_name=row.model_name,
        alias=row.alias,
        from_version=None if row.from_version is None else int(row.from_version),
        to_version=int(row.to_version),
        actor=row.actor,
        at=utc(row.at),
        reason=row.reason,
        run_id=row.run_id,
        kind=row.kind,
    )
