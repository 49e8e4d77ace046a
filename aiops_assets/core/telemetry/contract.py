"""The telemetry frame contract: the one shape every source returns, and the checks that enforce it.

Every source returns the same *telemetry frame* so that snapshots, checks, features and models never
care where the data came from:

- ``timestamp``: ``datetime64[us]``, naive, meaning UTC (one clock for every source, and a resolution
  that Parquet round-trips exactly);
- ``service``: ``object`` dtype holding Python ``str`` (pandas' newer ``str`` dtype hashes and
  serialises differently across versions, which would change content-addressed snapshot ids);
- one or more metric columns, ``float64``, NaN meaning "missing";
- ``label``: ``int8``, 1 inside a labeled incident/anomaly window, else 0.

Columns are ordered ``timestamp, service, <metrics sorted by name>, label`` and rows are sorted by
``(timestamp, service)`` with a fresh ``RangeIndex``, so equal data always has equal bytes.

Service names are trimmed and put in Unicode NFC form, so ``'api '`` or a decomposed ``café`` read
as the service everyone means; but two different spellings of one name in the same input are
refused, because one exporter writing both is a bug that would otherwise split or merge series
silently. Numbers are plain ASCII decimals: spellings only Python's ``float`` reads (``1_2_0.5``,
Arabic-Indic or fullwidth digits) are refused, since any other reader of the same file would
disagree with the snapshot.

Bad input never turns into a silent bad snapshot: a value that breaks the contract raises
:class:`TelemetryFormatError` naming the source, the column and the first offending rows with their
raw values. In-memory frames passed to :func:`canonical_telemetry` are simply sorted; the file
loaders, which know files and lines, also insist on recorded time order.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, Final, NamedTuple, TypeAlias

import numpy as np
import numpy.typing as npt
import pandas as pd

__all__ = [
    "GENERATED_METRICS",
    "LABEL",
    "MAX_REPORTED_ROWS",
    "SERVICE",
    "TIMESTAMP",
    "BoolArray",
    "FloatArray",
    "IntArray",
    "ReplayedService",
    "RowDescriber",
    "TelemetryFormatError",
    "apply_unit_scale",
    "canonical_telemetry",
    "metric_columns",
    "naive_utc",
    "replayed_services",
]

TIMESTAMP: Final = "timestamp"
SERVICE: Final = "service"
LABEL: Final = "label"
GENERATED_METRICS: Final = (
    "request_rate",
    "error_rate",
    "latency_p50_ms",
    "latency_p99_ms",
    "cpu_pct",
    "memory_pct",
)

MAX_REPORTED_ROWS: Final = 5
MIN_REPLAY_ROWS: Final = 12
"""A replay is only claimed on enough rows that an exact repeat cannot be chance."""
"""Enough examples to recognise the pattern of a bad file without flooding a check report."""

FloatArray: TypeAlias = npt.NDArray[np.float64]
BoolArray: TypeAlias = npt.NDArray[np.bool_]
IntArray: TypeAlias = npt.NDArray[np.int64]
RowDescriber: TypeAlias = Callable[[IntArray], list[str]]
"""Maps 0-based row positions of one source to the words a person uses to find them ("line 7")."""

_RESERVED_COLUMNS: Final = frozenset({TIMESTAMP, SERVICE, LABEL})
_TIMESTAMP_DTYPE: Final = "datetime64[us]"
_MISSING_NUMBER_TOKENS: Final = frozenset({"", "nan", "+nan", "-nan", "na", "n/a", "null", "none"})
_BOOLEAN_LABEL_TOKENS: Final = {"true": 1.0, "false": 0.0}
_MAX_REPR_CHARS: Final = 60
_UTC_OFFSET_SUFFIX: Final = re.compile(
    r"[T ]\d{2}(?::?\d{2}){0,2}(?:[.,]\d+)?\s*(?:Z|[+-]\d{2}(?::?\d{2})?)$"
)
"""The end of an ISO 8601 date-time that carries a UTC offset: a time of day, then ``Z`` or ``+hh:mm``
(``hhmm``, ``hh``). A bare date such as ``2026-01-05`` does not match (its ``-05`` is the day)."""


class TelemetryFormatError(ValueError):
    """Input that does not satisfy the telemetry frame contract.

    A ``ValueError`` subclass so callers that already guard against bad values keep working, while
    quarantine logic can catch exactly this type and store the message as the report.
    """


def metric_columns(frame: pd.DataFrame) -> list[str]:
    """Names of the metric columns of a telemetry frame, sorted.

    Everything except ``timestamp``, ``service`` and ``label`` is a metric by contract, so downstream
    code never keeps its own list that could go stale when a source adds a metric. On a canonical
    frame all of them are ``float64``.
    """
    return sorted(str(column) for column in frame.columns if column not in _RESERVED_COLUMNS)


def canonical_telemetry(frame: pd.DataFrame) -> pd.DataFrame:
    """Return a new frame that satisfies the telemetry contract exactly, or explain why it cannot.

    Unambiguous conversions are applied (aware timestamps -> naive UTC, ISO 8601 text or other
    datetime resolutions -> microseconds, dropping sub-microsecond digits; numeric text or integers
    -> ``float64``; ``str`` dtype -> ``object``; boolean labels -> ``int8``; a missing ``label``
    column becomes all 0, meaning "no labels known", not "verified normal").
    Anything ambiguous is refused with :class:`TelemetryFormatError` naming the column and up to five
    offending row positions (0-based) with their values: a missing ``timestamp``/``service`` column,
    unparseable or missing timestamps, empty service names, one service name spelled two ways
    (trimmed and NFC-normalized, ``'api '`` and ``'api'`` are one name; a single spelling is
    simply normalized), non-numeric, infinite or Python-only (``1_000``, non-ASCII digits) metric
    values, labels other than 0/1, duplicate ``(service, timestamp)`` pairs, or no metric column
    at all.
    Timestamp values mixing aware and naive values in one column are refused too; rows in any
    order are accepted and sorted (the loaders, which know files and lines, insist on recorded
    time order).
    """
    source = "telemetry frame"
    typed = _typed_frame(
        frame, source=source, describe_rows=_describe_positions, default_service=None
    )
    return _finalize(typed, source=source, describe_rows=_describe_positions)


def _describe_positions(positions: IntArray) -> list[str]:
    return [f"row {int(position)}" for position in positions]


def _short_repr(value: object) -> str:
    # Show 3, not np.int64(3): the reader wants the value as it appears in the file.
    text = repr(value.item() if isinstance(value, np.generic) else value)
    return text if len(text) <= _MAX_REPR_CHARS else text[: _MAX_REPR_CHARS - 3] + "..."


def beyond_shown(total: int) -> str:
    """`` (and N more)`` for a list cut to `MAX_REPORTED_ROWS` examples, else nothing."""
    hidden = total - MAX_REPORTED_ROWS
    return f" (and {hidden} more)" if hidden > 0 else ""


def _bad_rows_error(
    source: str,
    column: str,
    problem: str,
    bad: BoolArray,
    raw_values: npt.NDArray[Any],
    describe_rows: RowDescriber,
) -> TelemetryFormatError:
    positions = np.flatnonzero(bad)
    shown = positions[:MAX_REPORTED_ROWS]
    examples = ", ".join(
        f"{where}: {_short_repr(raw_values[position])}"
        for where, position in zip(describe_rows(shown), shown, strict=True)
    )
    more = beyond_shown(len(positions))
    return TelemetryFormatError(
        f"{source}: column {column!r}: {problem} in {len(positions)} row(s): {examples}{more}"
    )


def _typed_frame(
    raw: pd.DataFrame,
    *,
    source: str,
    describe_rows: RowDescriber,
    default_service: str | None,
) -> pd.DataFrame:
    """Convert one source's columns to contract dtypes, in contract column order (rows untouched)."""
    _raise_on_bad_column_names(list(raw.columns), source=source, default_service=default_service)
    row_count = len(raw)
    columns: dict[str, Any] = {
        TIMESTAMP: _parse_timestamps(raw[TIMESTAMP], source, describe_rows),
    }
    if SERVICE in raw.columns:
        columns[SERVICE] = _parse_services(raw[SERVICE], source, describe_rows)
    else:
        columns[SERVICE] = np.full(row_count, default_service, dtype=object)
    for name in metric_columns(raw):
        columns[name] = _parse_metric(raw[name], name, source, describe_rows)
    if LABEL in raw.columns:
        columns[LABEL] = _parse_labels(raw[LABEL], source, describe_rows)
    else:
        columns[LABEL] = np.zeros(row_count, dtype=np.int8)

    typed = pd.DataFrame(
        {
            TIMESTAMP: pd.Series(columns[TIMESTAMP], dtype=_TIMESTAMP_DTYPE),
            SERVICE: pd.Series(columns[SERVICE], dtype=object),
            **{name: pd.Series(columns[name], dtype=np.float64) for name in metric_columns(raw)},
            LABEL: pd.Series(columns[LABEL], dtype=np.int8),
        }
    )
    return typed


