"""The Prometheus source: PromQL range queries, one per contract metric, on one step grid.

Each metric of the mapping (:mod:`~aiops_assets.core.telemetry.mapping`) is a PromQL expression
evaluated by ``/api/v1/query_range`` (through ``prometheus-api-client``, which brings retries
with backoff on connection errors and 408/429/5xx) at every multiple of the step since the Unix
epoch inside ``[start, end)``. One grid for every window means adjacent partitions neither
overlap nor leave a gap, and a day read alone equals the same day read as part of a week.

Every series of a result must carry the service label, and only one series per service: an
expression that keeps more labels (``instance``, ``pod``) must aggregate them away
(``sum by (service) (...)``), because silently picking one series would be a wrong number.
A metric query that returns no series is refused with the query named; the label query may
return nothing (no incident in the window: every row 0).

Values arrive as the shortest decimal that round-trips a float64 (Go's ``FormatFloat(v, 'f', -1,
64)``) and timestamps in milliseconds, so a frame written into Prometheus comes back bit for bit.
Prometheus answers a point from the last sample within its lookback window (5 minutes by
default): a series with gaps repeats its last value up to that long, as every Grafana panel does.

:func:`to_openmetrics` writes a telemetry frame in the OpenMetrics text format that
``promtool tsdb create-blocks-from openmetrics`` turns into TSDB blocks (backfilling history).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from typing import Any, Final
from urllib.parse import urlsplit, urlunsplit

import numpy as np
import pandas as pd

from aiops_assets.core.telemetry.contract import (
    LABEL,
    SERVICE,
    TIMESTAMP,
    TelemetryFormatError,
    canonical_telemetry,
    metric_columns,
    naive_utc,
)
from aiops_assets.core.telemetry.mapping import SourceMapping, TelemetrySourceError

__all__ = ["frame_from_results", "load_prometheus", "redact_url", "step_grid", "to_openmetrics"]

MAX_POINTS_PER_QUERY: Final = 10_000
"""Prometheus refuses a range query over 11,000 points per series; longer windows are chunked."""
_RETRY_STATUSES: Final = (408, 429, 500, 502, 503, 504)
_ERRNO: Final = re.compile(r"\[Errno -?\d+\] [^'\")]+")
_US_PER_SECOND: Final = 1_000_000


def load_prometheus(
    url: str,
    mapping: SourceMapping,
    *,
    start: datetime,
    end: datetime,
    max_attempts: int = 4,
    backoff_seconds: float = 0.5,
    timeout_seconds: float = 30.0,
) -> pd.DataFrame:
    """The canonical telemetry frame of ``[start, end)`` from the Prometheus server at ``url``.

    Raises :class:`TelemetrySourceError` (one line, password hidden) when the server cannot be
    reached after ``max_attempts``, refuses a query, or a metric query returns no series; and
    :class:`TelemetryFormatError` when series do not fit the contract (no service label, two
    series of one service, values the contract refuses).
    """
    first, last = step_grid(start, end, mapping.step)
    where = f"Prometheus at {redact_url(url)}"
    if first > last:
        raise TelemetrySourceError(
            f"{where}: the window [{start}, {end}) holds no multiple of the {mapping.step}s step"
        )
    with _connect(url, max_attempts, backoff_seconds, timeout_seconds) as client:
        columns = {
            column: _range(client, where, query, first, last, mapping.step)
            for column, query in mapping.metrics.items()
        }
        labels = (
            _range(client, where, mapping.label, first, last, mapping.step) if mapping.label else []
        )
    for column, series in columns.items():
        if not series:
            raise TelemetrySourceError(
                f"{where}: query for {column!r} returned no series in "
                f"[{start}, {end}): {mapping.metrics[column]}"
            )
    return frame_from_results(columns, labels, mapping)


def step_grid(start: datetime, end: datetime, step: int) -> tuple[int, int]:
    """First and last evaluation time (Unix seconds) of ``[start, end)`` on the global step grid.

    Naive datetimes mean UTC, as in the frame contract. ``first > last`` when no grid point
    falls inside the window.
    """
    start_us = _epoch_us(start)
    end_us = _epoch_us(end)
    step_us = step * _US_PER_SECOND
    first = -(-start_us // step_us) * step
    last = ((end_us - 1) // step_us) * step
    return first, last


def frame_from_results(
    columns: dict[str, list[dict[str, Any]]],
    labels: list[dict[str, Any]],
    mapping: SourceMapping,
) -> pd.DataFrame:
    """The canonical frame from ``query_range`` results (``[{metric: {...}, values: [...]}]``).

    A row exists where any metric has a point; a metric without one there is NaN; the label is
    the label query's value there, else 0.
    """
    long = [
        _series_frame(series, column, mapping)
        for column, results in columns.items()
        for series in _unique_services(results, column, mapping)
    ]
    if not long:
        raise TelemetryFormatError(f"{mapping.origin}: no metric query returned a series")
    wide = (
        pd.concat(long, ignore_index=True)
        .pivot(index=[TIMESTAMP, SERVICE], columns="column", values="value")
        .reset_index()
    )
    wide.columns.name = None
    for column in columns:
        if column not in wide.columns:
            wide[column] = np.nan
    wide[LABEL] = _label_values(wide, labels, mapping)
    return canonical_telemetry(wide)


def to_openmetrics(frame: pd.DataFrame, *, prefix: str = "aiops_") -> str:
    """A telemetry frame as OpenMetrics text: one gauge family per metric and one for the label.

    Series are labelled ``service="..."``; values print as Python's ``repr`` (the shortest
    decimal that reads back to the same float64), NaN as ``NaN``; timestamps in exact decimal
    seconds. Families, then series, then samples in time order, as the format requires.
    """
    canonical = canonical_telemetry(frame)
    lines: list[str] = []
    for column in [*metric_columns(canonical), LABEL]:
        name = f"{prefix}{column}"
        lines.append(f"# TYPE {name} gauge")
        for service, rows in canonical.groupby(SERVICE, sort=True):
            selector = f'{name}{{service="{_escape_label(str(service))}"}}'
            stamps = rows[TIMESTAMP].to_numpy(dtype="datetime64[us]").astype(np.int64)
            for stamp, value in zip(stamps, rows[column].to_numpy(dtype=np.float64), strict=True):
                lines.append(f"{selector} {_number(float(value))} {_seconds(int(stamp))}")
    lines.append("# EOF")
    return "\n".join(lines) + "\n"


def redact_url(url: str) -> str:
    """``url`` with any password replaced by ``***``, for messages and the UI."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}{port}"))


