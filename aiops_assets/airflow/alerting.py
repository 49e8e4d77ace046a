"""The provider's alerts: the same sinks, kinds and wording as the Dagster side's.

``core/alert_routing.build_sink`` turns the same ``AIOPS_ALERT_*`` settings into the same
webhook/Alertmanager/outbox sink as ``AlertSinkResource``. What pages: a drift check at ERROR
(``check_failed``, once per day: the state is kept in the store, so a re-run of the day does not
page again, and a re-run that passes sends the recovery), a promotion or a refused one, a
rollback or a rollback that found nothing to restore, a refused permission — the kinds and
summaries the champion asset and the alert sensor send.

An alert never fails the step that raised it: the change it reports is already recorded. When a
sink is down through all its attempts the alert waits in the pending queue beside the outbox
(``core/alert_queue.py``, the one the Dagster redelivery sensor drains), and the provider's next
alert delivers the queue first, in order.
"""

from __future__ import annotations

import logging

from aiops_assets.airflow.config import ProviderConfig
from aiops_assets.airflow.records import get_facts, put_facts
from aiops_assets.core.alert_queue import PendingAlerts, pending_path
from aiops_assets.core.alert_routing import build_sink
from aiops_assets.core.alerts import Alert, AlertDeliveryError, AlertSink, AlertState

LOG = logging.getLogger(__name__)
# The failing checks already alerted, as an AlertState, under facts/alerts/_ in the store.
STATE_FACTS = "alerts"


def sink(config: ProviderConfig) -> AlertSink:
    return build_sink(
        config.alert_webhook,
        config.alertmanager_url,
        config.alert_outbox,
        service=config.alert_service,
        runbook_url=config.alert_runbook_url,
    )


def notify(config: ProviderConfig, alert: Alert) -> bool:
    """Deliver what is still owed, then ``alert``; False (and queued) when a sink is down."""
    target = sink(config)
    queue = PendingAlerts(pending_path(config.alert_outbox))
    for error in queue.deliver(target).errors:
        LOG.warning("an earlier alert is still not delivered: %s", error)
    try:
        target.send(alert)
    except AlertDeliveryError as error:
        queue.add_failed(alert, error)
        LOG.warning("alert not delivered, queued in %s: %s", queue.path, error)
        return False
    return True


def champion_alert(
    config: ProviderConfig, kind: str, severity: str, summary: str, *, asset: str, run_id: str
) -> bool:
    """A one-off alert about the champion (promotion, rollback, a refusal)."""
    return notify(
        config, Alert(kind=kind, severity=severity, summary=summary, asset=asset, run_id=run_id)
    )


def check_alert(
    config: ProviderConfig,
    *,
    asset: str,
    check: str,
    partition: str,
    failing: bool,
    severity: str,
    summary: str,
    run_id: str | None = None,
) -> str | None:
    """Page once when ``asset:check[partition]`` starts failing at ``severity`` (or escalates),
    send the recovery when it passes again; ``"alert"``, ``"recovery"`` or None (nothing sent)."""
    store = config.store()
    label = f"{asset}:{check}[{partition}]"
    facts = get_facts(store, STATE_FACTS, None) or {}
    state = AlertState(dict(facts.get("failing", {})))
    action = state.observe(label, failing=failing, severity=severity)
    if action is None:
        return None
    recovered = action == "recovery"
    notify(
        config,
        Alert(
            kind="check_recovered" if recovered else "check_failed",
            severity="INFO" if recovered else severity,
            summary=f"{label} passes again" if recovered else f"{label} failed: {summary}",
            asset=asset,
            check=check,
            partition=partition,
            run_id=run_id,
            dedup_key=label,
        ),
    )
    # Remembered once sent or queued: a queued alert is delivered by the queue, not re-raised.
    put_facts(store, STATE_FACTS, None, {"failing": state.failing})
    return action


__all__ = ["champion_alert", "check_alert", "notify", "sink"]
