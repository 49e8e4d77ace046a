"""The demo's sensor and schedule ticks, and its runs, recorded as the daemon would record them.

The demo evaluates its sensors and runs its jobs in process (a daemon launching each run in a
subprocess spends ~10 s importing per run, and its wall-clock timing would make the replay
non-deterministic). The UI, though, shows a sensor's history from the *ticks* stored on the
instance, and puts a run on the Overview timeline only when the run names the code location it
came from. Dagster 1.13 has no public API for either: ticks are written only by the daemon
(``dagster sensor preview`` and ``dg.build_sensor_context`` store nothing), and a run gets its
code-location origin only when launched through a workspace (UI, GraphQL, daemon).

So this module, and only it, uses three internal pieces, chosen as the least likely to move:
``TickData`` + ``instance.create_tick`` (the schedule-storage record every daemon version
writes), ``InstigatorSelector`` (the id by which the UI looks ticks up: location, repository
and name only, so it matches whatever server the UI started), and ``RemoteJobOrigin`` passed to
``instance.create_run_for_job`` (its own keyword). The code location is read from the project's
``workspace.yaml`` with Dagster's own loader, so the names are those the UI shows. If a Dagster
upgrade breaks any of it, the demo still runs: recording is skipped with one warning line.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dagster as dg

WORKSPACE_FILE = Path("workspace.yaml")
DEFAULT_LOCATION = "aiops_assets"
DEFAULT_MODULE = "aiops_assets.reference.definitions"
# Dagster's name for the one repository a ``dg.Definitions`` makes.
REPOSITORY_NAME = "__repository__"
SENSOR_TAG = "dagster/sensor_name"
SCHEDULE_TAG = "dagster/schedule_name"


@dataclass
class TickOutcome:
    """What one evaluation did: the runs it launched, or why it skipped."""

    run_ids: list[str] = field(default_factory=list)
    run_keys: list[str] = field(default_factory=list)
    skip_reason: str | None = None
    cursor: str | None = None


class TickRecorder:
    """Stores ticks and gives runs their code-location origin, for one code location."""

    def __init__(self, code_location_origin: Any, location_name: str) -> None:
        from dagster._core.remote_origin import RemoteRepositoryOrigin

        self.location_name = location_name
        self.repository_origin = RemoteRepositoryOrigin(code_location_origin, REPOSITORY_NAME)

    @classmethod
    def for_workspace(cls, workspace: Path = WORKSPACE_FILE) -> TickRecorder | None:
        """The recorder for the workspace's first code location (the one ``make dev`` serves),
        or for the packaged module when there is no workspace file; None if Dagster's
        internals moved (the demo then runs without recording)."""
        try:
            return cls(*_location_origin(workspace))
        except (ImportError, AttributeError, TypeError, ValueError) as error:
            print(f"aiops demo: ticks will not be recorded: {error}", file=sys.stderr)
            return None

    @contextlib.contextmanager
    def launched_here(self, instance: dg.DagsterInstance) -> Iterator[None]:
        """Runs created on ``instance`` inside the block name this code location and their job,
        as a run launched from the UI or by the daemon does: the UI's timeline lists only those."""
        from dagster._core.remote_origin import RemoteJobOrigin

        create = instance.create_run_for_job

        def create_with_origin(job_def: Any, *args: Any, **kwargs: Any) -> Any:
            kwargs.setdefault(
                "remote_job_origin", RemoteJobOrigin(self.repository_origin, job_def.name)
            )
            return create(job_def, *args, **kwargs)

        instance.create_run_for_job = create_with_origin  # type: ignore[method-assign]
        try:
            yield
        finally:
            del instance.create_run_for_job

    def record(
        self, instance: dg.DagsterInstance, name: str, kind: str, outcome: TickOutcome
    ) -> None:
        """One finished tick of sensor or schedule ``name`` (``kind``), stored as the daemon
        stores it: SUCCESS with its runs, or SKIPPED with its reason."""
        from dagster._core.definitions.run_request import InstigatorType
        from dagster._core.definitions.selector import InstigatorSelector
        from dagster._core.remote_origin import RemoteInstigatorOrigin
        from dagster._core.scheduler.instigation import TickData, TickStatus

        if instance.schedule_storage is None:
            return  # an ephemeral instance (a test's) keeps no ticks, nor does any UI read them
        now = time.time()
        instance.create_tick(
            TickData(
                instigator_origin_id=RemoteInstigatorOrigin(self.repository_origin, name).get_id(),
                instigator_name=name,
                instigator_type=InstigatorType.SENSOR
                if kind == "sensor"
                else InstigatorType.SCHEDULE,
                status=TickStatus.SUCCESS if outcome.run_ids else TickStatus.SKIPPED,
                timestamp=now,
                run_ids=outcome.run_ids,
                run_keys=outcome.run_keys,
                skip_reason=None if outcome.run_ids else outcome.skip_reason,
                cursor=outcome.cursor,
                selector_id=InstigatorSelector(
                    location_name=self.location_name, repository_name=REPOSITORY_NAME, name=name
                ).get_id(),
                end_timestamp=time.time(),
            )
        )


def _location_origin(workspace: Path) -> tuple[Any, str]:
    from dagster._core.remote_origin import ManagedGrpcPythonEnvCodeLocationOrigin
    from dagster._core.types.loadable_target_origin import LoadableTargetOrigin
    from dagster._core.workspace.load_target import WorkspaceFileTarget

    if workspace.is_file():
        origins: Sequence[Any] = WorkspaceFileTarget(paths=[str(workspace)]).create_origins()
        if origins:
            return origins[0], str(origins[0].location_name)
    origin = ManagedGrpcPythonEnvCodeLocationOrigin(
        loadable_target_origin=LoadableTargetOrigin(
            executable_path=sys.executable,
            module_name=DEFAULT_MODULE,
            attribute="defs",
            working_directory=os.getcwd(),
        ),
        location_name=DEFAULT_LOCATION,
    )
    return origin, DEFAULT_LOCATION
