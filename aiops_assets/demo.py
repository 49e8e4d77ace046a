"""The demo: the whole reference pipeline on embedded defaults, in a project-local instance.

It materializes through the same ``dg.Definitions`` the UI loads, into the same ``DAGSTER_HOME``
that ``make dev`` serves, so after the demo the UI shows every materialization with its data
version, code version and metadata. Runs use the in-process executor: a subprocess per step would
spend most of the demo importing.
"""

from __future__ import annotations

import shutil
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import dagster as dg

from aiops_assets.assets.models import TrainingSetRunConfig
from aiops_assets.definitions import (
    INGEST_ASSETS,
    TRAINING_ASSETS,
    build_definitions,
    ingest_selection,
    scoring_selection,
)
from aiops_assets.settings import PipelineSettings

DATA_VERSION_TAG = "dagster/data_version"

# Used only when the working directory has no dagster.yaml of its own (the package run elsewhere).
MINIMAL_INSTANCE_YAML = "telemetry:\n  enabled: false\n"

# The demo prints its own progress and a line per failed check; Dagster's console log would bury them.
_QUIET_RUN_CONFIG: dict[str, Any] = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}


@dataclass
class DemoResult:
    """What the demo produced: data versions per asset (partition), the champion and its metrics."""

    data_versions: dict[str, str] = field(default_factory=dict)
    checks: dict[str, dict[str, Any]] = field(default_factory=dict)
    model_sha256: str = ""
    metrics: dict[str, float] = field(default_factory=dict)
    decision: str = ""
    reason: str = ""
    dagster_home: str = ""
    store_root: str = ""
    seconds: float = 0.0

    def to_json_dict(self) -> dict[str, Any]:
        return {
            "assets": dict(sorted(self.data_versions.items())),
            "checks": dict(sorted(self.checks.items())),
            "model_sha256": self.model_sha256,
            "metrics": self.metrics,
        }


def prepare_instance(dagster_home: Path, template: Path | None = None) -> dg.DagsterInstance:
    """Open (creating when missing) the project-local instance, seeded from the project's dagster.yaml."""
    dagster_home.mkdir(parents=True, exist_ok=True)
    target = dagster_home / "dagster.yaml"
    source = template if template is not None else Path("dagster.yaml")
    if source.is_file():
        if not target.exists() or target.read_bytes() != source.read_bytes():
            shutil.copyfile(source, target)
    elif not target.exists():
        target.write_text(MINIMAL_INSTANCE_YAML)
    return dg.DagsterInstance.from_config(str(dagster_home))


def run_demo(
    settings: PipelineSettings,
    *,
    instance: dg.DagsterInstance,
    progress: TextIO = sys.stderr,
    clock: Callable[[], float] = time.perf_counter,
) -> DemoResult:
    """Materialize every daily partition, then train and decide on the champion."""
    holdout_days = TrainingSetRunConfig().holdout_days
    if settings.days <= holdout_days:
        raise ValueError(
            f"the demo needs more than {holdout_days} days (the holdout) to have anything to train "
            f"on; got {settings.days}"
        )
    started = clock()
    definitions = build_definitions(settings)
    partition_keys = daily_partition_keys(definitions)
    result = DemoResult(dagster_home=str(instance.root_directory), store_root=settings.store_root)

    def record(run: dg.ExecuteInProcessResult) -> list[str]:
        """Keep versions and check results; return a line per failed check."""
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
        return failed_checks

    steps: list[tuple[str | None, tuple[str, ...], dg.AssetSelection]] = [
        *((key, INGEST_ASSETS, ingest_selection()) for key in partition_keys),
        (None, TRAINING_ASSETS, dg.AssetSelection.assets(*TRAINING_ASSETS)),
        *((key, ("anomaly_scores", "drift checks"), scoring_selection()) for key in partition_keys),
    ]
    for step, (partition_key, names, selection) in enumerate(steps, start=1):
        step_started = clock()
        what = f"{partition_key}  " if partition_key else ""
        _print(progress, f"[{step:>2}/{len(steps)}] {what}{', '.join(names)}")
        if (
            names is not INGEST_ASSETS
            and partition_key
            and f"features[{partition_key}]" not in result.data_versions
        ):
            _print(progress, "        skipped: this day has no features (its snapshot was refused)")
            continue
        run = materialize_selection(
            definitions,
            instance,
            selection,
            partition_key=partition_key,
            run_config=_QUIET_RUN_CONFIG,
            tags={"aiops/source": "demo"},
            raise_on_error=False,
        )
        failed_checks = record(run)
        for line in failed_checks:
            _print(progress, f"        {line}")
        if not run.success and not failed_checks:
            # A failure that no check explains is a bug or a broken source, not bad data: stop.
            raise dg.DagsterError(_run_failure_message(run))
        outcome = "done" if run.success else "stopped by a failed blocking check"
        _print(progress, f"        {outcome} in {clock() - step_started:.1f}s")
    result.seconds = clock() - started
    return result


def materialize_selection(
    definitions: dg.Definitions,
    instance: dg.DagsterInstance,
    selection: Sequence[str] | dg.AssetSelection,
    *,
    partition_key: str | None = None,
    run_config: Mapping[str, Any] | None = None,
    tags: Mapping[str, str] | None = None,
    raise_on_error: bool = True,
) -> dg.ExecuteInProcessResult:
    """One in-process run of some of the definitions' assets, with the definitions' resources."""
    assets = [
        definition
        for definition in [*(definitions.assets or []), *(definitions.asset_checks or [])]
        if isinstance(definition, dg.AssetsDefinition)
    ]
    return dg.materialize(
        assets,
        instance=instance,
        resources=definitions.resources,
        partition_key=partition_key,
        # Checks of the selected assets run with them (a blocking one can stop what follows).
        selection=selection
        if isinstance(selection, dg.AssetSelection)
        else dg.AssetSelection.assets(*selection),
        run_config=run_config,
        tags=tags,
        raise_on_error=raise_on_error,
    )


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


def _run_failure_message(run: dg.ExecuteInProcessResult) -> str:
    for event in run.get_step_failure_events():
        error = event.step_failure_data.error
        if error is not None:
            return f"step {event.step_key} failed: {error.message.strip()}"
    return f"run {run.run_id} failed"


def daily_partition_keys(definitions: dg.Definitions) -> list[str]:
    graph = definitions.resolve_asset_graph()
    partitions_def = graph.get(dg.AssetKey(INGEST_ASSETS[0])).partitions_def
    if partitions_def is None:
        raise RuntimeError(f"{INGEST_ASSETS[0]} is expected to be partitioned")
    return list(partitions_def.get_partition_keys())


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
        f"Dagster instance: {result.dagster_home}",
        f"Artifact store:   {result.store_root}",
        "Explore it: run `make dev`, open http://127.0.0.1:3000, then Assets > Lineage (group aiops):",
        "each asset shows its data version, code version and metadata; click a partition to see its",
        "row count, schema and SHA-256.",
    ]
    return "\n".join(lines)


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
