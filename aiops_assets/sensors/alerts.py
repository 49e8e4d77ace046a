"""``alert_on_check_failure``: WARN and ERROR check results to the alert sinks, once, and their recovery."""

from __future__ import annotations

from collections.abc import Sequence

import dagster as dg

from aiops_assets.core.alerts import Alert, AlertSink, AlertState, QueuedAlert, deliver_queue
from aiops_assets.resources import AlertSinkResource
from aiops_assets.sensors.history import CheckEvaluation, all_check_keys
from aiops_assets.sensors.skeleton import CheckSensor, Tick, open_tick

_STATE = "state"
_PENDING = "pending"
# Parallel to _PENDING: the fan-out targets each queued alert is still owed (None: every sink).
_OWED = "pending_owed"


def build_alert_on_check_failure_sensor(
    *,
    check_keys: Sequence[dg.AssetCheckKey] | None = None,
    name: str = "alert_on_check_failure",
    minimum_interval_seconds: int = 30,
    default_status: dg.DefaultSensorStatus = dg.DefaultSensorStatus.STOPPED,
) -> dg.SensorDefinition:
    """A sensor sending an alert for each check that starts failing, and one when it recovers.

    ``check_keys`` default to every check of the code location. A check that keeps failing is
    alerted once (again only if it escalates from WARN to ERROR); the key is the check and its
    partition. Delivery retries with backoff inside the sink; an alert that still cannot be
    delivered stays queued in the cursor and is retried on the next tick (with several sinks,
    only at the sinks that missed it), so a webhook or Alertmanager outage loses nothing. The tick's skip reason says what was sent and what is queued. Alerts go to
    the ``alert_sink`` resource (:class:`AlertSinkResource`).

    Args:
        check_keys: The checks to watch; default every check of the code location.
        name: The sensor's name (unique in the code location).
        minimum_interval_seconds: How often the daemon evaluates the sensor.
        default_status: STOPPED by default: a team switches alerting on when it is ready.

    Example:
        >>> build_alert_on_check_failure_sensor()  # doctest: +SKIP
    """
    fixed_keys = list(check_keys) if check_keys is not None else None
    sensor = CheckSensor(
        name=name,
        minimum_interval_seconds=minimum_interval_seconds,
        default_status=default_status,
        description="Sends WARN and ERROR check results, and recoveries, to the alert sink.",
    )

    def alert_on_check_failure(
        context: dg.SensorEvaluationContext, alert_sink: AlertSinkResource
    ) -> dg.SensorResult:
        keys = fixed_keys if fixed_keys is not None else all_check_keys(context)
        tick = open_tick(context, keys, f"{len(keys)} checks")
        if isinstance(tick, dg.SensorResult):
            return tick
        queue = _queue_alerts(tick, alert_sink)
        sink = alert_sink.get_sink()
        sent, pending = _deliver(context, sink, queue)
        tick.cursor.extra[_PENDING] = [item.alert.to_json() for item in pending]
        if any(item.owed is not None for item in pending):
            tick.cursor.extra[_OWED] = [
                None if item.owed is None else list(item.owed) for item in pending
            ]
        return tick.skip(_report(len(tick.evaluations), sink.describe(), sent, pending))

    return sensor.define(alert_on_check_failure)


def _queue_alerts(tick: Tick, alert_sink: AlertSinkResource) -> list[QueuedAlert]:
    """Alerts still queued from earlier ticks (with the sinks still owed them), then one per
    check that starts failing, escalates or recovers in this tick; the alert state moves into
    the tick's cursor."""
    state = AlertState.from_json(tick.cursor.extra.get(_STATE))
    pending = tick.cursor.extra.get(_PENDING, [])
    owed = tick.cursor.extra.get(_OWED) or [None] * len(pending)
    queue = [
        QueuedAlert(Alert.from_json(item), None if targets is None else tuple(targets))
        for item, targets in zip(pending, owed, strict=False)
    ]
    for evaluation in tick.evaluations:
        if "episode_status" in evaluation.metadata:
            for label, change in _episode_actions(evaluation, state):
                queue.append(QueuedAlert(_alert(evaluation, change, alert_sink, label=label)))
            continue
        action = state.observe(
            evaluation.label, failing=not evaluation.passed, severity=evaluation.severity
        )
        if action is not None:
            queue.append(QueuedAlert(_alert(evaluation, action, alert_sink)))
    tick.cursor.extra = {_STATE: state.to_json()}
    return queue


def _deliver(
    context: dg.SensorEvaluationContext, sink: AlertSink, queue: list[QueuedAlert]
) -> tuple[list[Alert], list[QueuedAlert]]:
    """Send in order; a sink that is down gets the rest at the next tick, in order, while
    the other sinks of a fan-out get them now (``deliver_queue``)."""
    report = deliver_queue(sink, queue)
    for error in report.errors:
        context.log.warning(f"alert not delivered, queued for the next tick: {error}")
    return report.sent, report.pending


def _report(evaluated: int, sink: str, sent: list[Alert], pending: list[QueuedAlert]) -> str:
    return (
        f"{evaluated} new evaluation(s); sent {len(sent)} alert(s) to {sink}"
        + (f": {', '.join(f'{a.kind} {a.check}[{a.partition}]' for a in sent[:5])}" if sent else "")
        + (f"; {len(pending)} queued after a delivery failure" if pending else "")
    )


def _episode_actions(evaluation: CheckEvaluation, state: AlertState) -> list[tuple[str, str]]:
    """A check that groups its failures into episodes (the drift checks, ``core/drift/episodes``)
    pages when an episode starts and sends a recovery when it ends, keyed by the episode rather
    than the partition: a shift that lasts a week is one page, not seven. An acknowledged episode
    does not page (one paged before the acknowledgement still gets its recovery); WARN
    partitions and the quiet partitions an episode bridges do not page."""
    name = evaluation.check_key.to_user_string()
    actions: list[tuple[str, str]] = []
    ended = str(evaluation.metadata.get("episode_ended") or "")
    if ended:
        label = f"{name}[episode {ended}]"
        if state.observe(label, failing=False, severity=evaluation.severity) is not None:
            actions.append((label, "recovery"))
    current = str(evaluation.metadata.get("episode_id") or "")
    started = evaluation.metadata.get("episode_status") in ("started", "continues")
    if current and started and not evaluation.passed:
        label = f"{name}[episode {current}]"
        if not evaluation.metadata.get("episode_acknowledged"):
            action = state.observe(label, failing=True, severity=evaluation.severity)
            if action is not None:
                actions.append((label, action))
    return actions


def _alert(
    evaluation: CheckEvaluation,
    action: str,
    alert_sink: AlertSinkResource,
    *,
    label: str | None = None,
) -> Alert:
    recovered = action == "recovery"
    label = label or evaluation.label
    return Alert(
        kind="check_recovered" if recovered else "check_failed",
        severity="INFO" if recovered else evaluation.severity,
        summary=(
            f"{label} passes again"
            if recovered
            else f"{label} failed: {evaluation.summary()}{_likely_cause(evaluation)}"
        ),
        asset=evaluation.check_key.asset_key.to_user_string(),
        check=evaluation.check_key.name,
        partition=evaluation.partition,
        run_id=evaluation.run_id,
        run_url=alert_sink.run_url(evaluation.run_id),
        dedup_key=label,
    )


def _likely_cause(evaluation: CheckEvaluation) -> str:
    """The incident report's first line, when the failed check carries one: the person paged
    reads what probably caused it and what to do before opening anything."""
    cause = str(evaluation.metadata.get("likely_cause", "")).strip()
    return f" | {cause}" if cause else ""
