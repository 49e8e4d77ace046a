"""``build_model_lifecycle``: a host's model gets the whole loop the reference detector has.

From the host's training-set asset and a :class:`LifecycleModel` (a ``SklearnModel`` for any
scikit-learn estimator or pipeline) it builds the candidate asset (a registered version per
materialization, with its capsule), the champion asset (gate, promote, rollback, rollout,
adopt), optionally the scores asset over the host's partitioned data with its performance
check, the train/rollback/adopt jobs, and the rollback, staged-rollout and retrain sensors.
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import dagster as dg
import pandas as pd

from aiops_assets.checks.judge import PerformanceLimits
from aiops_assets.checks.performance import build_performance_check
from aiops_assets.core.ledger import ModelVersion
from aiops_assets.core.promotion import ScoredRows
from aiops_assets.core.store import ArtifactRef
from aiops_assets.diagnosis.target import (
    DRIFT_CHECKS_METADATA,
    PERFORMANCE_CHECK_METADATA,
    SCORED_MODEL_METADATA,
    SERVED_DATA_METADATA,
    ServedModel,
    remember_served_model,
)
from aiops_assets.io import ArtifactRefIOManager
from aiops_assets.lifecycle.candidate import build_candidate_asset, stored_training_set
from aiops_assets.lifecycle.champion import (
    ChampionConfig,
    GateEvidence,
    acting_moves,
    move_champion,
)
from aiops_assets.lifecycle.evidence import blocking_outcomes, paired_rows
from aiops_assets.lifecycle.models import LifecycleModel
from aiops_assets.lifecycle.serving import build_scores_asset, vouched_model
from aiops_assets.resources import (
    AccessPolicyResource,
    AlertSinkResource,
    ArtifactStoreResource,
    LedgerResource,
)
from aiops_assets.sensors.retrain import build_retrain_on_drift_sensor
from aiops_assets.sensors.rollback import build_rollback_on_regression_sensor
from aiops_assets.sensors.rollout import build_staged_rollout_sensor

AssetLike = dg.AssetsDefinition | dg.AssetSpec | dg.AssetKey | str


def _key(asset: AssetLike) -> dg.AssetKey:
    if isinstance(asset, dg.AssetKey):
        return asset
    if isinstance(asset, str):
        return dg.AssetKey.from_user_string(asset)
    return asset.key


@dataclass(frozen=True)
class ModelLifecycle:
    """What :func:`build_model_lifecycle` built, to pass to ``dg.Definitions``."""

    model_name: str
    candidate: dg.AssetsDefinition
    champion: dg.AssetsDefinition
    train_job: "dg.UnresolvedAssetJobDefinition"
    rollback_job: "dg.UnresolvedAssetJobDefinition"
    adopt_job: "dg.UnresolvedAssetJobDefinition"
    sensors: list[dg.SensorDefinition]
    scores: dg.AssetsDefinition | None = None
    asset_checks: list[dg.AssetChecksDefinition] = field(default_factory=list)

    @property
    def assets(self) -> list[dg.AssetsDefinition]:
        return [self.candidate, self.champion, *([self.scores] if self.scores else [])]

    @property
    def jobs(self) -> "list[dg.UnresolvedAssetJobDefinition]":
        return [self.train_job, self.rollback_job, self.adopt_job]

    @property
    def performance_check(self) -> dg.AssetCheckKey | None:
        keys = [key for check in self.asset_checks for key in check.check_keys]
        return keys[0] if keys else None

    def definitions(self, resources: Mapping[str, Any] | None = None) -> dg.Definitions:
        """Everything built here as one ``dg.Definitions``, to merge with the host's."""
        return dg.Definitions(
            assets=self.assets,
            asset_checks=self.asset_checks,
            jobs=self.jobs,
            sensors=self.sensors,
            resources=dict(resources or {}),
        )


