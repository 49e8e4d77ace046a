"""After a demo-like replay the persistent instance holds what the UI shows: a tick per sensor
evaluation (with the runs it launched) and runs that name the code location and the sensor or
schedule that launched them, as the daemon would have left them.

The demo's own loop (``DemoSteps`` and ``SensorLoop``) drives a small code location here: the
real demo takes minutes. Ticks are read with ``instance.get_ticks`` by the id the UI uses (the
location, repository and sensor names: ``InstigatorSelector``); Dagster 1.13 has no public tick
read, so these two lines are the test's only internal API.
"""

from __future__ import annotations

import io
import time
from pathlib import Path
from typing import Any

import dagster as dg
from dagster._core.definitions.selector import InstigatorSelector

from aiops_assets.core.progress import LineProgress
from aiops_assets.reference.demo.result import DemoResult
from aiops_assets.reference.demo.steps import DemoSteps, SensorLoop
from aiops_assets.reference.demo.ticks import (
    REPOSITORY_NAME,
    SCHEDULE_TAG,
    SENSOR_TAG,
    TickOutcome,
    TickRecorder,
)
from aiops_assets.runner import prepare_instance

LOCATION = "demo_ticks_location"


@dg.asset
def total() -> int:
    return 1


refresh_job = dg.define_asset_job("refresh_job", selection=[total])


@dg.sensor(job=refresh_job)
def wants_refresh(context: dg.SensorEvaluationContext) -> dg.SensorResult:
    """Requests one refresh on its second tick, then skips."""
    ticks = int(context.cursor or 0) + 1
    requests = [dg.RunRequest(run_key="refresh-1")] if ticks == 2 else []
    return dg.SensorResult(
        run_requests=requests,
        skip_reason=None if requests else f"tick {ticks}: nothing to do",
        cursor=str(ticks),
    )


@dg.sensor()
def never_asks(context: dg.SensorEvaluationContext) -> dg.SkipReason:
    return dg.SkipReason("all quiet")


DEFS = dg.Definitions(assets=[total], jobs=[refresh_job], sensors=[wants_refresh, never_asks])


def _workspace(tmp_path: Path) -> Path:
    path = tmp_path / "workspace.yaml"
    path.write_text(
        "load_from:\n"
        "  - python_module:\n"
        "      module_name: aiops_assets.reference.definitions\n"
        f"      location_name: {LOCATION}\n"
    )
    return path


def _ticks(instance: dg.DagsterInstance, name: str) -> list[Any]:
    selector = InstigatorSelector(
        location_name=LOCATION, repository_name=REPOSITORY_NAME, name=name
    )
    # Newest first, as the UI lists them.
    return list(instance.get_ticks("unused-origin-id", selector.get_id()))


def test_sensor_ticks_and_their_runs_are_on_the_instance_the_ui_reads(tmp_path: Path) -> None:
    recorder = TickRecorder.for_workspace(_workspace(tmp_path))
    assert recorder is not None and recorder.location_name == LOCATION
    instance = prepare_instance(tmp_path / "dagster_home", template=tmp_path / "none.yaml")
    try:
        assert instance.is_persistent
        result = DemoResult(dagster_home=str(instance.root_directory), store_root=str(tmp_path))
        steps = DemoSteps(
            DEFS,
            instance,
            result,
            LineProgress(io.StringIO()),
            time.perf_counter,
            recorder=recorder,
        )
        loop = SensorLoop(DEFS, steps)
        loop.start()
        loop.tick("2026-01-01")
        loop.tick("2026-01-02")

        ticks = _ticks(instance, "wants_refresh")
        assert [tick.status.value for tick in reversed(ticks)] == ["SKIPPED", "SUCCESS", "SKIPPED"]
        assert ticks[2].skip_reason == "tick 1: nothing to do"
        assert [tick.cursor for tick in reversed(ticks)] == ["1", "2", "3"]
        (launched,) = ticks[1].run_ids
        assert ticks[1].run_keys == ["refresh-1"]
        assert [t.status.value for t in _ticks(instance, "never_asks")] == ["SKIPPED"] * 3

        run = instance.get_run_by_id(launched)
        assert run is not None and run.job_name == "refresh_job"
        assert run.tags[SENSOR_TAG] == "wants_refresh" and run.is_success
        # The timeline lists a run under its code location and job: it must name them.
        assert run.remote_job_origin is not None
        assert run.remote_job_origin.location_name == LOCATION
        assert run.remote_job_origin.job_name == "refresh_job"
        sensor_runs = instance.get_runs(filters=dg.RunsFilter(tags={SENSOR_TAG: "wants_refresh"}))
        assert [r.run_id for r in sensor_runs] == [launched]
    finally:
        instance.dispose()


def test_a_scheduled_materialization_names_its_schedule_and_its_tick_holds_it(
    tmp_path: Path,
) -> None:
    recorder = TickRecorder.for_workspace(_workspace(tmp_path))
    assert recorder is not None
    instance = prepare_instance(tmp_path / "dagster_home", template=tmp_path / "none.yaml")
    try:
        result = DemoResult(dagster_home=str(instance.root_directory), store_root=str(tmp_path))
        steps = DemoSteps(
            DEFS,
            instance,
            result,
            LineProgress(io.StringIO()),
            time.perf_counter,
            recorder=recorder,
        )
        run_id = steps.materialize(
            None, ("total",), dg.AssetSelection.assets("total"), tags={SCHEDULE_TAG: "nightly"}
        )
        steps.record_tick("nightly", "schedule", TickOutcome(run_ids=[run_id]))
        (tick,) = _ticks(instance, "nightly")
        assert tick.status.value == "SUCCESS" and tick.run_ids == [run_id]
        (run,) = instance.get_runs(filters=dg.RunsFilter(tags={SCHEDULE_TAG: "nightly"}))
        assert run.run_id == run_id and run.remote_job_origin is not None
        assert run.remote_job_origin.location_name == LOCATION
    finally:
        instance.dispose()


def test_without_a_recorder_nothing_is_recorded_and_runs_still_happen(tmp_path: Path) -> None:
    instance = prepare_instance(tmp_path / "dagster_home", template=tmp_path / "none.yaml")
    try:
        result = DemoResult(dagster_home=str(instance.root_directory), store_root=str(tmp_path))
        steps = DemoSteps(DEFS, instance, result, LineProgress(io.StringIO()), time.perf_counter)
        run_id = steps.materialize(None, ("total",), dg.AssetSelection.assets("total"))
        run = instance.get_run_by_id(run_id)
        assert run is not None and run.is_success and run.remote_job_origin is None
        assert _ticks(instance, "wants_refresh") == []
    finally:
        instance.dispose()