def _raise_on_bad_column_names(
    names: list[Any], *, source: str, default_service: str | None
) -> None:
    """Column names a person can refer to: text, non-empty, unique, with the two key columns."""
    non_text_names = [name for name in names if not isinstance(name, str)]
    if non_text_names:
        raise TelemetryFormatError(
            f"{source}: column names must be strings, got {non_text_names!r}"
        )
    unnamed = [position for position, name in enumerate(names, start=1) if not name.strip()]
    if unnamed:
        raise TelemetryFormatError(
            f"{source}: column(s) at position(s) {unnamed} (1-based) have an empty name "
            f"(columns present: {names!r})"
        )
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise TelemetryFormatError(f"{source}: repeated column name(s) {repeated!r}")
    if TIMESTAMP not in names:
        raise TelemetryFormatError(
            f"{source}: missing column {TIMESTAMP!r} (columns present: {names!r})"
        )
    if SERVICE not in names and default_service is None:
        raise TelemetryFormatError(
            f"{source}: missing column {SERVICE!r} (columns present: {names!r})"
        )


def _finalize(
    typed: pd.DataFrame,
    *,
    source: str,
    describe_rows: RowDescriber,
    check_recorded_order: Callable[[], None] | None = None,
) -> pd.DataFrame:
    """Check frame-wide rules on already typed columns, then fix the column and row order.

    ``check_recorded_order`` (loaders) runs after the duplicate check, because a repeated row is
    better reported as a duplicate than as time going backwards.
    """
    metrics = metric_columns(typed)
    if not metrics:
        raise TelemetryFormatError(
            f"{source}: no metric columns (a telemetry frame needs at least one numeric column "
            f"besides {TIMESTAMP!r}, {SERVICE!r} and {LABEL!r})"
        )
    typed = _with_normalized_services(typed, source=source, describe_rows=describe_rows)
    _raise_on_duplicate_keys(typed, source=source, describe_rows=describe_rows)
    if check_recorded_order is not None:
        check_recorded_order()
    ordered = typed[[TIMESTAMP, SERVICE, *metrics, LABEL]]
    ordered = ordered.sort_values([TIMESTAMP, SERVICE], kind="stable", ignore_index=True)
    ordered[SERVICE] = ordered[SERVICE].astype(object)
    return ordered