def _connect(url: str, max_attempts: int, backoff_seconds: float, timeout_seconds: float) -> Any:
    """A client with our retry policy; the package is an extra, so its absence is one line."""
    try:
        from prometheus_api_client import PrometheusConnect
        from urllib3.util.retry import Retry
    except ImportError as error:
        raise TelemetrySourceError(
            "the prometheus source needs prometheus-api-client: "
            "pip install 'aiops-assets[prometheus]'"
        ) from error
    retry = Retry(
        total=max(0, max_attempts - 1),
        backoff_factor=backoff_seconds,
        status_forcelist=_RETRY_STATUSES,
        raise_on_status=False,
    )
    return PrometheusConnect(url=url.rstrip("/"), retry=retry, timeout=timeout_seconds)


def _range(
    client: Any,
    where: str,
    query: str,
    first: int,
    last: int,
    step: int,
) -> list[dict[str, Any]]:
    """Every series of ``query`` over ``[first, last]``, chunks merged per label set."""
    merged: dict[str, dict[str, Any]] = {}
    for chunk_first, chunk_last in _chunks(first, last, step):
        for series in _query(client, where, query, chunk_first, chunk_last, step):
            key = json.dumps(series.get("metric", {}), sort_keys=True)
            entry = merged.setdefault(key, {"metric": series.get("metric", {}), "values": []})
            entry["values"].extend(series.get("values", []))
    return list(merged.values())


def _chunks(first: int, last: int, step: int) -> Iterator[tuple[int, int]]:
    span = (MAX_POINTS_PER_QUERY - 1) * step
    chunk_first = first
    while chunk_first <= last:
        chunk_last = min(last, chunk_first + span)
        yield chunk_first, chunk_last
        chunk_first = chunk_last + step


