"""redeliver_alerts: the one-off alerts a sink missed, retried on every tick until delivered.

A promotion, a rollback, a failed run or a broken audit chain is announced once, from where it
happened (``AlertSinkResource.notify``); if a sink was down through all its attempts the alert
waits in the pending queue (``core/alert_queue.py``) and this sensor sends it on, in order, to
the sinks still owed it, never again to those that had it.
"""

from __future__ import annotations

import dagster as dg

from aiops_assets.core.alert_queue import PendingAlerts
from aiops_assets.resources import AlertSinkResource

SENSOR_NAME = "redeliver_alerts"


def build_redeliver_alerts_sensor(
    *,
    name: str = SENSOR_NAME,
    minimum_interval_seconds: int = 60,
    default_status: dg.DefaultSensorStatus = dg.DefaultSensorStatus.STOPPED,
) -> dg.SensorDefinition:
    """A sensor that retries the one-off alerts a sink missed, until each is delivered.

    Args:
        name: The sensor's name (unique in the code location).
        minimum_interval_seconds: How often the daemon retries.
        default_status: STOPPED by default, like the other alert sensors.

    Example:
        >>> dg.Definitions(  # doctest: +SKIP
        ...     sensors=[build_redeliver_alerts_sensor()],
        ...     resources={"alert_sink": AlertSinkResource(outbox_path=".aiops/alerts.jsonl")},
        ... )
    """

    @dg.sensor(
        name=name,
        minimum_interval_seconds=minimum_interval_seconds,
        default_status=default_status,
        description=(
            "Retries the promotion, rollback, run-failure and audit alerts that a sink missed, "
            "in order, to the sinks still owed them."
        ),
    )
    def redeliver_alerts(
        context: dg.SensorEvaluationContext, alert_sink: AlertSinkResource
    ) -> dg.SensorResult:
        report = PendingAlerts(alert_sink.pending_path).deliver(alert_sink.get_sink())
        for error in report.errors:
            context.log.warning(f"alert still not delivered: {error}")
        if not report.sent and not report.pending:
            return dg.SensorResult(skip_reason="no alert waiting for delivery")
        return dg.SensorResult(
            skip_reason=(
                f"delivered {len(report.sent)} waiting alert(s); "
                f"{len(report.pending)} still waiting"
            )
        )

    return redeliver_alerts


__all__ = ["SENSOR_NAME", "build_redeliver_alerts_sensor"]