def lifecycle_resources(home: str | Path, *, webhook_url: str = "") -> dict[str, Any]:
    """The resources a lifecycle needs on one machine, all under ``home``.

    The store, its IO manager, a SQLite ledger, the packaged access policy and the alert outbox
    (or a webhook). A cluster passes its own instead (a PostgreSQL ledger by ``dg.EnvVar``, an
    object-store root, its access policy): these are the laptop defaults, nothing more.

    Args:
        home: The folder holding ``store/``, ``ledger.db`` and ``alerts.jsonl``.
        webhook_url: A Slack-compatible webhook; empty writes alerts to the outbox only.

    Example:
        >>> resources = lifecycle_resources(".aiops")  # doctest: +SKIP
        >>> defs = lifecycle.definitions(resources)  # doctest: +SKIP
    """
    root = Path(home)
    store = str(root / "store")
    return {
        "artifact_store": ArtifactStoreResource(root=store),
        "artifact_io_manager": ArtifactRefIOManager(root=store),
        "ledger": LedgerResource(url=f"sqlite:///{root / 'ledger.db'}"),
        "access_policy": AccessPolicyResource(),
        "alert_sink": AlertSinkResource(
            webhook_url=webhook_url, outbox_path=str(root / "alerts.jsonl")
        ),
    }


def build_champion_asset(
    *,
    name: str,
    model_name: str,
    candidate: dg.AssetKey,
    training_set: dg.AssetKey,
    model: LifecycleModel,
    group_name: str,
    code_version: str,
    blocking_checks: Sequence[dg.AssetCheckKey] = (),
) -> dg.AssetsDefinition:
    """The champion asset of ``model_name``: every move of its ``champion`` alias."""
    checks = list(blocking_checks)

    @dg.asset(
        name=name,
        code_version=code_version,
        io_manager_key="artifact_io_manager",
        group_name=group_name,
        ins={"candidate": dg.AssetIn(key=candidate), "training_set": dg.AssetIn(key=training_set)},
        description=(
            f"The {model_name} version in service, as the registry's `champion` alias says; the "
            "challenger replaces it only through the promotion gate (blocking checks passed, "
            "better on the holdout beyond bootstrap noise). Promotions, rollbacks and rollouts "
            "go through this asset too (config `action`)."
        ),
    )
    def champion(
        context: dg.AssetExecutionContext,
        config: ChampionConfig,
        artifact_store: ArtifactStoreResource,
        ledger: LedgerResource,
        access_policy: AccessPolicyResource,
        alert_sink: AlertSinkResource,
        candidate: ArtifactRef,
        training_set: Any,
    ) -> dg.Output[ArtifactRef]:
        store = artifact_store.get_store()
        registry = ledger.get_ledger()
        frame = stored_training_set(store, training_set)[1]
        moves = acting_moves(
            context,
            registry,
            store,
            alert_sink,
            action=config.action,
            model_name=model_name,
            asset_name=name,
        )

        def evidence(challenger: ModelVersion, current: ModelVersion | None) -> GateEvidence:
            holdout = model.holdout(frame)
            load = lambda found: vouched_model(  # noqa: E731 - two uses, one line each
                store, registry, model, model_name, version=found.version
            )
            pair: tuple[ScoredRows, ScoredRows] | None = paired_rows(
                model.score,
                model.threshold_of,
                load(challenger),
                None if current is None else load(current),
                holdout,
                holdout[model.label].to_numpy().astype("int8"),
            )
            return GateEvidence(
                holdout=pair,
                blocking_checks=blocking_outcomes(
                    context.instance, checks, trained_days(frame, model.time_column)
                ),
            )

        def services() -> list[str]:
            if not model.service_column:
                raise dg.Failure(description="a staged rollout needs the model's service_column")
            return sorted(str(s) for s in frame[model.service_column].unique())

        return move_champion(
            context,
            config,
            moves,
            access_policy,
            candidate_sha256=candidate.sha256,
            evidence=evidence,
            services=services,
        )

    return champion


def trained_days(frame: pd.DataFrame, time_column: str | None) -> list[str]:
    """The days (``YYYY-MM-DD``) the training set covers: the partitions whose blocking checks
    the gate requires (a daily-partitioned host's keys)."""
    if not time_column or time_column not in frame:
        return []
    times = pd.to_datetime(frame[time_column], errors="coerce").dropna()
    return sorted(times.dt.strftime("%Y-%m-%d").unique())


