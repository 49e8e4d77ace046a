"""Several sinks at once: `FanOutSink`, `deliver_queue`, and the Alertmanager body they carry.

The sinks here are in-process (a recording sink and one that is down on demand): what is under
test is who gets which alert, in which order, and what is still owed after a failure. The real
Alertmanager is in ``test_alertmanager_sink.py``.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from aiops_assets.core.alertmanager import AlertmanagerSink, alert_labels, postable_alerts
from aiops_assets.core.alerts import (
    SEVERITIES,
    Alert,
    AlertDeliveryError,
    DeliveryReceipt,
    FanOutSink,
    JournaledSink,
    OutboxSink,
    PartialDeliveryError,
    QueuedAlert,
    RecordingSink,
    deliver_queue,
)


class Switchable(RecordingSink):
    """A recording sink that can be switched off, as a webhook or an Alertmanager goes down."""

    def __init__(self, name: str) -> None:
        super().__init__()
        self.name = name
        self.down = False

    def describe(self) -> str:
        return self.name

    def send(self, alert: Alert) -> DeliveryReceipt:
        if self.down:
            raise AlertDeliveryError(
                f"alert {alert.kind} not delivered to {self.name}", sink=self.name
            )
        return super().send(alert)


def _alert(partition: str, kind: str = "check_failed", severity: str = "ERROR") -> Alert:
    return Alert(
        kind=kind,
        severity=severity,
        summary=f"c[{partition}] {kind}",
        asset="a",
        check="c",
        partition=partition,
        dedup_key=f"a:c[{partition}]",
    )


def test_every_sink_gets_the_alert() -> None:
    slack, manager = Switchable("slack"), Switchable("am")
    sink = FanOutSink([slack, manager])
    receipt = sink.send(_alert("d1"))
    assert slack.alerts == manager.alerts == [_alert("d1")]
    assert receipt.sink == "slack + am" and sink.targets == ("0:slack", "1:am")


def test_one_sink_down_keeps_the_alert_from_no_other() -> None:
    slack, manager, other = Switchable("slack"), Switchable("am"), Switchable("am-2")
    manager.down = True
    sink = FanOutSink([slack, manager, other])
    with pytest.raises(PartialDeliveryError) as info:
        sink.send(_alert("d1"))
    assert slack.alerts == other.alerts == [_alert("d1")]
    assert info.value.failed == {"1:am": "alert check_failed not delivered to am"}
    assert info.value.delivered == ["0:slack", "2:am-2"]
    assert "1 of 3 sink(s)" in str(info.value)


def test_only_sends_to_the_targets_still_owed() -> None:
    slack, manager = Switchable("slack"), Switchable("am")
    sink = FanOutSink([slack, manager])
    sink.send(_alert("d1"), only=["1:am", "7:gone"])
    assert slack.alerts == [] and manager.alerts == [_alert("d1")]
    sink.send(_alert("d2"), only=["7:gone"])  # a sink no longer configured is owed nothing
    assert slack.alerts == [] and manager.alerts == [_alert("d1")]


def test_an_empty_fan_out_is_refused() -> None:
    with pytest.raises(ValueError, match="at least one sink"):
        FanOutSink([])


def test_a_queue_goes_on_to_the_sinks_that_work_and_waits_for_the_one_that_does_not() -> None:
    slack, manager = Switchable("slack"), Switchable("am")
    sink = FanOutSink([slack, manager])
    failure, recovery = _alert("d1"), _alert("d1", "check_recovered", "INFO")
    manager.down = True
    report = deliver_queue(sink, [QueuedAlert(failure), QueuedAlert(recovery)])
    assert slack.alerts == [failure, recovery] and manager.alerts == []
    assert report.sent == []
    assert report.pending == [QueuedAlert(failure, ("1:am",)), QueuedAlert(recovery, ("1:am",))]
    assert len(report.errors) == 1, "a sink that is down is tried once per pass"

    manager.down = False
    later = _alert("d2")
    report = deliver_queue(sink, [*report.pending, QueuedAlert(later)])
    assert manager.alerts == [failure, recovery, later], "in order: never a recovery first"
    assert slack.alerts == [failure, recovery, later], "no duplicate for the sink that worked"
    assert report.sent == [failure, recovery, later] and report.pending == []


def test_a_single_sink_that_is_down_holds_the_rest_of_the_queue() -> None:
    webhook = Switchable("slack")
    webhook.down = True
    queue = [QueuedAlert(_alert("d1")), QueuedAlert(_alert("d2"))]
    report = deliver_queue(webhook, queue)
    assert report.pending == queue and report.sent == [] and len(report.errors) == 1


def test_the_journal_records_an_alert_once_it_reached_every_sink(tmp_path: Path) -> None:
    slack, manager = Switchable("slack"), Switchable("am")
    journal = OutboxSink(tmp_path / "alerts.jsonl")
    sink = JournaledSink(FanOutSink([slack, manager]), journal)
    manager.down = True
    report = deliver_queue(sink, [QueuedAlert(_alert("d1"))])
    assert journal.read() == [] and report.pending[0].owed == ("1:am",)
    manager.down = False
    deliver_queue(sink, report.pending)
    assert journal.read() == [_alert("d1")] and slack.alerts == [_alert("d1")]


# --- The Alertmanager body -------------------------------------------------------------------

NOW = datetime(2026, 1, 6, 12, 0, tzinfo=UTC)


def _firing(body: list[dict[str, Any]]) -> list[dict[str, str]]:
    return [entry["labels"] for entry in body if "startsAt" in entry]


def _resolved(body: list[dict[str, Any]]) -> list[dict[str, str]]:
    return [entry["labels"] for entry in body if "startsAt" not in entry]


@pytest.mark.parametrize("severity", ["WARN", "ERROR"])
def test_a_recovery_resolves_exactly_the_label_set_its_failure_fired(severity: str) -> None:
    failure = _alert("d1", severity=severity)
    recovery = _alert("d1", "check_recovered", "INFO")
    [fired] = _firing(postable_alerts(failure, now=NOW, service="s"))
    body = postable_alerts(recovery, now=NOW, service="s")
    assert _firing(body) == [], "a recovery fires nothing"
    assert fired in _resolved(body)
    assert all(entry["endsAt"] == "2026-01-06T12:00:00.000Z" for entry in body)
    assert len(body) == len(SEVERITIES)


def test_an_alert_resolves_the_lower_severities_it_supersedes() -> None:
    body = postable_alerts(_alert("d1", severity="ERROR"), now=NOW, service="s", ttl_seconds=60)
    assert [labels["severity"] for labels in _resolved(body)] == ["info", "warning"]
    [entry] = [entry for entry in body if "startsAt" in entry]
    assert (entry["startsAt"], entry["endsAt"]) == (
        "2026-01-06T12:00:00.000Z",
        "2026-01-06T12:01:00.000Z",
    )


def test_an_event_is_its_own_alert_and_fires_briefly() -> None:
    event = Alert(kind="rollback", severity="WARN", summary="rolled back", asset="m", run_id="r7")
    assert alert_labels(event, service="s") == {
        "alertname": "AiopsRollback",
        "service": "s",
        "asset": "m",
        "severity": "warning",
        "run_id": "r7",
    }
    [entry] = postable_alerts(event, now=NOW, service="s")
    assert entry["endsAt"] == "2026-01-06T13:00:00.000Z", "an hour: nothing will resolve it"
    own = Alert(kind="check_failed", severity="WARN", summary="s", details={"service": "db"})
    assert alert_labels(own, service="s")["service"] == "db"


def test_freshness_recovers_the_asset_whatever_its_newest_partition() -> None:
    stale = Alert(kind="asset_stale", severity="ERROR", summary="s", asset="m", partition="d1")
    fresh = Alert(kind="asset_fresh", severity="INFO", summary="s", asset="m", partition="d3")
    [fired] = _firing(postable_alerts(stale, now=NOW))
    assert fired["alertname"] == "AiopsAssetStale" and "partition" not in fired
    assert fired in _resolved(postable_alerts(fresh, now=NOW))


def test_the_runbook_url_is_filled_from_the_alert() -> None:
    body = postable_alerts(
        _alert("2026-01-06"),
        now=NOW,
        runbook_url="https://rb.example/{alertname}/{check}?p={partition}&x={unknown}",
    )
    assert body[-1]["annotations"]["runbook_url"] == (
        "https://rb.example/AiopsCheckFailed/c?p=2026-01-06&x={unknown}"
    )


@pytest.mark.parametrize(
    ("url", "options", "message"),
    [
        ("alertmanager:9093", {}, "must be http"),
        ("http://am:9093", {"ttl_seconds": 0}, "ttl_seconds"),
        ("http://am:9093", {"service": ""}, "service label"),
        ("http://am:9093", {"max_attempts": 0}, "max_attempts"),
    ],
)
def test_bad_alertmanager_options_are_refused(
    url: str, options: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        AlertmanagerSink(url, **options)


@contextmanager
def _recording_server() -> Iterator[tuple[str, list[tuple[str, dict[str, str], Any]]]]:
    seen: list[tuple[str, dict[str, str], Any]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            seen.append((self.path, dict(self.headers), json.loads(body)))
            self.send_response(200)
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            del format, args

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}", seen
    finally:
        server.shutdown()
        server.server_close()


def test_credentials_in_the_url_become_basic_auth_and_stay_out_of_describe() -> None:
    with _recording_server() as (host, seen):
        sink = AlertmanagerSink(f"http://ops:p%40ss@{host}/am/")
        sink.send(_alert("d1"))
    [(path, headers, body)] = seen
    assert path == "/am/api/v2/alerts"
    assert headers["Authorization"] == "Basic b3BzOnBAc3M="  # base64("ops:p@ss")
    assert isinstance(body, list) and body[-1]["labels"]["alertname"] == "AiopsCheckFailed"
    assert sink.describe() == f"alertmanager http://{host}/…" and "p%40ss" not in repr(sink)
