"""The Alertmanager sink against a real Alertmanager (Debian's ``prometheus-alertmanager``).

One Alertmanager per module, on a free loopback port (``aiops_assets_tests/alertmanager.py``):
alerts are posted through the sink, and through the alert sensor on a real Dagster instance, and
read back with ``GET /api/v2/alerts``. Without the binary the tests fail in CI and are skipped
elsewhere, with the reason printed.
"""

from __future__ import annotations

import itertools
import time
import warnings
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from aiops_assets.core.alertmanager import AlertmanagerSink
from aiops_assets.core.alerts import (
    Alert,
    AlertDeliveryError,
    FanOutSink,
    OutboxSink,
    PartialDeliveryError,
    WebhookSink,
)
from aiops_assets.resources import AlertSinkResource
from aiops_assets.sensors import build_alert_on_check_failure_sensor
from aiops_assets_tests.alertmanager import Alertmanager, local_alertmanager
from aiops_assets_tests.sensors.webhook import local_webhook

pytestmark = pytest.mark.services

RUNBOOK = "https://runbooks.example/aiops/{check}"
_partitions = (f"2026-02-{day:02d}" for day in itertools.count(1))


@pytest.fixture(scope="module")
def alertmanager() -> Iterator[Alertmanager]:
    with local_alertmanager() as server:
        yield server


def _sink(server: Alertmanager, **options: Any) -> AlertmanagerSink:
    return AlertmanagerSink(
        server.url, service="checkout", runbook_url=RUNBOOK, sleep=lambda _: None, **options
    )


def _failure(partition: str, severity: str = "ERROR", **changes: Any) -> Alert:
    fields: dict[str, Any] = {
        "kind": "check_failed",
        "severity": severity,
        "summary": f"disk_usage:disk_below_limit[{partition}] failed: disk at 97%",
        "asset": "disk_usage",
        "check": "disk_below_limit",
        "partition": partition,
        "run_id": "run-1",
        "run_url": "http://dagster.example/runs/run-1",
        "dedup_key": f"disk_usage:disk_below_limit[{partition}]",
    }
    return Alert(**(fields | changes))


def _recovery(partition: str) -> Alert:
    """What the alert sensor sends on recovery: another kind, INFO, same asset/check/partition."""
    return _failure(
        partition,
        "INFO",
        kind="check_recovered",
        summary=f"disk_usage:disk_below_limit[{partition}] passes again",
        run_id="run-2",
        run_url="http://dagster.example/runs/run-2",
    )


def test_an_alert_fires_with_its_labels_and_its_recovery_resolves_it(
    alertmanager: Alertmanager,
) -> None:
    sink = _sink(alertmanager)
    partition, other = next(_partitions), next(_partitions)
    receipt = sink.send(_failure(partition))
    sink.send(_failure(other, "WARN"))
    assert receipt.status == 200 and receipt.sink == f"alertmanager {alertmanager.url}/…"

    [active] = alertmanager.alerts(partition=partition)
    assert active["labels"] == {
        "alertname": "AiopsCheckFailed",
        "service": "checkout",
        "asset": "disk_usage",
        "check": "disk_below_limit",
        "partition": partition,
        "severity": "critical",
    }
    assert active["status"]["state"] == "active"
    assert active["annotations"]["summary"] == _failure(partition).summary
    assert active["annotations"]["ui_url"] == "http://dagster.example/runs/run-1"
    assert active["annotations"]["runbook_url"] == "https://runbooks.example/aiops/disk_below_limit"
    assert active["generatorURL"] == "http://dagster.example/runs/run-1"

    sink.send(_recovery(partition))
    assert alertmanager.alerts(partition=partition) == [], "the recovery resolved the same alert"
    [still] = alertmanager.alerts(partition=other)
    assert still["labels"]["severity"] == "warning", "a recovery resolves only its own alert"


def test_an_escalation_replaces_the_warning_and_the_recovery_ends_both(
    alertmanager: Alertmanager,
) -> None:
    sink = _sink(alertmanager)
    partition = next(_partitions)
    sink.send(_failure(partition, "WARN"))
    assert [a["labels"]["severity"] for a in alertmanager.alerts(partition=partition)] == [
        "warning"
    ]
    sink.send(_failure(partition, "ERROR"))
    assert [a["labels"]["severity"] for a in alertmanager.alerts(partition=partition)] == [
        "critical"
    ], "one alert per failing check, at its current severity"
    sink.send(_recovery(partition))
    assert alertmanager.alerts(partition=partition) == []


def test_a_firing_alert_outlives_resolve_timeout_until_its_ttl(alertmanager: Alertmanager) -> None:
    partition = next(_partitions)
    started = time.time() - 600  # ten minutes ago: twice Alertmanager's resolve_timeout
    _sink(alertmanager, ttl_seconds=3600, clock=lambda: started).send(_failure(partition))
    [active] = alertmanager.alerts(partition=partition)
    starts, ends = (_parse(active[name]) for name in ("startsAt", "endsAt"))
    assert starts == pytest.approx(started, abs=0.001)
    assert ends - starts == pytest.approx(3600, abs=0.001), "endsAt is startsAt + ttl"
    assert active["status"]["state"] == "active"


def _parse(stamp: str) -> float:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


def test_a_rejected_body_is_not_retried_and_names_no_credential(
    alertmanager: Alertmanager,
) -> None:
    url = alertmanager.url.replace("http://", "http://ops:s3cr3t@") + "/no/such/prefix"
    sink = AlertmanagerSink(url, sleep=lambda _: None)
    with pytest.raises(AlertDeliveryError) as info:
        sink.send(_failure(next(_partitions)))
    assert info.value.status == 404 and info.value.attempts == 1
    assert "s3cr3t" not in str(info.value) and "s3cr3t" not in sink.describe()


