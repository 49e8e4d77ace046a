"""Which sink an alert goes to, from the settings both orchestrators read: a webhook, one or more
Alertmanagers, both, or the JSON-lines outbox.

One assembly for the Dagster resource (``AlertSinkResource.get_sink``) and the Airflow provider
(``aiops_assets/airflow/alerting.py``), so the same settings page the same receivers whichever
orchestrator noticed the problem. With an Alertmanager every alert fans out to each instance and
to the webhook, each sink with its own retries, and the outbox journals what reached them all; a
webhook alone is journaled too; nothing configured writes the outbox.
"""

from __future__ import annotations

from pathlib import Path

from aiops_assets.core.alertmanager import DEFAULT_TTL_SECONDS, AlertmanagerSink
from aiops_assets.core.alerts import (
    AlertSink,
    FanOutSink,
    JournaledSink,
    OutboxSink,
    WebhookSink,
    sink_from_url,
)


def build_sink(
    webhook_url: str,
    alertmanager_urls: str,
    outbox: Path | str,
    *,
    service: str = "aiops",
    runbook_url: str = "",
    ttl_seconds: float = DEFAULT_TTL_SECONDS,
    max_attempts: int = 4,
    backoff_seconds: float = 0.5,
) -> AlertSink:
    """The sink for ``webhook_url`` (empty: none) and the comma-separated ``alertmanager_urls``
    (every instance of an HA cluster); ``outbox`` is the journal or the sink itself."""

    def webhook(url: str) -> AlertSink:
        if url.startswith(("http://", "https://")):
            return WebhookSink(url, max_attempts=max_attempts, backoff_seconds=backoff_seconds)
        return sink_from_url(url, outbox=Path(outbox))

    managers: list[AlertSink] = [
        AlertmanagerSink(
            url,
            service=service,
            runbook_url=runbook_url,
            ttl_seconds=ttl_seconds,
            max_attempts=max_attempts,
            backoff_seconds=backoff_seconds,
        )
        for url in (item.strip() for item in alertmanager_urls.split(","))
        if url
    ]
    if managers:
        sinks = [webhook(webhook_url)] if webhook_url else []
        return JournaledSink(FanOutSink(sinks + managers), OutboxSink(Path(outbox)))
    if webhook_url.startswith(("http://", "https://")):
        return JournaledSink(webhook(webhook_url), OutboxSink(Path(outbox)))
    return sink_from_url(webhook_url or None, outbox=Path(outbox))


__all__ = ["build_sink"]
