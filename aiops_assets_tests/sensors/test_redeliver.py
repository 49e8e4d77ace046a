"""redeliver_alerts: a rollback alert sent while the webhook was down reaches it on a later tick,
once, through the real resource and sensor."""

from __future__ import annotations

import logging
from pathlib import Path

import dagster as dg

from aiops_assets.resources import AlertSinkResource
from aiops_assets.sensors.redeliver import build_redeliver_alerts_sensor
from aiops_assets_tests.sensors.webhook import local_webhook


def _tick(resource: AlertSinkResource, instance: dg.DagsterInstance) -> str | None:
    sensor = build_redeliver_alerts_sensor()
    context = dg.build_sensor_context(instance=instance, resources={"alert_sink": resource})
    data = sensor.evaluate_tick(context)
    assert not data.run_requests
    return data.skip_message


def test_an_alert_the_webhook_missed_is_delivered_on_a_later_tick(
    tmp_path: Path, instance: dg.DagsterInstance
) -> None:
    with local_webhook() as hook:
        resource = AlertSinkResource(
            webhook_url=hook.url,
            outbox_path=str(tmp_path / "alerts.jsonl"),
            max_attempts=2,
            backoff_seconds=0.01,
        )
        hook.failures = [503, 503]
        delivered = resource.notify(
            logging.getLogger("test"),
            kind="champion_rolled_back",
            severity="ERROR",
            summary="champion rolled back to v1",
            asset="champion_model",
            run_id="run-1",
        )
        assert not delivered and hook.received == []
        assert resource.pending_path.exists()

        hook.failures = [503, 503]
        assert _tick(resource, instance) == "delivered 0 waiting alert(s); 1 still waiting"
        assert _tick(resource, instance) == "delivered 1 waiting alert(s); 0 still waiting"
        [body] = hook.received
        assert body["kind"] == "champion_rolled_back" and body["run_id"] == "run-1"
        assert _tick(resource, instance) == "no alert waiting for delivery"
        assert len(hook.received) == 1
