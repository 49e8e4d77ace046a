"""The experiment ledger's records: each training run's config, metrics, tags, and the hypothesis
and success criterion declared before it ran.

Declaring the criterion before the run, and recording whether it was met, is what separates an
experiment from a fishing trip: the record cannot be tuned after the metrics are known.
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any


@dataclass(frozen=True)
class ExperimentRun:
    """One training run as the experiment ledger keeps it (one row per Dagster run id)."""

    run_id: str
    model_name: str
    model_version: int | None
    capsule_id: str | None
    at: datetime
    config: dict[str, Any]
    metrics: dict[str, float]
    tags: dict[str, str] = field(default_factory=dict)
    dataset_version: str = ""
    feature_set_version: str = ""
    hypothesis: str = ""
    success_criterion: str = ""
    criterion_met: bool | None = None


# --- queries ----------------------------------------------------------------------------------
#
# The query language is deliberately tiny (``metric OP number``, joined by commas or "and") so
# that the success criterion declared before a run and the filter typed at a terminal are the
# same text, checked by the same code: a criterion that parses here is one search can reproduce.


class QueryError(ValueError):
    """A query, criterion, time or tag that does not parse; the message quotes the offending text
    and says what was expected, because it is shown to a person at a terminal as is."""


OPERATORS: tuple[str, ...] = (">=", "<=", "==", "!=", ">", "<")
_COMPARE: dict[str, Callable[[float, float], bool]] = {
    ">": operator.gt,
    ">=": operator.ge,
    "<": operator.lt,
    "<=": operator.le,
    "==": operator.eq,
    "!=": operator.ne,
}
_METRIC_NAME = r"[A-Za-z_][A-Za-z0-9_.]*"
# Python's float() also takes "1_000", "nan" and "infinity"; a criterion should not.
_NUMBER = r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?"
_CONDITION = re.compile(rf"\s*({_METRIC_NAME})\s*(>=|<=|==|!=|>|<)\s*({_NUMBER})\s*")
_ANY_OPERATOR = re.compile(r"=>|=<|[<>=!]=?")
_OPERATOR_HINTS = {
    "=": " (use '==' for equality)",
    "=>": " (did you mean '>='?)",
    "=<": " (did you mean '<='?)",
}
_CONJUNCTION = re.compile(r"\s*,\s*|\s+and\s+", re.IGNORECASE)
_EXAMPLE = "such as 'f1>0.8' or 'false_alarm_rate<=0.02'"


@dataclass(frozen=True)
class MetricCondition:
    """``metric op value``: one clause of a success criterion or of a search."""

    metric: str
    op: str
    value: float

    def __post_init__(self) -> None:
        if self.op not in _COMPARE:
            raise QueryError(f"expected one of {', '.join(OPERATORS)}, got operator {self.op!r}")

    def holds(self, metrics: Mapping[str, float]) -> bool | None:
        """None when the metric was not recorded: "unknown" must not read as "failed" (or as
        "passed"), so callers decide what a missing metric means for them."""
        if self.metric not in metrics or metrics[self.metric] is None:
            return None
        return bool(_COMPARE[self.op](float(metrics[self.metric]), self.value))

    def __str__(self) -> str:
        return f"{self.metric}{self.op}{self.value!r}"


def parse_metric_condition(text: str) -> MetricCondition:
    """Parse ``metric OP number``; the errors point at the part that is wrong, since a typo in a
    criterion is otherwise only discovered when a run is judged by it."""
    match = _CONDITION.fullmatch(text)
    if match:
        metric, op, value = match.groups()
        if not math.isfinite(float(value)):
            raise QueryError(f"expected a finite number after {op!r}, got {value!r} in {text!r}")
        return MetricCondition(metric, op, float(value))
    stripped = text.strip()
    if not stripped:
        raise QueryError(f"expected a metric condition {_EXAMPLE}, got an empty string")
    found = _ANY_OPERATOR.search(stripped)
    if found is None:
        raise QueryError(
            f"expected a metric condition {_EXAMPLE} (operators: {' '.join(OPERATORS)}), "
            f"found no comparison operator in {text!r}"
        )
    name, op = stripped[: found.start()].strip(), found.group()
    rest = stripped[found.end() :].strip()
    if op not in _COMPARE:
        hint = _OPERATOR_HINTS.get(op, "")
        raise QueryError(
            f"expected one of the operators {' '.join(OPERATORS)}{hint}, got {op!r} in {text!r}"
        )
    if not re.fullmatch(_METRIC_NAME, name):
        raise QueryError(
            f"expected a metric name (a letter or '_', then letters, digits, '_' or '.') before "
            f"{op!r}, got {name!r} in {text!r}"
        )
    raise QueryError(f"expected a number after {op!r}, got {rest!r} in {text!r}")


def parse_criterion(text: str) -> list[MetricCondition]:
    """A conjunction of conditions separated by commas or "and"; an empty text declares nothing
    (and so can never be met or failed)."""
    if not text.strip():
        return []
    parts = _CONJUNCTION.split(text.strip())
    if any(not part.strip() for part in parts):
        raise QueryError(
            f"expected conditions separated by ',' or 'and', got an empty condition in {text!r}"
        )
    return [parse_metric_condition(part) for part in parts]


def criterion_met(criterion: str, metrics: Mapping[str, float]) -> bool | None:
    """None when nothing was declared or a metric the criterion names was not recorded: neither
    is evidence either way, and recording False would claim a failed experiment."""
    conditions = parse_criterion(criterion)
    if not conditions:
        return None
    results = [condition.holds(metrics) for condition in conditions]
    if any(result is None for result in results):
        return None
    return all(results)


# --- time -------------------------------------------------------------------------------------

_RELATIVE = re.compile(r"\s*(\d+)\s*([wdhm])\s*")
_UNITS = {"w": "weeks", "d": "days", "h": "hours", "m": "minutes"}
_TIME_EXAMPLE = "an ISO date or time (2026-01-13, 2026-01-13T08:00) or an age (7d, 12h, 30m)"


def _utc(moment: datetime) -> datetime:
    """The ledger stores UTC; a naive time typed or stored anywhere is taken to be UTC so that
    comparisons never mix naive and aware datetimes."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def parse_time(text: str, *, now: datetime | None = None) -> datetime:
    """An absolute ISO date/time (naive means UTC) or an age such as ``7d`` ago, always returned
    aware in UTC."""
    stripped = text.strip()
    relative = _RELATIVE.fullmatch(stripped)
    if relative:
        amount, unit = int(relative.group(1)), relative.group(2)
        current = _utc(now) if now is not None else datetime.now(UTC)
        try:
            return current - timedelta(**{_UNITS[unit]: amount})
        except OverflowError:
            raise QueryError(f"expected a smaller age, got {text!r}") from None
    if stripped.lower() == "now":
        return _utc(now) if now is not None else datetime.now(UTC)
    try:
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", stripped):
            day = date.fromisoformat(stripped)
            return datetime(day.year, day.month, day.day, tzinfo=UTC)
        return _utc(datetime.fromisoformat(stripped))
    except (ValueError, OverflowError):
        raise QueryError(f"expected {_TIME_EXAMPLE}, got {text!r}") from None


