"""Which suspects can be replayed, and how: the revert (or the apply) that tests each one."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from datetime import date, timedelta
from typing import Any

from aiops_assets.core.incidents import Change, IncidentWindow, Suspect
from aiops_assets.core.incidents.evidence import findings_of
from aiops_assets.diagnosis.replay import ReplaySpec
from aiops_assets.keys import FEATURES_KEY, SCORES_KEY, SNAPSHOT_KEY

_SNAPSHOT = SNAPSHOT_KEY.to_user_string()
_FEATURES = FEATURES_KEY.to_user_string()
_SCORES = SCORES_KEY.to_user_string()
# Suspects whose replay is an apply on the last good partition: the old code is gone.
_DEPLOY_KINDS = ("code", "environment")


def _previous_day(partition: str) -> str:
    return (date.fromisoformat(partition) - timedelta(days=1)).isoformat()


def plan_replays(
    suspects: Sequence[Suspect],
    window: IncidentWindow,
    failing: Sequence[str],
    *,
    limit: int,
    flags_version_at: Callable[[str], int | None],
    snapshot_config_at: Callable[[str], Mapping[str, Any] | None],
    measurable: Sequence[str] = (),
) -> list[ReplaySpec]:
    """Up to ``limit`` replays, for the suspects the prior ranks highest among those that can be
    replayed. ``flags_version_at`` and ``snapshot_config_at`` read how a partition was computed;
    ``measurable`` are the passing partitions whose evaluation computed the metric (a deploy is
    applied to the latest of them before it landed)."""
    if window.last_good is None:
        return []
    good = window.last_good.partition
    bad = window.first_bad.partition
    planned: dict[tuple[Any, ...], ReplaySpec] = {}
    latest = _latest_deploys(suspects)
    for suspect in _replay_order(suspects):
        deploy = _superseding_deploy(suspect.change, latest, good)
        if deploy is None:
            continue
        spec = _spec(
            replace(suspect, change=deploy) if deploy is not suspect.change else suspect,
            window,
            good,
            bad,
            failing,
            flags_version_at,
            snapshot_config_at,
            measurable,
        )
        if spec is not None and deploy is not suspect.change:
            spec = replace(spec, change=suspect.change)
        if spec is None:
            continue
        identity = (spec.direction, spec.partition, repr(sorted(spec.identity().items())[1:]))
        if identity in planned:
            # Two deploys in force on the same day are one replay (today's code has both); its
            # outcome is evidence for each, and timing and lineage order them.
            earlier = planned[identity]
            planned[identity] = replace(earlier, shared_with=(*earlier.shared_with, spec.change))
            continue
        if len(planned) >= limit:
            continue
        planned[identity] = spec
    return list(planned.values())


def _is_deploy(change: Change) -> bool:
    return change.kind in _DEPLOY_KINDS and change.subject in (_SNAPSHOT, _FEATURES, _SCORES)


def _latest_deploys(suspects: Sequence[Suspect]) -> dict[tuple[str, str], Change]:
    latest: dict[tuple[str, str], Change] = {}
    for suspect in suspects:
        change = suspect.change
        if _is_deploy(change):
            slot = (change.kind, change.subject)
            if slot not in latest or change.at > latest[slot].at:
                latest[slot] = change
    return latest


def _superseding_deploy(
    change: Change, latest: Mapping[tuple[str, str], Change], good: str
) -> Change | None:
    """The deploy whose replay measures ``change`` (None: no replay can).

    A deploy's replay applies today's code, which holds every later deploy of the same asset:
    an earlier one cannot be measured alone. Landed by the last good day, it was in force when
    the check passed; landed after, it shares the latest one's replay (the outcome is evidence
    for both, and timing orders them)."""
    if not _is_deploy(change):
        return change
    newest = latest[(change.kind, change.subject)]
    if newest is change or newest.at == change.at:
        return change
    if change.partition is not None and change.partition <= good:
        return None
    return newest


def _replay_order(suspects: Sequence[Suspect]) -> list[Suspect]:
    """Data changes that were characterized first (strongest first), then the rest by prior."""

    def strength(suspect: Suspect) -> float:
        return max(
            (float(f.get("effect") or 0.0) for f in findings_of(suspect.change)), default=0.0
        )

    return sorted(suspects, key=lambda s: (-min(strength(s), 10.0), -s.score))


def _spec(
    suspect: Suspect,
    window: IncidentWindow,
    good: str,
    bad: str,
    failing: Sequence[str],
    flags_version_at: Callable[[str], int | None],
    snapshot_config_at: Callable[[str], Mapping[str, Any] | None],
    measurable: Sequence[str] = (),
) -> ReplaySpec | None:
    change = suspect.change
    details = change.details if isinstance(change.details, Mapping) else {}
    if change.kind == "data" and change.subject == _SNAPSHOT and details.get("service"):
        if not findings_of(change) and not details.get("implicated"):
            return None
        services = tuple(str(s) for s in details.get("services") or [details["service"]])
        donor = str(details.get("donor") or good)
        replaced = tuple(p for p in (_previous_day(bad), bad) if p in failing or p > donor)
        return ReplaySpec(
            change=change,
            direction="revert",
            partition=bad,
            action=f"{', '.join(services)}: telemetry of {', '.join(replaced)} replaced by {donor}'s",
            services=services,
            good_partition=donor,
            replaced_partitions=replaced,
        )
    if change.kind == "config" and change.subject == _SNAPSHOT:
        previous = details.get("previous_config")
        return ReplaySpec(
            change=change,
            direction="revert",
            partition=bad,
            action=f"telemetry_snapshot[{bad}] re-run with the previous config",
            snapshot_config=dict(previous) if isinstance(previous, Mapping) else {},
            rematerialize_snapshot=True,
        )
    if (change.kind == "config" and change.subject == "flags") or change.kind == "feature_set":
        # A pass without the metric (too few labels) vouches for nothing: the flags to go back
        # to are those of the latest day whose evaluation measured it, or those before the
        # suspect when it landed on or before that day.
        reference = _latest_measured(good, measurable)
        in_force = flags_version_at(reference)
        version = _min_known(in_force, _before_flags(change, flags_version_at))
        if version is None:
            return None
        which = f"the flags of {reference}" if version == in_force else "the flags before it"
        return ReplaySpec(
            change=change,
            direction="revert",
            partition=bad,
            action=f"features[{bad}] recomputed with {which} (v{version})",
            flags_version=version,
        )
    if is_model_move(change):
        return model_revert(
            change, window, f"{bad} scored by v{change.before} instead of v{change.after}"
        )
    if _is_deploy(change):
        # Applied to a day computed before the deploy: the last good day may already run it.
        before = good
        if change.partition and change.partition <= good:
            before = _previous_day(change.partition)
        # A day whose labels were too few to compute the metric cannot show the deploy's effect.
        before = _latest_measured(before, measurable)
        on_snapshot = change.subject == _SNAPSHOT
        # The scoring code alone: the stored features scored again, so that a deploy upstream
        # on the same day cannot lend it its effect.
        scoring_only = change.subject == _SCORES
        return ReplaySpec(
            change=change,
            direction="apply",
            partition=before,
            action=f"{change.subject}[{before}] (before the deploy) recomputed with today's code"
            + (" from its stored features" if scoring_only else ""),
            rematerialize_snapshot=on_snapshot,
            rematerialize_features=not scoring_only,
            snapshot_config=dict(snapshot_config_at(before) or {}) if on_snapshot else None,
            # Only the deploy is applied: the day keeps the flags it was computed with, or a
            # flag change since would lend the deploy its effect.
            flags_version=flags_version_at(before),
        )
    return None


def is_model_move(change: Change) -> bool:
    """A champion alias that moved from one version to another: revertible by re-scoring."""
    return (
        change.kind == "alias" and isinstance(change.before, int) and change.after != change.before
    )


def model_revert(change: Change, window: IncidentWindow, action: str) -> ReplaySpec | None:
    """The first failing partition re-scored by the version the alias moved away from; none
    when the move is not the one that served the failing partition."""
    failing_version = window.first_bad.model_version
    if failing_version is not None and change.after != failing_version:
        return None
    return ReplaySpec(
        change=change,
        direction="revert",
        partition=window.first_bad.partition,
        action=action,
        model_version=int(change.before),
    )


def _before_flags(change: Change, flags_version_at: Callable[[str], int | None]) -> int | None:
    """The flag version before the suspect itself: a flag change can land on a day that still
    passed (its rolling features take a day to break), so the last good day may already run it."""
    details = change.details if isinstance(change.details, Mapping) else {}
    version = details.get("flag_version")
    if isinstance(version, int) and version > 0:
        return version - 1
    if change.kind == "feature_set" and change.partition:
        return flags_version_at(_previous_day(change.partition))
    return None


def _min_known(*versions: int | None) -> int | None:
    known = [version for version in versions if version is not None]
    return min(known) if known else None


def _latest_measured(partition: str, measurable: Sequence[str]) -> str:
    """``partition``, or the latest day before it whose evaluation computed the metric."""
    earlier = [p for p in measurable if p <= partition]
    return max(earlier) if earlier and partition not in earlier else partition
