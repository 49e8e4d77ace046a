"""Version checks and promotion decisions: the evidence behind every move of ``champion``.

A promotion is recorded in the same transaction as the alias move it causes, so there is never a
champion without the decision that made it, nor a recorded promotion whose champion did not move.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from sqlalchemy import Connection, Row, insert, select

from aiops_assets.core.ledger.encoding import canonical_json, loads_json, utc
from aiops_assets.core.ledger.records import (
    LedgerError,
    ModelVersion,
    PromotionRecord,
    StaleChampionError,
    VersionCheck,
)
from aiops_assets.core.ledger.schema import alias_history, promotions, version_checks
from aiops_assets.core.ledger.versions import (
    VersionsPart,
    alias_version,
    to_version,
    version_row,
)


class PromotionsPart(VersionsPart):
    """Check results per version, last-known-good look-ups and the promotion gate's decisions."""

    # --- checks -----------------------------------------------------------------------------

    def record_check(
        self,
        model_name: str,
        version: int,
        check_name: str,
        *,
        passed: bool,
        partition: str | None = None,
        severity: str = "ERROR",
        metrics: Mapping[str, Any] | None = None,
        run_id: str | None = None,
    ) -> VersionCheck:
        """Append a check result; earlier results stay, the latest per partition is in force."""
        with self._write() as conn:
            if version_row(conn, model_name, version=version) is None:
                raise LedgerError(
                    f"cannot record {check_name!r} for {model_name} v{version}: "
                    "no such version is registered"
                )
            now = self._now()
            metrics_text = canonical_json(dict(metrics or {}))
            conn.execute(
                insert(version_checks).values(
                    model_name=model_name,
                    version=version,
                    check_name=check_name,
                    partition_key=partition,
                    passed=bool(passed),
                    severity=severity,
                    metrics=metrics_text,
                    run_id=run_id,
                    at=now,
                )
            )
        return VersionCheck(
            model_name=model_name,
            version=version,
            check_name=check_name,
            partition=partition,
            passed=bool(passed),
            severity=severity,
            metrics=json.loads(metrics_text),
            run_id=run_id,
            at=now,
        )

    def version_checks(self, model_name: str, version: int) -> list[VersionCheck]:
        with self._read() as conn:
            return _checks(conn, model_name, version)

    def last_known_good(self, model_name: str, *, alias: str = "champion") -> ModelVersion | None:
        """The most recent earlier holder of ``alias`` whose checks, as they stand, all pass.

        A version never checked is not "good", only unknown; rolling back to it would trade a
        known failure for a guess.
        """
        with self._read() as conn:
            current = alias_version(conn, model_name, alias)
            holders = conn.execute(
                select(alias_history.c.to_version)
                .where(alias_history.c.model_name == model_name, alias_history.c.alias == alias)
                .order_by(alias_history.c.id.desc())
            ).scalars()
            seen: set[int] = set()
            for holder in holders:
                version = int(holder)
                if version == current or version in seen:
                    continue
                seen.add(version)
                if _all_checks_pass(conn, model_name, version):
                    row = version_row(conn, model_name, version=version)
                    if row is not None:
                        return to_version(row)
        return None

    # --- promotions -------------------------------------------------------------------------

    def record_promotion(
        self,
        model_name: str,
        candidate_version: int,
        *,
        champion_version: int | None,
        promoted: bool,
        reason: str,
        evidence: Mapping[str, Any],
        actor: str,
        run_id: str | None = None,
    ) -> PromotionRecord:
        """Record a gate decision; a promotion moves ``champion`` in the same transaction.

        One transaction means there is never a champion without the decision that made it, nor
        a recorded promotion whose champion did not move. A promotion decided against a champion
        that has moved since raises :class:`StaleChampionError` and records nothing: otherwise
        two gates deciding at once would replace a champion neither of them compared against.
        """
        with self._write() as conn:
            self._lock_head(conn)
            _require_current_champion(
                conn, model_name, candidate_version, champion_version, promoted=promoted
            )
            now = self._now()
            evidence_text = canonical_json(dict(evidence))
            record = PromotionRecord(
                model_name=model_name,
                candidate_version=candidate_version,
                champion_version=champion_version,
                promoted=bool(promoted),
                reason=reason,
                evidence=json.loads(evidence_text),
                actor=actor,
                run_id=run_id,
                at=now,
            )
            conn.execute(insert(promotions).values(**_promotion_values(record, evidence_text)))
            self._append(
                conn,
                "promotion_decision",
                actor=actor,
                subject=f"{model_name}:v{candidate_version}",
                details=_decision_details(record, evidence_text),
                run_id=run_id,
                at=now,
            )
            if promoted:
                self._move_alias(
                    conn,
                    model_name,
                    "champion",
                    candidate_version,
                    actor=actor,
                    reason=reason,
                    kind="promote",
                    run_id=run_id,
                    at=now,
                )
        return record

    def promotions(self, model_name: str) -> list[PromotionRecord]:
        with self._read() as conn:
            rows = conn.execute(
                select(promotions)
                .where(promotions.c.model_name == model_name)
                .order_by(promotions.c.id)
            ).all()
        return [_to_promotion(row) for row in rows]