def _service_name(raw: str) -> str:
    """The one spelling of a service name: trimmed, in Unicode NFC form."""
    return unicodedata.normalize("NFC", raw.strip())


def _with_normalized_services(
    typed: pd.DataFrame, *, source: str, describe_rows: RowDescriber
) -> pd.DataFrame:
    """Service names in their one spelling; two raw spellings of one name are refused.

    Clean names are returned untouched (the same array), so clean data keeps its exact bytes.
    """
    raw = typed[SERVICE].to_numpy(dtype=object)
    codes, uniques = pd.factorize(raw)
    spelled = [_service_name(str(name)) for name in uniques]
    if all(name == normal for name, normal in zip(uniques, spelled, strict=True)):
        return typed
    spellings: dict[str, list[int]] = {}
    for code, normal in enumerate(spelled):
        spellings.setdefault(normal, []).append(code)
    clashes = {normal: found for normal, found in spellings.items() if len(found) > 1}
    if clashes:
        raise _spelling_clash_error(clashes, codes, uniques, source, describe_rows)
    normalized = typed.copy()
    normalized[SERVICE] = pd.Series(
        np.asarray(spelled, dtype=object)[codes], dtype=object, index=typed.index
    )
    return normalized


def _spelling_clash_error(
    clashes: Mapping[str, list[int]],
    codes: IntArray,
    uniques: npt.NDArray[np.object_],
    source: str,
    describe_rows: RowDescriber,
) -> TelemetryFormatError:
    examples = []
    for normal, found in list(clashes.items())[:MAX_REPORTED_ROWS]:
        spelled_as = []
        for code in found:
            positions = np.flatnonzero(codes == code)
            where = describe_rows(positions[:1])[0]
            spelled_as.append(f"{uniques[code]!a} ({len(positions)} row(s), first: {where})")
        examples.append(f"{normal!a} is written as {' and '.join(spelled_as)}")
    return TelemetryFormatError(
        f"{source}: column {SERVICE!r}: {len(clashes)} service name(s) spelled more than one "
        f"way (names are compared trimmed and in Unicode NFC form; write each service the same "
        f"way in every row): {'; '.join(examples)}"
    )


