"""The demo: the whole reference pipeline on embedded defaults, in a project-local instance.

It materializes through the same ``dg.Definitions`` the UI loads, into the same ``DAGSTER_HOME``
that ``make dev`` serves, so after the demo the UI shows every materialization with its data
version, code version and metadata. Runs use the in-process executor: a subprocess per step would
spend most of the demo importing.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import dagster as dg
import yaml

from aiops_assets.core.alerts import OutboxSink
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
from aiops_assets.core.policy import ACTOR_TAG
from aiops_assets.core.registry import CHAMPION, MODEL_NAME
from aiops_assets.core.rollout import RolloutPlan
from aiops_assets.reference.assets.features import FeaturesConfig
from aiops_assets.reference.assets.models import TrainingSetRunConfig
from aiops_assets.reference.definitions import (
    INGEST_ASSETS,
    TRAINING_ASSETS,
    build_definitions,
    ingest_selection,
    scoring_selection,
)
from aiops_assets.reference.sandbox import ReadOnlyStore
from aiops_assets.reference.settings import PipelineSettings
from aiops_assets.resources import LedgerResource, close_ledgers
from aiops_assets.runner import (
    DATA_VERSION_TAG,
    daily_partition_keys,
    materialize_selection,
    quiet,
    run_failure_message,
)


@dataclass
class DemoResult:
    """What the demo produced: data versions per asset (partition), the champion and its metrics."""

    data_versions: dict[str, str] = field(default_factory=dict)
    checks: dict[str, dict[str, Any]] = field(default_factory=dict)
    model_sha256: str = ""
    metrics: dict[str, float] = field(default_factory=dict)
    decision: str = ""
    reason: str = ""
    registry: dict[str, Any] = field(default_factory=dict)
    alerts: list[dict[str, Any]] = field(default_factory=list)
    audit: dict[str, Any] = field(default_factory=dict)
    dagster_home: str = ""
    store_root: str = ""
    seconds: float = 0.0

    def to_json_dict(self) -> dict[str, Any]:
        return {
            "assets": dict(sorted(self.data_versions.items())),
            "checks": dict(sorted(self.checks.items())),
            "model_sha256": self.model_sha256,
            "metrics": self.metrics,
            "registry": self.registry,
            "alerts": self.alerts,
            "audit": self.audit,
        }


def run_demo(
    settings: PipelineSettings,
    *,
    instance: dg.DagsterInstance,
    progress: TextIO | None = None,
    clock: Callable[[], float] = time.perf_counter,
) -> DemoResult:
    """Replay the scenario day by day: ingest, train as of a day, then serve the remaining days
    with the sensors on, so drift, retraining, a forced regression and its rollback all happen.

    ``progress`` defaults to the process's stderr as it is when the demo starts (not when this
    module was imported: a host, or a test, may have replaced it since)."""
    progress = progress or sys.stderr
    holdout_days = TrainingSetRunConfig().holdout_days
    if settings.days <= holdout_days:
        raise ValueError(
            f"the demo needs more than {holdout_days} days (the holdout) to have anything to train "
            f"on; got {settings.days}"
        )
    started = clock()
    archived = archive_previous_demo(settings)
    if archived is not None:
        _print(progress, f"previous demo registry kept in {archived}")
    definitions = build_definitions(settings)
    partition_keys = daily_partition_keys(definitions)
    result = DemoResult(dagster_home=str(instance.root_directory), store_root=settings.store_root)
    plan = _plan(partition_keys, holdout_days)
    steps = _Steps(definitions, instance, result, progress, clock, total=plan.steps)

    # History arrives up front; each served day arrives on its day, in the loop below.
    for key in plan.history:
        steps.materialize(key, INGEST_ASSETS, ingest_selection())
    steps.materialize(
        None,
        TRAINING_ASSETS,
        dg.AssetSelection.assets(*TRAINING_ASSETS),
        run_config=_training_until(plan.trained_until),
        note=f"trained on the days up to {plan.trained_until}",
    )
    for key in plan.history:
        steps.score(key)
    _feature_set_lifecycle(settings, steps, plan.history)
    loop = _Loop(definitions, instance, steps, progress)
    loop.start()
    stages = len(RolloutPlan.load().stages)
    for position, key in enumerate(plan.live):
        steps.materialize(key, INGEST_ASSETS, ingest_selection())
        steps.score(key)
        loop.tick()
        if position == 0 and len(plan.live) >= 3:
            steps.materialize(
                None,
                ("candidate_model", "champion_model", "score_baseline"),
                dg.AssetSelection.assets("candidate_model", "champion_model", "score_baseline"),
                run_config=FIRE_DRILL_RUN_CONFIG,
                tags={ACTOR_TAG: "local:demo-fire-drill"},
                note="fire drill: a model with a 10% alert budget is forced into service",
            )
        # After the fire drill, and with a served day left for each stage: the version the gate
        # could not tell from noise goes out by stages instead of to every service at once.
        candidate = _rollout_candidate(settings)
        if position > 0 and len(plan.live) - 1 - position == stages and candidate is not None:
            steps.materialize(
                None,
                ("champion_model",),
                dg.AssetSelection.assets("champion_model"),
                run_config={
                    "ops": {
                        "champion_model": {
                            "config": {
                                "action": "rollout",
                                "version": candidate,
                                "reason": (
                                    f"v{candidate} was not distinguishably better on the "
                                    "holdout; try it service by service"
                                ),
                            }
                        }
                    }
                },
                tags={ACTOR_TAG: "local:demo-rollout"},
                note=f"staged rollout of v{candidate}: canary first, one stage per served day",
            )
    result.seconds = clock() - started
    _record_registry(result, settings)
    return result


FIRE_DRILL_RUN_CONFIG: dict[str, Any] = {
    "ops": {
        "candidate_model": {"config": {"alert_quantile": 0.9}},
        "champion_model": {
            "config": {
                "action": "promote",
                "reason": "fire drill: forcing a model that pages too often into service",
            }
        },
    },
}


@dataclass(frozen=True)
class _Plan:
    trained_until: str
    history: list[str]
    live: list[str]

    @property
    def steps(self) -> int:
        # ingest per day, training, scoring per day, the fire drill, and sensor runs (estimated).
        return 2 * (len(self.history) + len(self.live)) + 2 + (2 if len(self.live) >= 3 else 0)


def _plan(partition_keys: list[str], holdout_days: int) -> _Plan:
    """Train as of the day that leaves five days to serve (fewer on a short demo)."""
    trained = max(holdout_days, len(partition_keys) - 6)
    return _Plan(
        trained_until=partition_keys[trained],
        history=partition_keys[: trained + 1],
        live=partition_keys[trained + 1 :],
    )


def _training_until(partition_key: str) -> dict[str, Any]:
    return {"ops": {"training_set": {"config": {"until": partition_key}}}}


class _Steps:
    """Numbered, timed demo steps that record versions and check results into the result."""

    def __init__(
        self,
        definitions: dg.Definitions,
        instance: dg.DagsterInstance,
        result: DemoResult,
        progress: TextIO,
        clock: Callable[[], float],
        total: int,
    ) -> None:
        self.definitions = definitions
        self.instance = instance
        self.result = result
        self.progress = progress
        self.clock = clock
        self.total = total
        self.number = 0

    def announce(self, partition_key: str | None, names: Sequence[str], note: str = "") -> None:
        self.number += 1
        self.total = max(self.total, self.number)
        what = f"{partition_key}  " if partition_key else ""
        _print(self.progress, f"[{self.number:>2}/{self.total}] {what}{', '.join(names)}")
        if note:
            _print(self.progress, f"        {note}")

    def score(self, partition_key: str) -> None:
        if f"features[{partition_key}]" not in self.result.data_versions:
            self.announce(partition_key, ("anomaly_scores", "checks"))
            _print(
                self.progress,
                "        skipped: this day has no features (its snapshot was refused)",
            )
            return
        self.materialize(partition_key, ("anomaly_scores", "checks"), scoring_selection())

    def materialize(
        self,
        partition_key: str | None,
        names: Sequence[str],
        selection: dg.AssetSelection,
        *,
        run_config: Mapping[str, Any] | None = None,
        tags: Mapping[str, str] | None = None,
        note: str = "",
    ) -> None:
        self.announce(partition_key, names, note)
        step_started = self.clock()
        run = materialize_selection(
            self.definitions,
            self.instance,
            selection,
            partition_key=partition_key,
            run_config=quiet(run_config),
            tags={"aiops/source": "demo", **(tags or {})},
            raise_on_error=False,
        )
        self.finish(run, step_started)

    def finish(self, run: dg.ExecuteInProcessResult, step_started: float) -> None:
        failed_checks = self.record(run)
        for line in failed_checks:
            _print(self.progress, f"        {line}")
        if not run.success and not failed_checks:
            # A failure that no check explains is a bug or a broken source, not bad data: stop.
            raise dg.DagsterError(run_failure_message(run))
        outcome = "done" if run.success else "stopped by a failed blocking check"
        _print(self.progress, f"        {outcome} in {self.clock() - step_started:.1f}s")

    def record(self, run: dg.ExecuteInProcessResult) -> list[str]:
        """Keep versions and check results; return a line per failed check."""
        result = self.result
        failed_checks: list[str] = []
        for evaluation in run.get_asset_check_evaluations():
            name = f"{evaluation.asset_key.to_user_string()}.{evaluation.check_name}"
            label = f"{name}[{evaluation.partition}]" if evaluation.partition else name
            result.checks[label] = {
                "passed": evaluation.passed,
                "severity": evaluation.severity.value,
            }
            if not evaluation.passed:
                failed_checks.append(
                    f"{label} FAILED ({evaluation.severity.value}): {_failure_detail(evaluation)}"
                )
        for event in run.get_asset_materialization_events():
            materialization = event.step_materialization_data.materialization
            name = materialization.asset_key.to_user_string()
            label = f"{name}[{materialization.partition}]" if materialization.partition else name
            result.data_versions[label] = (
                materialization.tags[DATA_VERSION_TAG] if materialization.tags else ""
            )
            if name == "champion_model":
                metadata = materialization.metadata
                result.model_sha256 = str(_metadata_value(metadata["sha256"]))
                result.decision = str(_metadata_value(metadata["decision"]))
                result.reason = str(_metadata_value(metadata["reason"]))
                result.metrics = {
                    key: float(_metadata_value(metadata[key]))
                    for key in ("precision", "recall", "f1", "pr_auc")
                    if key in metadata
                }
                _print(self.progress, f"        champion: {result.decision}: {result.reason}")
        return failed_checks


class _Loop:
    """The three sensors, ticked after each served day, with their run requests executed here
    in-process exactly as the daemon would launch them (same job, run config, tags, run key)."""

    def __init__(
        self,
        definitions: dg.Definitions,
        instance: dg.DagsterInstance,
        steps: _Steps,
        progress: TextIO,
    ) -> None:
        self.definitions = definitions
        self.instance = instance
        self.steps = steps
        self.progress = progress
        self.sensors = list(definitions.sensors or [])
        self.cursors: dict[str, str | None] = {sensor.name: None for sensor in self.sensors}

    def start(self) -> None:
        for sensor in self.sensors:
            self.evaluate(sensor)
        _print(self.progress, f"        sensors on: {', '.join(self.cursors)}")

    def tick(self) -> None:
        for sensor in self.sensors:
            requests = self.evaluate(sensor)
            for request in requests:
                self.launch(sensor, request)

    def evaluate(self, sensor: dg.SensorDefinition) -> list[dg.RunRequest]:
        context = dg.build_sensor_context(
            instance=self.instance,
            cursor=self.cursors[sensor.name],
            definitions=self.definitions,
            sensor_name=sensor.name,
            resources=dict(self.definitions.resources or {}),
        )
        data = sensor.evaluate_tick(context)
        self.cursors[sensor.name] = data.cursor
        # What the daemon does with a sensor's asset events: record them, so the UI shows them.
        for event in data.asset_events or ():
            self.instance.report_runless_asset_event(event)
            summary = event.metadata.get("summary")
            if summary is not None:
                first = str(getattr(summary, "value", summary)).splitlines()[0]
                _print(self.progress, f"        {sensor.name}: {first}")
        if (
            data.skip_message
            and not data.skip_message.startswith("started")
            and not data.asset_events
        ):
            _print(self.progress, f"        {sensor.name}: {data.skip_message}")
        return list(data.run_requests or [])

    def launch(self, sensor: dg.SensorDefinition, request: dg.RunRequest) -> None:
        """Launch unless a run with this run key exists: the daemon's deduplication."""
        run_key_tags = {
            "dagster/sensor_name": sensor.name,
            "dagster/run_key": request.run_key or "",
        }
        if request.run_key and self.instance.get_run_records(
            filters=dg.RunsFilter(tags=run_key_tags), limit=1
        ):
            _print(self.progress, f"        {sensor.name}: run key {request.run_key} already ran")
            return
        job_name = request.job_name or sensor.job_name
        assert job_name is not None, f"{sensor.name} requested a run without a job"
        job = self.definitions.resolve_job_def(job_name)
        self.steps.announce(
            None, (job_name,), f"requested by {sensor.name}: {request.tags.get('aiops/reason', '')}"
        )
        step_started = self.steps.clock()
        run = job.execute_in_process(
            run_config=quiet(request.run_config),
            instance=self.instance,
            tags={**request.tags, **run_key_tags, "aiops/source": "demo"},
            raise_on_error=False,
        )
        self.steps.finish(run, step_started)


