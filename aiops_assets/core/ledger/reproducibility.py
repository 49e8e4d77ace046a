"""Run capsules and the experiment log, kept beside the versions that name them.

A registered version names its capsule, and a capsule that could be found only in a file next to
the model would be lost with the file. Capsules are keyed by their content hash, so storing one
is idempotent and a stored body that no longer hashes to its key is refused on read.
"""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Row, Table, insert, select, update

from aiops_assets.core.capsule import Capsule, CapsuleError
from aiops_assets.core.experiments import ExperimentRun
from aiops_assets.core.ledger.base import LedgerCore
from aiops_assets.core.ledger.encoding import (
    canonical_json,
    float_metrics,
    loads_json,
    string_map,
    utc,
)
from aiops_assets.core.ledger.records import LedgerError
from aiops_assets.core.ledger.schema import capsules, experiment_runs

# Prefix look-ups (capsule ids, run ids) need this many characters to be worth trusting.
MIN_PREFIX = 8
# How many matches an ambiguous prefix error names.
_AMBIGUOUS_SHOWN = 5


class CapsulesPart(LedgerCore):
    """Capsules by content id and experiment runs by run id, both findable by a pasted prefix."""

    # --- capsules ---------------------------------------------------------------------------

    def record_capsule(self, capsule: Capsule, *, actor: str = "system") -> str:
        """Store a capsule under its content id; recording the same capsule again is a no-op.

        Retries and re-materializations re-record identical capsules; only the first write is
        news, so only it is audited.
        """
        capsule_id = capsule.capsule_id
        body_text = canonical_json(capsule.body)
        created = capsule.created_at
        with self._write() as conn:
            self._lock_head(conn)
            exists = conn.execute(
                select(capsules.c.capsule_id).where(capsules.c.capsule_id == capsule_id)
            ).scalar()
            if exists is not None:
                return capsule_id
            now = self._now()
            conn.execute(
                insert(capsules).values(
                    capsule_id=capsule_id,
                    kind=capsule.kind,
                    asset=capsule.asset,
                    run_id=capsule.run_id,
                    created_at=utc(created) if created is not None else now,
                    body=body_text,
                )
            )
            self._append(
                conn,
                "record_capsule",
                actor=actor,
                subject=f"capsule:{capsule_id[:12]}",
                details={
                    "capsule_id": capsule_id,
                    "kind": capsule.kind,
                    "asset": capsule.asset,
                    "parent": capsule.parent,
                    "config_hash": capsule.config_hash,
                },
                run_id=capsule.run_id,
                at=now,
            )
        return capsule_id

    def get_capsule(self, capsule_id_or_prefix: str) -> Capsule | None:
        """The capsule with this id, or with this unique prefix of at least 8 characters.

        Prefixes are what people paste from logs and reports; an ambiguous one is an error
        rather than a guess, since the wrong capsule would re-run the wrong step.
        """
        wanted = capsule_id_or_prefix.strip().lower()
        with self._read() as conn:
            row = _unique_by_prefix(conn, capsules, capsules.c.capsule_id, wanted, "capsule")
        return None if row is None else _to_capsule(row)

    def capsules_for_run(self, run_id: str) -> list[Capsule]:
        with self._read() as conn:
            rows = conn.execute(
                select(capsules)
                .where(capsules.c.run_id == run_id)
                .order_by(capsules.c.created_at, capsules.c.capsule_id)
            ).all()
        return [_to_capsule(row) for row in rows]

    # --- experiment runs --------------------------------------------------------------------

    def record_experiment_run(self, run: ExperimentRun, *, actor: str = "system") -> ExperimentRun:
        """Insert or update the run's row (one per run id); returns the run as stored.

        A run's metrics arrive after its config, and a retried run writes again: updating in
        place keeps one row per run. The audit entry marks the run's first appearance only.
        """
        stored = _normalized_run(run)
        values = _run_values(stored)
        with self._write() as conn:
            self._lock_head(conn)
            existing = conn.execute(
                select(experiment_runs.c.id).where(experiment_runs.c.run_id == stored.run_id)
            ).scalar()
            if existing is not None:
                conn.execute(
                    update(experiment_runs).where(experiment_runs.c.id == existing).values(**values)
                )
                return stored
            conn.execute(insert(experiment_runs).values(run_id=stored.run_id, **values))
            self._append(
                conn,
                "record_experiment_run",
                actor=actor,
                subject=f"experiment:{stored.run_id}",
                details=_first_appearance_details(stored),
                run_id=stored.run_id,
                at=self._now(),
            )
        return stored

    def get_experiment_run(self, run_id_or_prefix: str) -> ExperimentRun | None:
        """The run with this id, or with this unique prefix of at least 8 characters."""
        wanted = run_id_or_prefix.strip()
        with self._read() as conn:
            row = _unique_by_prefix(
                conn, experiment_runs, experiment_runs.c.run_id, wanted, "experiment run"
            )
        return None if row is None else _to_experiment_run(row)

    def list_experiment_runs(
        self,
        *,
        model_name: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        dataset_version: str | None = None,
        feature_set_version: str | None = None,
    ) -> list[ExperimentRun]:
        """Runs oldest first, within ``since <= at < until`` (half-open, so windows tile)."""
        query = select(experiment_runs)
        if model_name is not None:
            query = query.where(experiment_runs.c.model_name == model_name)
        if since is not None:
            query = query.where(experiment_runs.c.at >= utc(since))
        if until is not None:
            query = query.where(experiment_runs.c.at < utc(until))
        if dataset_version is not None:
            query = query.where(experiment_runs.c.dataset_version == dataset_version)
        if feature_set_version is not None:
            query = query.where(experiment_runs.c.feature_set_version == feature_set_version)
        with self._read() as conn:
            rows = conn.execute(query.order_by(experiment_runs.c.at, experiment_runs.c.id)).all()
        return [_to_experiment_run(row) for row in rows]


