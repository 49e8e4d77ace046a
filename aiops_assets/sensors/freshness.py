"""``alert_on_stale_asset``: an alert when an asset breaks its ``dg.FreshnessPolicy``, and one when
it is fresh again.

Dagster shows each asset's freshness in the UI, but in open source nothing pages anyone when it
turns red (alerts on freshness are a Dagster+ feature, and the state Dagster records is read only
through storage internals that Dagster+ does not serve). So this sensor judges each watched asset
itself, as Dagster's own evaluator does for a time-window policy: the age of its latest
materialization against the policy's warn and fail windows. It reads only the public
``instance.fetch_materializations`` and sends through the ``alert_sink`` resource, once per
problem, with the recovery, queuing what a sink that is down could not take.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import dagster as dg

from aiops_assets.core.alerts import Alert, AlertState, QueuedAlert, deliver_queue
from aiops_assets.resources import AlertSinkResource

_PENDING = "pending"
# Parallel to _PENDING: the fan-out targets each queued alert is still owed (None: every sink).
_OWED = "pending_owed"


@dataclass(frozen=True)
class WatchedAsset:
    """One asset and its time-window policy's windows."""

    key: dg.AssetKey
    fail_window: timedelta
    warn_window: timedelta | None

    def severity(self, age: timedelta) -> str | None:
        """ERROR past the fail window, WARN past the warn window, None while fresh."""
        if age >= self.fail_window:
            return "ERROR"
        if self.warn_window is not None and age >= self.warn_window:
            return "WARN"
        return None


def watched_assets(assets: Sequence[dg.AssetsDefinition]) -> list[WatchedAsset]:
    """Every asset spec among ``assets`` with a time-window freshness policy."""
    watched = []
    for definition in assets:
        for spec in definition.specs:
            # A time-window policy is the one with a fail window (its class is not public).
            fail = getattr(spec.freshness_policy, "fail_window", None)
            if fail is not None:
                warn = getattr(spec.freshness_policy, "warn_window", None)
                watched.append(
                    WatchedAsset(
                        spec.key, fail.to_timedelta(), warn.to_timedelta() if warn else None
                    )
                )
    return sorted(watched, key=lambda item: item.key.to_user_string())


def build_alert_on_stale_asset_sensor(
    assets: Sequence[dg.AssetsDefinition],
    *,
    name: str = "alert_on_stale_asset",
    minimum_interval_seconds: int = 300,
    default_status: dg.DefaultSensorStatus = dg.DefaultSensorStatus.STOPPED,
    clock: Callable[[], float] = time.time,
) -> dg.SensorDefinition:
    """A sensor alerting when an asset among ``assets`` fails (or warns on) its freshness policy.

    Args:
        assets: The assets to watch; those with a ``dg.FreshnessPolicy.time_window`` are.
        name: The sensor's name (unique in the code location).
        minimum_interval_seconds: How often the daemon evaluates it.
        default_status: STOPPED by default: a team switches alerting on when it is ready.
        clock: Wall-clock seconds (a test passes a fixed one).

    Example:
        >>> build_alert_on_stale_asset_sensor(my_assets)  # doctest: +SKIP
    """
    watched = watched_assets(assets)
    if not watched:
        raise ValueError(f"{name}: none of the assets has a time-window freshness policy")

    @dg.sensor(
        name=name,
        minimum_interval_seconds=minimum_interval_seconds,
        default_status=default_status,
        description=(
            "Alerts when "
            + ", ".join(item.key.to_user_string() for item in watched)
            + " is older than its freshness policy allows, and when it is fresh again."
        ),
    )
    def alert_on_stale_asset(
        context: dg.SensorEvaluationContext, alert_sink: AlertSinkResource
    ) -> dg.SensorResult:
        cursor = json.loads(context.cursor) if context.cursor else {}
        state = AlertState.from_json(cursor.get("state"))
        queue = _pending(cursor)
        now = clock()
        for item in watched:
            queue.extend(QueuedAlert(a) for a in _observe(context.instance, item, state, now))
        sent, pending = _deliver(context, alert_sink, queue)
        new_cursor = {"state": state.to_json(), **_pending_cursor(pending)}
        return dg.SensorResult(
            skip_reason=_report(len(watched), sent, pending), cursor=json.dumps(new_cursor)
        )

    return alert_on_stale_asset