def archive_previous_demo(
    settings: PipelineSettings, dagster_home: Path | None = None
) -> Path | None:
    """Move an earlier demo's registry, alert outbox and (when it lives in the demo's home) its
    Dagster instance history into ``<home>/archive/<time>/``: kept, never deleted.

    The demo replays one scripted story; a second run in the same home would otherwise meet the
    first run's sensor run keys, cooldowns and registry and tell a different story. The artifact
    store stays: it is content-addressed, so the replay reuses the same bytes.
    """
    prefix = "sqlite:///"
    ledger_file = (
        Path(settings.ledger_url[len(prefix) :]) if settings.ledger_url.startswith(prefix) else None
    )
    movable: list[tuple[Path, str]] = []
    if ledger_file is not None and ledger_file.exists():
        movable.append((ledger_file, ledger_file.name))
    if settings.alert_outbox.exists():
        movable.append((settings.alert_outbox, settings.alert_outbox.name))
    home = settings.home.absolute()
    if (
        dagster_home is not None
        and dagster_home.absolute().is_relative_to(home)
        and dagster_home.is_dir()
    ):
        movable += [
            (child, f"dagster_home/{child.name}")
            for child in sorted(dagster_home.iterdir())
            if child.name != "dagster.yaml"
        ]
    if not movable:
        return None
    close_ledgers()
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
    archive = home / "archive" / stamp
    suffix = 1
    while archive.exists():
        suffix += 1
        archive = home / "archive" / f"{stamp}-{suffix}"
    for source, name in movable:
        target = archive / name
        target.parent.mkdir(parents=True, exist_ok=True)
        source.rename(target)
    return archive