def _query(
    client: Any, where: str, query: str, first: int, last: int, step: int
) -> list[dict[str, Any]]:
    import requests
    from prometheus_api_client import PrometheusApiClientException

    try:
        result = client.custom_query_range(
            query,
            start_time=datetime.fromtimestamp(first, UTC),
            end_time=datetime.fromtimestamp(last, UTC),
            step=str(step),
        )
    except PrometheusApiClientException as error:
        raise TelemetrySourceError(
            f"{where}: query refused ({_server_reason(str(error))}): {query}"
        ) from None
    except requests.RequestException as error:
        raise TelemetrySourceError(
            f"{where}: cannot reach the server ({_network_reason(error)}); is it running?"
        ) from None
    except ValueError as error:  # a proxy's HTML page instead of the API's JSON
        raise TelemetrySourceError(
            f"{where}: the answer is not Prometheus JSON ({error})"
        ) from None
    return list(result)


def _server_reason(message: str) -> str:
    found = re.search(r'"error":"((?:[^"\\]|\\.)*)"', message)
    return found.group(1) if found else message.splitlines()[0][:200]


def _network_reason(error: Exception) -> str:
    found = _ERRNO.search(str(error))
    if found:
        return found.group(0).strip()
    return type(error).__name__


def _unique_services(
    results: Sequence[dict[str, Any]], column: str, mapping: SourceMapping
) -> list[dict[str, Any]]:
    """The series of one query, refusing any without the service label or sharing one."""
    seen: dict[str, dict[str, str]] = {}
    for series in results:
        labels = series.get("metric", {})
        service = labels.get(mapping.service)
        if service is None:
            raise TelemetryFormatError(
                f"{mapping.origin}: metrics.{column}: a series has no {mapping.service!r} label "
                f"({_selector(labels)}); aggregate it, e.g. sum by ({mapping.service}) (...)"
            )
        if service in seen:
            raise TelemetryFormatError(
                f"{mapping.origin}: metrics.{column}: service {service!r} has two series "
                f"({_selector(seen[service])} and {_selector(labels)}); aggregate them, "
                f"e.g. sum by ({mapping.service}) (...)"
            )
        seen[service] = labels
    return list(results)


def _series_frame(series: dict[str, Any], column: str, mapping: SourceMapping) -> pd.DataFrame:
    values = series.get("values", [])
    return pd.DataFrame(
        {
            TIMESTAMP: _timestamps([point[0] for point in values]),
            SERVICE: str(series["metric"][mapping.service]),
            "column": column,
            "value": np.array([float(point[1]) for point in values], dtype=np.float64),
        }
    )


def _label_values(
    wide: pd.DataFrame, labels: list[dict[str, Any]], mapping: SourceMapping
) -> np.ndarray[Any, np.dtype[np.float64]]:
    """The label query's value at each row, 0 where it has none (no incident there)."""
    if not labels:
        return np.zeros(len(wide), dtype=np.float64)
    frames = [
        _series_frame(series, LABEL, mapping) for series in _unique_services(labels, LABEL, mapping)
    ]
    found = pd.concat(frames, ignore_index=True).set_index([TIMESTAMP, SERVICE])["value"]
    keys = pd.MultiIndex.from_frame(wide[[TIMESTAMP, SERVICE]])
    return found.reindex(keys).fillna(0.0).to_numpy(dtype=np.float64)


def _timestamps(seconds: Sequence[float | str]) -> pd.Series:
    """Prometheus times (float seconds, millisecond precision) as exact ``datetime64[us]``."""
    millis = np.array([round(float(value) * 1000) for value in seconds], dtype=np.int64)
    return pd.Series((millis * 1000).astype("datetime64[us]"))


def _epoch_us(moment: datetime) -> int:
    # Not ``Timestamp.value``: that is nanoseconds whatever the unit, and overflows after 2262.
    return int(naive_utc(moment).as_unit("us").asm8.view("i8"))


def _number(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(value)


def _seconds(micros: int) -> str:
    sign = "-" if micros < 0 else ""
    whole, fraction = divmod(abs(micros), _US_PER_SECOND)
    return f"{sign}{whole}" if not fraction else f"{sign}{whole}.{fraction:06d}".rstrip("0")


def _escape_label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _selector(labels: dict[str, str]) -> str:
    inner = ", ".join(f'{key}="{value}"' for key, value in sorted(labels.items()))
    return "{" + inner + "}"
