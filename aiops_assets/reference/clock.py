"""The pipeline's clock: which time partitions are closed, by granularity, lag and "now".

Plain Python (no Dagster), so the settings, the CLI and the code location agree on one answer.
A partition is *closed* once its window ended ``lag`` ago: late rows from the collectors have
had time to land. The clock is fixed by default (the end of the configured days, so the demo and
the tests see the same partitions on every machine, any day) and live with ``AIOPS_NOW=live``.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta
from typing import Literal, get_args

Granularity = Literal["daily", "hourly"]
GRANULARITIES: tuple[Granularity, ...] = get_args(Granularity)
PERIODS: dict[str, timedelta] = {"daily": timedelta(days=1), "hourly": timedelta(hours=1)}
LIVE = "live"
# Long enough for a scrape interval and a remote-write queue to flush, short enough that the
# daily run starts before the working day does.
DEFAULT_LAG = timedelta(minutes=30)
_DURATION = re.compile(r"^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?$")


def parse_duration(text: str) -> timedelta:
    """``"30m"``, ``"2h"``, ``"1h30m"``, ``"1d"`` or ``"0"``, as a timedelta of whole minutes."""
    cleaned = text.strip().lower()
    if cleaned == "0":
        return timedelta(0)
    match = _DURATION.match(cleaned)
    if not cleaned or match is None:
        raise ValueError(
            f"a lag must look like 30m, 2h, 1h30m, 1d or 0 (whole minutes), got {text!r}"
        )
    days, hours, minutes = (int(group or 0) for group in match.groups())
    return timedelta(days=days, hours=hours, minutes=minutes)


def format_duration(delta: timedelta) -> str:
    """The inverse of :func:`parse_duration`, for messages and docs."""
    minutes = int(delta.total_seconds() // 60)
    if minutes == 0:
        return "0"
    days, rest = divmod(minutes, 24 * 60)
    hours, minutes = divmod(rest, 60)
    parts = [(days, "d"), (hours, "h"), (minutes, "m")]
    return "".join(f"{value}{unit}" for value, unit in parts if value)


def parse_now(text: str) -> datetime | None:
    """``AIOPS_NOW``: ``live`` (None: the real clock) or an ISO date or datetime, UTC if naive."""
    if text.strip().lower() == LIVE:
        return None
    try:
        parsed = datetime.fromisoformat(text.strip())
    except ValueError as error:
        raise ValueError(
            f"AIOPS_NOW must be 'live' or an ISO date/datetime (2026-01-19T06:00), got {text!r}"
        ) from error
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def validate_granularity(granularity: str) -> Granularity:
    if granularity not in GRANULARITIES:
        raise ValueError(
            f"the partition granularity must be one of {GRANULARITIES} (AIOPS_PARTITION), "
            f"got {granularity!r}"
        )
    return granularity


def validate_lag(lag: timedelta) -> timedelta:
    if lag < timedelta(0) or lag % timedelta(minutes=1):
        raise ValueError(f"the lag must be zero or more whole minutes (AIOPS_LAG), got {lag}")
    return lag


def start_of(day: date) -> datetime:
    return datetime.combine(day, time(), tzinfo=UTC)


def default_now(start: date, days: int, lag: timedelta) -> datetime:
    """The fixed clock when none is set: the configured days are all closed, and no more."""
    return start_of(start) + timedelta(days=days) + lag


def closed_until(now: datetime, lag: timedelta, granularity: str) -> datetime:
    """The exclusive end of the last closed partition at ``now``: ``now - lag`` floored to a
    period boundary (UTC)."""
    period = PERIODS[validate_granularity(granularity)]
    moment = (now - lag).astimezone(UTC)
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    return epoch + ((moment - epoch) // period) * period


def lag_split(lag: timedelta, granularity: str) -> tuple[int, timedelta]:
    """``lag`` as whole periods and a remainder shorter than one period.

    The whole periods become the live partitions' ``end_offset`` (negative); the remainder is
    how long after a window closes its schedule fires.
    """
    period = PERIODS[validate_granularity(granularity)]
    return lag // period, lag % period


def schedule_offset(lag: timedelta, granularity: str) -> tuple[int | None, int]:
    """(hour of day, minute of hour) at which the schedule of ``granularity`` partitions fires."""
    _, remainder = lag_split(lag, granularity)
    minutes = int(remainder.total_seconds() // 60)
    if granularity == "hourly":
        return None, minutes
    return minutes // 60, minutes % 60