def _raise_on_duplicate_keys(
    typed: pd.DataFrame, *, source: str, describe_rows: RowDescriber
) -> None:
    duplicated = typed.duplicated([SERVICE, TIMESTAMP], keep=False).to_numpy()
    if not duplicated.any():
        return
    positions = np.flatnonzero(duplicated)
    clashes = pd.DataFrame(
        {
            "service": typed[SERVICE].to_numpy()[positions],
            "timestamp": typed[TIMESTAMP].iloc[positions].to_numpy(),
            "position": positions,
        }
    )
    groups = list(clashes.groupby(["service", "timestamp"], sort=False)["position"])
    examples = []
    for (service, timestamp), group_positions in groups[:MAX_REPORTED_ROWS]:
        clash_positions = group_positions.to_numpy(dtype=np.int64)
        places = " and ".join(describe_rows(clash_positions[:2]))
        also = f" (+{len(clash_positions) - 2} more rows)" if len(clash_positions) > 2 else ""
        examples.append(f"{places}{also} ({service!r}, {timestamp!s})")
    more = beyond_shown(len(groups))
    raise TelemetryFormatError(
        f"{source}: columns {SERVICE!r}, {TIMESTAMP!r}: duplicate (service, timestamp) in "
        f"{len(groups)} case(s): {'; '.join(examples)}{more}"
    )


def _parse_timestamps(cells: pd.Series, source: str, describe_rows: RowDescriber) -> pd.Series:
    """Datetimes or ISO 8601 text -> naive UTC microseconds; text without an offset is taken as UTC."""
    dtype = cells.dtype
    if isinstance(dtype, pd.DatetimeTZDtype):
        parsed = cells.dt.tz_convert("UTC").dt.tz_localize(None)
    elif pd.api.types.is_datetime64_dtype(dtype):
        parsed = cells
    elif pd.api.types.is_object_dtype(dtype) or pd.api.types.is_string_dtype(dtype):
        as_objects = cells.astype(object)
        text_cells = as_objects.map(lambda cell: cell.strip() if isinstance(cell, str) else cell)
        parsed_utc = pd.to_datetime(text_cells, utc=True, format="ISO8601", errors="coerce")
        _raise_on_mixed_offsets(text_cells, parsed_utc.notna().to_numpy(), source, describe_rows)
        parsed = parsed_utc.dt.tz_localize(None)
    else:
        raise _bad_rows_error(
            source,
            TIMESTAMP,
            f"expected ISO 8601 text or datetimes, got dtype {dtype}",
            np.ones(len(cells), dtype=bool),
            cells.to_numpy(dtype=object),
            describe_rows,
        )
    result = parsed.astype(_TIMESTAMP_DTYPE)
    missing = result.isna().to_numpy()
    if missing.any():
        raise _bad_rows_error(
            source,
            TIMESTAMP,
            "missing or unparseable timestamp",
            missing,
            cells.to_numpy(dtype=object),
            describe_rows,
        )
    return result.reset_index(drop=True)


def _has_utc_offset(cell: object) -> bool:
    if isinstance(cell, str):
        return _UTC_OFFSET_SUFFIX.search(cell) is not None
    if isinstance(cell, datetime):  # also pd.Timestamp
        return cell.tzinfo is not None and cell.utcoffset() is not None
    return False


