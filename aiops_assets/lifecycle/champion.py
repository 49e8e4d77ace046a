"""The champion asset's moves, for any registered model: gate, promote, rollback, rollout, adopt.

The registry in the ledger is the source of truth for which version is champion; the champion
asset is how every change of that alias happens, so each change is also a materialization the UI
shows with its evidence. What differs between models is only the gate's evidence (which rows both
models are scored on, which checks had to pass) and the services a rollout moves: the caller
hands those in, and everything else here is the same for the reference detector and a host's
classifier.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal

import dagster as dg

from aiops_assets.audit_head import observe_audit_head
from aiops_assets.core.ledger import Ledger, LedgerError, ModelVersion, StaleChampionError
from aiops_assets.core.mlflow_bridge import mirror_after_move
from aiops_assets.core.policy import authorize, identify
from aiops_assets.core.promotion import GateConfig, ScoredRows, decide
from aiops_assets.core.registry import CHALLENGER, CHAMPION, describe, verify_model
from aiops_assets.core.rollout import RolloutError, RolloutPlan, running_rollout, start_rollout
from aiops_assets.core.store import ArtifactRef, ArtifactStore
from aiops_assets.lifecycle.evidence import gate_numbers
from aiops_assets.metadata import artifact_metadata, float_metrics, versioned_output
from aiops_assets.resources import AccessPolicyResource, AlertSinkResource

# A gate that lost a race with another gate decides again against the new champion; more
# losses in a row than this mean something keeps moving the champion, which a person should see.
GATE_ATTEMPTS = 5
ACTIONS = ("gate", "promote", "rollback", "rollout", "adopt")

_GATE_DEFAULTS = GateConfig()


class ChampionConfig(dg.Config):
    """What this materialization of the champion does.

    ``gate`` (the default, what training runs do) promotes the challenger only when the promotion
    gate passes; ``promote`` moves the alias to ``version`` (default: the challenger) by the
    acting identity's authority, skipping the gate; ``rollback`` restores the most recent earlier
    champion whose checks passed (or ``version``). ``rollout`` starts a staged rollout of
    ``version`` (default: the challenger) by the plan in ``rollout_plan`` (a YAML path; empty for
    the packaged plan). ``adopt`` materializes the champion the registry already names, after a
    completed rollout moved the alias; it records nothing. ``reason`` is recorded with the change.
    The remaining fields configure the gate (see ``core/promotion.py``).
    """

    action: Literal["gate", "promote", "rollback", "rollout", "adopt"] = "gate"
    version: int = 0
    reason: str = ""
    rollout_plan: str = ""
    # A rollout of a version the gate refused: allowed only with both, audited with the refusal.
    override_gate: bool = False
    override_reason: str = ""
    metric: str = _GATE_DEFAULTS.metric
    margin: float = _GATE_DEFAULTS.margin
    bootstrap_samples: int = _GATE_DEFAULTS.bootstrap_samples
    confidence: float = _GATE_DEFAULTS.confidence
    block_rows: int = _GATE_DEFAULTS.block_rows
    seed: int = _GATE_DEFAULTS.seed
    shadow_partitions: int = 2
    shadow_metric: str = _GATE_DEFAULTS.shadow_metric
    shadow_tolerance: float = _GATE_DEFAULTS.shadow_tolerance
    max_alert_rate_increase: float = _GATE_DEFAULTS.max_alert_rate_increase

    def gate_config(self) -> GateConfig:
        return GateConfig(
            metric=self.metric,
            margin=self.margin,
            bootstrap_samples=self.bootstrap_samples,
            confidence=self.confidence,
            block_rows=self.block_rows,
            seed=self.seed,
            shadow_metric=self.shadow_metric,
            shadow_tolerance=self.shadow_tolerance,
            max_alert_rate_increase=self.max_alert_rate_increase,
        )


@dataclass(frozen=True)
class GateEvidence:
    """What the gate weighs: both models on the holdout (and on served days), the checks."""

    holdout: tuple[ScoredRows, ScoredRows] | None
    blocking_checks: dict[str, bool]
    shadow: tuple[ScoredRows, ScoredRows] | None = None
    shadow_partitions: Sequence[str] = field(default_factory=list)


# (candidate version, champion version or None) -> the evidence
EvidenceFn = Callable[[ModelVersion, ModelVersion | None], GateEvidence]


@dataclass
class ChampionMoves:
    """The ways the champion alias moves, sharing the run's ledger, store and alert sink."""

    context: dg.AssetExecutionContext
    registry: Ledger
    store: ArtifactStore
    alert_sink: AlertSinkResource
    actor: str
    model_name: str
    asset_name: str

    @property
    def run_id(self) -> str:
        return self.context.run.run_id

    def alert(self, kind: str, severity: str, summary: str) -> bool:
        """Send an alert; a sink that is down is logged, never fails the registry change."""
        return self.alert_sink.notify(
            self.context.log,
            kind=kind,
            severity=severity,
            summary=summary,
            asset=self.asset_name,
            run_id=self.run_id,
        )

    def output(
        self, version: ModelVersion, decision: str, reason: str, extra: dict[str, object]
    ) -> dg.Output[ArtifactRef]:
        ref = verify_model(self.store, version)
        self.context.log.info(f"champion: {decision}: {reason}")
        return versioned_output(
            ref,
            {
                **artifact_metadata(ref),
                **float_metrics(version.metrics),
                "model_version": dg.MetadataValue.int(version.version),
                "decision": dg.MetadataValue.text(decision),
                "reason": dg.MetadataValue.text(reason),
                "actor": dg.MetadataValue.text(self.actor),
                **self.mirror(),
                **extra,
            },
        )

    def mirror(self) -> dict[str, dg.MetadataValue]:
        """Bring an MLflow registry in line after the move, when AIOPS_MLFLOW_TRACKING_URI names
        one (core/mlflow_bridge.py); MLflow being down never fails the move the ledger holds."""
        report = mirror_after_move(self.registry, self.model_name)
        if report is None:
            return {}
        if report.error is not None:
            self.context.log.warning(f"MLflow not mirrored: {report.error}")
        status = "error" if report.error else ("in sync" if report.in_sync else "drift left")
        return {"mlflow_mirror": dg.MetadataValue.text(status)}

    def authorize(self, access_policy: AccessPolicyResource, action: str) -> None:
        try:
            authorize(
                access_policy.get_policy(),
                self.registry,
                actor=self.actor,
                action=action,
                subject=f"{self.model_name}:{CHAMPION}",
                run_id=self.run_id,
            )
        except PermissionError as error:
            self.alert("access_denied", "WARN", str(error))
            raise dg.Failure(description=str(error)) from error

    def gate(
        self,
        config: ChampionConfig,
        candidate_sha256: str,
        evidence: EvidenceFn,
        access_policy: AccessPolicyResource,
    ) -> dg.Output[ArtifactRef]:
        """Decide, and decide again when a concurrent run moved the champion meanwhile."""
        for attempt in range(1, GATE_ATTEMPTS + 1):
            try:
                return self._gate_once(config, candidate_sha256, evidence, access_policy)
            except StaleChampionError as error:
                if attempt == GATE_ATTEMPTS:
                    raise dg.Failure(description=str(error)) from error
                self.context.log.warning(f"{error}; deciding again (attempt {attempt + 1})")
        raise AssertionError("unreachable")

    def _gate_once(
        self,
        config: ChampionConfig,
        candidate_sha256: str,
        evidence: EvidenceFn,
        access_policy: AccessPolicyResource,
    ) -> dg.Output[ArtifactRef]:
        candidate = self.registry.find_version(self.model_name, candidate_sha256)
        if candidate is None:
            raise dg.Failure(
                description=(
                    f"candidate {candidate_sha256[:12]} is not registered in the ledger at "
                    f"{self.registry.url}; materialize the candidate first"
                )
            )
        champion = self.registry.get_alias(self.model_name, CHAMPION)
        if champion is not None and champion.version == candidate.version:
            return self.output(
                champion,
                "kept",
                f"{describe(candidate)} already the champion; nothing to decide",
                {"candidate_version": dg.MetadataValue.int(candidate.version)},
            )
        rollout = running_rollout(self.registry, self.model_name)
        if rollout is not None and champion is not None:
            return self.output(
                champion,
                "kept",
                f"staged rollout {rollout.rollout_id} of v{rollout.to_version} is running; the "
                f"gate does not judge {describe(candidate)} until it completes or halts",
                {},
            )
        weighed = evidence(candidate, champion)
        decision = decide(
            candidate_id=describe(candidate),
            champion_id=None if champion is None else describe(champion),
            blocking_checks=weighed.blocking_checks,
            holdout=weighed.holdout,
            shadow=weighed.shadow,
            config=config.gate_config(),
            shadow_partitions=list(weighed.shadow_partitions),
        )
        if decision.promote:
            self.authorize(access_policy, "promote")
        self.registry.record_promotion(
            self.model_name,
            candidate.version,
            champion_version=None if champion is None else champion.version,
            promoted=decision.promote,
            reason=decision.reason,
            evidence=decision.evidence,
            actor=self.actor,
            run_id=self.run_id,
        )
        if decision.promote:
            self.alert("promotion", "INFO", f"{describe(candidate)} promoted: {decision.reason}")
        elif champion is not None:
            self.alert(
                "promotion_refused",
                "INFO",
                f"{describe(candidate)} not promoted: {decision.reason}",
            )
        serving = candidate if decision.promote or champion is None else champion
        return self.output(
            serving,
            "promoted" if decision.promote else "kept",
            decision.reason,
            {
                "candidate_version": dg.MetadataValue.int(candidate.version),
                "previous_champion_version": dg.MetadataValue.int(
                    0 if champion is None else champion.version
                ),
                "gate_report": dg.MetadataValue.md(decision.markdown()),
                **gate_numbers(decision),
                **float_metrics(candidate.metrics, prefix="candidate_"),
            },
        )

    def _target(self, version: int) -> ModelVersion | None:
        if version:
            return self.registry.get_version(self.model_name, version)
        return self.registry.get_alias(self.model_name, CHALLENGER)

    def promote(self, config: ChampionConfig) -> dg.Output[ArtifactRef]:
        target = self._target(config.version)
        if target is None:
            raise dg.Failure(description=f"{self.model_name} has no challenger to promote")
        verify_model(self.store, target)
        previous = self.registry.get_alias(self.model_name, CHAMPION)
        reason = config.reason or f"manual promotion by {self.actor} (gate skipped)"
        self.registry.record_promotion(
            self.model_name,
            target.version,
            champion_version=None if previous is None else previous.version,
            promoted=True,
            reason=reason,
            evidence={"manual": True, "gate": "skipped"},
            actor=self.actor,
            run_id=self.run_id,
        )
        self.alert("promotion", "WARN", f"{describe(target)} promoted manually: {reason}")
        return self.output(target, "promoted manually", reason, {})

    def start_rollout(
        self, config: ChampionConfig, services: Sequence[str]
    ) -> dg.Output[ArtifactRef]:
        """Open a staged rollout; the champion keeps serving every service outside its canary."""
        target = self._target(config.version)
        current = self.registry.get_alias(self.model_name, CHAMPION)
        if target is None or current is None:
            raise dg.Failure(
                description=(
                    f"a staged rollout needs a champion and a version to roll out; "
                    f"{self.model_name} has "
                    f"{'no champion' if current is None else 'no such version'}"
                )
            )
        verify_model(self.store, target)
        reason = config.reason or f"staged rollout of {describe(target)} by {self.actor}"
        if config.override_gate and not config.override_reason.strip():
            raise dg.Failure(
                description="override_gate needs an override_reason; it is recorded in the audit log"
            )
        try:
            plan = RolloutPlan.load(config.rollout_plan or None)
            rollout = start_rollout(
                self.registry,
                self.model_name,
                target.version,
                plan,
                sorted(services),
                actor=self.actor,
                reason=reason,
                override_reason=config.override_reason if config.override_gate else None,
            )
        except (RolloutError, LedgerError) as error:
            raise dg.Failure(description=f"cannot start the rollout: {error}") from error
        canary = rollout.stages[0]
        summary = (
            f"staged rollout {rollout.rollout_id} of {describe(target)} started: stage "
            f"{canary.name} serves {', '.join(canary.services)}; {describe(current)} serves the rest"
        )
        self.alert("rollout", "INFO", summary)
        return self.output(
            current,
            "rollout started",
            summary,
            {
                "rollout_id": dg.MetadataValue.int(rollout.rollout_id),
                "rollout_version": dg.MetadataValue.int(target.version),
                "rollout_plan": dg.MetadataValue.json(rollout.plan),
            },
        )

    def adopt(self) -> dg.Output[ArtifactRef]:
        """The champion the registry names, as this asset's value (after a rollout completed)."""
        current = self.registry.get_alias(self.model_name, CHAMPION)
        if current is None:
            raise dg.Failure(description=f"{self.model_name} has no champion to adopt")
        history = self.registry.alias_history(self.model_name, CHAMPION)
        reason = history[-1].reason if history else "the registry's champion"
        return self.output(current, "adopted", reason, {})

    def rollback(self, config: ChampionConfig) -> dg.Output[ArtifactRef]:
        current = self.registry.get_alias(self.model_name, CHAMPION)
        if current is None:
            raise dg.Failure(description=f"{self.model_name} has no champion to roll back")
        target = (
            self.registry.get_version(self.model_name, config.version)
            if config.version
            else self.registry.last_known_good(self.model_name, alias=CHAMPION)
        )
        if target is None or target.version == current.version:
            message = (
                f"cannot roll back {describe(current)}: no earlier champion has passing checks "
                "on record; it stays in service"
            )
            self.alert("rollback", "ERROR", message)
            raise dg.Failure(description=message)
        verify_model(self.store, target)
        reason = config.reason or f"manual rollback by {self.actor}"
        self.registry.set_alias(
            self.model_name,
            CHAMPION,
            target.version,
            actor=self.actor,
            reason=reason,
            kind="rollback",
            run_id=self.run_id,
        )
        self.alert(
            "rollback", "ERROR", f"{describe(current)} rolled back to {describe(target)}: {reason}"
        )
        return self.output(
            target,
            "rolled back",
            reason,
            {"rolled_back_version": dg.MetadataValue.int(current.version)},
        )


