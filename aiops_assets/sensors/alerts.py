"""``alert_on_check_failure``: WARN and ERROR check results to a webhook, once, and their recovery."""

from __future__ import annotations

from collections.abc import Sequence

import dagster as dg

from aiops_assets.core.alerts import Alert, AlertDeliveryError, AlertState
from aiops_assets.resources import AlertSinkResource
from aiops_assets.sensors.history import (
    CheckCursor,
    CheckEvaluation,
    all_check_keys,
    first_tick,
    new_evaluations,
)

_STATE = "state"
_PENDING = "pending"


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
    delivered stays queued in the cursor and is retried on the next tick, so a webhook outage
    loses nothing. The tick's skip reason says what was sent and what is queued. Alerts go to
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

    @dg.sensor(
        name=name,
        minimum_interval_seconds=minimum_interval_seconds,
        default_status=default_status,
        description="Sends WARN and ERROR check results, and recoveries, to the alert sink.",
    )
    def alert_on_check_failure(
        context: dg.SensorEvaluationContext, alert_sink: AlertSinkResource
    ) -> dg.SensorResult:
        keys = fixed_keys if fixed_keys is not None else all_check_keys(context)
        cursor = CheckCursor.from_json(context.cursor)
        if cursor is None:
            return first_tick(context.instance, keys, f"{len(keys)} checks")
        evaluations, next_cursor = new_evaluations(context.instance, keys, cursor)
        state = AlertState.from_json(cursor.extra.get(_STATE))
        queue = [Alert.from_json(item) for item in cursor.extra.get(_PENDING, [])]
        for evaluation in evaluations:
            action = state.observe(
                evaluation.label, failing=not evaluation.passed, severity=evaluation.severity
            )
            if action is not None:
                queue.append(_alert(evaluation, action, alert_sink))
        sink = alert_sink.get_sink()
        sent: list[Alert] = []
        pending: list[Alert] = []
        for alert in queue:
            if pending:  # keep order: once the sink is down, queue the rest for the next tick
                pending.append(alert)
                continue
            try:
                sink.send(alert)
                sent.append(alert)
            except AlertDeliveryError as error:
                context.log.warning(f"alert not delivered, queued for the next tick: {error}")
                pending.append(alert)
        next_cursor.extra = {
            _STATE: state.to_json(),
            _PENDING: [alert.to_json() for alert in pending],
        }
        message = (
            f"{len(evaluations)} new evaluation(s); sent {len(sent)} alert(s) to "
            f"{sink.describe()}"
            + (
                f": {', '.join(f'{a.kind} {a.check}[{a.partition}]' for a in sent[:5])}"
                if sent
                else ""
            )
            + (f"; {len(pending)} queued after a delivery failure" if pending else "")
        )
        return dg.SensorResult(skip_reason=message, cursor=next_cursor.to_json())

    return alert_on_check_failure


def _alert(evaluation: CheckEvaluation, action: str, alert_sink: AlertSinkResource) -> Alert:
    recovered = action == "recovery"
    return Alert(
        kind="check_recovered" if recovered else "check_failed",
        severity="INFO" if recovered else evaluation.severity,
        summary=(
            f"{evaluation.label} passes again"
            if recovered
            else f"{evaluation.label} failed: {evaluation.summary()}"
        ),
        asset=evaluation.check_key.asset_key.to_user_string(),
        check=evaluation.check_key.name,
        partition=evaluation.partition,
        run_id=evaluation.run_id,
        run_url=alert_sink.run_url(evaluation.run_id),
        dedup_key=evaluation.label,
    )
