"""Alerts against a real local HTTP server: what Slack receives, retries, outbox, dedup state."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aiops_assets.core.alerts import (
    Alert,
    AlertDeliveryError,
    AlertSink,
    AlertState,
    JournaledSink,
    OutboxSink,
    RecordingSink,
    WebhookSink,
    sink_from_url,
)
from aiops_assets_tests.sensors.webhook import local_webhook

RUN_URL = "http://dagster.example/runs/0f1e2d3c"


def _alert(**changes: Any) -> Alert:
    values: dict[str, Any] = {
        "kind": "check_failed",
        "severity": "ERROR",
        "summary": "drift on disk_usage: KS 0.41 > 0.2",
        "asset": "telemetry_features",
        "check": "drift",
        "partition": "2026-01-07",
        "run_id": "0f1e2d3c",
        "run_url": RUN_URL,
        "details": {"ks": 0.41, "features": ["disk_usage"]},
        "dedup_key": "telemetry_features.drift[2026-01-07]",
    }
    values.update(changes)
    return Alert(**values)


# --- A scripted server, for what local_webhook cannot say: headers, delays, redirects. ---------


@dataclass
class Reply:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    body: bytes = b"ok"


@dataclass
class Scripted:
    url: str = ""
    replies: list[Reply] = field(default_factory=list)
    requests: list[tuple[dict[str, str], bytes]] = field(default_factory=list)


@contextmanager
def scripted_server() -> Iterator[Scripted]:
    """Answers each POST with the next queued `Reply` (200 when the queue is empty)."""
    server_state = Scripted()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            server_state.requests.append((dict(self.headers), body))
            reply = server_state.replies.pop(0) if server_state.replies else Reply()
            if reply.delay:
                time.sleep(reply.delay)
            try:
                self.send_response(reply.status)
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(reply.body)))
                self.end_headers()
                self.wfile.write(reply.body)
            except OSError:
                pass  # the client gave up (timeout): that is the point of a delayed reply

        def log_message(self, format: str, *args: Any) -> None:
            del format, args

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    # A short poll interval: shutdown() waits for one poll, and every test starts a server.
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    server_state.url = f"http://127.0.0.1:{server.server_address[1]}/services/T0/B0/s3cr3t"
    try:
        yield server_state
    finally:
        server.shutdown()
        server.server_close()


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# --- Payload ----------------------------------------------------------------------------------


def test_the_webhook_receives_slack_shape_and_plain_fields() -> None:
    alert = _alert()
    with local_webhook() as hook:
        receipt = WebhookSink(hook.url).send(alert)
    assert (receipt.attempts, receipt.status) == (1, 200)
    [payload] = hook.received
    for name in ("kind", "severity", "asset", "check", "partition", "summary", "run_id"):
        assert payload[name] == getattr(alert, name)
    assert payload["run_url"] == RUN_URL
    assert payload["details"] == {"ks": 0.41, "features": ["disk_usage"]}
    assert payload["dedup_key"] == alert.dedup_key
    assert "\n" not in payload["text"]
    assert "ERROR" in payload["text"] and alert.summary.split(":")[0] in payload["text"]
    assert f"<{RUN_URL}|run>" in payload["text"], "Slack shows the run as a link"
    blocks = payload["blocks"]
    assert blocks[0]["type"] == "section" and "KS 0.41" in blocks[0]["text"]["text"]
    field_text = " ".join(item["text"] for item in blocks[1]["fields"])
    for value in ("telemetry_features", "drift", "2026-01-07", "ERROR"):
        assert value in field_text
    assert RUN_URL in json.dumps(blocks[-1])


def test_a_payload_without_a_run_or_asset_is_still_valid() -> None:
    payload = Alert(kind="promotion", severity="INFO", summary="v3 <promoted> & live").to_payload()
    assert "<" not in payload["text"].split("]", 1)[1], "markup in a summary is escaped for Slack"
    assert payload["summary"] == "v3 <promoted> & live", "the machine field stays raw"
    assert payload["run_url"] is None
    assert all(item["text"] for block in payload["blocks"] for item in block.get("fields", []))


def test_non_finite_details_do_not_break_strict_json() -> None:
    alert = _alert(details={"psi": float("nan"), "ratio": float("inf")})
    with scripted_server() as server:
        WebhookSink(server.url).send(alert)
    [(_, body)] = server.requests
    assert json.loads(body)["details"] == {"psi": "nan", "ratio": "inf"}


def test_an_unknown_severity_is_refused() -> None:
    with pytest.raises(ValueError, match="WARNING"):
        _alert(severity="WARNING")


# --- Retries ----------------------------------------------------------------------------------


def test_server_errors_are_retried_with_exponential_backoff() -> None:
    sleeps: list[float] = []
    with local_webhook() as hook:
        hook.failures = [503, 503]
        sink = WebhookSink(hook.url, backoff_seconds=0.5, backoff_factor=2.0, sleep=sleeps.append)
        receipt = sink.send(_alert())
    assert (receipt.attempts, receipt.status) == (3, 200)
    assert hook.attempts == 3 and len(hook.received) == 1
    assert sleeps == [0.5, 1.0]


def test_backoff_is_capped() -> None:
    sleeps: list[float] = []
    with scripted_server() as server:
        server.replies = [Reply(500)] * 5
        sink = WebhookSink(
            server.url,
            max_attempts=5,
            backoff_seconds=1.0,
            backoff_factor=3.0,
            max_backoff_seconds=5.0,
            sleep=sleeps.append,
        )
        with pytest.raises(AlertDeliveryError, match=r"after 5 attempt\(s\): HTTP 500") as info:
            sink.send(_alert())
    assert sleeps == [1.0, 3.0, 5.0, 5.0], "no sleep after the last attempt"
    assert (info.value.attempts, info.value.status) == (5, 500)


def test_too_many_requests_honors_retry_after_capped() -> None:
    sleeps: list[float] = []
    with scripted_server() as server:
        server.replies = [
            Reply(429, {"Retry-After": "7"}),
            Reply(429, {"Retry-After": "120"}),
            Reply(429, {"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"}),
        ]
        sink = WebhookSink(server.url, max_backoff_seconds=30.0, sleep=sleeps.append)
        receipt = sink.send(_alert())
    assert receipt.attempts == 4
    assert sleeps == [7.0, 30.0, 2.0], "numeric hint, capped hint, own backoff for a date"


def test_a_client_error_is_not_retried() -> None:
    sleeps: list[float] = []
    with scripted_server() as server:
        server.replies = [Reply(400, body=b"invalid_payload")]
        with pytest.raises(AlertDeliveryError) as info:
            WebhookSink(server.url, sleep=sleeps.append).send(_alert())
    assert len(server.requests) == 1 and sleeps == []
    assert (info.value.attempts, info.value.status) == (1, 400)
    message = str(info.value)
    assert "400" in message and "invalid_payload" in message and "not retried" in message
    assert "s3cr3t" not in message, "the webhook's secret path never reaches a log"


def test_a_redirect_is_not_followed() -> None:
    with scripted_server() as server:
        server.replies = [Reply(302, {"Location": server.url + "/elsewhere"})]
        with pytest.raises(AlertDeliveryError, match="302") as info:
            WebhookSink(server.url, sleep=lambda _: None).send(_alert())
    assert len(server.requests) == 1 and info.value.attempts == 1


def test_a_refused_connection_fails_after_max_attempts() -> None:
    sleeps: list[float] = []
    url = f"http://127.0.0.1:{_closed_port()}/services/T0/B0/s3cr3t"
    sink = WebhookSink(url, max_attempts=3, backoff_seconds=0.25, sleep=sleeps.append)
    with pytest.raises(AlertDeliveryError, match=r"after 3 attempt\(s\)") as info:
        sink.send(_alert())
    assert info.value.attempts == 3 and info.value.status is None
    assert "refused" in str(info.value).lower()
    assert "s3cr3t" not in str(info.value)
    assert sleeps == [0.25, 0.5]


def test_a_timeout_is_retried() -> None:
    with scripted_server() as server:
        server.replies = [Reply(delay=1.0)]
        sink = WebhookSink(server.url, timeout=0.2, sleep=lambda _: None)
        receipt = sink.send(_alert())
    assert receipt.attempts == 2


def test_headers_and_content_type() -> None:
    with scripted_server() as server:
        WebhookSink(server.url, headers={"X-Team": "sre"}).send(_alert())
    [(headers, body)] = server.requests
    assert headers["Content-Type"] == "application/json"
    assert headers["X-Team"] == "sre"
    assert json.loads(body)["kind"] == "check_failed"


def test_describe_hides_the_secret_path() -> None:
    sink = WebhookSink("https://hooks.slack.com/services/T000/B000/XXXXsecret")
    assert sink.describe() == "https://hooks.slack.com/…"
    assert "secret" not in repr(sink)
    assert WebhookSink("https://u:pw@example.com:8443/?token=x").describe() == (
        "https://example.com:8443/…"
    )
    assert WebhookSink("http://example.com").describe() == "http://example.com"


@pytest.mark.parametrize(
    "options",
    [{"max_attempts": 0}, {"timeout": 0}, {"backoff_seconds": -1}, {"backoff_factor": 0.5}],
)
def test_bad_webhook_options_are_refused(options: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        WebhookSink("https://example.com/hook", **options)


# --- Outbox, recording, sink_from_url ---------------------------------------------------------


def test_the_outbox_round_trips_and_appends(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "er" / "alerts.jsonl"
    sink = OutboxSink(path)
    assert sink.read() == []
    first, second = _alert(), _alert(kind="check_recovered", severity="INFO", details={})
    assert sink.send(first).attempts == 1
    OutboxSink(path).send(second)
    assert sink.read() == [first, second]
    lines = path.read_text().splitlines()
    assert len(lines) == 2 and json.loads(lines[0])["kind"] == "check_failed"
    assert sink.describe() == f"outbox {path}"


def test_a_torn_last_line_is_ignored_but_a_corrupt_one_is_not(tmp_path: Path) -> None:
    path = tmp_path / "alerts.jsonl"
    sink = OutboxSink(path)
    sink.send(_alert())
    with path.open("a") as handle:
        handle.write('{"kind": "check_fa')
    assert len(sink.read()) == 1
    path.write_text("not json\n" + _alert().to_json() + "\n")
    with pytest.raises(ValueError, match=r"alerts.jsonl:1"):
        sink.read()


def test_an_unwritable_outbox_raises_a_delivery_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(AlertDeliveryError, match="not written"):
        OutboxSink(blocker / "alerts.jsonl").send(_alert())


def test_the_recording_sink_keeps_alerts() -> None:
    sink = RecordingSink()
    sink.send(_alert())
    assert sink.alerts == [_alert()]
    assert isinstance(sink, AlertSink)


def test_sink_from_url(tmp_path: Path) -> None:
    default = tmp_path / "default.jsonl"
    for empty in (None, "", "  "):
        sink = sink_from_url(empty, outbox=default)
        assert isinstance(sink, OutboxSink) and sink.path == default
    webhook = sink_from_url("https://hooks.slack.com/services/T/B/x", outbox=default)
    assert isinstance(webhook, WebhookSink) and webhook.describe() == "https://hooks.slack.com/…"
    assert isinstance(sink_from_url("HTTP://example.com/x", outbox=default), WebhookSink)
    other = tmp_path / "other dir" / "alerts.jsonl"
    from_file = sink_from_url(other.as_uri(), outbox=default)
    assert isinstance(from_file, OutboxSink) and from_file.path == other
    from_path = sink_from_url(str(other), outbox=default)
    assert isinstance(from_path, OutboxSink) and from_path.path == other


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("ftp://example.com/alerts", "scheme 'ftp'"),
        ("slack://channel", "scheme 'slack'"),
        ("file://server/share/alerts.jsonl", "local path"),
    ],
)
def test_sink_from_url_refuses_what_it_cannot_deliver_to(url: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        sink_from_url(url, outbox=Path("unused.jsonl"))


# --- AlertState -------------------------------------------------------------------------------


def test_alert_state_transitions() -> None:
    state = AlertState()
    assert state.observe("a", failing=False, severity="ERROR") is None, "passing, never failed"
    assert state.observe("a", failing=True, severity="WARN") == "alert"
    assert state.observe("a", failing=True, severity="WARN") is None, "still failing: once"
    assert state.observe("a", failing=True, severity="ERROR") == "alert", "escalation"
    assert state.observe("a", failing=True, severity="WARN") is None, "de-escalation is quiet"
    assert state.observe("a", failing=True, severity="ERROR") is None, "no re-alert on a flip"
    assert state.observe("b", failing=True, severity="ERROR") == "alert", "keys are independent"
    assert state.observe("a", failing=False, severity="ERROR") == "recovery"
    assert state.observe("a", failing=False, severity="ERROR") is None
    assert state.observe("a", failing=True, severity="WARN") == "alert", "a new failure alerts"
    assert state.failing == {"a": "WARN", "b": "ERROR"}


def test_alert_state_serialization_round_trip() -> None:
    assert AlertState.from_json(None) == AlertState()
    assert AlertState.from_json("") == AlertState()
    state = AlertState()
    state.observe("disk[2026-01-07]", failing=True, severity="WARN")
    state.observe("drift[2026-01-07]", failing=True, severity="ERROR")
    restored = AlertState.from_json(state.to_json())
    assert restored == state
    assert restored.observe("disk[2026-01-07]", failing=True, severity="WARN") is None
    assert restored.observe("drift[2026-01-07]", failing=False, severity="ERROR") == "recovery"


@pytest.mark.parametrize(
    "text", ["{", "[]", '{"version": 99}', '{"version": 1, "failing": {"a": "LOUD"}}']
)
def test_a_bad_alert_state_is_refused(text: str) -> None:
    with pytest.raises(ValueError):
        AlertState.from_json(text)


# --- Properties -------------------------------------------------------------------------------

_SEVERITY = st.sampled_from(["INFO", "WARN", "ERROR"])


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.booleans(), _SEVERITY), max_size=40))
def test_every_recovery_follows_an_alert(observations: list[tuple[bool, str]]) -> None:
    state = AlertState.from_json(None)
    alerts = recoveries = 0
    alerted_since_recovery = False
    for failing, severity in observations:
        # A sensor cursor round trip between ticks must not change the answer.
        state = AlertState.from_json(state.to_json())
        action = state.observe("check[p]", failing=failing, severity=severity)
        if action == "alert":
            alerts += 1
            alerted_since_recovery = True
        elif action == "recovery":
            assert alerted_since_recovery, "a recovery without an alert before it"
            recoveries += 1
            alerted_since_recovery = False
        assert recoveries <= alerts
        assert (action == "alert") <= failing and (action == "recovery") <= (not failing)


_TEXT = st.text(max_size=30)
_OPTIONAL = st.none() | _TEXT
_JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | _TEXT,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_TEXT, inner, max_size=3),
    max_leaves=8,
)


@settings(max_examples=100, deadline=None)
@given(
    st.builds(
        Alert,
        kind=st.text(min_size=1, max_size=20),
        severity=_SEVERITY,
        summary=_TEXT,
        asset=_OPTIONAL,
        check=_OPTIONAL,
        partition=_OPTIONAL,
        run_id=_OPTIONAL,
        run_url=_OPTIONAL,
        details=st.dictionaries(_TEXT, _JSON, max_size=4),
        dedup_key=_TEXT,
    )
)
def test_alert_json_round_trip(alert: Alert) -> None:
    text = alert.to_json()
    assert "\n" not in text, "one alert per outbox line"
    assert Alert.from_json(text) == alert
    assert Alert.from_json(json.dumps(alert.to_payload())) == alert, "a received payload too"


def test_a_journaled_webhook_keeps_a_local_record_of_what_it_delivered(tmp_path: Path) -> None:
    journal = OutboxSink(tmp_path / "alerts.jsonl")
    with local_webhook() as hook:
        sink = JournaledSink(WebhookSink(hook.url, sleep=lambda _: None), journal)
        sink.send(_alert(summary="disk full"))
        hook.failures = [400]
        with pytest.raises(AlertDeliveryError):
            sink.send(_alert(summary="never delivered"))
    assert [alert.summary for alert in journal.read()] == ["disk full"]
    assert [item["summary"] for item in hook.received] == ["disk full"]


def test_a_broken_journal_does_not_fail_a_delivered_alert(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    with local_webhook() as hook:
        sink = JournaledSink(WebhookSink(hook.url), OutboxSink(blocker / "alerts.jsonl"))
        sink.send(_alert())
    assert len(hook.received) == 1
    assert sink.journal_errors and "not written" in sink.journal_errors[0]


@pytest.mark.parametrize(
    "value", ["hooks.slack.com/services/T0/B0/secret", "alerts.example.com:8443/hook"]
)
def test_a_webhook_url_without_its_scheme_is_refused_without_echoing_the_secret(
    value: str, tmp_path: Path
) -> None:
    with pytest.raises(ValueError, match="looks like a URL without its scheme") as refused:
        sink_from_url(value, outbox=tmp_path / "alerts.jsonl")
    assert "secret" not in str(refused.value)
    assert isinstance(sink_from_url("./alerts.d/out.jsonl", outbox=tmp_path), OutboxSink)