def _observe(
    instance: dg.DagsterInstance, item: WatchedAsset, state: AlertState, now: float
) -> list[Alert]:
    """The alert (or recovery) one asset's freshness calls for; none for a never-materialized
    asset, whose freshness Dagster calls unknown."""
    records = instance.fetch_materializations(item.key, limit=1).records
    if not records:
        return []
    age = timedelta(seconds=max(0.0, now - records[0].timestamp))
    severity = item.severity(age)
    label = f"freshness {item.key.to_user_string()}"
    action = state.observe(label, failing=severity is not None, severity=severity or "INFO")
    if action is None:
        return []
    partition = records[0].partition_key
    recovered = action == "recovery"
    return [
        Alert(
            kind="asset_fresh" if recovered else "asset_stale",
            severity="INFO" if recovered else str(severity),
            summary=_summary(item, age, partition, recovered),
            asset=item.key.to_user_string(),
            partition=partition,
            details={"age_seconds": round(age.total_seconds())},
            dedup_key=label,
        )
    ]


def _summary(item: WatchedAsset, age: timedelta, partition: str | None, recovered: bool) -> str:
    name = item.key.to_user_string()
    latest = f" (latest: {name}[{partition}])" if partition else ""
    if recovered:
        return f"{name} is fresh again: last materialized {_hours(age)} ago{latest}"
    return (
        f"{name} is stale: last materialized {_hours(age)} ago{latest}, past its freshness "
        f"window of {_hours(item.fail_window)} (warn at "
        f"{_hours(item.warn_window) if item.warn_window else 'none'}); is its schedule on?"
    )


def _hours(delta: timedelta) -> str:
    return f"{delta.total_seconds() / 3600:.1f} h"


def _pending(cursor: dict[str, Any]) -> list[QueuedAlert]:
    """The alerts earlier ticks could not deliver, each with the sinks still owed it."""
    pending = cursor.get(_PENDING, [])
    owed = cursor.get(_OWED) or [None] * len(pending)
    return [
        QueuedAlert(Alert.from_json(item), None if targets is None else tuple(targets))
        for item, targets in zip(pending, owed, strict=False)
    ]


def _pending_cursor(pending: list[QueuedAlert]) -> dict[str, Any]:
    """The cursor's record of ``pending``; the owed targets only when a fan-out is partial, so
    a cursor with one sink keeps its earlier shape."""
    saved: dict[str, Any] = {_PENDING: [item.alert.to_json() for item in pending]}
    if any(item.owed is not None for item in pending):
        saved[_OWED] = [None if item.owed is None else list(item.owed) for item in pending]
    return saved


def _deliver(
    context: dg.SensorEvaluationContext, alert_sink: AlertSinkResource, queue: list[QueuedAlert]
) -> tuple[list[Alert], list[QueuedAlert]]:
    """Send in order; a sink that is down gets the rest at the next tick, in order, while the
    other sinks of a fan-out get them now and never twice (``deliver_queue``)."""
    report = deliver_queue(alert_sink.get_sink(), queue)
    for error in report.errors:
        context.log.warning(f"alert not delivered, queued for the next tick: {error}")
    return report.sent, report.pending


def _report(watched: int, sent: list[Alert], pending: list[QueuedAlert]) -> str:
    return (
        f"{watched} asset(s) judged; sent {len(sent)} alert(s)"
        + (f": {', '.join(f'{a.kind} {a.asset}' for a in sent[:5])}" if sent else "")
        + (f"; {len(pending)} queued after a delivery failure" if pending else "")
    )
