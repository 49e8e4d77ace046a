"""Which model a diagnosis explains, found from the code location's own definitions.

The reference pipeline's scored model is ``anomaly_scores`` with its ``performance`` check, and
its replays re-run the reference's features and scores. A host's model built with
``build_model_lifecycle(..., serve=...)`` says what it is in its scores asset's metadata (the
model's name, the rows it scores, its performance and drift checks), and the lifecycle keeps the
model itself, so the change log, the check history and the replays follow the host's own assets
and its own scoring, with no name of the reference in between.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import dagster as dg

from aiops_assets.changelog import MODEL_ASSET, PERFORMANCE_CHECK
from aiops_assets.checks.judge import PerformanceLimits

if TYPE_CHECKING:
    from aiops_assets.lifecycle.models import LifecycleModel

REFERENCE_MODEL = "anomaly_detector"
# What `build_model_lifecycle` records on a scores asset, and the diagnosis finds a served model
# by: the model's name, the rows it scores, its performance check and its drift checks.
SCORED_MODEL_METADATA = "aiops/scored_model"
SERVED_DATA_METADATA = "aiops/served_data"
PERFORMANCE_CHECK_METADATA = "aiops/performance_check"
DRIFT_CHECKS_METADATA = "aiops/drift_checks"


@dataclass(frozen=True)
class ServedModel:
    """How a served host model scores and is judged: what a diagnosis replays it with."""

    model_name: str
    model: LifecycleModel
    limits: PerformanceLimits
    scores: dg.AssetKey
    data: dg.AssetKey


# Metadata holds only plain values, so the model itself is kept here by its scores asset (the
# factory remembers it); a location's latest build of a key is the one its definitions hold.
_SERVED: dict[dg.AssetKey, ServedModel] = {}


def remember_served_model(served: ServedModel) -> None:
    _SERVED[served.scores] = served


def served_model(scores: dg.AssetKey) -> ServedModel | None:
    """The served model whose scores asset is ``scores`` (built in this process), or None."""
    return _SERVED.get(scores)


class TargetError(ValueError):
    """The location has no model to diagnose, or not the one asked for: one line for the user."""


@dataclass(frozen=True)
class DiagnosisTarget:
    """One scored model: its name, scores asset, performance check and drift checks; a host's
    also its served rows and (when built in this process) how it scores them."""

    model_name: str
    scores: dg.AssetKey = MODEL_ASSET
    performance_check: dg.AssetCheckKey = PERFORMANCE_CHECK
    drift_checks: tuple[dg.AssetCheckKey, ...] = ()
    data: dg.AssetKey | None = None
    served: ServedModel | None = None

    @property
    def is_host(self) -> bool:
        """A model the lifecycle factory built, diagnosed with its own data and scoring."""
        return self.data is not None


def reference_target(
    model_name: str = REFERENCE_MODEL, drift_checks: Sequence[dg.AssetCheckKey] = ()
) -> DiagnosisTarget:
    return DiagnosisTarget(model_name=model_name, drift_checks=tuple(drift_checks))


def host_targets(definitions: dg.Definitions) -> list[DiagnosisTarget]:
    """Every scored model the lifecycle factory (or the component) built in ``definitions``."""
    graph = definitions.resolve_asset_graph()
    checks = set(graph.asset_check_keys)
    found = []
    for key in sorted(graph.materializable_asset_keys, key=lambda item: item.to_user_string()):
        metadata = graph.get(key).metadata or {}
        name = _plain(metadata.get(SCORED_MODEL_METADATA))
        if not isinstance(name, str):
            continue
        check = dg.AssetCheckKey(key, str(_plain(metadata.get(PERFORMANCE_CHECK_METADATA))))
        if check not in checks:
            continue
        found.append(
            DiagnosisTarget(
                model_name=name,
                scores=key,
                performance_check=check,
                drift_checks=_drift_checks(metadata, checks),
                data=dg.AssetKey.from_user_string(str(_plain(metadata[SERVED_DATA_METADATA]))),
                served=served_model(key),
            )
        )
    return found


def find_target(
    definitions: dg.Definitions, model_name: str | None, *, location: str
) -> DiagnosisTarget:
    """The host model named ``model_name`` (None: the location's only one), else the reference
    layout (an ``anomaly_scores`` asset) when the location has it; ``location`` names the
    location in the refusal."""
    hosts = host_targets(definitions)
    if model_name is not None:
        named = [target for target in hosts if target.model_name == model_name]
        if named:
            return named[0]
    elif len(hosts) == 1:
        return hosts[0]
    elif len(hosts) > 1:
        names = ", ".join(target.model_name for target in hosts)
        raise TargetError(
            f"code location {location} serves several models ({names}); pick one with --model"
        )
    if MODEL_ASSET in definitions.resolve_asset_graph().materializable_asset_keys:
        return reference_target(model_name or REFERENCE_MODEL)
    if hosts:
        names = ", ".join(target.model_name for target in hosts)
        raise TargetError(
            f"code location {location} serves no model {model_name} (it serves {names})"
        )
    raise TargetError(
        f"code location {location} has no scored model with a performance check "
        "(build_model_lifecycle with serve=, or an anomaly_scores asset), which "
        "`aiops incident` diagnoses"
    )


def _drift_checks(metadata: Any, checks: set[dg.AssetCheckKey]) -> tuple[dg.AssetCheckKey, ...]:
    declared = _plain(metadata.get(DRIFT_CHECKS_METADATA)) or []
    keys = [_check_key(str(text)) for text in declared]
    return tuple(key for key in keys if key is not None and key in checks)


def _check_key(text: str) -> dg.AssetCheckKey | None:
    """``asset/path:check`` (``AssetCheckKey.to_user_string``) back to a key."""
    asset, sep, name = text.rpartition(":")
    return dg.AssetCheckKey(dg.AssetKey.from_user_string(asset), name) if sep else None


def _plain(value: Any) -> Any:
    return getattr(value, "value", value)