def parse_time_range(
    text: str, *, now: datetime | None = None
) -> tuple[datetime | None, datetime | None]:
    """``A..B``, ``A..`` or ``..B``: from A (inclusive) to B (exclusive), as the ledger lists runs,
    so consecutive ranges tile. A reversed range is an error rather than an empty result, because
    it is almost always a typo."""
    if ".." not in text:
        raise QueryError(f"expected a range 'A..B', 'A..' or '..B', got {text!r}")
    start_text, _, end_text = text.partition("..")
    if not start_text.strip() and not end_text.strip():
        raise QueryError(f"expected at least one end in the range 'A..B', got {text!r}")
    since = parse_time(start_text, now=now) if start_text.strip() else None
    until = parse_time(end_text, now=now) if end_text.strip() else None
    if since is not None and until is not None and since > until:
        raise QueryError(f"expected the start of {text!r} to be before its end")
    return since, until


def parse_tag(text: str) -> tuple[str, str]:
    """``key=value`` (the value may itself contain '=' and may be empty)."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise QueryError(f"expected a tag as key=value, got {text!r}")
    return key.strip(), value.strip()


# --- search -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class RunFilter:
    """What a search keeps; every given field must match. Versions are sha256 digests, so a
    prefix (as printed in tables) is accepted, as git accepts one. The time window is
    ``since <= at < until``, the ledger's own, so pushing it into SQL changes nothing."""

    model_name: str | None = None
    dataset_version: str | None = None
    feature_set_version: str | None = None
    conditions: tuple[MetricCondition, ...] = ()
    since: datetime | None = None
    until: datetime | None = None
    tags: tuple[tuple[str, str], ...] = ()

    def matches(self, run: ExperimentRun) -> bool:
        if self.model_name is not None and run.model_name != self.model_name:
            return False
        if self.dataset_version is not None and not run.dataset_version.startswith(
            self.dataset_version
        ):
            return False
        if self.feature_set_version is not None and not run.feature_set_version.startswith(
            self.feature_set_version
        ):
            return False
        at = _utc(run.at)
        if self.since is not None and at < _utc(self.since):
            return False
        if self.until is not None and at >= _utc(self.until):
            return False
        if any(run.tags.get(key) != value for key, value in self.tags):
            return False
        # A run that did not record a metric cannot be said to satisfy a condition on it.
        return all(condition.holds(run.metrics) is True for condition in self.conditions)


def search_runs(runs: Iterable[ExperimentRun], run_filter: RunFilter) -> list[ExperimentRun]:
    """Oldest first, so a search reads as the history of the experiments it found."""
    return sorted((run for run in runs if run_filter.matches(run)), key=lambda run: _utc(run.at))


# --- diff -------------------------------------------------------------------------------------

DATA_FIELDS: tuple[str, ...] = (
    "dataset_version",
    "feature_set_version",
    "model_version",
    "capsule_id",
)