def _record_registry(result: DemoResult, settings: PipelineSettings) -> None:
    """What the loop did, without run ids or times, so two demos compare equal."""
    ledger = LedgerResource(url=settings.ledger_url, key_file=str(settings.audit_key_file))
    registry = ledger.get_ledger()
    versions = registry.list_versions(MODEL_NAME)
    result.registry = {
        "versions": {
            f"v{version.version}": {
                "sha256": version.sha256,
                "pr_auc": round(version.metrics.get("pr_auc", 0.0), 6),
                "trained_until": version.tags.get("trained_until", ""),
            }
            for version in versions
        },
        "champion": _version_label(registry.get_alias(MODEL_NAME, CHAMPION)),
        "promotions": [
            {
                "candidate": f"v{record.candidate_version}",
                "champion": f"v{record.champion_version}" if record.champion_version else None,
                "promoted": record.promoted,
                "reason": record.reason,
            }
            for record in registry.promotions(MODEL_NAME)
        ],
        "alias_history": [
            {
                "alias": change.alias,
                "from": f"v{change.from_version}" if change.from_version else None,
                "to": f"v{change.to_version}",
                "kind": change.kind,
                "actor": change.actor,
            }
            for change in registry.alias_history(MODEL_NAME)
        ],
        "feature_sets": {
            record.version_id: record.status for record in registry.list_feature_sets()
        },
        "rollouts": [
            {
                "version": f"v{rollout.to_version}",
                "from": f"v{rollout.from_version}" if rollout.from_version else None,
                "status": rollout.status,
                "stages": [
                    {"name": stage.name, "services": list(stage.services), "status": stage.status}
                    for stage in rollout.stages
                ],
            }
            for rollout in registry.rollouts(MODEL_NAME)
        ],
    }
    verification = registry.verify_audit()
    result.audit = {"ok": verification.ok, "entries": verification.entries}
    # The outbox, or with a webhook its journal: every alert that was delivered.
    result.alerts = [
        {
            "kind": alert.kind,
            "severity": alert.severity,
            "asset": alert.asset,
            "check": alert.check,
            "partition": alert.partition,
            "summary": alert.summary,
        }
        for alert in OutboxSink(settings.alert_outbox).read()
    ]


