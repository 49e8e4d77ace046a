"""``alert_on_check_failure`` against a real local HTTP server and a real instance."""

from __future__ import annotations

from typing import Any

import dagster as dg

from aiops_assets.resources import AlertSinkResource
from aiops_assets.sensors import build_alert_on_check_failure_sensor
from aiops_assets_tests.sensors.webhook import Webhook, local_webhook

CHECK = dg.AssetCheckKey(dg.AssetKey("disk_usage"), "disk_below_limit")


def _host_project(outcome: dict[str, Any]) -> list[Any]:
    """A host project's asset and check, whose result the test decides."""

    @dg.asset
    def disk_usage() -> int:
        return 1

    @dg.asset_check(asset=disk_usage)
    def disk_below_limit() -> dg.AssetCheckResult:
        return dg.AssetCheckResult(
            passed=outcome["passed"],
            severity=outcome.get("severity", dg.AssetCheckSeverity.ERROR),
            metadata={"summary": dg.MetadataValue.md(outcome.get("summary", "disk at 97%"))},
        )

    return [disk_usage, disk_below_limit]


def _run_check(instance: dg.DagsterInstance, outcome: dict[str, Any], **changes: Any) -> None:
    outcome.update(changes)
    dg.materialize(_host_project(outcome), instance=instance)


def _tick(
    instance: dg.DagsterInstance, hook: Webhook, cursor: str | None, **sink: Any
) -> tuple[str, str]:
    sensor = build_alert_on_check_failure_sensor(check_keys=[CHECK])
    context = dg.build_sensor_context(
        instance=instance,
        cursor=cursor,
        resources={
            "alert_sink": AlertSinkResource(
                webhook_url=hook.url, ui_url="http://dagster.example", **sink
            )
        },
    )
    data = sensor.evaluate_tick(context)
    assert not data.run_requests
    assert data.cursor is not None and data.skip_message is not None
    return data.cursor, data.skip_message


def test_a_failure_is_alerted_once_and_its_recovery_once(instance: dg.DagsterInstance) -> None:
    outcome: dict[str, Any] = {"passed": True}
    with local_webhook() as hook:
        _run_check(instance, outcome)
        cursor, message = _tick(instance, hook, None)
        assert message.startswith("started"), "a new sensor starts at the present"
        assert hook.received == []

        _run_check(instance, outcome, passed=False, summary="disk at 97% on db-1")
        cursor, message = _tick(instance, hook, cursor)
        assert "sent 1 alert" in message
        [alert] = hook.received
        assert alert["kind"] == "check_failed"
        assert alert["asset"] == "disk_usage" and alert["check"] == "disk_below_limit"
        assert alert["severity"] == "ERROR"
        assert "disk at 97% on db-1" in alert["summary"]
        assert alert["run_url"].startswith("http://dagster.example/runs/")
        assert alert["run_url"] in alert["text"], "Slack shows the link"
        assert alert["blocks"], "Slack-compatible blocks"

        # Still failing: deduplicated. Nothing new: nothing sent.
        _run_check(instance, outcome)
        cursor, message = _tick(instance, hook, cursor)
        cursor, _ = _tick(instance, hook, cursor)
        assert len(hook.received) == 1

        _run_check(instance, outcome, passed=True)
        cursor, message = _tick(instance, hook, cursor)
        assert [item["kind"] for item in hook.received] == ["check_failed", "check_recovered"]
        assert hook.received[1]["severity"] == "INFO"


def test_an_escalation_from_warn_to_error_is_alerted_again(instance: dg.DagsterInstance) -> None:
    outcome: dict[str, Any] = {"passed": True}
    with local_webhook() as hook:
        cursor, _ = _tick(instance, hook, None)
        _run_check(instance, outcome, passed=False, severity=dg.AssetCheckSeverity.WARN)
        cursor, _ = _tick(instance, hook, cursor)
        _run_check(instance, outcome, passed=False, severity=dg.AssetCheckSeverity.ERROR)
        cursor, _ = _tick(instance, hook, cursor)
        assert [item["severity"] for item in hook.received] == ["WARN", "ERROR"]


def test_delivery_retries_and_an_outage_loses_nothing(instance: dg.DagsterInstance) -> None:
    outcome: dict[str, Any] = {"passed": True}
    with local_webhook() as hook:
        cursor, _ = _tick(instance, hook, None)
        # Two server errors, then success: delivered within the tick, after retries.
        hook.failures = [503, 500]
        _run_check(instance, outcome, passed=False)
        cursor, message = _tick(instance, hook, cursor, backoff_seconds=0.01)
        assert hook.attempts == 3 and len(hook.received) == 1, message

        # A longer outage than the retries cover: the recovery alert is queued in the cursor.
        hook.failures = [503] * 10
        _run_check(instance, outcome, passed=True)
        cursor, message = _tick(instance, hook, cursor, backoff_seconds=0.01, max_attempts=2)
        assert "1 queued" in message
        assert len(hook.received) == 1
        hook.failures = []
        cursor, message = _tick(instance, hook, cursor, backoff_seconds=0.01)
        assert [item["kind"] for item in hook.received] == ["check_failed", "check_recovered"]
        assert "queued" not in message