def _utc_offset_mask(raw: npt.NDArray[np.object_], parsed: BoolArray) -> BoolArray:
    """Which cells carry a UTC offset (only the parsed ones are looked at closely)."""
    if pd.api.types.infer_dtype(raw, skipna=False) != "string":
        return np.fromiter((_has_utc_offset(c) for c in raw), dtype=bool, count=len(raw))
    texts = pd.Series(raw, dtype=object)
    # A parsed value ending in Z is UTC; only the others need the (slower) offset pattern.
    has_offset = np.array(texts.str.endswith("Z").to_numpy(dtype=bool))  # writable copy
    others = np.flatnonzero(~has_offset & parsed)
    if len(others):
        has_offset[others] = (
            texts.iloc[others].str.contains(_UTC_OFFSET_SUFFIX, regex=True).to_numpy(dtype=bool)
        )
    return has_offset


def _raise_on_mixed_offsets(
    cells: pd.Series, parsed: BoolArray, source: str, describe_rows: RowDescriber
) -> None:
    """Refuse a column where some timestamps carry a UTC offset and others do not.

    Different offsets are fine (a daylight-saving change, or exports from two regions): each value
    names its own instant. But a naive value next to aware ones is most likely local time written
    without its offset, and reading it as UTC would silently shift it by hours.
    """
    raw = cells.to_numpy(dtype=object)
    aware = _utc_offset_mask(raw, parsed) & parsed
    naive = parsed & ~aware
    if not (aware.any() and naive.any()):
        return
    # Point at the minority: in a file that is mostly UTC with a few local lines, those lines.
    aware_is_minority = aware.sum() < naive.sum()
    minority, majority = (aware, naive) if aware_is_minority else (naive, aware)
    first = np.flatnonzero(majority)[:1]
    first_other = f"{describe_rows(first)[0]}: {_short_repr(raw[first[0]])}"
    majority_has, minority_has = ("no", "do") if aware_is_minority else ("a", "do not")
    raise _bad_rows_error(
        source,
        TIMESTAMP,
        f"mixed time zones (write every timestamp the same way, preferably with its UTC offset "
        f"as in 2026-01-05T00:00:00Z): {int(majority.sum())} timestamp(s) have {majority_has} UTC "
        f"offset (first: {first_other}) but these {minority_has}",
        minority,
        raw,
        describe_rows,
    )


def _cells_as_text(cells: pd.Series) -> tuple[npt.NDArray[np.object_], BoolArray]:
    """Cells as Python ``str`` (``""`` for nulls) plus the null mask.

    CSV cells are already text; in-memory frames and Parquet files may mix numbers in.
    """
    raw = cells.to_numpy(dtype=object)
    null = np.asarray(pd.isna(raw), dtype=bool)
    if pd.api.types.infer_dtype(raw, skipna=True) in ("string", "empty"):
        texts = np.where(null, "", raw).astype(object)
    else:
        texts = np.array(
            ["" if is_null else str(cell) for cell, is_null in zip(raw, null, strict=True)],
            dtype=object,
        )
    return texts, null


def _parse_services(
    cells: pd.Series, source: str, describe_rows: RowDescriber
) -> npt.NDArray[np.object_]:
    """Service names as Python ``str``; integers (host ids) are accepted as their decimal text."""
    names, _ = _cells_as_text(cells)
    blank = (pd.Series(names, dtype=object).str.strip() == "").to_numpy(dtype=bool)
    if blank.any():
        raise _bad_rows_error(
            source,
            SERVICE,
            "missing or empty service name",
            blank,
            cells.to_numpy(dtype=object),
            describe_rows,
        )
    return names