# The demo's experiment: a rolling statistic counts only once its window holds half an hour of
# five-minute points (6), not a quarter of an hour (3), so a series resuming after a gap does
# not page on three points. Same columns, so the champion can score it. The change is for
# robustness, so the criterion, declared here before the ablation trains, is non-inferiority:
# PR-AUC within half a point of production and no more false alarms.
DEMO_FEATURE_SET_CHANGES: dict[str, Any] = {"version": 2, "min_periods": 6}
DEMO_ABLATION_CRITERION = "delta.pr_auc>=-0.005, delta.false_alarm_rate<=0.0"
DEMO_ACTOR = "local:demo"


def _feature_set_lifecycle(settings: PipelineSettings, steps: _Steps, days: Sequence[str]) -> None:
    """One feature set from experimental to production, by the lifecycle's own rules, then the
    feature flag that makes every service compute it from the next day on.

    The set in service is registered as production first (the bootstrap a team does once). The
    candidate must pass quality, leakage and drift stability on the first days (before the
    scenario's incidents) and an ablation against production over the whole history, with its
    criterion declared before anything trains. A refusal is shown, and the flags stay.
    """
    ledger = LedgerResource(url=settings.ledger_url, key_file=str(settings.audit_key_file))
    registry = ledger.get_ledger()
    production = FeaturesConfig().spec()
    candidate = FeatureSetSpec.from_dict({**production.to_dict(), **DEMO_FEATURE_SET_CHANGES})
    steps.announce(
        None,
        ("feature set lifecycle",),
        f"{candidate.version_id}: min_periods {production.min_periods} -> "
        f"{candidate.min_periods}, ablation criterion {DEMO_ABLATION_CRITERION!r}",
    )
    started = steps.clock()
    register_feature_set(registry, production, actor=DEMO_ACTOR, status="production")
    register_feature_set(registry, candidate, actor=DEMO_ACTOR)
    transition(
        registry,
        candidate.version_id,
        "candidate",
        actor=DEMO_ACTOR,
        reason="explored in the sandbox; ready to be judged",
    )
    store = ReadOnlyStore(settings.store_root)
    available = [day for day in days if day in set(store.snapshot_days())]
    holdout_days = TrainingSetRunConfig().holdout_days
    if len(available) <= max(holdout_days, MIN_STABILITY_DAYS):
        _print(
            steps.progress,
            f"        skipped: {len(available)} day(s) of history leave an ablation with "
            f"{holdout_days} holdout days nothing to train on",
        )
        return
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
        _print(
            steps.progress,
            f"        {'pass' if criterion.passed else 'FAIL'} {criterion.name}: {criterion.detail}",
        )
    if decision.promoted:
        latest = registry.latest_flags()
        flags = yaml.safe_load(latest.body if latest else DEFAULT_FLAGS_PATH.read_text())
        flags["flags"]["features"]["default"] = candidate.version_id
        apply_flags(
            registry,
            yaml.safe_dump(flags, sort_keys=False),
            actor=DEMO_ACTOR,
            reason=f"{candidate.version_id} promoted: every service computes it",
            environment=settings.deployment,
        )
    outcome = "promoted to production; flags switched" if decision.promoted else "refused"
    _print(steps.progress, f"        {outcome} in {steps.clock() - started:.1f}s")


