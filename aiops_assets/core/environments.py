"""Deployment environments: dev, staging, prod and the sandbox, chosen by ``AIOPS_ENV``.

One variable decides where state lives (store root, ledger, Dagster instance, alert outbox) and
what the deployment may do, so that a notebook cannot write into production by mistake and
production cannot serve what has not earned it: prod refuses experimental feature sets and
models trained in a sandbox; the sandbox can promote nothing.

``dev`` keeps the layout the project always had (everything directly in ``AIOPS_HOME``), so
leaving the variable unset changes nothing.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from aiops_assets.core.ledger import FeatureSetRecord, ModelVersion

ENV_VAR = "AIOPS_ENV"
DEFAULT_ENVIRONMENT = "dev"
# The model-version tag that says where a model was trained; the sandbox sets it.
ORIGIN_TAG = "origin"
SANDBOX_ORIGIN = "sandbox"
# Feature-set statuses that may serve anywhere; the rest only where allowed below.
SERVABLE_EVERYWHERE = ("candidate", "production")


class EnvironmentRefusal(PermissionError):
    """Something this environment does not allow; the message names the environment and why."""


@dataclass(frozen=True)
class Environment:
    """What one deployment environment is and may do.

    Attributes:
        name: ``dev``, ``staging``, ``prod`` or ``sandbox``.
        namespace: Sub-folder of ``AIOPS_HOME`` holding this environment's store, ledger,
            instance and outbox; empty keeps them in the home itself (dev).
        allow_experimental_feature_sets: Whether an experimental feature set may serve here.
        allow_sandbox_models: Whether a model trained in a sandbox may serve here.
        can_promote: Whether this deployment may promote a model or a feature set at all.
        requires_webhook: Whether alerts must go to a webhook (no local outbox fallback).
    """

    name: str
    namespace: str
    allow_experimental_feature_sets: bool
    allow_sandbox_models: bool
    can_promote: bool
    requires_webhook: bool

    def root(self, home: Path) -> Path:
        return home / self.namespace if self.namespace else home

    def require_promotion(self, what: str) -> None:
        if not self.can_promote:
            raise EnvironmentRefusal(
                f"the {self.name} environment cannot promote anything (asked to promote {what}); "
                "run the promotion in staging or prod, where its evidence is recorded"
            )

    def require_feature_set(self, record: FeatureSetRecord) -> None:
        if record.status in SERVABLE_EVERYWHERE:
            return
        if record.status == "experimental" and self.allow_experimental_feature_sets:
            return
        raise EnvironmentRefusal(
            f"the {self.name} environment refuses feature set {record.version_id}: it is "
            f"{record.status}; only "
            + (
                "candidate, production or experimental"
                if self.allow_experimental_feature_sets
                else "candidate or production"
            )
            + " feature sets may serve here"
        )

    def require_model(self, version: ModelVersion) -> None:
        if version.tags.get(ORIGIN_TAG) == SANDBOX_ORIGIN and not self.allow_sandbox_models:
            raise EnvironmentRefusal(
                f"the {self.name} environment refuses {version.model_name} v{version.version}: "
                "it was trained in a sandbox; retrain it through the pipeline"
            )


ENVIRONMENTS: Mapping[str, Environment] = {
    "dev": Environment(
        name="dev",
        namespace="",
        allow_experimental_feature_sets=True,
        allow_sandbox_models=True,
        can_promote=True,
        requires_webhook=False,
    ),
    "staging": Environment(
        name="staging",
        namespace="staging",
        allow_experimental_feature_sets=True,
        allow_sandbox_models=False,
        can_promote=True,
        requires_webhook=False,
    ),
    "prod": Environment(
        name="prod",
        namespace="prod",
        allow_experimental_feature_sets=False,
        allow_sandbox_models=False,
        can_promote=True,
        requires_webhook=True,
    ),
    "sandbox": Environment(
        name="sandbox",
        namespace="sandbox",
        allow_experimental_feature_sets=True,
        allow_sandbox_models=True,
        can_promote=False,
        requires_webhook=False,
    ),
}


def get_environment(name: str) -> Environment:
    try:
        return ENVIRONMENTS[name]
    except KeyError:
        raise ValueError(
            f"unknown environment {name!r} ({ENV_VAR}); choose one of {', '.join(ENVIRONMENTS)}"
        ) from None


def current_environment(environ: Mapping[str, str] | None = None) -> Environment:
    """The environment ``AIOPS_ENV`` names; dev when it is unset or empty."""
    env = os.environ if environ is None else environ
    return get_environment(env.get(ENV_VAR) or DEFAULT_ENVIRONMENT)


__all__ = [
    "DEFAULT_ENVIRONMENT",
    "ENVIRONMENTS",
    "ENV_VAR",
    "ORIGIN_TAG",
    "SANDBOX_ORIGIN",
    "Environment",
    "EnvironmentRefusal",
    "current_environment",
    "get_environment",
]
