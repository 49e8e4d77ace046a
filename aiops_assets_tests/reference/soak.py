"""The soak test's machinery: one fake clock for every process, the real daemon and code server,
a Prometheus that can be stopped and started, and the history a first deployment starts from.

The clock is an offset in a file the test rewrites, read by ``soak_clock/sitecustomize.py`` in
the daemon, the code server and every run they launch (they inherit its ``PYTHONPATH``): wall
time jumps forward from one simulated moment to the next and runs at the normal rate in between,
while monotonic time and sleeps stay real, so every timeout keeps its real length. Dagster's
schedules, sensors, automation and freshness then see simulated days pass. (libfaketime was
tried first: faking the monotonic clock hangs Python's timed waits, and leaving it real makes
its ``clock_nanosleep`` fail with EINVAL in 0.9.10, Debian 12's.) Prometheus keeps the real
clock; it only serves the backfilled history.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from aiops_assets.core import telemetry
from aiops_assets.keys import MONITORING_REPORT_KEY
from aiops_assets.reference.automation import INGEST_SCHEDULE
from aiops_assets.reference.definitions import (
    TRAINING_ASSETS,
    build_definitions,
    ingest_selection,
    scoring_selection,
)
from aiops_assets.reference.settings import PipelineSettings
from aiops_assets.runner import daily_partition_keys, materialize_selection, quiet
from aiops_assets_tests.loopback_server import free_port
from aiops_assets_tests.prometheus import CONFIG, RETENTION, backfill, binaries_or_skip

REPO = Path(__file__).resolve().parents[2]
CLOCK_HOOK = Path(__file__).with_name("soak_clock")
BIN = Path(sys.executable).parent
SCHEDULE_TAG = "dagster/schedule_name"
PARTITION_TAG = "dagster/partition"
ACTIVE = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
    dg.DagsterRunStatus.CANCELING,
]
# Runs coordinated as a deployment would: queued, two at a time on a two-core machine.
INSTANCE_YAML = """\
telemetry:
  enabled: false
run_coordinator:
  module: dagster._core.run_coordinator
  class: QueuedRunCoordinator
  config:
    max_concurrent_runs: 2
    dequeue_interval_seconds: 1
"""


class FakeClock:
    """Simulated UTC time shared through a file: ``set`` moves it, for every process started
    with ``env()`` (``soak_clock/sitecustomize.py`` reads it)."""

    def __init__(self, folder: Path) -> None:
        self.file = folder / "clock-offset"
        self.file.write_text("0\n")
        self.now: datetime | None = None
        self.offset = 0.0

    def set(self, moment: datetime) -> None:
        if self.now is not None and moment <= self.now:
            raise ValueError(f"the soak's clock only moves forward: {moment} after {self.now}")
        self.offset = (moment - datetime.now(UTC)).total_seconds()
        partial = self.file.with_suffix(".partial")
        partial.write_text(f"{self.offset:.6f}\n")
        partial.replace(self.file)
        self.now = moment
        time.sleep(0.5)  # the processes re-read the file five times a second

    def time(self) -> float:
        """The simulated time, in seconds, as the soak's processes read it."""
        return time.time() + self.offset

    def env(self) -> dict[str, str]:
        return {
            "PYTHONPATH": os.pathsep.join((str(CLOCK_HOOK), str(REPO))),
            "AIOPS_SOAK_CLOCK": str(self.file),
        }


class PrometheusServer:
    """A real Prometheus on one loopback port, holding ``frame``; stopped and started at will
    (an outage of the monitoring system is part of the soak)."""

    def __init__(self, root: Path, frame: pd.DataFrame) -> None:
        self.binary, tool = binaries_or_skip()
        self.root = root
        root.mkdir(parents=True)
        backfill(tool, frame, root / "tsdb")
        (root / "prometheus.yml").write_text(CONFIG)
        self.url = f"http://127.0.0.1:{free_port()}"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        command = [
            self.binary,
            f"--config.file={self.root / 'prometheus.yml'}",
            f"--storage.tsdb.path={self.root / 'tsdb'}",
            f"--storage.tsdb.retention.time={RETENTION}",
            f"--web.listen-address={self.url.removeprefix('http://')}",
        ]
        self.process = spawn(command, self.root / "prometheus.log", os.environ)
        wait_for(lambda: _answers(f"{self.url}/-/ready"), 60, "Prometheus", self.process)

    def stop(self) -> None:
        if self.process is not None:
            stop(self.process)
            self.process = None


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as reply:
            return int(reply.status) == 200
    except OSError:
        return False