def _unique_by_prefix(
    conn: Connection, table: Table, column: Any, wanted: str, what: str
) -> Row[Any] | None:
    """The row whose key is ``wanted``, else the one row whose key starts with it (8+ chars)."""
    if not wanted:
        return None
    row = conn.execute(select(table).where(column == wanted)).one_or_none()
    if row is not None or len(wanted) < MIN_PREFIX:
        return row
    rows = conn.execute(
        select(table)
        .where(column.startswith(wanted, autoescape=True))
        .order_by(column)
        .limit(_AMBIGUOUS_SHOWN + 1)
    ).all()
    if len(rows) > 1:
        keys = [str(getattr(match, column.key)) for match in rows[:_AMBIGUOUS_SHOWN]]
        more = ", ..." if len(rows) > _AMBIGUOUS_SHOWN else ""
        raise LedgerError(
            f"{what} prefix {wanted!r} is ambiguous: it matches {', '.join(keys)}{more}; "
            "give more characters"
        )
    return rows[0] if rows else None


def _to_capsule(row: Row[Any]) -> Capsule:
    try:
        capsule = Capsule.from_json(row.body)
    except CapsuleError as error:
        raise LedgerError(
            f"capsule {row.capsule_id} in the ledger is unreadable: {error}"
        ) from error
    if capsule.capsule_id != row.capsule_id:
        # Someone edited the stored body; handing it out would re-run something else.
        raise LedgerError(f"capsule {row.capsule_id} in the ledger does not match its content")
    return capsule


def _normalized_run(run: ExperimentRun) -> ExperimentRun:
    """The run as a read returns it: UTC time, float metrics, string tags, JSON-plain config."""
    return replace(
        run,
        at=utc(run.at),
        config=json.loads(canonical_json(dict(run.config))),
        metrics=float_metrics(run.metrics),
        tags=string_map(run.tags),
        model_version=None if run.model_version is None else int(run.model_version),
        criterion_met=None if run.criterion_met is None else bool(run.criterion_met),
    )


def _run_values(stored: ExperimentRun) -> dict[str, Any]:
    """The row's columns apart from its key, the run id."""
    return {
        "model_name": stored.model_name,
        "model_version": stored.model_version,
        "capsule_id": stored.capsule_id,
        "at": stored.at,
        "config": canonical_json(stored.config),
        "metrics": canonical_json(stored.metrics),
        "tags": canonical_json(stored.tags),
        "dataset_version": stored.dataset_version,
        "feature_set_version": stored.feature_set_version,
        "hypothesis": stored.hypothesis,
        "success_criterion": stored.success_criterion,
        "criterion_met": stored.criterion_met,
    }


def _first_appearance_details(stored: ExperimentRun) -> dict[str, Any]:
    return {
        "model_name": stored.model_name,
        "model_version": stored.model_version,
        "capsule_id": stored.capsule_id,
        "dataset_version": stored.dataset_version,
        "feature_set_version": stored.feature_set_version,
        "hypothesis": stored.hypothesis,
        "success_criterion": stored.success_criterion,
    }


def _to_experiment_run(row: Row[Any]) -> ExperimentRun:
    return ExperimentRun(
        run_id=row.run_id,
        model_name=row.model_name,
        model_version=None if row.model_version is None else int(row.model_version),
        capsule_id=row.capsule_id,
        at=utc(row.at),
        config=loads_json(row.config),
        metrics=float_metrics(loads_json(row.metrics)),
        tags=string_map(loads_json(row.tags)),
        dataset_version=row.dataset_version,
        feature_set_version=row.feature_set_version,
        hypothesis=row.hypothesis,
        success_criterion=row.success_criterion,
        criterion_met=None if row.criterion_met is None else bool(row.criterion_met),
    )
