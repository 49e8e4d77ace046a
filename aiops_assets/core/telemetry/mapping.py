"""The mapping from a monitoring system's names to the telemetry frame contract.

A team's Prometheus or SQL database does not speak the contract: its service is a label called
``job`` or a column called ``svc``, its CPU is a PromQL expression, its incident windows are an
``ALERTS`` series or a boolean column. One small YAML file says, once, which name gives which
contract column, so the source code stays generic and the choice is reviewed like any config::

    service: service              # the Prometheus label / SQL column naming the service
    timestamp: ts                 # SQL only: the time column
    step: 5m                      # Prometheus only: one row per service every step
    metrics:                      # contract metric column -> PromQL expression / SQL column
      cpu_pct: avg by (service) (rate(process_cpu_seconds_total[5m])) * 100
      latency_p99_ms: histogram_quantile(0.99, sum by (service, le) (rate(http_bucket[5m])))
    label: max by (service) (ALERTS{alertstate="firing"})   # optional: 1 inside an incident
    table: telemetry              # SQL only: a table (``schema.table``) ...
    query: SELECT ...             # ... or a query, not both

Unknown keys are refused (a typo would otherwise drop a metric silently), and so is any key of
the other source kind, each with the file named.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Literal

from aiops_assets.core.telemetry.contract import LABEL, SERVICE, TIMESTAMP
from aiops_assets.core.yaml_mapping import parse_yaml_mapping, read_yaml_mapping

__all__ = [
    "MappingError",
    "SourceMapping",
    "TelemetrySourceError",
    "load_mapping",
    "parse_mapping",
    "parse_step",
]

MappedKind = Literal["prometheus", "sql"]

_COMMON_KEYS: Final = frozenset({"service", "metrics", "label"})
_KIND_KEYS: Final[dict[str, frozenset[str]]] = {
    "prometheus": frozenset({"step"}),
    "sql": frozenset({"timestamp", "table", "query"}),
}
_DURATION: Final = re.compile(r"(\d+)(ms|s|m|h|d|w)")
_UNIT_SECONDS: Final = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_DEFAULT_STEP: Final = "5m"


class MappingError(ValueError):
    """A mapping file that cannot be used: it names the file and the key at fault."""


class TelemetrySourceError(RuntimeError):
    """A source that cannot be read right now: server down, refused query, nothing returned.

    Not a :class:`~aiops_assets.core.telemetry.contract.TelemetryFormatError`: the data is not
    malformed, it is unavailable, and the message (one line) says where and why.
    """


@dataclass(frozen=True)
class SourceMapping:
    """Which source names give which contract columns (see the module docstring).

    Attributes:
        metrics: Contract metric column -> PromQL expression (Prometheus) or column (SQL).
        service: The Prometheus label or SQL column naming the service.
        label: PromQL whose value is 1 inside an incident (absent: 0), or the SQL label column;
            empty means no labels are known (every row 0).
        timestamp: SQL only: the time column.
        step: Prometheus only: the query step in seconds (a whole number).
        table: SQL only: the table (``schema.table`` allowed).
        query: SQL only: a ``SELECT`` whose columns the mapping names.
    """

    metrics: dict[str, str]
    service: str = SERVICE
    label: str = ""
    timestamp: str = TIMESTAMP
    step: int = 300
    table: str = ""
    query: str = ""
    origin: str = field(default="mapping", compare=False)


def load_mapping(path: str | Path, *, kind: MappedKind) -> SourceMapping:
    """The mapping in the YAML file ``path`` for a ``kind`` source, or :class:`MappingError`."""
    document = read_yaml_mapping(path, what=f"mapping file {path}", error=MappingError)
    return parse_mapping(document, kind=kind, origin=f"mapping file {path}")


def parse_mapping(
    document: dict[str, Any] | str, *, kind: MappedKind, origin: str = "mapping"
) -> SourceMapping:
    """A mapping from an already-read YAML document (or its text), validated for ``kind``."""
    if isinstance(document, str):
        document = parse_yaml_mapping(document, what=origin, error=MappingError)
    _refuse_unknown_keys(document, kind=kind, origin=origin)
    metrics = _metrics(document.get("metrics"), origin=origin)
    mapping = SourceMapping(
        metrics=metrics,
        service=_text(document, "service", SERVICE, origin=origin),
        label=_text(document, "label", "", origin=origin, may_be_empty=True),
        timestamp=_text(document, "timestamp", TIMESTAMP, origin=origin),
        step=parse_step(document.get("step", _DEFAULT_STEP), origin=origin),
        table=_text(document, "table", "", origin=origin, may_be_empty=True),
        query=_text(document, "query", "", origin=origin, may_be_empty=True),
        origin=origin,
    )
    if kind == "sql":
        _check_sql_target(mapping, origin=origin)
    return mapping


def parse_step(value: object, *, origin: str = "mapping") -> int:
    """A Prometheus duration (``5m``, ``1h30m``, ``300``) as whole seconds, at least 1.

    Whole seconds because a step that is not one cannot keep every partition on one grid.
    """
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise MappingError(f"{origin}: step must be a duration such as '5m', got {value!r}")
    text = str(value).strip()
    if text.isdigit():
        seconds: float = int(text)
    else:
        parts = _DURATION.findall(text)
        if not parts or "".join(number + unit for number, unit in parts) != text:
            raise MappingError(f"{origin}: step must be a duration such as '5m', got {value!r}")
        seconds = sum(int(number) * _UNIT_SECONDS[unit] for number, unit in parts)
    if seconds < 1 or seconds != int(seconds):
        raise MappingError(f"{origin}: step must be a whole number of seconds >= 1, got {value!r}")
    return int(seconds)


def _refuse_unknown_keys(document: dict[str, Any], *, kind: MappedKind, origin: str) -> None:
    allowed = _COMMON_KEYS | _KIND_KEYS[kind]
    unknown = sorted(str(key) for key in document if key not in allowed)
    if unknown:
        raise MappingError(
            f"{origin}: unknown key(s) {unknown} for a {kind} source (allowed: {sorted(allowed)})"
        )


def _metrics(value: object, *, origin: str) -> dict[str, str]:
    if not isinstance(value, dict) or not value:
        raise MappingError(
            f"{origin}: 'metrics' must map each contract metric column to its source, "
            f"e.g. {{cpu_pct: ...}}"
        )
    metrics: dict[str, str] = {}
    for column, source in value.items():
        if not isinstance(column, str) or not column.strip():
            raise MappingError(f"{origin}: metric column names must be text, got {column!r}")
        if column in (TIMESTAMP, SERVICE, LABEL):
            raise MappingError(
                f"{origin}: {column!r} is not a metric column (use the mapping's own key for it)"
            )
        if not isinstance(source, str) or not source.strip():
            raise MappingError(f"{origin}: metrics.{column} must be a non-empty text")
        metrics[column] = source.strip()
    return dict(sorted(metrics.items()))


def _text(
    document: dict[str, Any], key: str, default: str, *, origin: str, may_be_empty: bool = False
) -> str:
    value = document.get(key, default)
    if value is None and may_be_empty:
        return ""
    if not isinstance(value, str) or (not value.strip() and not may_be_empty):
        raise MappingError(f"{origin}: {key!r} must be a non-empty text, got {value!r}")
    return value.strip()


def _check_sql_target(mapping: SourceMapping, *, origin: str) -> None:
    if bool(mapping.table) == bool(mapping.query):
        raise MappingError(f"{origin}: a sql source needs exactly one of 'table' or 'query'")
    columns = [mapping.timestamp, mapping.service, *mapping.metrics.values()]
    if mapping.label:
        columns.append(mapping.label)
    repeated = sorted({column for column in columns if columns.count(column) > 1})
    if repeated:
        raise MappingError(f"{origin}: column(s) {repeated} are mapped to two contract columns")