def _rollout_candidate(settings: PipelineSettings) -> int | None:
    """The newest version the gate refused that is not serving: what the demo rolls out."""
    registry = LedgerResource(
        url=settings.ledger_url, key_file=str(settings.audit_key_file)
    ).get_ledger()
    champion = registry.get_alias(MODEL_NAME, CHAMPION)
    if any(rollout.status == "running" for rollout in registry.rollouts(MODEL_NAME)):
        return None
    refused = [
        record.candidate_version
        for record in registry.promotions(MODEL_NAME)
        if not record.promoted
        and (champion is None or record.candidate_version != champion.version)
    ]
    return refused[-1] if refused else None


def _version_label(version: Any) -> str | None:
    return None if version is None else f"v{version.version}"


def _failure_detail(evaluation: Any) -> str:
    """The failed expectations named in a check's markdown summary, on one line."""
    drifted = evaluation.metadata.get("drifted")
    if drifted is not None:
        names = str(_metadata_value(drifted)).split(", ")
        more = f" and {len(names) - 4} more" if len(names) > 4 else ""
        return f"drifted: {', '.join(names[:4])}{more}"
    summary = str(_metadata_value(evaluation.metadata.get("summary", "")))
    failed = [line[2:].split(":")[0] for line in summary.splitlines() if line.startswith("- ")]
    slices = str(_metadata_value(evaluation.metadata.get("implicated_slices", "")))
    detail = "; ".join(failed) if failed else summary.splitlines()[0] if summary else ""
    return detail + (f" [slices: {slices}]" if slices else "")


