"""Staged rollouts of a model version: one row per rollout, one per stage as it is reached.

Each stage's services and verdict are kept, so which service served what is recoverable for every
moment of a rollout; the final promotion moves ``champion`` in the same transaction as the last
verdict, so the alias and the rollout never disagree about what was promoted.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Row, insert, select, update

from aiops_assets.core.ledger.encoding import canonical_json, loads_json, utc
from aiops_assets.core.ledger.records import LedgerError, Rollout, RolloutStage
from aiops_assets.core.ledger.schema import rollout_stages, rollouts, version_checks
from aiops_assets.core.ledger.versions import VersionsPart, version_row


class RolloutsPart(VersionsPart):
    """Opening a rollout, closing its stages with verdicts, and reading rollouts back."""

    def start_rollout(
        self,
        model_name: str,
        to_version: int,
        *,
        from_version: int | None,
        plan: Mapping[str, Any],
        stage_name: str,
        services: Sequence[str],
        actor: str,
        reason: str,
        gate_override: Mapping[str, Any] | None = None,
    ) -> Rollout:
        """Open a rollout with its first (canary) stage active, in one audited transaction; a
        rollout of a version the gate refused carries its override (the reason, and the refusal
        it overrides) in the start's audit entry."""
        with self._write() as conn:
            self._lock_head(conn)
            _require_startable(conn, model_name, to_version)
            now = self._now()
            inserted = conn.execute(
                insert(rollouts).values(
                    model_name=model_name,
                    to_version=to_version,
                    from_version=from_version,
                    plan=canonical_json(dict(plan)),
                    status="running",
                    actor=actor,
                    started_at=now,
                    updated_at=now,
                )
            ).inserted_primary_key
            assert inserted is not None
            rollout_id = int(inserted[0])
            self._append(
                conn,
                "rollout_start",
                actor=actor,
                subject=f"{model_name}:rollout:{rollout_id}",
                details={
                    "to_version": to_version,
                    "from_version": from_version,
                    "plan": dict(plan),
                    "reason": reason,
                    **({} if gate_override is None else {"gate_override": dict(gate_override)}),
                },
                run_id=None,
                at=now,
            )
            self._add_stage(conn, rollout_id, model_name, 0, stage_name, services, actor, now)
            return self._rollout(conn, rollout_id)

    def update_rollout(
        self,
        rollout_id: int,
        *,
        stage_index: int,
        stage_status: str,
        evidence: Mapping[str, Any],
        actor: str,
        rollout_status: str = "running",
        next_stage: tuple[str, Sequence[str]] | None = None,
        promote_reason: str | None = None,
    ) -> Rollout:
        """Close the active stage with its verdict; open the next one, finish or halt.

        ``promote_reason`` moves ``champion`` to the rolled-out version in the same
        transaction: the alias and the rollout never disagree about what was promoted.
        """
        with self._write() as conn:
            rollout, now = self._close_active_stage(
                conn,
                rollout_id,
                stage_index,
                evidence,
                actor,
                action="rollout_stage",
                stage_status=stage_status,
                rollout_status=rollout_status,
            )
            if next_stage is not None:
                name, services = next_stage
                self._add_stage(
                    conn,
                    rollout_id,
                    rollout.model_name,
                    stage_index + 1,
                    name,
                    services,
                    actor,
                    now,
                )
            if promote_reason is None:
                return self._rollout(conn, rollout_id)
            # The last pass promotes, and each stage's verdict becomes a check of the new
            # champion: a version adopted by a rollout carries the evidence it was adopted on.
            self._promote_rolled_out(conn, rollout, actor, promote_reason, now)
            finished = self._rollout(conn, rollout_id)
            self._record_stage_checks(conn, finished, actor, now)
            return finished

    def _close_active_stage(
        self,
        conn: Connection,
        rollout_id: int,
        stage_index: int,
        evidence: Mapping[str, Any],
        actor: str,
        *,
        action: str,
        stage_status: str,
        rollout_status: str | None,
    ) -> tuple[Rollout, datetime]:
        """Give the active stage its status and evidence (and the rollout its status), audited;
        ``rollout_status`` None leaves the rollout as it is (a stage that waits)."""
        self._lock_head(conn)
        rollout = self._rollout(conn, rollout_id)
        active = _active_stage(rollout, rollout_id, stage_index)
        now = self._now()
        _close_stage(conn, rollout_id, stage_index, stage_status, evidence, actor, now)
        values: dict[str, Any] = {"updated_at": now}
        if rollout_status is not None:
            values["status"] = rollout_status
        conn.execute(update(rollouts).where(rollouts.c.id == rollout_id).values(**values))
        details = {
            "stage": stage_index,
            "name": active.name,
            "services": list(active.services),
            "status": stage_status,
            **({} if rollout_status is None else {"rollout_status": rollout_status}),
            "evidence": json.loads(canonical_json(dict(evidence))),
        }
        self._append(
            conn,
            action,
            actor=actor,
            subject=f"{rollout.model_name}:rollout:{rollout_id}",
            details=details,
            run_id=None,
            at=now,
        )
        return rollout, now

    def get_rollout(self, rollout_id: int) -> Rollout | None:
        with self._read() as conn:
            exists = conn.execute(select(rollouts.c.id).where(rollouts.c.id == rollout_id)).scalar()
            return None if exists is None else self._rollout(conn, rollout_id)

    def rollouts(self, model_name: str) -> list[Rollout]:
        with self._read() as conn:
            ids = conn.execute(
                select(rollouts.c.id)
                .where(rollouts.c.model_name == model_name)
                .order_by(rollouts.c.id)
            ).scalars()
            return [self._rollout(conn, int(rollout_id)) for rollout_id in ids]

    def record_stage_evidence(
        self, rollout_id: int, *, stage_index: int, evidence: Mapping[str, Any], actor: str
    ) -> Rollout:
        """Keep the active stage active with what it has seen so far (it waits for more)."""
        with self._write() as conn:
            self._close_active_stage(
                conn,
                rollout_id,
                stage_index,
                evidence,
                actor,
                action="rollout_stage_waiting",
                stage_status="active",
                rollout_status=None,
            )
            return self._rollout(conn, rollout_id)

    def _record_stage_checks(
        self, conn: Connection, rollout: Rollout, actor: str, at: datetime
    ) -> None:
        checks = [
            {
                "model_name": rollout.model_name,
                "version": rollout.to_version,
                "check_name": f"rollout_stage:{stage.name}",
                "partition_key": None,
                "passed": stage.status == "passed",
                "severity": "ERROR",
                "metrics": canonical_json(dict(stage.evidence)),
                "run_id": None,
                "at": at,
            }
            for stage in rollout.stages
        ]
        for values in checks:
            conn.execute(insert(version_checks).values(**values))
        self._append(
            conn,
            "rollout_checks",
            actor=actor,
            subject=f"{rollout.model_name}:v{rollout.to_version}",
            details={
                "rollout_id": rollout.rollout_id,
                "checks": {str(values["check_name"]): bool(values["passed"]) for values in checks},
            },
            run_id=None,
            at=at,
        )

    def _add_stage(
        self,
        conn: Connection,
        rollout_id: int,
        model_name: str,
        index: int,
        name: str,
        services: Sequence[str],
        actor: str,
        at: datetime,
    ) -> None:
        conn.execute(
            insert(rollout_stages).values(
                rollout_id=rollout_id,
                stage_index=index,
                name=name,
                services=canonical_json(sorted(services)),
                status="active",
                evidence=canonical_json({}),
                actor=actor,
                at=at,
            )
        )
        self._append(
            conn,
            "rollout_stage",
            actor=actor,
            subject=f"{model_name}:rollout:{rollout_id}",
            details={
                "stage": index,
                "name": name,
                "services": sorted(services),
                "status": "active",
            },
            run_id=None,
            at=at,
        )

    def _promote_rolled_out(
        self, conn: Connection, rollout: Rollout, actor: str, reason: str, at: datetime
    ) -> None:
        self._move_alias(
            conn,
            rollout.model_name,
            "champion",
            rollout.to_version,
            actor=actor,
            reason=reason,
            kind="promote",
            run_id=None,
            at=at,
        )

    def _rollout(self, conn: Connection, rollout_id: int) -> Rollout:
        row = conn.execute(select(rollouts).where(rollouts.c.id == rollout_id)).one_or_none()
        if row is None:
            raise LedgerError(f"no rollout {rollout_id}")
        stages = conn.execute(
            select(rollout_stages)
            .where(rollout_stages.c.rollout_id == rollout_id)
            .order_by(rollout_stages.c.stage_index)
        ).all()
        return Rollout(
            rollout_id=int(row.id),
            model_name=row.model_name,
            to_version=int(row.to_version),
            from_version=None if row.from_version is None else int(row.from_version),
            plan=loads_json(row.plan),
            status=row.status,
            actor=row.actor,
            started_at=utc(row.started_at),
            updated_at=utc(row.updated_at),
            stages=tuple(_to_stage(stage) for stage in stages),
        )