def _require_current_champion(
    conn: Connection,
    model_name: str,
    candidate_version: int,
    champion_version: int | None,
    *,
    promoted: bool,
) -> None:
    """Refuse an unknown candidate, and a promotion judged against a champion since replaced."""
    if version_row(conn, model_name, version=candidate_version) is None:
        raise LedgerError(
            f"cannot record a promotion of {model_name} v{candidate_version}: "
            "no such version is registered"
        )
    current = alias_version(conn, model_name, "champion")
    if promoted and current != champion_version:
        raise StaleChampionError(
            f"{model_name} v{candidate_version} was judged against "
            f"{_version_label(champion_version)}, but the champion is now "
            f"{_version_label(current)}: decide again against the current champion"
        )


def _promotion_values(record: PromotionRecord, evidence_text: str) -> dict[str, Any]:
    return {
        "model_name": record.model_name,
        "candidate_version": record.candidate_version,
        "champion_version": record.champion_version,
        "promoted": record.promoted,
        "reason": record.reason,
        "evidence": evidence_text,
        "actor": record.actor,
        "run_id": record.run_id,
        "at": record.at,
    }


def _decision_details(record: PromotionRecord, evidence_text: str) -> dict[str, Any]:
    return {
        "candidate_version": record.candidate_version,
        "champion_version": record.champion_version,
        "promoted": record.promoted,
        "reason": record.reason,
        "evidence": json.loads(evidence_text),
    }


def _to_promotion(row: Row[Any]) -> PromotionRecord:
    return PromotionRecord(
        model_name=row.model_name,
        candidate_version=int(row.candidate_version),
        champion_version=None if row.champion_version is None else int(row.champion_version),
        promoted=bool(row.promoted),
        reason=row.reason,
        evidence=loads_json(row.evidence),
        actor=row.actor,
        run_id=row.run_id,
        at=utc(row.at),
    )


def _checks(conn: Connection, model_name: str, version: int) -> list[VersionCheck]:
    rows = conn.execute(
        select(version_checks)
        .where(version_checks.c.model_name == model_name, version_checks.c.version == version)
        .order_by(version_checks.c.id)
    ).all()
    return [
        VersionCheck(
            model_name=row.model_name,
            version=int(row.version),
            check_name=row.check_name,
            partition=row.partition_key,
            passed=bool(row.passed),
            severity=row.severity,
            metrics=loads_json(row.metrics),
            run_id=row.run_id,
            at=utc(row.at),
        )
        for row in rows
    ]


def _all_checks_pass(conn: Connection, model_name: str, version: int) -> bool:
    """At least one check, and the latest result per (check, partition) of each passed."""
    latest: dict[tuple[str, str | None], bool] = {}
    for check in _checks(conn, model_name, version):
        latest[(check.check_name, check.partition)] = check.passed
    return bool(latest) and all(latest.values())


def _version_label(version: int | None) -> str:
    return "no champion" if version is None else f"v{version}"
