"""``alert_on_run_failure``: an alert when a scheduled run fails outright.

A failed check alerts through ``alert_on_check_failure``; a run that fails before any check
reports (the telemetry source is down, the reproduction could not start) would otherwise be seen
only by whoever opens the UI. Each failed run of a watched job is alerted once (Dagster's
run-status sensor keeps the cursor), linking the run.
"""

from __future__ import annotations

from collections.abc import Sequence

import dagster as dg

from aiops_assets.resources import AlertSinkResource

PARTITION_TAG = "dagster/partition"


def build_alert_on_run_failure_sensor(
    monitored_jobs: Sequence[dg.JobDefinition | dg.UnresolvedAssetJobDefinition],
    *,
    name: str = "alert_on_run_failure",
    default_status: dg.DefaultSensorStatus = dg.DefaultSensorStatus.STOPPED,
) -> dg.SensorDefinition:
    """A run-failure sensor sending one ERROR alert per failed run of ``monitored_jobs``.

    A failed run is an operational problem the check sensors never see (no check ran), so it
    gets its own alert, with the partition and the first error, through the ``alert_sink``.

    Args:
        monitored_jobs: The jobs whose failed runs are alerted on; at least one.
        name: The sensor's name.
        default_status: The sensor's initial status (STOPPED: a team switches it on).

    Example:
        >>> build_alert_on_run_failure_sensor([my_job])  # doctest: +SKIP
    """
    if not monitored_jobs:
        raise ValueError(f"{name}: name at least one job to watch")

    @dg.run_failure_sensor(
        name=name,
        monitored_jobs=list(monitored_jobs),
        default_status=default_status,
        description="Alerts when a run of "
        + ", ".join(job.name for job in monitored_jobs)
        + " fails.",
    )
    def alert_on_run_failure(
        context: dg.RunFailureSensorContext, alert_sink: AlertSinkResource
    ) -> None:
        run = context.dagster_run
        partition = run.tags.get(PARTITION_TAG)
        where = f"[{partition}]" if partition else ""
        message = _first_error(context)
        alert_sink.notify(
            context.log,
            kind="run_failed",
            severity="ERROR",
            summary=f"{run.job_name}{where} run {run.run_id[:8]} failed: {message}",
            asset=run.job_name,
            run_id=run.run_id,
        )

    return alert_on_run_failure


def _first_error(context: dg.RunFailureSensorContext) -> str:
    """The first failed step's error, which says what broke; else the run's own message."""
    for event in context.get_step_failure_events():
        error = event.step_failure_data.error
        if error is not None:
            # "dagster._core.definitions.events.Failure: what broke": the person wants the rest.
            text = error.message.strip()
            prefix = f"{error.cls_name}: " if error.cls_name else ""
            if prefix and prefix in text:
                text = text.split(prefix, 1)[1]
            return f"step {event.step_key}: {text}"
    return context.failure_event.message or "failed"
