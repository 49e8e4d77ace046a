"""Alerts to Prometheus Alertmanager (``POST /api/v2/alerts``), and their recoveries resolved there.

Why it is shaped this way:

- Alertmanager identifies an alert by its *whole label set*. A recovery must therefore carry
  exactly the labels of the alert it ends, or it creates a second, already-resolved alert and
  leaves the first one firing. The labels are built only from what a failure and its recovery
  share (`alert_labels`): ``alertname`` (the failure's kind, so ``check_recovered`` names the
  same ``AiopsCheckFailed``), ``service``, ``asset``, ``check``, ``partition`` and ``severity``.
- Severity is a label (routes match on it), but `AlertState` escalates a failing key from WARN
  to ERROR, and a recovery alert itself is INFO. So an alert at one severity also resolves the
  same labels at every lower severity (the escalated WARN alert stops firing), and a recovery
  resolves every severity. Resolving a label set Alertmanager never saw fires no notification:
  Alertmanager does not notify a group whose only alerts are resolved.
- The alert sensor alerts once per failure and does not re-post while it keeps failing, unlike
  Prometheus. A firing alert is therefore posted with an explicit ``endsAt`` ``ttl_seconds``
  ahead (default a day) instead of Alertmanager's ``resolve_timeout`` (5 minutes), which would
  resolve it long before anyone fixed it; a failure whose recovery never comes (a partition
  nobody re-runs) stops firing after the TTL rather than forever.
- Delivery goes through the same `JsonPoster` as the webhook (timeout, capped backoff,
  ``Retry-After``, no redirects); an Alertmanager HA pair is several sinks in a `FanOutSink`,
  as Prometheus also sends to every instance.
- The URL may carry ``user:password`` for an Alertmanager behind basic auth; it is sent as an
  ``Authorization`` header and never shown: `AlertmanagerSink.describe` keeps scheme and host.
"""

from __future__ import annotations

import base64
import time
import urllib.parse
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from aiops_assets.core.alerts import (
    SEVERITIES,
    Alert,
    DeliveryReceipt,
    JsonPoster,
    _redact,
)

__all__ = [
    "ALERTMANAGER_SEVERITY",
    "RECOVERY_OF",
    "AlertmanagerSink",
    "alert_labels",
    "alertname",
    "is_event",
    "postable_alerts",
]

API_PATH = "/api/v2/alerts"
DEFAULT_TTL_SECONDS = 24 * 3600.0

# Alertmanager routes conventionally match these lowercase names (Prometheus' own rules use them).
ALERTMANAGER_SEVERITY = {"INFO": "info", "WARN": "warning", "ERROR": "critical"}

# The kind of a recovery names the condition it ends: both must share one alertname. A kind
# that is neither (a rollback, a failed run) is an *event*: it fires briefly and is never resolved.
RECOVERY_OF = {"check_recovered": "check_failed", "asset_fresh": "asset_stale"}
# Conditions whose partition is context, not identity: an asset goes stale as a whole, and its
# recovery names the newest partition, not the one the stale alert named.
PARTITION_IS_CONTEXT = frozenset({"asset_stale"})
EVENT_TTL_SECONDS = 3600.0


def failure_kind(alert: Alert) -> str | None:
    """The condition this alert recovers from, or None when it is not a recovery."""
    return RECOVERY_OF.get(alert.kind)


def is_event(alert: Alert) -> bool:
    """Neither a condition nor its recovery: nothing will ever resolve it."""
    return alert.kind not in RECOVERY_OF and alert.kind not in RECOVERY_OF.values()


def alertname(kind: str) -> str:
    """``check_failed`` -> ``AiopsCheckFailed``: Alertmanager's CamelCase habit, prefixed so a
    route can tell these alerts from a Prometheus rule's."""
    words = [word for word in kind.replace("-", "_").split("_") if word]
    return "Aiops" + "".join(word[:1].upper() + word[1:] for word in words)


def alert_labels(alert: Alert, *, service: str, severity: str | None = None) -> dict[str, str]:
    """The identity of ``alert`` in Alertmanager: the same for a failure and its recovery.

    ``service`` is the owning service unless the alert names one in ``details["service"]``;
    ``severity`` (default the alert's own) picks the severity label. An event also carries its
    ``run_id``, so two rollbacks are two notifications, not one alert updated. Empty labels are
    left out, as Alertmanager treats an empty label as absent anyway.
    """
    kind = failure_kind(alert) or alert.kind
    own = alert.details.get("service")
    labels = {
        "alertname": alertname(kind),
        "service": str(own) if own else service,
        "asset": alert.asset or "",
        "check": alert.check or "",
        "partition": "" if kind in PARTITION_IS_CONTEXT else alert.partition or "",
        "severity": ALERTMANAGER_SEVERITY[severity or alert.severity],
        "run_id": (alert.run_id or "") if is_event(alert) else "",
    }
    return {name: value for name, value in labels.items() if value}


def _annotations(alert: Alert, *, runbook_url: str) -> dict[str, str]:
    runbook = runbook_url.format_map(_Fields(alert)) if runbook_url else ""
    annotations = {
        "summary": alert.summary,
        "description": f"{alert.kind}: {alert.summary}",
        "ui_url": alert.run_url or "",
        "runbook_url": runbook,
        "run_id": alert.run_id or "",
        "partition": alert.partition or "",
    }
    return {name: value for name, value in annotations.items() if value}


