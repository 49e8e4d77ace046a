"""The demo's numbered steps: in-process runs and sensor ticks, told to a ``Progress``.

Every step records what it produced into the ``DemoResult``; the progress gets one line per step
and short detail lines under it. A reason (why a run was requested, why the champion changed) is
told once per step, on one line: the full text stays in the ledger, the alerts and the JSON.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import dagster as dg

from aiops_assets.core.progress import Progress
from aiops_assets.reference.definitions import scoring_selection
from aiops_assets.reference.demo.result import DemoResult
from aiops_assets.reference.demo.ticks import TickOutcome, TickRecorder
from aiops_assets.runner import (
    DATA_VERSION_TAG,
    materialize_selection,
    quiet,
    run_failure_message,
)

# A detail line fits a wide terminal; longer texts are cut at a clause when one ends late enough.
NOTE_WIDTH = 160
# A reason cut short (a run tag holds only so much) still reads as the same reason when at least
# this much of it was kept.
SAME_REASON_MIN_CHARS = 40
# Above CRITICAL: nothing a Dagster logger emits gets through.
SILENT = logging.CRITICAL + 1


def one_line(text: str, width: int = NOTE_WIDTH) -> str:
    """``text`` on one line of at most ``width`` characters, cut at a ``;`` when one is near."""
    flat = " ".join(text.split())
    if len(flat) <= width:
        return flat
    cut = flat.rfind("; ", 0, width - 1)
    end = cut + 1 if cut >= width // 2 else width - 1
    return flat[:end].rstrip() + "…"


class DemoSteps:
    """Numbered steps that run assets in process and record versions and check results."""

    def __init__(
        self,
        definitions: dg.Definitions,
        instance: dg.DagsterInstance,
        result: DemoResult,
        progress: Progress,
        clock: Callable[[], float],
        *,
        verbose: bool = False,
        recorder: TickRecorder | None = None,
    ) -> None:
        self.definitions = definitions
        self.instance = instance
        self.result = result
        self.progress = progress
        self.clock = clock
        self.verbose = verbose
        # Gives runs their code location and stores ticks, so the UI shows both (None: neither).
        self.recorder = recorder
        # The reasons told under the current step: a sensor's summary, the run it requests and
        # the champion's decision often say the same thing.
        self.reasons_told: list[str] = []

    def announce(self, partition_key: str | None, names: Sequence[str], note: str = "") -> None:
        what = f"{partition_key}  " if partition_key else ""
        self.progress.step(f"{what}{', '.join(names)}")
        self.reasons_told = []
        if note:
            self.note(note)

    def note(self, line: str) -> None:
        self.progress.note(one_line(line))

    def reason(self, prefix: str, reason: str) -> None:
        """``prefix: reason``, or ``prefix (reason above)`` when this step told it already."""
        flat = " ".join(reason.split())
        if not flat:
            self.note(prefix)
        elif any(_same_reason(flat, told) for told in self.reasons_told):
            self.note(f"{prefix} (reason above)")
        else:
            self.reasons_told.append(flat)
            self.note(f"{prefix}: {flat}")

    @contextlib.contextmanager
    def launching(self) -> Iterator[None]:
        """Runs started inside name the code location, as the UI's and the daemon's do."""
        if self.recorder is None:
            yield
            return
        with self.recorder.launched_here(self.instance):
            yield

    def record_tick(self, name: str, kind: str, outcome: TickOutcome) -> None:
        if self.recorder is not None:
            self.recorder.record(self.instance, name, kind, outcome)

    def run_config(self, run_config: Mapping[str, Any] | None) -> dict[str, Any]:
        """Dagster's console log stays off the demo's output unless it runs verbose."""
        return dict(run_config or {}) if self.verbose else quiet(run_config)

    def score(self, partition_key: str, tags: Mapping[str, str] | None = None) -> str | None:
        """The day's scoring run's id; None when the day has no features to score."""
        if f"features[{partition_key}]" not in self.result.data_versions:
            self.announce(partition_key, ("anomaly_scores", "checks"))
            self.note("skipped: this day has no features (its snapshot was refused)")
            return None
        return self.materialize(
            partition_key, ("anomaly_scores", "checks"), scoring_selection(), tags=tags
        )

    def materialize(
        self,
        partition_key: str | None,
        names: Sequence[str],
        selection: dg.AssetSelection,
        *,
        run_config: Mapping[str, Any] | None = None,
        tags: Mapping[str, str] | None = None,
        note: str = "",
    ) -> str:
        """Run ``selection`` in process; the run's id."""
        self.announce(partition_key, names, note)
        step_started = self.clock()
        with self.launching():
            run = materialize_selection(
                self.definitions,
                self.instance,
                selection,
                partition_key=partition_key,
                run_config=self.run_config(run_config),
                tags={"aiops/source": "demo", **(tags or {})},
                raise_on_error=False,
            )
        self.finish(run, step_started)
        return run.run_id

    def report(self, partition_key: str, selection: dg.AssetSelection) -> None:
        """The day's monitoring report, after its checks ran. Not part of the demo's result:
        it summarizes what the result already holds."""
        with self.launching():
            run = materialize_selection(
                self.definitions,
                self.instance,
                selection,
                partition_key=partition_key,
                run_config=self.run_config(None),
                tags={"aiops/source": "demo"},
                raise_on_error=False,
            )
        if not run.success:
            raise dg.DagsterError(run_failure_message(run))

    def finish(self, run: dg.ExecuteInProcessResult, step_started: float) -> None:
        failed_checks = self.record(run)
        for line in failed_checks:
            self.note(line)
        if not run.success and not failed_checks:
            # A failure that no check explains is a bug or a broken source, not bad data: stop.
            raise dg.DagsterError(run_failure_message(run))
        outcome = "done" if run.success else "stopped by a failed blocking check"
        self.note(f"{outcome} in {self.clock() - step_started:.1f}s")

    def record(self, run: dg.ExecuteInProcessResult) -> list[str]:
        """Keep versions and check results; return a line per failed check."""
        failed_checks = [
            line
            for evaluation in run.get_asset_check_evaluations()
            if (line := self._record_check(evaluation))
        ]
        for event in run.get_asset_materialization_events():
            self._record_materialization(event.step_materialization_data.materialization)
        return failed_checks

    def _record_check(self, evaluation: dg.AssetCheckEvaluation) -> str:
        name = f"{evaluation.asset_key.to_user_string()}.{evaluation.check_name}"
        label = f"{name}[{evaluation.partition}]" if evaluation.partition else name
        self.result.checks[label] = {
            "passed": evaluation.passed,
            "severity": evaluation.severity.value,
        }
        if evaluation.passed:
            return ""
        return f"{label} FAILED ({evaluation.severity.value}): {failure_detail(evaluation)}"

    def _record_materialization(self, materialization: dg.AssetMaterialization) -> None:
        result = self.result
        name = materialization.asset_key.to_user_string()
        label = f"{name}[{materialization.partition}]" if materialization.partition else name
        result.data_versions[label] = (
            materialization.tags[DATA_VERSION_TAG] if materialization.tags else ""
        )
        if name != "champion_model":
            return
        metadata = materialization.metadata
        result.model_sha256 = str(metadata_value(metadata["sha256"]))
        result.decision = str(metadata_value(metadata["decision"]))
        result.reason = str(metadata_value(metadata["reason"]))
        result.metrics = {
            key: float(metadata_value(metadata[key]))
            for key in ("precision", "recall", "f1", "pr_auc")
            if key in metadata
        }
        self.reason(f"champion: {result.decision}", result.reason)


