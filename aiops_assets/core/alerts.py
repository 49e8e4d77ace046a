"""Alerts: what one says, where it goes, and when a failing check is worth telling anyone about.

Why it is shaped this way:

- One `Alert` serves two readers. A person reads it in Slack, so `Alert.to_payload` carries the
  Slack ``text`` and ``blocks``; a program (a test, the demo, an incident tool behind the webhook)
  reads the same payload's plain top-level fields, so nobody has to parse Slack markup.
- A laptop has no Slack. With no webhook configured alerts go to an append-only JSON-lines
  *outbox* file, so a local run loses none and a test can read them back.
- A webhook is a network call from a sensor tick: it must not hang the tick (timeout), should ride
  out a short outage (retries with capped exponential backoff, honoring ``Retry-After``), and must
  not hammer a request the server has already rejected (other 4xx fail at once). A delivery that
  still fails raises `AlertDeliveryError`, so the caller can queue the alert instead of losing it.
- A Slack webhook URL *is* its credential. It never appears in a log line, a tick message or an
  error: `WebhookSink.describe` shows only scheme and host.
- A check that keeps failing on every partition must alert once, not on every evaluation.
  `AlertState` remembers what is failing (and at which severity) between sensor ticks; it is
  small and JSON-serializable so it can live in a Dagster sensor cursor. This module never
  imports Dagster: core/ stays usable from Airflow or a notebook.
"""

from __future__ import annotations

import http.client
import json
import math
import os
import re
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable

__all__ = [
    "SEVERITIES",
    "Alert",
    "AlertDeliveryError",
    "AlertSink",
    "AlertState",
    "DeliveryReceipt",
    "DeliveryReport",
    "FanOutSink",
    "JournaledSink",
    "JsonPoster",
    "OutboxSink",
    "PartialDeliveryError",
    "QueuedAlert",
    "RecordingSink",
    "WebhookSink",
    "deliver_queue",
    "sink_from_url",
]

# Ordered: escalation means moving right.
SEVERITIES: tuple[str, ...] = ("INFO", "WARN", "ERROR")
_RANK = {name: rank for rank, name in enumerate(SEVERITIES)}
_EMOJI = {"INFO": ":information_source:", "WARN": ":warning:", "ERROR": ":rotating_light:"}

# Slack rejects a whole message (HTTP 400, not retried) when one block is too long, so long
# summaries are cut rather than losing the alert. Limits: section text 3000, field 2000.
_SECTION_LIMIT = 2900
_FIELD_LIMIT = 1900
# An error body from the server explains a 4xx ("invalid_payload", "no_service"); a little is enough.
_ERROR_BODY_LIMIT = 300


class AlertDeliveryError(Exception):
    """An alert could not be delivered; the caller decides whether to queue it or give up.

    The message names the sink (never a webhook's secret path), the attempts made and the last
    cause; the same facts are attributes so a caller need not parse the message.
    """

    def __init__(
        self,
        message: str,
        *,
        sink: str = "",
        attempts: int = 0,
        status: int | None = None,
    ) -> None:
        super().__init__(message)
        self.sink = sink
        self.attempts = attempts
        self.status = status


def _rank(severity: str) -> int:
    try:
        return _RANK[severity]
    except KeyError:
        raise ValueError(
            f"unknown alert severity {severity!r}; expected one of {', '.join(SEVERITIES)}"
        ) from None