def spawn(
    command: list[str], log: Path, env: Mapping[str, str], cwd: Path | None = None
) -> subprocess.Popen[bytes]:
    with log.open("ab") as output:
        return subprocess.Popen(
            command,
            stdout=output,
            stderr=subprocess.STDOUT,
            env=dict(env),
            cwd=cwd,
            start_new_session=True,
        )


def stop(process: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> None:
    if process.poll() is None:
        os.killpg(process.pid, sig)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=20)


def wait_for(
    condition: object, seconds: float, what: str, process: subprocess.Popen[bytes] | None = None
) -> None:
    """Poll ``condition`` (a callable) until it holds; fail saying ``what`` did not happen."""
    assert callable(condition)
    deadline = time.monotonic() + seconds
    while not condition():
        if process is not None and process.poll() is not None:
            pytest.fail(f"{what}: the process exited with {process.returncode}")
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not within {seconds:.0f} s")
        time.sleep(0.25)


def instance_yaml(dagster_home: Path, code_server_port: int) -> Path:
    """The instance's settings and a workspace naming the code server the test started."""
    dagster_home.mkdir(parents=True)
    (dagster_home / "dagster.yaml").write_text(INSTANCE_YAML)
    workspace = dagster_home / "workspace.yaml"
    workspace.write_text(
        "load_from:\n  - grpc_server:\n      host: 127.0.0.1\n"
        f"      port: {code_server_port}\n      location_name: aiops_assets\n"
    )
    return workspace


def scheduler_beat_since(instance: dg.DagsterInstance, moment: float) -> bool:
    """Whether the scheduler finished a pass after ``moment`` (simulated seconds)."""
    beat = instance.get_daemon_heartbeats().get("SCHEDULER")
    return beat is not None and beat.timestamp >= moment


def scheduled_run(instance: dg.DagsterInstance, partition: str) -> dg.DagsterRun | None:
    runs = instance.get_runs(
        filters=dg.RunsFilter(tags={SCHEDULE_TAG: INGEST_SCHEDULE, PARTITION_TAG: partition})
    )
    return runs[0] if runs else None


def settled(instance: dg.DagsterInstance, partition: str) -> bool:
    """The partition's scheduled run ended, its report (after a success) is materialized, and
    nothing else is queued or running."""
    run = scheduled_run(instance, partition)
    if run is None or not run.is_finished:
        return False
    if instance.get_runs_count(filters=dg.RunsFilter(statuses=ACTIVE)):
        return False
    if run.status != dg.DagsterRunStatus.SUCCESS:
        return True
    reports = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=MONITORING_REPORT_KEY, asset_partitions=[partition]),
        limit=1,
    )
    return bool(reports.records)


def materialization_counts(
    instance: dg.DagsterInstance, key: dg.AssetKey, *, by_sensor: str | None = None
) -> dict[str, int]:
    """Materializations of ``key`` per partition; with ``by_sensor``, only those of runs that
    sensor launched, else only the others."""
    counts: dict[str, int] = {}
    cursor = None
    while True:
        page = instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=key), limit=500, cursor=cursor
        )
        for record in page.records:
            run = instance.get_run_by_id(record.run_id)
            launcher = run.tags.get("dagster/sensor_name") if run is not None else None
            if (launcher == by_sensor) if by_sensor else launcher is None:
                partition = str(record.partition_key)
                counts[partition] = counts.get(partition, 0) + 1
        if not page.has_more:
            return counts
        cursor = page.cursor


def mapping_text(step_minutes: int) -> str:
    metrics = "\n".join(f"  {column}: aiops_{column}" for column in telemetry.GENERATED_METRICS)
    return f"service: service\nstep: {step_minutes}m\nmetrics:\n{metrics}\nlabel: aiops_label\n"


def bootstrap(last_history_day: str) -> None:
    """What a team does once before switching the schedules on (run under the fake clock, in a
    fresh process): ingest the history, train as of its last day, score it."""
    settings = PipelineSettings.from_env()
    definitions = build_definitions(settings)
    instance = dg.DagsterInstance.get()
    days = [day for day in daily_partition_keys(definitions) if day <= last_history_day]
    for day in days:
        materialize_selection(
            definitions, instance, ingest_selection(), partition_key=day, run_config=quiet(None)
        )
    materialize_selection(
        definitions,
        instance,
        dg.AssetSelection.assets(*TRAINING_ASSETS),
        run_config=quiet({"ops": {"training_set": {"config": {"until": last_history_day}}}}),
    )
    for day in days:
        materialize_selection(
            definitions, instance, scoring_selection(), partition_key=day, run_config=quiet(None)
        )


if __name__ == "__main__":
    bootstrap(sys.argv[1])