def _parse_number_cells(cells: pd.Series) -> tuple[FloatArray, BoolArray, BoolArray]:
    """Parse cells as numbers: the values, which cells were neither missing nor a number, and
    which of those were spelled in a way only Python reads.

    A number is plain ASCII text that Python's ``float`` accepts and is finite (infinity in
    telemetry is always a bug, and it would silently poison means and drift statistics). Text
    with an underscore (``1_2_0.5``) or any non-ASCII character (Arabic-Indic or fullwidth
    digits, a no-break space) is refused although ``float`` reads it: a CSV reader in any other
    language would not, so the snapshot would disagree with the file. Missing is an empty cell,
    a null or a conventional missing-value token such as ``NaN``, ``NA``, ``null`` or ``None``.
    """
    texts, _ = _cells_as_text(cells)
    normalized = pd.Series(texts, dtype=object).str.strip().str.lower()
    missing = normalized.isin(_MISSING_NUMBER_TOKENS).to_numpy()
    candidates = texts[~missing]
    try:
        parsed = candidates.astype(np.float64)
    except (ValueError, TypeError):
        parsed = np.array([_float_or_nan(text) for text in candidates], dtype=np.float64)
    python_only = np.zeros(len(texts), dtype=bool)
    python_only[~missing] = _python_only_spellings(candidates) & ~np.isnan(parsed)
    values = np.full(len(texts), np.nan, dtype=np.float64)
    values[~missing] = parsed
    values[python_only] = np.nan
    bad = np.zeros(len(texts), dtype=bool)
    bad[~missing] = ~np.isfinite(parsed)
    return values, bad | python_only, python_only


def _python_only_spellings(texts: npt.NDArray[np.object_]) -> BoolArray:
    """Which texts hold an underscore or a non-ASCII character (one C-speed pass when none do)."""
    joined = "".join(texts)
    if "_" not in joined and joined.isascii():
        return np.zeros(len(texts), dtype=bool)
    return np.fromiter(
        ("_" in text or not text.isascii() for text in texts), dtype=bool, count=len(texts)
    )


def _float_or_nan(text: str) -> float:
    try:
        return float(text)
    except (ValueError, TypeError):
        return math.nan


def _numeric_cells_as_float(cells: pd.Series) -> FloatArray:
    # Nullable integer/boolean columns (Parquet with nulls) carry pd.NA, which becomes NaN here.
    return np.asarray(cells.astype(np.float64).to_numpy(na_value=np.nan), dtype=np.float64)


def _parse_metric(
    cells: pd.Series, column: str, source: str, describe_rows: RowDescriber
) -> FloatArray:
    dtype = cells.dtype
    if pd.api.types.is_bool_dtype(dtype) or pd.api.types.is_numeric_dtype(dtype):
        values = _numeric_cells_as_float(cells)
        bad = np.isinf(values)
    elif pd.api.types.is_object_dtype(dtype) or pd.api.types.is_string_dtype(dtype):
        values, bad, python_only = _parse_number_cells(cells)
        if python_only.any():
            raise _bad_rows_error(
                source,
                column,
                "number spelled in a way only Python reads (a digit-group underscore or a "
                "non-ASCII digit or character; write plain ASCII decimals such as 120.5)",
                python_only,
                cells.to_numpy(dtype=object),
                describe_rows,
            )
    else:
        raise _bad_rows_error(
            source,
            column,
            f"expected numbers, got dtype {dtype}",
            np.ones(len(cells), dtype=bool),
            cells.to_numpy(dtype=object),
            describe_rows,
        )
    if bad.any():
        text = bad & np.isnan(values)
        present = int(bad.sum() + np.isfinite(values).sum())
        problem = "value is not a finite number"
        if present > 1 and text.sum() == present:
            # Typically an extra text column (a region, a host name) that became a metric by
            # contract; say so rather than complain about each value.
            problem = (
                f"not a numeric column (every column other than {TIMESTAMP!r}, {SERVICE!r} and "
                f"{LABEL!r} is a metric and must hold numbers): no value is a number"
            )
        raise _bad_rows_error(
            source,
            column,
            problem,
            bad,
            cells.to_numpy(dtype=object),
            describe_rows,
        )
    return values