@dataclass(frozen=True)
class Alert:
    """One thing a person should know about, with enough context to act without searching.

    ``dedup_key`` lets a receiver (an incident tool) group repeats of the same problem; the
    sensor uses the check and partition. ``details`` round-trips exactly through JSON when its
    values are JSON values; anything else is written as its ``str`` rather than failing the alert.
    """

    kind: str
    severity: str
    summary: str
    asset: str | None = None
    check: str | None = None
    partition: str | None = None
    run_id: str | None = None
    run_url: str | None = None
    details: dict[str, Any] = field(default_factory=dict)
    dedup_key: str = ""

    def __post_init__(self) -> None:
        # A typo ("WARNING") would otherwise only show up as a missing emoji in Slack.
        _rank(self.severity)
        if not self.kind:
            raise ValueError("an alert needs a kind")

    def _fields(self) -> dict[str, Any]:
        return asdict(self)

    def to_payload(self) -> dict[str, Any]:
        """The webhook body: Slack's ``text`` and ``blocks`` plus the alert's plain fields."""
        emoji = _EMOJI[self.severity]
        summary = _slack_escape(self.summary)
        link = f" <{self.run_url}|run>" if self.run_url else ""
        text = f"{emoji} [{self.severity}] {' '.join(summary.split())}{link}"
        labelled = [
            ("Asset", self.asset),
            ("Check", self.check),
            ("Partition", self.partition),
            ("Severity", self.severity),
        ]
        blocks: list[dict[str, Any]] = [
            {
                "type": "section",
                "text": {
                    "type": "mrkdwn",
                    "text": _cut(f"{emoji} *{self.severity}* {summary}", _SECTION_LIMIT),
                },
            },
            {
                "type": "section",
                "fields": [
                    {
                        "type": "mrkdwn",
                        "text": _cut(f"*{label}*\n{_slack_escape(value)}", _FIELD_LIMIT),
                    }
                    for label, value in labelled
                    if value
                ],
            },
        ]
        context = [{"type": "mrkdwn", "text": f"kind: `{_slack_escape(self.kind)}`"}]
        if self.run_url:
            context.append({"type": "mrkdwn", "text": f"<{self.run_url}|View the run in Dagster>"})
        blocks.append({"type": "context", "elements": context})
        return {"text": text, "blocks": blocks, **self._fields()}

    def to_json(self) -> str:
        """One line of JSON (no newlines inside), so an outbox stays one alert per line."""
        return json.dumps(self._fields(), sort_keys=True, default=str)

    @classmethod
    def from_json(cls, text: str) -> Alert:
        """Read `to_json` output, or a webhook payload: Slack's extra keys are ignored."""
        try:
            data = json.loads(text)
        except json.JSONDecodeError as error:
            raise ValueError(f"not an alert: invalid JSON ({error})") from None
        if not isinstance(data, dict):
            raise ValueError(f"not an alert: expected a JSON object, got {type(data).__name__}")
        known = {f.name for f in fields(cls)}
        missing = {"kind", "severity", "summary"} - data.keys()
        if missing:
            raise ValueError(f"not an alert: missing {', '.join(sorted(missing))}")
        return cls(**{name: value for name, value in data.items() if name in known})


def _slack_escape(text: str) -> str:
    # Slack treats these three as markup; a summary like "p < 0.05" would otherwise vanish.
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _strict_json(value: Any) -> Any:
    """NaN and infinity are not JSON: a strict receiver (Slack) would 400 the whole alert."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {str(key): _strict_json(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_strict_json(item) for item in value]
    return value


@dataclass(frozen=True)
class DeliveryReceipt:
    """Proof of delivery: how hard it was (``attempts``) and what the server said (``status``)."""

    sink: str
    attempts: int
    status: int | None


@runtime_checkable
class AlertSink(Protocol):
    """Where alerts go. ``send`` raises `AlertDeliveryError` rather than dropping an alert."""

    def send(self, alert: Alert) -> DeliveryReceipt: ...

    def describe(self) -> str:
        """Safe to log: never contains a credential."""
        ...


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """urllib would follow a 301/302 from a POST as a GET without the body: a silent loss."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


_RETRYABLE_STATUS = frozenset({429}) | frozenset(range(500, 600))


