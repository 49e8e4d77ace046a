"""Canonical encodings: one spelling of every value and time, so that hashes are reproducible."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, date, datetime
from typing import Any


def _json_default(value: Any) -> Any:
    # Evidence often carries numpy scalars, dates or paths; encode them deterministically.
    item = getattr(value, "item", None)
    if callable(item):
        return item()
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, set | frozenset):
        return sorted(value, key=str)
    return str(value)


def canonical_json(value: Any) -> str:
    """JSON that is byte-identical for equal content, so its hash is reproducible anywhere."""
    return json.dumps(
        value,
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
        default=_json_default,
    )


def loads_json(text: str | None) -> Any:
    if not text:
        return {}
    try:
        return json.loads(text)
    except ValueError:
        # A tampered row must still be readable so that it can be shown and reported.
        return {"_unparseable": text}


def utc(moment: datetime) -> datetime:
    """Aware UTC: SQLite hands back naive datetimes, and hashes need one spelling of a time."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def parse_time(text: str) -> datetime:
    try:
        return utc(datetime.fromisoformat(text))
    except (TypeError, ValueError):
        # Only a tampered entry has an unreadable time; verify_audit names it.
        return datetime.min.replace(tzinfo=UTC)


def float_metrics(metrics: Mapping[str, Any]) -> dict[str, float]:
    return {str(name): float(value) for name, value in metrics.items()}


def string_map(values: Mapping[Any, Any]) -> dict[str, str]:
    return {str(k): str(v) for k, v in values.items()}
