"""Telemetry sources and the frame contract they all return.

- :mod:`~aiops_assets.core.telemetry.contract`: the telemetry frame (columns, dtypes, order), its
  validation and canonicalization, and :class:`TelemetryFormatError`;
- :mod:`~aiops_assets.core.telemetry.files`: a directory of CSV/Parquet exports, read as recorded;
- :mod:`~aiops_assets.core.telemetry.nab`: the Numenta Anomaly Benchmark corpus;
- :mod:`~aiops_assets.core.telemetry.mapping`: the YAML mapping from a monitoring system's names to
  the contract, shared by the Prometheus and SQL sources;
- :mod:`~aiops_assets.core.telemetry.prometheus`: PromQL range queries against a Prometheus server;
- :mod:`~aiops_assets.core.telemetry.sql`: a table or query behind any SQLAlchemy URL;
- :mod:`~aiops_assets.core.telemetry.scenario`: the seeded scenario generator.

Everything is re-exported here: callers import from ``aiops_assets.core.telemetry`` and need not
know which module a name lives in.
"""

from aiops_assets.core.telemetry.contract import (
    GENERATED_METRICS,
    LABEL,
    MAX_REPORTED_ROWS,
    SERVICE,
    TIMESTAMP,
    BoolArray,
    FloatArray,
    IntArray,
    ReplayedService,
    RowDescriber,
    TelemetryFormatError,
    apply_unit_scale,
    canonical_telemetry,
    metric_columns,
    naive_utc,
    replayed_services,
)
from aiops_assets.core.telemetry.files import load_directory
from aiops_assets.core.telemetry.mapping import (
    MappingError,
    SourceMapping,
    TelemetrySourceError,
    load_mapping,
    parse_mapping,
)
from aiops_assets.core.telemetry.nab import clock_repeats, load_nab, read_nab_windows
from aiops_assets.core.telemetry.prometheus import load_prometheus, redact_url, to_openmetrics
from aiops_assets.core.telemetry.scenario import (
    DEFAULT_SERVICES,
    ConfigChange,
    NullInjection,
    Scenario,
    ScenarioEvent,
    SlowDrift,
    default_scenario,
    generate,
    generate_day,
)

# Decodes one stored event; the incident rehearsals build scenarios from event dicts with it.
from aiops_assets.core.telemetry.scenario import _event_from_dict as _event_from_dict
from aiops_assets.core.telemetry.sql import load_sql

__all__ = [
    "DEFAULT_SERVICES",
    "GENERATED_METRICS",
    "LABEL",
    "MAX_REPORTED_ROWS",
    "SERVICE",
    "TIMESTAMP",
    "BoolArray",
    "ConfigChange",
    "FloatArray",
    "IntArray",
    "MappingError",
    "NullInjection",
    "ReplayedService",
    "RowDescriber",
    "Scenario",
    "ScenarioEvent",
    "SlowDrift",
    "SourceMapping",
    "TelemetryFormatError",
    "TelemetrySourceError",
    "apply_unit_scale",
    "canonical_telemetry",
    "clock_repeats",
    "default_scenario",
    "generate",
    "generate_day",
    "load_directory",
    "load_mapping",
    "load_nab",
    "load_prometheus",
    "load_sql",
    "metric_columns",
    "naive_utc",
    "parse_mapping",
    "read_nab_windows",
    "redact_url",
    "replayed_services",
    "to_openmetrics",
]