class _Fields(dict[str, str]):
    """``{asset}``, ``{check}``, ``{kind}``, ``{partition}``, ``{alertname}`` in a runbook URL; an
    unknown name stays as written rather than failing the alert."""

    def __init__(self, alert: Alert) -> None:
        kind = failure_kind(alert) or alert.kind
        super().__init__(
            asset=urllib.parse.quote(alert.asset or "", safe=""),
            check=urllib.parse.quote(alert.check or "", safe=""),
            partition=urllib.parse.quote(alert.partition or "", safe=""),
            kind=kind,
            alertname=alertname(kind),
        )

    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


def _timestamp(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def postable_alerts(
    alert: Alert,
    *,
    now: datetime,
    service: str = "aiops",
    runbook_url: str = "",
    ttl_seconds: float = DEFAULT_TTL_SECONDS,
) -> list[dict[str, Any]]:
    """The ``POST /api/v2/alerts`` body for ``alert``: one firing entry (none for a recovery)
    and one resolved entry (``endsAt`` now) for each severity it supersedes. A condition fires
    for ``ttl_seconds`` unless resolved; an event for `EVENT_TTL_SECONDS`, enough to notify."""
    annotations = _annotations(alert, runbook_url=runbook_url)
    recovery = failure_kind(alert) is not None
    event = is_event(alert)
    if event:
        ttl_seconds = min(ttl_seconds, EVENT_TTL_SECONDS)
    ceiling = len(SEVERITIES) if recovery else 0 if event else SEVERITIES.index(alert.severity)
    body: list[dict[str, Any]] = []
    for severity in SEVERITIES[:ceiling]:
        body.append(
            {
                "labels": alert_labels(alert, service=service, severity=severity),
                "annotations": annotations,
                "endsAt": _timestamp(now),
            }
        )
    if not recovery:
        body.append(
            {
                "labels": alert_labels(alert, service=service),
                "annotations": annotations,
                "startsAt": _timestamp(now),
                "endsAt": _timestamp(now + timedelta(seconds=ttl_seconds)),
            }
        )
    for entry in body:
        if alert.run_url:
            entry["generatorURL"] = alert.run_url
    return body


class AlertmanagerSink:
    """Posts each alert to one Alertmanager, retrying a short outage; a recovery resolves it.

    ``url`` is the Alertmanager's base URL (``http://alertmanager:9093``, or with a path prefix
    behind a proxy); ``/api/v2/alerts`` is appended unless already there. ``runbook_url`` may use
    ``{asset}``, ``{check}``, ``{partition}``, ``{kind}`` and ``{alertname}``.
    """

    def __init__(
        self,
        url: str,
        *,
        service: str = "aiops",
        runbook_url: str = "",
        ttl_seconds: float = DEFAULT_TTL_SECONDS,
        clock: Callable[[], float] = time.time,
        timeout: float = 5.0,
        max_attempts: int = 4,
        backoff_seconds: float = 0.5,
        backoff_factor: float = 2.0,
        max_backoff_seconds: float = 30.0,
        sleep: Callable[[float], None] = time.sleep,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        parsed = urllib.parse.urlsplit(url.strip())
        if parsed.scheme.lower() not in ("http", "https") or not parsed.hostname:
            raise ValueError(
                "an Alertmanager URL must be http(s)://host:port; got " + _redact(url.strip())
            )
        if ttl_seconds <= 0:
            raise ValueError(f"ttl_seconds must be positive, got {ttl_seconds}")
        if not service:
            raise ValueError("an Alertmanager sink needs a service label (service=...)")
        self.url, auth = _endpoint(parsed)
        self.service = service
        self.runbook_url = runbook_url
        self.ttl_seconds = ttl_seconds
        self._clock = clock
        self.poster = JsonPoster(
            timeout=timeout,
            max_attempts=max_attempts,
            backoff_seconds=backoff_seconds,
            backoff_factor=backoff_factor,
            max_backoff_seconds=max_backoff_seconds,
            sleep=sleep,
            headers={**auth, **(headers or {})},
        )

    def describe(self) -> str:
        return "alertmanager " + _redact(self.url)

    def __repr__(self) -> str:
        return f"AlertmanagerSink({_redact(self.url)!r})"

    def send(self, alert: Alert) -> DeliveryReceipt:
        body = postable_alerts(
            alert,
            now=datetime.fromtimestamp(self._clock(), UTC),
            service=self.service,
            runbook_url=self.runbook_url,
            ttl_seconds=self.ttl_seconds,
        )
        return self.poster.post(self.url, body, what=f"alert {alert.kind}", where=self.describe())


def _endpoint(parsed: urllib.parse.SplitResult) -> tuple[str, dict[str, str]]:
    """The API URL without credentials, and the basic-auth header the credentials become."""
    netloc = parsed.hostname or ""
    if ":" in netloc:
        netloc = f"[{netloc}]"
    if parsed.port:
        netloc += f":{parsed.port}"
    path = parsed.path.rstrip("/")
    if not path.endswith(API_PATH):
        path += API_PATH
    url = urllib.parse.urlunsplit((parsed.scheme, netloc, path, parsed.query, ""))
    if parsed.username is None:
        return url, {}
    user = urllib.parse.unquote(parsed.username)
    password = urllib.parse.unquote(parsed.password or "")
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return url, {"Authorization": f"Basic {token}"}
