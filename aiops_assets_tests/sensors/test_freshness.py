"""``alert_on_stale_asset`` on a real instance, with the wall clock moved by the test."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from aiops_assets.resources import AlertSinkResource
from aiops_assets.sensors.freshness import build_alert_on_stale_asset_sensor
from aiops_assets_tests.sensors.webhook import Webhook, local_webhook

DAYS = dg.DailyPartitionsDefinition(start_date="2026-03-01", end_date="2026-03-05")
POLICY = dg.FreshnessPolicy.time_window(
    fail_window=timedelta(hours=48), warn_window=timedelta(hours=26)
)


@dg.asset(partitions_def=DAYS, freshness_policy=POLICY)
def daily_metrics() -> int:
    return 1


@dg.asset
def unwatched() -> int:
    return 1


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _latest(instance: dg.DagsterInstance) -> float:
    return instance.fetch_materializations(daily_metrics.key, limit=1).records[0].timestamp


def _tick(
    instance: dg.DagsterInstance, clock: Clock, hook: Webhook, cursor: str | None, outbox: Path
) -> tuple[str, list[dict[str, Any]]]:
    sensor = build_alert_on_stale_asset_sensor([daily_metrics, unwatched], clock=clock)
    before = len(hook.received)
    context = dg.build_sensor_context(
        instance=instance,
        cursor=cursor,
        resources={
            "alert_sink": AlertSinkResource(
                webhook_url=hook.url, backoff_seconds=0, outbox_path=str(outbox)
            )
        },
    )
    data = sensor.evaluate_tick(context)
    assert not data.run_requests and data.cursor is not None
    return data.cursor, hook.received[before:]


def test_a_stale_asset_warns_then_fails_once_each_and_recovers_once(
    instance: dg.DagsterInstance, tmp_path: Path
) -> None:
    clock, outbox = Clock(), tmp_path / "alerts.jsonl"
    with local_webhook() as hook:
        # Never materialized: its freshness is unknown, as Dagster says, and nobody is paged.
        cursor, sent = _tick(instance, clock, hook, None, outbox)
        assert sent == []
        dg.materialize([daily_metrics], instance=instance, partition_key="2026-03-02")
        materialized = _latest(instance)
        steps = [(1, []), (27, ["WARN"]), (30, []), (49, ["ERROR"]), (60, [])]
        for hours, expected in steps:
            clock.now = materialized + hours * 3600
            cursor, sent = _tick(instance, clock, hook, cursor, outbox)
            assert [alert["severity"] for alert in sent] == expected, hours
        assert sent == []
        stale = hook.received[-1]
        assert stale["kind"] == "asset_stale" and stale["asset"] == "daily_metrics"
        assert stale["partition"] == "2026-03-02"
        assert "past its freshness window of 48.0 h" in stale["summary"]
        dg.materialize([daily_metrics], instance=instance, partition_key="2026-03-03")
        clock.now = _latest(instance) + 60
        cursor, sent = _tick(instance, clock, hook, cursor, outbox)
        assert [(alert["kind"], alert["severity"]) for alert in sent] == [("asset_fresh", "INFO")]


def test_an_alert_the_sink_refused_is_sent_on_the_next_tick(
    instance: dg.DagsterInstance, tmp_path: Path
) -> None:
    clock, outbox = Clock(), tmp_path / "alerts.jsonl"
    dg.materialize([daily_metrics], instance=instance, partition_key="2026-03-02")
    clock.now = _latest(instance) + 50 * 3600
    with local_webhook() as hook:
        hook.failures.extend([503] * 4)
        cursor, sent = _tick(instance, clock, hook, None, outbox)
        assert sent == []
        cursor, sent = _tick(instance, clock, hook, cursor, outbox)
        assert [alert["kind"] for alert in sent] == ["asset_stale"]


def _fan_out_tick(
    instance: dg.DagsterInstance, clock: Clock, hook: Webhook, manager: Webhook, cursor: str | None
) -> tuple[str, str]:
    """One tick with the webhook and an Alertmanager (a local server standing in) at once."""
    sensor = build_alert_on_stale_asset_sensor([daily_metrics], clock=clock)
    sink = AlertSinkResource(
        webhook_url=hook.url,
        alertmanager_urls=manager.url.removesuffix("/hook"),
        backoff_seconds=0,
        max_attempts=2,
    )
    context = dg.build_sensor_context(
        instance=instance, cursor=cursor, resources={"alert_sink": sink}
    )
    data = sensor.evaluate_tick(context)
    assert data.cursor is not None and data.skip_message is not None
    return data.cursor, data.skip_message


def test_a_sink_that_is_down_is_retried_alone_and_the_others_get_no_duplicate(
    instance: dg.DagsterInstance,
) -> None:
    clock = Clock()
    dg.materialize([daily_metrics], instance=instance, partition_key="2026-03-02")
    clock.now = _latest(instance) + 50 * 3600
    with local_webhook() as hook, local_webhook() as manager:
        manager.failures.extend([503] * 2)
        cursor, message = _fan_out_tick(instance, clock, hook, manager, None)
        assert [alert["kind"] for alert in hook.received] == ["asset_stale"]
        assert manager.received == [] and "1 queued" in message
        cursor, message = _fan_out_tick(instance, clock, hook, manager, cursor)
        # One post to Alertmanager's v2 API (its last entry the firing one); the webhook, which
        # took the alert on the first tick, is not sent it again.
        assert len(manager.received) == 1
        body: list[dict[str, Any]] = manager.received[0]  # type: ignore[assignment]
        firing = body[-1]
        assert firing["labels"]["asset"] == "daily_metrics" and "startsAt" in firing
        assert len(hook.received) == 1 and "queued" not in message
        _, message = _fan_out_tick(instance, clock, hook, manager, cursor)
        assert len(hook.received) == 1 and len(manager.received) == 1, message


def test_assets_without_a_time_window_policy_are_refused() -> None:
    with pytest.raises(ValueError, match="none of the assets has a time-window freshness policy"):
        build_alert_on_stale_asset_sensor([unwatched])