@dataclass(frozen=True)
class RunDiff:
    """What differs between runs ``a`` and ``b``. Config, data and tags list only differences;
    metrics list every metric either run recorded, since "the same" is itself a result worth
    seeing next to what changed."""

    a: str
    b: str
    config: list[tuple[str, Any, Any]]
    data: list[tuple[str, Any, Any]]
    metrics: list[tuple[str, float | None, float | None, float | None]]
    tags: list[tuple[str, str | None, str | None]]
    environment: list[str]

    @property
    def is_empty(self) -> bool:
        return not (
            self.config
            or self.data
            or self.tags
            or self.environment
            or any(a != b for _, a, b, _ in self.metrics)
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "a": self.a,
            "b": self.b,
            "config": [{"path": path, "a": a, "b": b} for path, a, b in self.config],
            "data": [{"field": name, "a": a, "b": b} for name, a, b in self.data],
            "metrics": [
                {"metric": name, "a": a, "b": b, "delta": delta}
                for name, a, b, delta in self.metrics
            ],
            "tags": [{"tag": name, "a": a, "b": b} for name, a, b in self.tags],
            "environment": list(self.environment),
            "identical": self.is_empty,
        }


def flatten_config(config: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested config as ``dotted.path -> leaf``, so that a change deep in a model's parameters
    shows as one line naming exactly what moved. An empty mapping is kept as a leaf: adding or
    removing a whole section is a difference too."""
    flat: dict[str, Any] = {}
    for key, value in config.items():
        path = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            flat.update(flatten_config(value, f"{path}."))
        else:
            flat[path] = value
    return flat


def _mapping_changes(a: Mapping[str, Any], b: Mapping[str, Any]) -> list[tuple[str, Any, Any]]:
    # "Absent" and "present but None" both print as None; listing the key when it is on one
    # side only keeps that case from looking like no change at all.
    return [
        (key, a.get(key), b.get(key))
        for key in sorted(set(a) | set(b))
        if key not in a or key not in b or a[key] != b[key]
    ]


def diff_runs(
    a: ExperimentRun, b: ExperimentRun, *, environment_lines: Sequence[str] = ()
) -> RunDiff:
    """Config, data versions, metrics and tags of ``b`` against ``a`` (deltas are ``b - a``). The
    environment comes in as lines because the capsules that hold it live in the ledger, and this
    module stays pure."""
    metrics: list[tuple[str, float | None, float | None, float | None]] = []
    for name in sorted(set(a.metrics) | set(b.metrics)):
        value_a, value_b = a.metrics.get(name), b.metrics.get(name)
        value_a = None if value_a is None else float(value_a)
        value_b = None if value_b is None else float(value_b)
        delta = None if value_a is None or value_b is None else value_b - value_a
        metrics.append((name, value_a, value_b, delta))
    return RunDiff(
        a=a.run_id,
        b=b.run_id,
        config=_mapping_changes(flatten_config(a.config), flatten_config(b.config)),
        data=[
            (name, getattr(a, name), getattr(b, name))
            for name in DATA_FIELDS
            if getattr(a, name) != getattr(b, name)
        ],
        metrics=metrics,
        tags=_mapping_changes(a.tags, b.tags),
        environment=list(environment_lines),
    )


# --- presentation helpers (plain data, for the CLI) -------------------------------------------

RUNS_TABLE_HEADER: tuple[str, ...] = (
    "run",
    "at",
    "model",
    "dataset",
    "feature_set",
    "f1",
    "pr_auc",
    "far",
    "criterion",
    "hypothesis",
)
HYPOTHESIS_WIDTH = 48


def format_number(value: float | None) -> str:
    return "-" if value is None else f"{float(value):.3f}"


def _truncate(text: str, width: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 3] + "..."


def criterion_label(met: bool | None) -> str:
    return "-" if met is None else ("met" if met else "not met")


def runs_table(runs: Iterable[ExperimentRun]) -> list[list[str]]:
    """Header then one row per run, in the widths a terminal line can hold: digests are cut to a
    prefix that search accepts back, and the hypothesis to its opening words."""
    rows = [list(RUNS_TABLE_HEADER)]
    for run in runs:
        rows.append(
            [
                run.run_id[:8],
                _utc(run.at).strftime("%Y-%m-%d %H:%M"),
                f"{run.model_name} v{run.model_version}"
                if run.model_version is not None
                else run.model_name,
                run.dataset_version[:12] or "-",
                run.feature_set_version or "-",
                format_number(run.metrics.get("f1")),
                format_number(run.metrics.get("pr_auc")),
                format_number(run.metrics.get("false_alarm_rate")),
                criterion_label(run.criterion_met),
                _truncate(run.hypothesis, HYPOTHESIS_WIDTH) or "-",
            ]
        )
    return rows


def run_to_dict(run: ExperimentRun) -> dict[str, Any]:
    """Every field, JSON-ready (the time as ISO 8601 in UTC)."""
    record = asdict(run)
    record["at"] = _utc(run.at).isoformat()
    return record