def _same_reason(one: str, other: str) -> bool:
    """Equal, or one is the other cut short (but not so short that it says little)."""
    shorter, longer = sorted((one, other), key=len)
    return shorter == longer or (
        len(shorter) >= SAME_REASON_MIN_CHARS and longer.startswith(shorter)
    )


def _ticks_here(sensor: dg.SensorDefinition) -> bool:
    """The loop's sensors tick in the demo; the automation sensor needs the daemon, and the
    run-failure alert watches a deployment's scheduled runs, not a replay's."""
    return not isinstance(
        sensor, (dg.AutomationConditionSensorDefinition, dg.RunStatusSensorDefinition)
    )


class SensorLoop:
    """The project's sensors, ticked after each served day, with their run requests executed here
    in-process exactly as the daemon would launch them (same job, run config, tags, run key)."""

    def __init__(self, definitions: dg.Definitions, steps: DemoSteps) -> None:
        self.definitions = definitions
        self.instance = steps.instance
        self.steps = steps
        self.sensors = [sensor for sensor in definitions.sensors or [] if _ticks_here(sensor)]
        self.cursors: dict[str, str | None] = {sensor.name: None for sensor in self.sensors}

    def start(self) -> None:
        for sensor in self.sensors:
            outcome = TickOutcome()
            self.evaluate(sensor, outcome)
            self.steps.record_tick(sensor.name, "sensor", outcome)
        self.steps.note(f"sensors on: {', '.join(self.cursors)}")

    def tick(self, partition_key: str) -> None:
        """One step for the whole tick, so the plan knows its steps before any sensor decides.

        Each sensor's tick is stored once its runs ended, with their ids, as the daemon's is."""
        self.steps.announce(partition_key, ("sensors",))
        for sensor in self.sensors:
            outcome = TickOutcome()
            for request in self.evaluate(sensor, outcome):
                self.launch(sensor, request, outcome)
            self.steps.record_tick(sensor.name, "sensor", outcome)

    def evaluate(
        self, sensor: dg.SensorDefinition, outcome: TickOutcome | None = None
    ) -> list[dg.RunRequest]:
        context = dg.build_sensor_context(
            instance=self.instance,
            cursor=self.cursors[sensor.name],
            definitions=self.definitions,
            sensor_name=sensor.name,
            resources=dict(self.definitions.resources or {}),
        )
        if not self.steps.verbose:
            # The sensor's own log has a console handler of its own: the "dagster" logger's
            # level does not reach it.
            context.log.setLevel(SILENT)
        data = sensor.evaluate_tick(context)
        self.cursors[sensor.name] = data.cursor
        if outcome is not None:
            outcome.cursor, outcome.skip_reason = data.cursor, data.skip_message
        # What the daemon does with a sensor's asset events: record them, so the UI shows them.
        for event in data.asset_events or ():
            self.instance.report_runless_asset_event(event)
            summary = event.metadata.get("summary")
            if summary is not None:
                self.steps.reason(sensor.name, str(metadata_value(summary)).splitlines()[0])
        if (
            data.skip_message
            and not data.skip_message.startswith("started")
            and not data.asset_events
        ):
            self.steps.reason(sensor.name, data.skip_message)
        return list(data.run_requests or [])

    def launch(
        self, sensor: dg.SensorDefinition, request: dg.RunRequest, outcome: TickOutcome
    ) -> None:
        """Launch unless a run with this run key exists: the daemon's deduplication."""
        run_key_tags = {
            "dagster/sensor_name": sensor.name,
            "dagster/run_key": request.run_key or "",
        }
        if request.run_key and self.instance.get_run_records(
            filters=dg.RunsFilter(tags=run_key_tags), limit=1
        ):
            self.steps.note(f"{sensor.name}: run key {request.run_key} already ran")
            return
        job_name = request.job_name or sensor.job_name
        assert job_name is not None, f"{sensor.name} requested a run without a job"
        job = self.definitions.resolve_job_def(job_name)
        self.steps.reason(
            f"{sensor.name} requests {job_name}", request.tags.get("aiops/reason", "")
        )
        step_started = self.steps.clock()
        with self.steps.launching():
            run = job.execute_in_process(
                run_config=self.steps.run_config(request.run_config),
                instance=self.instance,
                tags={**request.tags, **run_key_tags, "aiops/source": "demo"},
                raise_on_error=False,
            )
        outcome.run_ids.append(run.run_id)
        if request.run_key:
            outcome.run_keys.append(request.run_key)
        self.steps.finish(run, step_started)


def failure_detail(evaluation: dg.AssetCheckEvaluation) -> str:
    """The failed expectations named in a check's markdown summary, on one line."""
    drifted = evaluation.metadata.get("drifted")
    if drifted is not None:
        names = str(metadata_value(drifted)).split(", ")
        more = f" and {len(names) - 4} more" if len(names) > 4 else ""
        return f"drifted: {', '.join(names[:4])}{more}"
    summary = str(metadata_value(evaluation.metadata.get("summary", "")))
    failed = [line[2:].split(":")[0] for line in summary.splitlines() if line.startswith("- ")]
    slices = str(metadata_value(evaluation.metadata.get("implicated_slices", "")))
    detail = "; ".join(failed) if failed else summary.splitlines()[0] if summary else ""
    return detail + (f" [slices: {slices}]" if slices else "")


def metadata_value(value: Any) -> Any:
    return getattr(value, "value", value)