def test_a_fan_out_still_reaches_alertmanager_when_the_webhook_is_down(
    alertmanager: Alertmanager, tmp_path: Path
) -> None:
    partition = next(_partitions)
    with local_webhook() as hook:
        hook.failures = [503]
        webhook = WebhookSink(hook.url, max_attempts=1)
        sink = FanOutSink([webhook, _sink(alertmanager), OutboxSink(tmp_path / "a.jsonl")])
        with pytest.raises(PartialDeliveryError) as info:
            sink.send(_failure(partition))
    assert list(info.value.failed) == [sink.targets[0]]
    assert info.value.delivered == list(sink.targets[1:])
    assert "503" in str(info.value)
    assert len(alertmanager.alerts(partition=partition)) == 1
    assert len(OutboxSink(tmp_path / "a.jsonl").read()) == 1


# --- Through the alert sensor -----------------------------------------------------------------

PARTITIONS = dg.DailyPartitionsDefinition(start_date="2026-01-05", end_date="2026-01-08")
CHECK = dg.AssetCheckKey(dg.AssetKey("queue_depth"), "queue_below_limit")


def _host_project(outcome: dict[str, Any]) -> list[Any]:
    @dg.asset(partitions_def=PARTITIONS)
    def queue_depth() -> int:
        return 1

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", dg.PreviewWarning)  # partitioned checks are a preview

        @dg.asset_check(asset=queue_depth, partitions_def=PARTITIONS)
        def queue_below_limit() -> dg.AssetCheckResult:
            return _result(outcome)

    return [queue_depth, queue_below_limit]


def _result(outcome: dict[str, Any]) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(
        passed=outcome["passed"],
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={"summary": dg.MetadataValue.md("queue at 12k")},
    )


def _run(instance: dg.DagsterInstance, partition: str, *, passed: bool) -> None:
    dg.materialize(_host_project({"passed": passed}), instance=instance, partition_key=partition)


def _tick(instance: dg.DagsterInstance, cursor: str | None, resource: AlertSinkResource) -> str:
    sensor = build_alert_on_check_failure_sensor(check_keys=[CHECK])
    context = dg.build_sensor_context(
        instance=instance, cursor=cursor, resources={"alert_sink": resource}
    )
    data = sensor.evaluate_tick(context)
    assert data.cursor is not None
    return data.cursor


def test_the_alert_sensor_fires_and_resolves_in_alertmanager(
    alertmanager: Alertmanager, instance: dg.DagsterInstance, tmp_path: Path
) -> None:
    partition = "2026-01-06"
    journal = tmp_path / "alerts.jsonl"
    resource = AlertSinkResource(
        alertmanager_urls=alertmanager.url,
        service="payments",
        runbook_url=RUNBOOK,
        outbox_path=str(journal),
        ui_url="http://dagster.example",
    )
    selector = {"service": "payments", "asset": "queue_depth"}
    _run(instance, partition, passed=True)
    cursor = _tick(instance, None, resource)

    _run(instance, partition, passed=False)
    cursor = _tick(instance, cursor, resource)
    [active] = alertmanager.alerts(**selector)
    assert active["labels"] == {
        "alertname": "AiopsCheckFailed",
        "service": "payments",
        "asset": "queue_depth",
        "check": "queue_below_limit",
        "partition": partition,
        "severity": "critical",
    }
    assert "queue at 12k" in active["annotations"]["summary"]
    assert active["annotations"]["ui_url"].startswith("http://dagster.example/runs/")

    _run(instance, partition, passed=True)
    _tick(instance, cursor, resource)
    assert alertmanager.alerts(**selector) == [], "the recovery resolved the sensor's alert"
    assert [a.kind for a in OutboxSink(journal).read()] == ["check_failed", "check_recovered"]


def test_the_sensor_retries_only_the_sink_that_was_down(
    alertmanager: Alertmanager, instance: dg.DagsterInstance, tmp_path: Path
) -> None:
    partition = "2026-01-07"
    journal = tmp_path / "alerts.jsonl"
    selector = {"service": "search", "partition": partition}
    with local_webhook() as hook:
        resource = AlertSinkResource(
            webhook_url=hook.url,
            alertmanager_urls=alertmanager.url,
            service="search",
            outbox_path=str(journal),
            max_attempts=1,
        )
        _run(instance, partition, passed=True)
        cursor = _tick(instance, None, resource)
        _run(instance, partition, passed=False)
        hook.failures = [503]
        cursor = _tick(instance, cursor, resource)
        assert len(alertmanager.alerts(**selector)) == 1, "Alertmanager got it despite Slack"
        assert hook.received == [] and OutboxSink(journal).read() == []
        [first] = alertmanager.alerts(**selector)

        cursor = _tick(instance, cursor, resource)
        assert [alert["kind"] for alert in hook.received] == ["check_failed"]
        [again] = alertmanager.alerts(**selector)
        assert again["updatedAt"] == first["updatedAt"], "Alertmanager was not posted twice"
        assert [a.kind for a in OutboxSink(journal).read()] == ["check_failed"]

        _run(instance, partition, passed=True)
        _tick(instance, cursor, resource)
    assert [alert["kind"] for alert in hook.received] == ["check_failed", "check_recovered"]
    assert alertmanager.alerts(**selector) == []