def move_champion(
    context: dg.AssetExecutionContext,
    config: ChampionConfig,
    moves: ChampionMoves,
    access_policy: AccessPolicyResource,
    *,
    candidate_sha256: str,
    evidence: EvidenceFn,
    services: Callable[[], Sequence[str]],
) -> dg.Output[ArtifactRef]:
    """One materialization of a champion asset: the configured action, authorized and audited;
    whatever happened (a move, a refusal), the audit head it left is witnessed."""
    try:
        if config.action == "gate":
            return moves.gate(config, candidate_sha256, evidence, access_policy)
        if config.action == "adopt":
            return moves.adopt()
        # A rollout ends in a promotion: whoever may start one must be allowed to promote.
        moves.authorize(access_policy, "promote" if config.action == "rollout" else config.action)
        if config.action == "promote":
            return moves.promote(config)
        if config.action == "rollout":
            return moves.start_rollout(config, services())
        return moves.rollback(config)
    finally:
        observe_audit_head(context, moves.registry)


def acting_moves(
    context: dg.AssetExecutionContext,
    registry: Ledger,
    store: ArtifactStore,
    alert_sink: AlertSinkResource,
    *,
    action: str,
    model_name: str,
    asset_name: str,
) -> ChampionMoves:
    """The moves under the run's acting identity (a malformed one is refused and audited)."""
    actor = identify(
        registry,
        action=action,
        subject=f"{model_name}:champion",
        tags=context.run.tags,
        run_id=context.run.run_id,
    )
    return ChampionMoves(context, registry, store, alert_sink, actor, model_name, asset_name)