def _require_startable(conn: Connection, model_name: str, to_version: int) -> None:
    """The version exists and no other rollout of the model is still running."""
    if version_row(conn, model_name, version=to_version) is None:
        raise LedgerError(f"cannot roll out {model_name} v{to_version}: not registered")
    running = conn.execute(
        select(rollouts.c.id).where(
            rollouts.c.model_name == model_name, rollouts.c.status == "running"
        )
    ).scalar()
    if running is not None:
        raise LedgerError(
            f"{model_name} already has rollout {running} running; finish or halt it first"
        )


def _active_stage(rollout: Rollout, rollout_id: int, stage_index: int) -> RolloutStage:
    """The stage a verdict closes: the rollout must be running and that stage still active."""
    if rollout.status != "running":
        raise LedgerError(f"rollout {rollout_id} is {rollout.status}, not running")
    active = rollout.stages[-1]
    if active.index != stage_index or active.status != "active":
        raise LedgerError(
            f"rollout {rollout_id}'s active stage is {active.index} ({active.status}), "
            f"not {stage_index}"
        )
    return active


def _close_stage(
    conn: Connection,
    rollout_id: int,
    stage_index: int,
    status: str,
    evidence: Mapping[str, Any],
    actor: str,
    at: datetime,
) -> None:
    conn.execute(
        update(rollout_stages)
        .where(
            rollout_stages.c.rollout_id == rollout_id,
            rollout_stages.c.stage_index == stage_index,
        )
        .values(status=status, evidence=canonical_json(dict(evidence)), actor=actor, at=at)
    )


def _to_stage(stage: Row[Any]) -> RolloutStage:
    return RolloutStage(
        index=int(stage.stage_index),
        name=stage.name,
        services=tuple(json.loads(stage.services)),
        status=stage.status,
        evidence=loads_json(stage.evidence),
        actor=stage.actor,
        at=utc(stage.at),
    )