def format_summary(result: DemoResult) -> str:
    latest = _latest_per_asset(result.data_versions)
    width = max(len(name) for name in latest) if latest else 10
    lines = [
        f"Materialized {len(result.data_versions)} asset partitions in {result.seconds:.1f}s.",
        "",
        "Latest data versions (SHA-256 of each artifact's bytes):",
        *(f"  {name:<{width}}  {version[:16]}" for name, version in latest.items()),
        "",
        _checks_line(result.checks),
        f"Champion model {result.model_sha256[:16]} ({result.decision}: {result.reason})",
        "  holdout " + ", ".join(f"{key}={value:.3f}" for key, value in result.metrics.items()),
        "",
        *_loop_lines(result),
        "",
        f"Dagster instance: {result.dagster_home}",
        f"Artifact store:   {result.store_root}",
        "Explore it: run `make dev`, open http://127.0.0.1:3000, then Assets > Lineage (group aiops):",
        "each asset shows its data version, code version and metadata; click a partition to see its",
        "row count, schema and SHA-256.",
    ]
    return "\n".join(lines)


def _loop_lines(result: DemoResult) -> list[str]:
    """The closed loop in a few lines: alias changes, gate decisions, alerts, the audit chain."""
    registry = result.registry
    lines = [
        f"Registry: {len(registry.get('versions', {}))} model versions; champion {registry.get('champion')}"
    ]
    for change in registry.get("alias_history", []):
        if change["alias"] == CHAMPION:
            lines.append(
                f"  {change['kind']:<8} {change['from'] or '-'} -> {change['to']} by {change['actor']}"
            )
    for version_id, status in registry.get("feature_sets", {}).items():
        lines.append(f"  feature set {version_id}: {status}")
    for rollout in registry.get("rollouts", []):
        stages = ", ".join(
            f"{stage['name']} ({', '.join(stage['services']) or '-'}) {stage['status']}"
            for stage in rollout["stages"]
        )
        lines.append(
            f"  rollout  {rollout['from'] or '-'} -> {rollout['version']} {rollout['status']}: "
            f"{stages}"
        )
    refused = [item for item in registry.get("promotions", []) if not item["promoted"]]
    for item in refused:
        lines.append(f"  gate refused {item['candidate']}: {item['reason']}")
    kinds: dict[str, int] = {}
    for alert in result.alerts:
        kinds[alert["kind"]] = kinds.get(alert["kind"], 0) + 1
    lines.append(
        "Alerts: "
        + (", ".join(f"{count} {kind}" for kind, count in sorted(kinds.items())) or "none")
    )
    audit = result.audit
    lines.append(
        f"Audit log: {audit.get('entries', 0)} entries, chain "
        + ("verified" if audit.get("ok") else "BROKEN")
        + " (`aiops audit verify`)"
    )
    return lines


def _checks_line(checks: Mapping[str, Mapping[str, Any]]) -> str:
    failed = [label for label, outcome in checks.items() if not outcome["passed"]]
    line = f"Checks: {len(checks) - len(failed)} passed, {len(failed)} failed"
    return line + (f": {', '.join(failed)}" if failed else "")


def _latest_per_asset(data_versions: dict[str, str]) -> dict[str, str]:
    latest: dict[str, str] = {}
    for label in sorted(data_versions):
        latest[label.split("[", 1)[0] + ("[latest]" if "[" in label else "")] = data_versions[label]
    return latest


def _metadata_value(value: Any) -> Any:
    return getattr(value, "value", value)


def _print(stream: TextIO, message: str) -> None:
    print(message, file=stream, flush=True)
