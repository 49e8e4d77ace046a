"""The demo's feature-set story: one set from experimental to production, then the flag switch."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import yaml

from aiops_assets import LedgerResource
from aiops_assets.core.features import FeatureSetSpec
from aiops_assets.core.flags import DEFAULT_FLAGS_PATH, apply_flags
from aiops_assets.core.lifecycle import (
    MIN_STABILITY_DAYS,
    assess_feature_set,
    promote_feature_set,
    register_feature_set,
    run_ablation,
    transition,
)
from aiops_assets.core.yaml_mapping import parse_yaml_mapping
from aiops_assets.reference.assets.features import FeaturesConfig
from aiops_assets.reference.assets.models import TrainingSetRunConfig
from aiops_assets.reference.demo.steps import DemoSteps
from aiops_assets.reference.sandbox import ReadOnlyStore
from aiops_assets.reference.settings import PipelineSettings

if TYPE_CHECKING:
    from aiops_assets.core.ledger import Ledger

# The demo's experiment: a rolling statistic counts only once its window holds half an hour of
# five-minute points (6), not a quarter of an hour (3), so a series resuming after a gap does
# not page on three points. Same columns, so the champion can score it. The change is for
# robustness, so the criterion, declared here before the ablation trains, is non-inferiority:
# PR-AUC within half a point of production and no more false alarms.
DEMO_FEATURE_SET_CHANGES: dict[str, Any] = {"version": 2, "min_periods": 6}
DEMO_ABLATION_CRITERION = "delta.pr_auc>=-0.005, delta.false_alarm_rate<=0.0"
DEMO_ACTOR = "local:demo"


def feature_set_lifecycle(
    settings: PipelineSettings, steps: DemoSteps, days: Sequence[str]
) -> None:
    """One feature set from experimental to production, by the lifecycle's own rules, then the
    feature flag that makes every service compute it from the next day on.

    The set in service is registered as production first (the bootstrap a team does once). The
    candidate must pass quality, leakage and drift stability on the first days (before the
    scenario's incidents) and an ablation against production over the whole history, with its
    criterion declared before anything trains. A refusal is shown, and the flags stay.
    """
    registry = LedgerResource(
        url=settings.ledger_url,
        key_file=str(settings.audit_key_file),
        witness_file=str(settings.audit_witness_file),
    ).get_ledger()
    production = FeaturesConfig().spec()
    candidate = FeatureSetSpec.from_dict({**production.to_dict(), **DEMO_FEATURE_SET_CHANGES})
    steps.announce(
        None,
        ("feature set lifecycle",),
        f"{candidate.version_id}: min_periods {production.min_periods} -> "
        f"{candidate.min_periods}, ablation criterion {DEMO_ABLATION_CRITERION!r}",
    )
    started = steps.clock()
    _register(registry, production, candidate)
    store = ReadOnlyStore(settings.store_root)
    available = [day for day in days if day in set(store.snapshot_days())]
    holdout_days = TrainingSetRunConfig().holdout_days
    if len(available) <= max(holdout_days, MIN_STABILITY_DAYS):
        steps.note(
            f"skipped: {len(available)} day(s) of history leave an ablation with "
            f"{holdout_days} holdout days nothing to train on"
        )
        return
    promoted = _judge(settings, steps, registry, store, available, production, candidate)
    if promoted:
        _switch_flags(settings, registry, candidate)
    outcome = "promoted to production; flags switched" if promoted else "refused"
    steps.note(f"{outcome} in {steps.clock() - started:.1f}s")


def _register(registry: Ledger, production: FeatureSetSpec, candidate: FeatureSetSpec) -> None:
    register_feature_set(registry, production, actor=DEMO_ACTOR, status="production")
    register_feature_set(registry, candidate, actor=DEMO_ACTOR)
    transition(
        registry,
        candidate.version_id,
        "candidate",
        actor=DEMO_ACTOR,
        reason="explored in the sandbox; ready to be judged",
    )


def _judge(
    settings: PipelineSettings,
    steps: DemoSteps,
    registry: Ledger,
    store: ReadOnlyStore,
    available: list[str],
    production: FeatureSetSpec,
    candidate: FeatureSetSpec,
) -> bool:
    """The ablation over the history, then the lifecycle's criteria; each one is shown."""
    run = run_ablation(
        store.window_telemetry(available),
        candidate,
        production,
        available,
        hypothesis="statistics over three points page on noise after a gap; six lose nothing",
        success_criterion=DEMO_ABLATION_CRITERION,
        run_id=f"demo-ablation-{candidate.spec_hash[:12]}",
    )
    registry.record_experiment_run(run, actor=DEMO_ACTOR)
    window = available[: MIN_STABILITY_DAYS + 1]
    decision = promote_feature_set(
        registry,
        candidate.version_id,
        assessment=assess_feature_set(
            store.window_telemetry(window), candidate, window, baseline=production
        ),
        ablation_run_id=run.run_id,
        actor=DEMO_ACTOR,
        environment=settings.deployment,
    )
    for criterion in decision.criteria:
        steps.note(f"{'pass' if criterion.passed else 'FAIL'} {criterion.name}: {criterion.detail}")
    return bool(decision.promoted)


def _switch_flags(settings: PipelineSettings, registry: Ledger, candidate: FeatureSetSpec) -> None:
    latest = registry.latest_flags()
    flags = parse_yaml_mapping(
        latest.body if latest else DEFAULT_FLAGS_PATH.read_text(), what="the flags in service"
    )
    flags["flags"]["features"]["default"] = candidate.version_id
    apply_flags(
        registry,
        yaml.safe_dump(flags, sort_keys=False),
        actor=DEMO_ACTOR,
        reason=f"{candidate.version_id} promoted: every service computes it",
        environment=settings.deployment,
    )