class JsonPoster:
    """POSTs JSON bodies the way every HTTP sink should: bounded, patient, never redirected.

    A network call from a sensor tick must not hang it (``timeout``), should ride out a short
    outage (capped exponential backoff, honoring a numeric ``Retry-After``) and must not repeat a
    request the server already rejected (a 4xx other than 429 fails at once). The webhook and the
    Alertmanager sink share this one loop so they behave the same under an outage.
    """

    def __init__(
        self,
        *,
        timeout: float = 5.0,
        max_attempts: int = 4,
        backoff_seconds: float = 0.5,
        backoff_factor: float = 2.0,
        max_backoff_seconds: float = 30.0,
        sleep: Callable[[float], None] = time.sleep,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        if max_attempts < 1:
            raise ValueError(f"max_attempts must be at least 1, got {max_attempts}")
        if timeout <= 0:
            raise ValueError(f"timeout must be positive, got {timeout}")
        if backoff_seconds < 0 or max_backoff_seconds < 0 or backoff_factor < 1:
            raise ValueError(
                "backoff_seconds and max_backoff_seconds must be >= 0 and backoff_factor >= 1"
            )
        self.timeout = timeout
        self.max_attempts = max_attempts
        self.backoff_seconds = backoff_seconds
        self.backoff_factor = backoff_factor
        self.max_backoff_seconds = max_backoff_seconds
        self._sleep = sleep
        self._headers = {
            "User-Agent": "aiops-assets-alerts",
            **(headers or {}),
            "Content-Type": "application/json",
        }
        self._opener = urllib.request.build_opener(_NoRedirect())

    def backoff(self, attempt: int) -> float:
        """The wait after failed attempt ``attempt`` (1-based) when the server gave no hint."""
        return min(
            self.backoff_seconds * self.backoff_factor ** (attempt - 1), self.max_backoff_seconds
        )

    def post(self, url: str, payload: Any, *, what: str, where: str) -> DeliveryReceipt:
        """Deliver ``payload`` (a JSON value) or raise `AlertDeliveryError` naming ``what`` and
        ``where`` (``where`` must already be redacted: it goes into the error message)."""
        body = json.dumps(_strict_json(payload), allow_nan=False, default=str).encode()
        cause = ""
        status: int | None = None
        for attempt in range(1, self.max_attempts + 1):
            wait = self.backoff(attempt)
            request = urllib.request.Request(url, data=body, headers=self._headers, method="POST")
            try:
                with self._opener.open(request, timeout=self.timeout) as response:
                    status = int(response.status)
                    response.read()
                if 200 <= status < 300:
                    return DeliveryReceipt(sink=where, attempts=attempt, status=status)
                cause = f"HTTP {status}"
                raise AlertDeliveryError(
                    f"{what} not delivered to {where}: unexpected {cause} (attempt {attempt})",
                    sink=where,
                    attempts=attempt,
                    status=status,
                )
            except urllib.error.HTTPError as error:
                status = error.code
                cause = f"HTTP {status} {error.reason}".rstrip() + _error_body(error)
                if status not in _RETRYABLE_STATUS:
                    raise AlertDeliveryError(
                        f"{what} rejected by {where}: {cause} (not retried, "
                        f"attempt {attempt} of {self.max_attempts})",
                        sink=where,
                        attempts=attempt,
                        status=status,
                    ) from None
                hint = _retry_after(error.headers.get("Retry-After") if error.headers else None)
                if hint is not None:
                    wait = min(hint, self.max_backoff_seconds)
            except (urllib.error.URLError, OSError, http.client.HTTPException) as error:
                # URLError wraps refused/unreachable; a timeout mid-read surfaces as OSError.
                status = None
                reason = getattr(error, "reason", None) or error
                cause = f"{type(error).__name__}: {reason}"
            if attempt < self.max_attempts:
                self._sleep(wait)
        raise AlertDeliveryError(
            f"{what} not delivered to {where} after {self.max_attempts} attempt(s): {cause}",
            sink=where,
            attempts=self.max_attempts,
            status=status,
        )


class WebhookSink:
    """POSTs each alert as JSON to a Slack-compatible incoming webhook, retrying a short outage."""

    def __init__(
        self,
        url: str,
        *,
        timeout: float = 5.0,
        max_attempts: int = 4,
        backoff_seconds: float = 0.5,
        backoff_factor: float = 2.0,
        max_backoff_seconds: float = 30.0,
        sleep: Callable[[float], None] = time.sleep,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        parsed = urllib.parse.urlsplit(url)
        if parsed.scheme.lower() not in ("http", "https") or not parsed.hostname:
            raise ValueError("a webhook URL must be http(s)://host/...; got " + _redact(url))
        self.url = url
        self.poster = JsonPoster(
            timeout=timeout,
            max_attempts=max_attempts,
            backoff_seconds=backoff_seconds,
            backoff_factor=backoff_factor,
            max_backoff_seconds=max_backoff_seconds,
            sleep=sleep,
            headers=headers,
        )

    def describe(self) -> str:
        return _redact(self.url)

    def __repr__(self) -> str:
        return f"WebhookSink({self.describe()!r})"

    def backoff(self, attempt: int) -> float:
        """The wait after failed attempt ``attempt`` (1-based) when the server gave no hint."""
        return self.poster.backoff(attempt)

    def send(self, alert: Alert) -> DeliveryReceipt:
        return self.poster.post(
            self.url, alert.to_payload(), what=f"alert {alert.kind}", where=self.describe()
        )


def _redact(url: str) -> str:
    """Scheme and host only: Slack's path, a query token or user:password are all credentials."""
    parsed = urllib.parse.urlsplit(url)
    host = parsed.hostname or "?"
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    try:
        port = f":{parsed.port}" if parsed.port else ""
    except ValueError:
        port = ""
    hidden = "/…" if parsed.path.strip("/") or parsed.query or parsed.fragment else ""
    return f"{parsed.scheme or '?'}://{host}{port}{hidden}"


def _retry_after(value: str | None) -> float | None:
    """Seconds from a numeric Retry-After; an HTTP-date or junk falls back to our own backoff."""
    if value is None:
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        return None
    return seconds if math.isfinite(seconds) and seconds >= 0 else None


def _error_body(error: urllib.error.HTTPError) -> str:
    try:
        text = error.read(_ERROR_BODY_LIMIT).decode("utf-8", "replace").strip()
    except Exception:
        return ""
    return f": {' '.join(text.split())}" if text else ""


class OutboxSink:
    """The laptop default: one JSON alert per line, appended, on disk before ``send`` returns."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def describe(self) -> str:
        return f"outbox {self.path}"

    def __repr__(self) -> str:
        return f"OutboxSink({str(self.path)!r})"

    def send(self, alert: Alert) -> DeliveryReceipt:
        line = (alert.to_json() + "\n").encode()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # One write on an O_APPEND descriptor: two processes alerting at once never interleave.
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                view = memoryview(line)
                while view:
                    view = view[os.write(fd, view) :]
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError as error:
            raise AlertDeliveryError(
                f"alert {alert.kind} not written to {self.describe()}: {error}",
                sink=self.describe(),
                attempts=1,
            ) from error
        return DeliveryReceipt(sink=self.describe(), attempts=1, status=None)

    def read(self) -> list[Alert]:
        """Every alert in the outbox, oldest first; a missing outbox has none."""
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return []
        lines = text.split("\n")
        alerts = []
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                alerts.append(Alert.from_json(line))
            except (ValueError, TypeError) as error:
                if number == len(lines):
                    break  # a torn last write (a crash mid-line) is not a corrupt outbox
                raise ValueError(f"{self.path}:{number}: {error}") from None
        return alerts


class JournaledSink:
    """A sink that also keeps a local record of every alert it delivered.

    Slack keeps no history a tool can query; the journal (a JSON-lines outbox) lets the demo, the
    incident report and a post-mortem read exactly what was sent. The journal is written after
    delivery and its failure does not fail the send: re-sending an alert that people already
    received, because a local disk was full, would be worse than a gap in the record.
    """

    def __init__(self, primary: AlertSink, journal: OutboxSink) -> None:
        self.primary = primary
        self.journal = journal
        self.journal_errors: list[str] = []

    def describe(self) -> str:
        return f"{self.primary.describe()} (journal {self.journal.path})"

    @property
    def targets(self) -> tuple[str, ...] | None:
        """The primary's delivery targets, when it fans out (see `FanOutSink.targets`)."""
        return getattr(self.primary, "targets", None)

    def send(self, alert: Alert, *, only: Collection[str] | None = None) -> DeliveryReceipt:
        """Deliver, then journal: with a fan-out primary, once the alert reached every target
        (``only`` names the targets still owed it after a partial failure)."""
        if only is not None and isinstance(self.primary, FanOutSink):
            receipt = self.primary.send(alert, only=only)
        else:
            receipt = self.primary.send(alert)
        try:
            self.journal.send(alert)
        except AlertDeliveryError as error:
            self.journal_errors.append(str(error))
        return receipt


class PartialDeliveryError(AlertDeliveryError):
    """Some sinks of a `FanOutSink` took the alert and some did not.

    ``failed`` maps each target that failed to its error, ``delivered`` lists those that took
    it, so a retry goes only where the alert is still owed (no duplicate Slack message because
    Alertmanager was down).
    """

    def __init__(self, message: str, *, failed: Mapping[str, str], delivered: Sequence[str]):
        super().__init__(message, sink=", ".join(failed), attempts=1)
        self.failed = dict(failed)
        self.delivered = list(delivered)


class FanOutSink:
    """Every alert to several sinks (a webhook and each Alertmanager of an HA pair), each with
    its own retries; one sink that fails never keeps the alert from the others.

    A sink is named by its *target*, ``"<position>:<describe()>"``: stable while the
    configuration is, safe to keep in a sensor cursor (no credential), and different for two
    webhooks on the same host.
    """

    def __init__(self, sinks: Sequence[AlertSink]) -> None:
        if not sinks:
            raise ValueError("a fan-out sink needs at least one sink")
        self.sinks = list(sinks)

    @property
    def targets(self) -> tuple[str, ...]:
        return tuple(f"{index}:{sink.describe()}" for index, sink in enumerate(self.sinks))

    def describe(self) -> str:
        return " + ".join(sink.describe() for sink in self.sinks)

    def __repr__(self) -> str:
        return f"FanOutSink({self.sinks!r})"

    def send(self, alert: Alert, *, only: Collection[str] | None = None) -> DeliveryReceipt:
        """Try every sink (or only the targets in ``only``; a target no longer configured is
        owed nothing) and raise `PartialDeliveryError` naming the ones that failed."""
        failed: dict[str, str] = {}
        delivered: list[str] = []
        attempts = 0
        for target, sink in zip(self.targets, self.sinks, strict=True):
            if only is not None and target not in only:
                continue
            try:
                attempts = max(attempts, sink.send(alert).attempts)
                delivered.append(target)
            except AlertDeliveryError as error:
                attempts = max(attempts, error.attempts)
                failed[target] = str(error)
        if failed:
            raise PartialDeliveryError(
                f"alert {alert.kind} not delivered to {len(failed)} of "
                f"{len(failed) + len(delivered)} sink(s): " + "; ".join(failed.values()),
                failed=failed,
                delivered=delivered,
            )
        return DeliveryReceipt(sink=self.describe(), attempts=max(attempts, 1), status=None)


@dataclass(frozen=True)
class QueuedAlert:
    """An alert waiting for delivery; ``owed`` lists the fan-out targets still owed it
    (``None``: every sink)."""

    alert: Alert
    owed: tuple[str, ...] | None = None


@dataclass
class DeliveryReport:
    """What `deliver_queue` did: alerts now delivered everywhere, those still owed somewhere,
    and one line per failure (sink and cause, no credential)."""

    sent: list[Alert] = field(default_factory=list)
    pending: list[QueuedAlert] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def deliver_queue(sink: AlertSink, queue: Sequence[QueuedAlert]) -> DeliveryReport:
    """Send a queue in order, keeping each sink's own order and keeping a failing sink from
    blocking the others.

    A sink that fails in this pass gets none of the later alerts until the next pass (they
    queue behind the one it missed, so it never sees a recovery before its failure), while the
    sinks that work receive every alert now. A sink without fan-out is one target: once it
    fails, the rest of the queue waits.
    """
    targets: tuple[str, ...] | None = getattr(sink, "targets", None)
    report = DeliveryReport()
    down: set[str] = set()
    blocked = False
    for item in queue:
        if targets is None:
            if not blocked:
                try:
                    sink.send(item.alert)
                    report.sent.append(item.alert)
                    continue
                except AlertDeliveryError as error:
                    report.errors.append(str(error))
                    blocked = True
            report.pending.append(item)
            continue
        owed = [t for t in (item.owed if item.owed is not None else targets) if t in targets]
        now = [target for target in owed if target not in down]
        still = [target for target in owed if target in down]
        if now:
            try:
                sink.send(item.alert, only=now)  # type: ignore[call-arg]
            except PartialDeliveryError as error:
                down.update(error.failed)
                still.extend(error.failed)
                report.errors.extend(error.failed.values())
            except AlertDeliveryError as error:
                down.update(now)
                still.extend(now)
                report.errors.append(str(error))
        if still:
            report.pending.append(QueuedAlert(item.alert, tuple(t for t in owed if t in still)))
        else:
            report.sent.append(item.alert)
    return report


class RecordingSink:
    """Keeps alerts in memory, for tests and the demo, where a file or a server is just noise."""

    def __init__(self) -> None:
        self.alerts: list[Alert] = []

    def describe(self) -> str:
        return "recording sink"

    def send(self, alert: Alert) -> DeliveryReceipt:
        self.alerts.append(alert)
        return DeliveryReceipt(sink=self.describe(), attempts=1, status=None)


_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")
_LOOKS_LIKE_HOST = re.compile(r"^[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}(:\d+)?/")


def sink_from_url(url: str | None, *, outbox: Path) -> AlertSink:
    """One setting picks the sink, so a deployment switches to Slack without a code change.

    Empty means the outbox file; ``http(s)://`` a webhook; ``file://`` or a plain path another
    outbox file. Any other scheme is a mistake worth stopping for, not a file to write to.
    """
    value = (url or "").strip()
    if not value:
        return OutboxSink(Path(outbox))
    match = _SCHEME.match(value)
    if match is None:
        if _LOOKS_LIKE_HOST.match(value):
            # "hooks.slack.com/services/..." without https:// would become a file named after
            # the secret: refuse it rather than write alerts nobody reads.
            raise ValueError(
                f"alert sink {_redact('https://' + value)!r} looks like a URL without its "
                "scheme; write https://… for a webhook, or ./… for a file"
            )
        return OutboxSink(Path(value).expanduser())
    scheme = match.group(1).lower()
    if scheme in ("http", "https"):
        return WebhookSink(value)
    if scheme == "file":
        parsed = urllib.parse.urlsplit(value)
        if parsed.netloc not in ("", "localhost"):
            raise ValueError(
                f"alert sink {value!r}: a file:// URL must name a local path "
                f"(file:///path/alerts.jsonl), not host {parsed.netloc!r}"
            )
        if not parsed.path:
            raise ValueError(f"alert sink {value!r}: the file:// URL has no path")
        return OutboxSink(Path(urllib.request.url2pathname(parsed.path)))
    raise ValueError(
        f"alert sink with scheme {scheme!r} is not supported: use an http(s):// webhook URL, "
        "a file:// URL or a path for a JSON-lines outbox, or nothing for the default outbox"
    )


class AlertState:
    """Which keys are failing, at which severity: enough to alert once and to notice recovery.

    Only failing keys are kept, so the state stays as small as the current trouble. A key's
    severity is the highest alerted so far: a check flapping between WARN and ERROR while it
    keeps failing alerts once for WARN and once for the escalation, not on every flip.
    """

    _VERSION = 1

    def __init__(self, failing: Mapping[str, str] | None = None) -> None:
        self._failing: dict[str, str] = {}
        for key, severity in (failing or {}).items():
            _rank(severity)
            self._failing[key] = severity

    @property
    def failing(self) -> dict[str, str]:
        return dict(self._failing)

    def observe(
        self, key: str, *, failing: bool, severity: str
    ) -> Literal["alert", "recovery"] | None:
        """Fold one evaluation of ``key`` in, and say whether a person should hear about it."""
        rank = _rank(severity)
        known = self._failing.get(key)
        if not failing:
            if known is None:
                return None
            del self._failing[key]
            return "recovery"
        if known is None or rank > _RANK[known]:
            self._failing[key] = severity
            return "alert"
        return None

    def to_json(self) -> str:
        return json.dumps(
            {"version": self._VERSION, "failing": dict(sorted(self._failing.items()))},
            separators=(",", ":"),
        )

    @classmethod
    def from_json(cls, text: str | None) -> AlertState:
        """``None`` or empty (a sensor's first tick) is an empty state."""
        if not text:
            return cls()
        try:
            data = json.loads(text)
        except json.JSONDecodeError as error:
            raise ValueError(f"not an alert state: invalid JSON ({error})") from None
        if not isinstance(data, dict) or data.get("version") != cls._VERSION:
            raise ValueError(f"not an alert state (version {cls._VERSION}): {text[:100]!r}")
        failing = data.get("failing", {})
        if not isinstance(failing, dict) or not all(
            isinstance(key, str) and isinstance(value, str) for key, value in failing.items()
        ):
            raise ValueError(f"not an alert state: bad 'failing' map {failing!r:.100}")
        return cls(failing)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, AlertState) and self._failing == other._failing

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"AlertState({self._failing!r})"