def _parse_labels(
    cells: pd.Series, source: str, describe_rows: RowDescriber
) -> npt.NDArray[np.int8]:
    """0/1 labels; ``true``/``false`` and ``1.0``/``0.0`` are accepted, a missing label is not.

    A missing label is refused rather than read as 0 because "we do not know" and "normal" mean
    different things to an evaluator.
    """
    dtype = cells.dtype
    if pd.api.types.is_bool_dtype(dtype) or pd.api.types.is_numeric_dtype(dtype):
        values = _numeric_cells_as_float(cells)
    elif pd.api.types.is_object_dtype(dtype) or pd.api.types.is_string_dtype(dtype):
        raw = cells.to_numpy(dtype=object)
        normalized = pd.Series(raw, dtype=object).map(
            lambda cell: cell.strip().lower() if isinstance(cell, str) else cell
        )
        boolean_words = normalized.map(_BOOLEAN_LABEL_TOKENS).to_numpy(
            dtype=np.float64, na_value=np.nan
        )
        numbers, _, _ = _parse_number_cells(cells)
        values = np.where(np.isnan(boolean_words), numbers, boolean_words)
    else:
        values = np.full(len(cells), np.nan)
    bad = ~np.isin(values, (0.0, 1.0))
    if bad.any():
        raise _bad_rows_error(
            source, LABEL, "label is not 0 or 1", bad, cells.to_numpy(dtype=object), describe_rows
        )
    return values.astype(np.int8)


def naive_utc(moment: datetime | pd.Timestamp) -> pd.Timestamp:
    """Telemetry timestamps are naive UTC; aware inputs (offsets, partition windows) convert."""
    timestamp = pd.Timestamp(moment)
    if timestamp.tzinfo is not None:
        timestamp = timestamp.tz_convert("UTC").tz_localize(None)
    return timestamp


def apply_unit_scale(
    frame: pd.DataFrame, unit_scale: Mapping[str, Mapping[str, float]]
) -> pd.DataFrame:
    """Multiply each named service's named metric columns by a factor, to reach contract units.

    Collectors disagree on units (a latency in seconds where the contract says milliseconds);
    the factor per service and column is deployment configuration, recorded with the snapshot,
    so a wrong factor shows in the change log as the config change it is.
    """
    if not unit_scale:
        return frame
    metrics = set(metric_columns(frame))
    scaled = frame.copy()
    for service, factors in sorted(unit_scale.items()):
        rows = (scaled[SERVICE] == service).to_numpy()
        for column, factor in sorted(factors.items()):
            if column not in metrics:
                raise ValueError(
                    f"unit_scale for service {service!r} names {column!r}, which is not a metric "
                    f"column; metric columns are {sorted(metrics)}"
                )
            if not math.isfinite(factor) or factor <= 0:
                raise ValueError(
                    f"unit_scale factor for {service}.{column} must be a positive finite number, "
                    f"got {factor}"
                )
            scaled.loc[rows, column] = scaled.loc[rows, column] * float(factor)
    return scaled


class ReplayedService(NamedTuple):
    """A service whose rows repeat an earlier window's values exactly, shifted in time."""

    service: str
    rows: int
    shift: pd.Timedelta


def replayed_services(current: pd.DataFrame, previous: pd.DataFrame) -> list[ReplayedService]:
    """Services of ``current`` whose rows are ``previous``'s, value for value, time-shifted.

    Yesterday's export re-sent under today's dates passes every per-row check; only the exact
    repeat of every metric value, row for row, at one constant time shift, gives it away. Both
    frames are canonical telemetry. A service is judged only with at least
    :data:`MIN_REPLAY_ROWS` rows that are not all alike: a constant series repeats by nature.
    """
    metrics = [column for column in metric_columns(current) if column in previous.columns]
    if not metrics or current.empty or previous.empty:
        return []
    earlier = dict(list(previous.groupby(SERVICE, sort=True)))
    replayed = []
    for service, rows in current.groupby(SERVICE, sort=True):
        before = earlier.get(service)
        if before is None or len(rows) != len(before) or len(rows) < MIN_REPLAY_ROWS:
            continue
        values = rows[metrics].to_numpy(dtype=np.float64)
        if not np.array_equal(values, before[metrics].to_numpy(dtype=np.float64), equal_nan=True):
            continue
        if len(rows[metrics].drop_duplicates()) < 2:
            continue
        shifts = np.unique(rows[TIMESTAMP].to_numpy() - before[TIMESTAMP].to_numpy())
        if len(shifts) == 1 and shifts[0] != np.timedelta64(0):
            replayed.append(ReplayedService(str(service), len(rows), pd.Timedelta(shifts[0])))
    return replayed