def _jobs(
    name: str, training: dg.AssetKey, candidate: dg.AssetKey, champion: dg.AssetKey
) -> "tuple[dg.UnresolvedAssetJobDefinition, ...]":
    """The train job (training set, candidate, gate), and the rollback and adopt jobs."""
    champion_only = dg.AssetSelection.assets(champion)
    op = champion.path[-1]
    return (
        dg.define_asset_job(
            f"{name}_train_job",
            selection=dg.AssetSelection.assets(training, candidate, champion),
            description=f"Build the training set, train a {name} candidate and run the gate.",
        ),
        dg.define_asset_job(
            f"{name}_rollback_job",
            selection=champion_only,
            config={"ops": {op: {"config": {"action": "rollback"}}}},
            description=f"Point {name}'s champion back at the last version whose checks passed.",
        ),
        dg.define_asset_job(
            f"{name}_adopt_job",
            selection=champion_only,
            config={"ops": {op: {"config": {"action": "adopt"}}}},
            description="Materialize the champion the registry names after a completed rollout.",
        ),
    )


def _serving(
    name: str,
    serve: dg.AssetsDefinition | dg.AssetSpec,
    champion: dg.AssetKey,
    model: LifecycleModel,
    group_name: str,
    limits: Mapping[str, float],
    jobs: "tuple[dg.UnresolvedAssetJobDefinition, dg.UnresolvedAssetJobDefinition]",
    default_status: dg.DefaultSensorStatus,
) -> tuple[dg.AssetsDefinition, list[dg.AssetChecksDefinition], list[dg.SensorDefinition]]:
    """The scores asset, its performance check, and the two sensors that watch the check."""
    rollback_job, adopt_job = jobs
    scores = build_scores_asset(
        name=f"{name}_scores",
        model_name=name,
        data=serve,
        champion=champion,
        model=model,
        group_name=group_name,
    )
    checks = [_performance_check(scores, name, limits)]
    performance = [key for check in checks for key in check.check_keys]
    sensors = [
        build_rollback_on_regression_sensor(
            job=rollback_job,
            performance_checks=performance,
            model_name=name,
            champion_asset=champion.path[-1],
            name=f"{name}_rollback_on_regression",
            default_status=default_status,
        ),
        build_staged_rollout_sensor(
            job=adopt_job,
            performance_checks=performance,
            model_name=name,
            champion_asset=champion.path[-1],
            name=f"{name}_staged_rollout",
            default_status=default_status,
        ),
    ]
    return scores, checks, sensors


def _performance_check(
    scores: dg.AssetsDefinition, model_name: str, limits: Mapping[str, float]
) -> dg.AssetChecksDefinition:
    chosen = _limits(limits)
    return build_performance_check(
        scores,
        model_name=model_name,
        f1_tolerance=chosen.f1_tolerance,
        false_alarm_tolerance=chosen.false_alarm_tolerance,
        false_alarm_budget=chosen.false_alarm_budget,
        min_positives=int(chosen.min_positives),
    )


def _limits(limits: Mapping[str, float]) -> PerformanceLimits:
    unknown = set(limits) - set(PerformanceLimits.__dataclass_fields__)
    if unknown:
        raise ValueError(f"unknown performance limits {sorted(unknown)}")
    return replace(PerformanceLimits(), **dict(limits))  # type: ignore[arg-type]


def _described(
    scores: dg.AssetsDefinition,
    served: ServedModel,
    checks: Sequence[dg.AssetChecksDefinition],
    drift_checks: Sequence[dg.AssetCheckKey],
) -> dg.AssetsDefinition:
    """The scores asset, saying which model it serves, from which rows, judged by which checks;
    and the model kept for the diagnosis to replay."""
    performance = [key.name for check in checks for key in check.check_keys]
    metadata = {
        SCORED_MODEL_METADATA: served.model_name,
        SERVED_DATA_METADATA: served.data.to_user_string(),
        PERFORMANCE_CHECK_METADATA: performance[0],
        DRIFT_CHECKS_METADATA: [key.to_user_string() for key in drift_checks],
    }
    described = scores.map_asset_specs(lambda spec: spec.merge_attributes(metadata=metadata))
    remember_served_model(served)
    return described


def build_model_lifecycle(
    model: LifecycleModel,
    *,
    name: str,
    training_set: AssetLike,
    serve: dg.AssetsDefinition | dg.AssetSpec | None = None,
    blocking_checks: Sequence[dg.AssetCheckKey] = (),
    drift_checks: Sequence[dg.AssetCheckKey] = (),
    performance_limits: Mapping[str, float] | None = None,
    group_name: str = "aiops_models",
    code_version: str = "1",
    default_status: dg.DefaultSensorStatus = dg.DefaultSensorStatus.STOPPED,
) -> ModelLifecycle:
    """The model lifecycle (register, gate, serve, roll back, roll out) for a host's own model.

    Builds ``<name>_candidate`` (trains ``model`` on ``training_set`` and registers a version with
    its holdout metrics, format and capsule), ``<name>_champion`` (config ``action``: gate,
    promote, rollback, rollout, adopt) and, with ``serve``, ``<name>_scores`` (each partition of
    that asset scored by the serving versions) with its ``performance`` check; the jobs
    ``<name>_train_job``, ``<name>_rollback_job`` and ``<name>_adopt_job``; and the sensors
    ``<name>_rollback_on_regression`` and ``<name>_staged_rollout`` (with ``serve``) and
    ``<name>_retrain_on_drift`` (with ``drift_checks``). The resources it needs are
    ``artifact_store``, ``artifact_io_manager``, ``ledger``, ``access_policy`` and
    ``alert_sink`` (``ModelLifecycle.definitions`` takes them; ``lifecycle_resources`` makes a
    local set).

    Args:
        model: How to train, evaluate and score the model (``SklearnModel`` for scikit-learn).
        name: The registered model's name, and the prefix of every definition built here.
        training_set: The host's asset whose value (a pandas DataFrame, by any IO manager) the
            model is trained on; unpartitioned, or a multi-partition input concatenated.
        serve: The host's (partitioned) asset of rows to score in service; its rows need the
            model's feature columns, and its label column for the performance check.
        blocking_checks: Checks that must have passed on every day the model learned from
            before the gate may promote it.
        drift_checks: Drift checks whose ERROR result requests a run of the train job.
        performance_limits: ``build_performance_check`` limits (``false_alarm_budget``,
            ``f1_tolerance``, ``false_alarm_tolerance``, ``min_positives``).
        group_name: The asset group of the assets built here.
        code_version: The candidate's and champion's code version (bump it when training changes).
        default_status: The sensors' initial status (STOPPED: a team switches them on).

    Example:
        >>> lifecycle = build_model_lifecycle(  # doctest: +SKIP
        ...     SklearnModel(GradientBoostingClassifier(random_state=0), features=[...],
        ...                  label="slo_breach", time_column="ts", service_column="service"),
        ...     name="slo_breach", training_set=training_set, serve=service_metrics,
        ... )
        >>> defs = dg.Definitions.merge(host_defs, lifecycle.definitions(resources))  # doctest: +SKIP
    """
    training_key = _key(training_set)
    candidate = build_candidate_asset(
        name=f"{name}_candidate",
        model_name=name,
        training_set=training_key,
        model=model,
        group_name=group_name,
        code_version=code_version,
    )
    champion = build_champion_asset(
        name=f"{name}_champion",
        model_name=name,
        candidate=candidate.key,
        training_set=training_key,
        model=model,
        group_name=group_name,
        code_version=code_version,
        blocking_checks=blocking_checks,
    )
    train_job, rollback_job, adopt_job = _jobs(name, training_key, candidate.key, champion.key)
    scores, checks, sensors = (
        _serving(
            name,
            serve,
            champion.key,
            model,
            group_name,
            performance_limits or {},
            (rollback_job, adopt_job),
            default_status,
        )
        if serve is not None
        else (None, [], [])
    )
    if scores is not None and serve is not None:
        served = ServedModel(
            name, model, _limits(performance_limits or {}), scores.key, _key(serve)
        )
        scores = _described(scores, served, checks, drift_checks)
    if drift_checks:
        sensors.append(
            build_retrain_on_drift_sensor(
                job=train_job,
                drift_checks=drift_checks,
                run_config=lambda evaluation: {},
                name=f"{name}_retrain_on_drift",
                default_status=default_status,
            )
        )
    return ModelLifecycle(
        model_name=name,
        candidate=candidate,
        champion=champion,
        train_job=train_job,
        rollback_job=rollback_job,
        adopt_job=adopt_job,
        sensors=sensors,
        scores=scores,
        asset_checks=checks,
    )
