"""Telemetry sources: a seeded scenario generator, a CSV/Parquet directory loader and a NAB loader.

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

Bad input never turns into a silent bad snapshot: every loader raises :class:`TelemetryFormatError`
naming the file, the column and the first offending rows (CSV: 1-based physical line numbers, header
= line 1; Parquet and in-memory frames: 0-based row positions) with their raw values. Files are
read as recorded, not repaired: within one file each service's rows must already be in time order
(a file whose rows went backwards was spliced or concatenated wrongly, and sorting it would hide
that), and a timestamp column must not mix values with and without a UTC offset (a naive value next
to aware ones is a local time that cannot be placed). In-memory frames passed to
:func:`canonical_telemetry` are simply sorted.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import math
import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar, Final, TypeAlias

import numpy as np
import numpy.typing as npt
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

__all__ = [
    "DEFAULT_SERVICES",
    "GENERATED_METRICS",
    "LABEL",
    "SERVICE",
    "TIMESTAMP",
    "ConfigChange",
    "NullInjection",
    "Scenario",
    "ScenarioEvent",
    "SlowDrift",
    "TelemetryFormatError",
    "canonical_telemetry",
    "clock_repeats",
    "default_scenario",
    "generate",
    "generate_day",
    "load_directory",
    "load_nab",
    "metric_columns",
    "read_nab_windows",
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
_LINE_BREAK: Final = re.compile(r"\r\n|\r|\n")


class TelemetryFormatError(ValueError):
    """Input that does not satisfy the telemetry frame contract.

    A ``ValueError`` subclass so callers that already guard against bad values keep working, while
    quarantine logic can catch exactly this type and store the message as the report.
    """


# --------------------------------------------------------------------------------------------
# The frame contract
# --------------------------------------------------------------------------------------------


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
    unparseable or missing timestamps, empty service names, non-numeric or infinite metric values,
    labels other than 0/1, duplicate ``(service, timestamp)`` pairs, or no metric column at all.
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
    hidden = len(positions) - len(shown)
    more = f" (and {hidden} more)" if hidden else ""
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
    names = list(raw.columns)
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
    if TIMESTAMP not in raw.columns:
        raise TelemetryFormatError(
            f"{source}: missing column {TIMESTAMP!r} (columns present: {names!r})"
        )
    if SERVICE not in raw.columns and default_service is None:
        raise TelemetryFormatError(
            f"{source}: missing column {SERVICE!r} (columns present: {names!r})"
        )

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
    _raise_on_duplicate_keys(typed, source=source, describe_rows=describe_rows)
    if check_recorded_order is not None:
        check_recorded_order()
    ordered = typed[[TIMESTAMP, SERVICE, *metrics, LABEL]]
    ordered = ordered.sort_values([TIMESTAMP, SERVICE], kind="stable", ignore_index=True)
    ordered[SERVICE] = ordered[SERVICE].astype(object)
    return ordered


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
    hidden = len(groups) - len(examples)
    more = f" (and {hidden} more)" if hidden else ""
    raise TelemetryFormatError(
        f"{source}: columns {SERVICE!r}, {TIMESTAMP!r}: duplicate (service, timestamp) in "
        f"{len(groups)} case(s): {'; '.join(examples)}{more}"
    )


def _raise_on_out_of_order(loaded: _LoadedFile) -> None:
    """Within one file, every service's rows must be in increasing time order, as recorded.

    Services may interleave (time-major exports) and different files may overlap in time; but a
    service whose timestamps go backwards within a file means lines were swapped, appended twice or
    spliced from another export, which sorting would silently paper over.
    """
    typed = loaded.typed
    if len(typed) < 2:
        return
    codes, _ = pd.factorize(typed[SERVICE].to_numpy(dtype=object))
    by_service = np.argsort(codes, kind="stable")  # file order kept within each service
    times = typed[TIMESTAMP].to_numpy()[by_service]
    same_service = codes[by_service][1:] == codes[by_service][:-1]
    backwards = np.flatnonzero(same_service & (times[1:] < times[:-1]))
    if not len(backwards):
        return
    later_rows, earlier_rows = by_service[backwards + 1], by_service[backwards]
    # Report in file order: the first place where a service's clock went back comes first.
    order = np.argsort(later_rows, kind="stable")
    later_rows, earlier_rows = later_rows[order], earlier_rows[order]
    shown = min(len(later_rows), MAX_REPORTED_ROWS)
    later_places = loaded.describe_rows(later_rows[:shown])
    earlier_places = loaded.describe_rows(earlier_rows[:shown])
    services = typed[SERVICE].to_numpy(dtype=object)
    timestamps = typed[TIMESTAMP]
    examples = [
        f"service {services[later]!r}: {later_place} ({timestamps.iloc[later]!s}) comes after "
        f"{earlier_place} ({timestamps.iloc[earlier]!s})"
        for later, earlier, later_place, earlier_place in zip(
            later_rows[:shown], earlier_rows[:shown], later_places, earlier_places, strict=True
        )
    ]
    hidden = len(later_rows) - shown
    more = f" (and {hidden} more)" if hidden else ""
    raise TelemetryFormatError(
        f"{loaded.path}: column {TIMESTAMP!r}: timestamps out of order within a service in "
        f"{len(later_rows)} place(s) (each service's rows must be in time order, as recorded): "
        f"{'; '.join(examples)}{more}"
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


def _raise_on_mixed_offsets(
    cells: pd.Series, parsed: BoolArray, source: str, describe_rows: RowDescriber
) -> None:
    """Refuse a column where some timestamps carry a UTC offset and others do not.

    Different offsets are fine (a daylight-saving change, or exports from two regions): each value
    names its own instant. But a naive value next to aware ones is most likely local time written
    without its offset, and reading it as UTC would silently shift it by hours.
    """
    raw = cells.to_numpy(dtype=object)
    if pd.api.types.infer_dtype(raw, skipna=False) == "string":
        texts = pd.Series(raw, dtype=object)
        # A parsed value ending in Z is UTC; only the others need the (slower) offset pattern.
        has_offset = np.array(texts.str.endswith("Z").to_numpy(dtype=bool))  # writable copy
        others = np.flatnonzero(~has_offset & parsed)
        if len(others):
            has_offset[others] = (
                texts.iloc[others].str.contains(_UTC_OFFSET_SUFFIX, regex=True).to_numpy(dtype=bool)
            )
    else:
        has_offset = np.fromiter((_has_utc_offset(c) for c in raw), dtype=bool, count=len(raw))
    aware = has_offset & parsed
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


def _parse_number_cells(cells: pd.Series) -> tuple[FloatArray, BoolArray]:
    """Parse cells as numbers; return the values and which cells were neither missing nor a number.

    A number is whatever Python's ``float`` accepts and is finite (infinity in telemetry is always a
    bug, and it would silently poison means and drift statistics). Missing is an empty cell, a null
    or a conventional missing-value token such as ``NaN``, ``NA``, ``null`` or ``None``.
    """
    texts, _ = _cells_as_text(cells)
    normalized = pd.Series(texts, dtype=object).str.strip().str.lower()
    missing = normalized.isin(_MISSING_NUMBER_TOKENS).to_numpy()
    candidates = texts[~missing]
    try:
        parsed = candidates.astype(np.float64)
    except (ValueError, TypeError):
        parsed = np.array([_float_or_nan(text) for text in candidates], dtype=np.float64)
    values = np.full(len(texts), np.nan, dtype=np.float64)
    values[~missing] = parsed
    bad = np.zeros(len(texts), dtype=bool)
    bad[~missing] = ~np.isfinite(parsed)
    return values, bad


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
        values, bad = _parse_number_cells(cells)
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
        numbers, _ = _parse_number_cells(cells)
        values = np.where(np.isnan(boolean_words), numbers, boolean_words)
    else:
        values = np.full(len(cells), np.nan)
    bad = ~np.isin(values, (0.0, 1.0))
    if bad.any():
        raise _bad_rows_error(
            source, LABEL, "label is not 0 or 1", bad, cells.to_numpy(dtype=object), describe_rows
        )
    return values.astype(np.int8)


# --------------------------------------------------------------------------------------------
# Loaders
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _LoadedFile:
    """One file's typed rows plus how to point a person at any of them."""

    path: Path
    typed: pd.DataFrame
    describe_rows: RowDescriber


def load_directory(
    path: str | os.PathLike[str],
    *,
    start: datetime | None = None,
    end: datetime | None = None,
) -> pd.DataFrame:
    """Load every ``*.csv`` and ``*.parquet`` file directly inside ``path`` as one telemetry frame.

    Each file needs a ``timestamp`` column (ISO 8601 text, with or without an offset, or a Parquet
    timestamp; aware values are converted to UTC, naive ones are taken as UTC). ``service`` is
    optional and defaults to the file stem, so one-file-per-service exports load unchanged. ``label``
    is optional; a file without it gets label 0 everywhere, which means "no labels known", not
    "verified normal". Metric columns may differ between files: the result has their union, with
    NaN where a file lacks a metric. Subdirectories are not searched, so a stray archive folder
    cannot leak in.

    ``start``/``end`` keep ``start <= timestamp < end`` (aware bounds are converted to UTC). The
    whole directory is validated before filtering, because a broken file is a problem even when
    its rows fall outside today's window.

    A file is read as recorded, never repaired: within one file, each service's rows must be in
    increasing time order, and a timestamp column must not mix values with and without a UTC
    offset (different offsets are fine). CSV files must be UTF-8 (a byte-order mark is allowed).
    A header-only CSV or an empty Parquet table is a valid file with no rows.

    Raises:
        TelemetryFormatError: naming the file, column and first bad rows (CSV: 1-based line numbers,
            header = line 1; Parquet: 0-based row index) for unparseable timestamps, timestamps
            with and without a UTC offset in one column, non-numeric or infinite metric values,
            labels other than 0/1, duplicate (service, timestamp) pairs (both rows are named, also
            across files), a service's timestamps going backwards within a file (file, service and
            both lines are named), a missing timestamp column, an empty or repeated column name, a
            line with more or fewer fields than the header, a CSV that is not UTF-8 (byte offset
            and line), an empty (0-byte or blank) CSV, an unreadable file, or a directory without
            data files.
    """
    directory = Path(path)
    if not directory.is_dir():
        raise TelemetryFormatError(f"{directory}: not a directory")
    data_files = sorted(
        entry
        for entry in directory.iterdir()
        if entry.is_file() and entry.suffix.lower() in (".csv", ".parquet")
    )
    if not data_files:
        raise TelemetryFormatError(f"{directory}: no *.csv or *.parquet files to load")
    loaded = [_load_table_file(file, default_service=file.stem) for file in data_files]
    return _combine(loaded, source=str(directory), start=start, end=end)


def load_nab(
    root: str | os.PathLike[str],
    *,
    files: Sequence[str] | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
    drop_clock_repeats: bool = False,
) -> pd.DataFrame:
    """Load Numenta Anomaly Benchmark files as a telemetry frame with NAB's anomaly windows as labels.

    ``root`` holds ``data/<category>/<file>.csv`` (``timestamp,value``) and
    ``labels/combined_windows.json``. Each file becomes the service ``"<category>/<file>"`` with the
    single metric ``value``; ``label`` is 1 inside any of its windows, both ends inclusive as NAB
    defines them. ``files`` selects keys like ``"realKnownCause/nyc_taxi.csv"`` (default: every CSV
    under ``data/``). Rows are kept exactly as recorded: NAB's irregular steps and gaps are part of
    the benchmark, so nothing is resampled or filled.

    Four NAB files repeat clock times where a daylight-saving change was exported (a row at or
    before the previous row's time). By default such a file is refused like any other;
    ``drop_clock_repeats=True`` keeps each file's strictly increasing rows only (the rule of
    :func:`clock_repeats`, which names the dropped rows so a caller can report and account for them).

    Raises:
        TelemetryFormatError: as :func:`load_directory`, plus a missing or malformed labels file, a
            selected file that does not exist, or a file without an entry in the windows file (an
            absent entry would otherwise silently read as "no anomalies").
    """
    if isinstance(files, str):
        raise TypeError("files must be a sequence of keys such as ['realKnownCause/nyc_taxi.csv']")
    nab_root = Path(root)
    data_dir = nab_root / "data"
    labels_path = nab_root / "labels" / "combined_windows.json"
    windows_by_key = _read_nab_windows(labels_path)
    if not data_dir.is_dir():
        raise TelemetryFormatError(f"{data_dir}: NAB data directory not found")
    keys = (
        list(files)
        if files is not None
        else sorted(
            csv_file.relative_to(data_dir).as_posix() for csv_file in data_dir.glob("*/*.csv")
        )
    )
    if not keys:
        raise TelemetryFormatError(f"{data_dir}: no NAB CSV files to load")

    loaded: list[_LoadedFile] = []
    for key in keys:
        csv_path = data_dir / key
        if not csv_path.is_file():
            raise TelemetryFormatError(f"{csv_path}: NAB data file {key!r} not found")
        if key not in windows_by_key:
            raise TelemetryFormatError(
                f"{labels_path}: no anomaly windows entry for {key!r} (use [] for a file without "
                "anomalies)"
            )
        raw, describe_rows = _read_csv_cells(csv_path)
        unexpected = sorted(set(raw.columns) - {TIMESTAMP, "value"})
        if "value" not in raw.columns or unexpected:
            raise TelemetryFormatError(
                f"{csv_path}: expected NAB columns 'timestamp,value', got {list(raw.columns)!r}"
            )
        typed = _typed_frame(
            raw,
            source=str(csv_path),
            describe_rows=describe_rows,
            default_service=key.removesuffix(".csv"),
        )
        if drop_clock_repeats:
            kept = np.flatnonzero(~clock_repeats(typed[TIMESTAMP]))
            typed = typed.iloc[kept].reset_index(drop=True)
            describe_rows = _describe_subset(describe_rows, kept)
        inside_window = np.zeros(len(typed), dtype=bool)
        timestamps = typed[TIMESTAMP]
        for window_start, window_end in windows_by_key[key]:
            inside_window |= ((timestamps >= window_start) & (timestamps <= window_end)).to_numpy()
        typed[LABEL] = inside_window.astype(np.int8)
        loaded.append(_LoadedFile(csv_path, typed, describe_rows))
    return _combine(loaded, source=str(data_dir), start=start, end=end)


def clock_repeats(timestamps: pd.Series) -> BoolArray:
    """True for each row whose time is not later than every row before it in the file."""
    times = pd.DatetimeIndex(timestamps).asi8
    if len(times) == 0:
        return np.zeros(0, dtype=bool)
    running_max = np.maximum.accumulate(times)
    repeated = np.zeros(len(times), dtype=bool)
    repeated[1:] = times[1:] <= running_max[:-1]
    return repeated


def _describe_subset(describe_rows: RowDescriber, kept: IntArray) -> RowDescriber:
    def describe(positions: IntArray) -> list[str]:
        return describe_rows(kept[np.asarray(positions, dtype=np.int64)])

    return describe


def read_nab_windows(
    root: str | os.PathLike[str],
) -> dict[str, list[tuple[pd.Timestamp, pd.Timestamp]]]:
    """NAB's anomaly windows per file key, as :func:`load_nab` labels rows with them (both ends in).

    Public so that a NAB scorer places windows exactly where the loader's labels are.
    """
    return _read_nab_windows(Path(root) / "labels" / "combined_windows.json")


def _read_nab_windows(labels_path: Path) -> dict[str, list[tuple[pd.Timestamp, pd.Timestamp]]]:
    try:
        document = json.loads(labels_path.read_text(encoding="utf-8"))
    except FileNotFoundError as error:
        raise TelemetryFormatError(f"{labels_path}: NAB labels file not found") from error
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise TelemetryFormatError(f"{labels_path}: cannot read NAB labels: {error}") from error
    if not isinstance(document, dict):
        raise TelemetryFormatError(
            f"{labels_path}: expected an object mapping file keys to windows"
        )
    windows_by_key: dict[str, list[tuple[pd.Timestamp, pd.Timestamp]]] = {}
    for key, windows in document.items():
        parsed_windows = []
        for window in windows if isinstance(windows, list) else [windows]:
            try:
                window_start, window_end = (naive_utc(pd.Timestamp(bound)) for bound in window)
            except (TypeError, ValueError) as error:
                raise TelemetryFormatError(
                    f"{labels_path}: entry {key!r}: window {window!r} is not a [start, end] pair "
                    f"of timestamps ({error})"
                ) from error
            if window_start > window_end:
                raise TelemetryFormatError(
                    f"{labels_path}: entry {key!r}: window {window!r} ends before it starts"
                )
            parsed_windows.append((window_start, window_end))
        windows_by_key[key] = parsed_windows
    return windows_by_key


def _load_table_file(path: Path, *, default_service: str) -> _LoadedFile:
    if path.suffix.lower() == ".csv":
        raw, describe_rows = _read_csv_cells(path)
    else:
        raw, describe_rows = _read_parquet_cells(path)
    typed = _typed_frame(
        raw, source=str(path), describe_rows=describe_rows, default_service=default_service
    )
    return _LoadedFile(path, typed, describe_rows)


def _read_csv_cells(path: Path) -> tuple[pd.DataFrame, RowDescriber]:
    """Read a CSV as raw text cells, dropping blank lines but remembering every row's line number.

    Cells stay text so validation can quote the offending raw value. The header is read as an
    ordinary row so that a data row with more fields than the header is a parse error naming its
    line, instead of pandas silently turning the first column into an index; a row with fewer
    fields (a truncated line) is refused too, instead of reading its missing fields as missing
    values. Blank lines are read as rows and dropped afterwards, because letting the parser skip
    them would shift every later row's line number in error messages. The file must be UTF-8 (a
    byte-order mark is allowed); anything else is refused with the byte offset and line of the first
    byte that is not.
    """
    try:
        data = path.read_bytes()
    except OSError as error:
        raise TelemetryFormatError(f"{path}: cannot read CSV: {error}") from error
    text = _decode_utf8(path, data)
    if not text.strip():
        what = "0 bytes" if not data else "only blank lines"
        raise TelemetryFormatError(
            f"{path}: cannot read CSV: empty file ({what}); expected a header line naming the "
            "columns, then one line per row"
        )
    try:
        cells = pd.read_csv(
            io.StringIO(text, newline=""),
            header=None,
            index_col=False,
            dtype=str,
            keep_default_na=False,
            na_filter=False,
            skip_blank_lines=False,
        )
    except (pd.errors.ParserError, pd.errors.EmptyDataError, ValueError) as error:
        raise TelemetryFormatError(
            f"{path}: cannot read CSV: {_describe_parser_error(error, text)}"
        ) from error
    cells = cells.astype(object).fillna("")
    header = [str(name) for name in cells.iloc[0]]
    body = cells.iloc[1:]
    blank_rows = np.ones(len(body), dtype=bool)
    for column in body.columns:
        blank_rows &= (body[column].str.strip() == "").to_numpy(dtype=bool)
    record_index = np.flatnonzero(~blank_rows)
    kept = body.iloc[record_index].reset_index(drop=True)
    kept.columns = pd.Index(header, dtype=object)

    layouts: list[tuple[list[int], IntArray] | None] = []

    def layout() -> tuple[list[int], IntArray] | None:
        """Computed once, and only when needed: an error to report, or a possibly short row."""
        if not layouts:
            layouts.append(_csv_layout(text, expected_records=len(body)))
        return layouts[0]

    def describe_rows(positions: IntArray) -> list[str]:
        known = layout()
        return [
            f"line {known[0][record_index[position]] if known else record_index[position] + 2}"
            for position in positions
        ]

    # pandas pads a line with too few fields with empty strings, which would then read as missing
    # values; Python's csv module still knows how many fields each line had. A short line always
    # ends in an empty cell, so files without one skip the extra pass.
    maybe_short = len(header) > 1 and (kept.iloc[:, -1] == "").any()
    known = layout() if maybe_short else None
    if known is not None:
        field_counts = known[1][record_index]
        short = field_counts < len(header)
        if short.any():
            positions = np.flatnonzero(short)
            shown = positions[:MAX_REPORTED_ROWS]
            examples = ", ".join(
                f"{where} ({int(field_counts[position])} field(s))"
                for where, position in zip(describe_rows(shown), shown, strict=True)
            )
            hidden = len(positions) - len(shown)
            more = f" (and {hidden} more)" if hidden else ""
            raise TelemetryFormatError(
                f"{path}: cannot read CSV: fewer fields than the header's {len(header)} (a "
                f"truncated or hand-edited line) in {len(positions)} row(s): {examples}{more}"
            )
    return kept, describe_rows


def _decode_utf8(path: Path, data: bytes) -> str:
    """The file's text; a byte that is not UTF-8 is refused with its offset and line."""
    bom = len(codecs.BOM_UTF8) if data.startswith(codecs.BOM_UTF8) else 0
    try:
        return data[bom:].decode("utf-8")
    except UnicodeDecodeError as error:
        offset = bom + error.start
        before = data[bom:offset].decode("utf-8")
        line = len(_LINE_BREAK.findall(before)) + 1
        hint = ""
        if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
            hint = " (the file starts with a UTF-16 byte-order mark)"
        raise TelemetryFormatError(
            f"{path}: cannot read CSV: not UTF-8 text{hint}: byte(s) "
            f"{data[offset : bom + error.end].hex(' ')} at byte offset {offset} (line {line}): "
            f"{error.reason}; re-export the file as UTF-8"
        ) from error


def _describe_parser_error(error: Exception, text: str) -> str:
    """pandas' parser message, with its record numbers turned into physical line numbers."""
    message = str(error).strip()
    ragged = re.search(r"Expected (\d+) fields in line (\d+), saw (\d+)", message)
    if ragged:
        # pandas counts records (header = line 1), which drifts after a quoted newline.
        expected, record_line, seen = (int(group) for group in ragged.groups())
        ragged_line = _record_start_line(text, record_line - 1) or record_line
        return (
            f"more fields than the header's {expected} (a stray delimiter or a spliced line) on "
            f"line {ragged_line} ({seen} field(s))"
        )
    unclosed = re.search(r"EOF inside string starting at row (\d+)", message)
    if unclosed:
        quote_line = _record_start_line(text, int(unclosed.group(1)))
        if quote_line is not None:
            message += f" (the double quote opened on line {quote_line} is never closed)"
    return message


def _record_start_line(text: str, record: int) -> int | None:
    """Physical line (1-based) on which the 0-based record ``record`` (header = 0) starts."""
    if record == 0:
        return 1
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        for number, _fields in enumerate(reader):
            if number == record - 1:
                return reader.line_num + 1
    except csv.Error:
        return None
    return None


def _csv_layout(text: str, *, expected_records: int) -> tuple[list[int], IntArray] | None:
    """Per data record: the physical line it starts on and its number of fields.

    Line numbers account for quoted newlines. ``None`` if Python's csv module disagrees with pandas
    on the number of records (callers then fall back to "record + 2" numbering instead of guessing).
    """
    starts: list[int] = []
    field_counts: list[int] = []
    reader = csv.reader(io.StringIO(text, newline=""))
    previous_line = 0
    try:
        for record_number, record in enumerate(reader):
            if record_number > 0:
                starts.append(previous_line + 1)
                field_counts.append(len(record))
            previous_line = reader.line_num
    except csv.Error:
        return None
    if len(starts) != expected_records:
        return None
    return starts, np.asarray(field_counts, dtype=np.int64)


def _read_parquet_cells(path: Path) -> tuple[pd.DataFrame, RowDescriber]:
    try:
        table = pq.read_table(path)
        # Ignore pandas metadata so an index written by DataFrame.to_parquet (e.g. a timestamp
        # index) comes back as an ordinary column instead of disappearing into the index.
        cells = table.to_pandas(ignore_metadata=True)
    except (pa.ArrowException, OSError, ValueError) as error:
        raise TelemetryFormatError(f"{path}: cannot read Parquet: {error}") from error
    unnamed_index = [
        column
        for column in cells.columns
        if str(column).startswith("__index_level_") and str(column).endswith("__")
    ]
    cells = cells.drop(columns=unnamed_index)

    def describe_rows(positions: IntArray) -> list[str]:
        return [f"row {int(position)}" for position in positions]

    return cells, describe_rows


def _combine(
    loaded: Sequence[_LoadedFile],
    *,
    source: str,
    start: datetime | None,
    end: datetime | None,
) -> pd.DataFrame:
    if not any(metric_columns(item.typed) for item in loaded):
        files = ", ".join(str(item.path) for item in loaded)
        raise TelemetryFormatError(
            f"{source}: no metric columns in any file ({files}): a telemetry frame needs at least "
            f"one numeric column besides {TIMESTAMP!r}, {SERVICE!r} and {LABEL!r}"
        )
    origin_file = np.concatenate(
        [np.full(len(item.typed), index, dtype=np.int64) for index, item in enumerate(loaded)]
    )
    origin_row = np.concatenate([np.arange(len(item.typed), dtype=np.int64) for item in loaded])

    def describe_rows(positions: IntArray) -> list[str]:
        return [
            f"{loaded[origin_file[position]].path} "
            f"{loaded[origin_file[position]].describe_rows(origin_row[[position]])[0]}"
            for position in positions
        ]

    combined = pd.concat([item.typed for item in loaded], ignore_index=True, sort=False)
    # Files without a given metric contribute NaN; re-assert dtypes that concatenation may widen.
    for column in metric_columns(combined):
        combined[column] = combined[column].astype(np.float64)
    combined[SERVICE] = combined[SERVICE].astype(object)
    combined[LABEL] = combined[LABEL].astype(np.int8)

    def check_recorded_order() -> None:
        for item in loaded:
            _raise_on_out_of_order(item)

    frame = _finalize(
        combined,
        source=source,
        describe_rows=describe_rows,
        check_recorded_order=check_recorded_order,
    )
    return _filter_time(frame, start=start, end=end)


def naive_utc(moment: datetime | pd.Timestamp) -> pd.Timestamp:
    """Telemetry timestamps are naive UTC; aware inputs (offsets, partition windows) convert."""
    timestamp = pd.Timestamp(moment)
    if timestamp.tzinfo is not None:
        timestamp = timestamp.tz_convert("UTC").tz_localize(None)
    return timestamp


def _filter_time(
    frame: pd.DataFrame, *, start: datetime | None, end: datetime | None
) -> pd.DataFrame:
    if start is None and end is None:
        return frame
    if start is not None and end is not None and naive_utc(start) > naive_utc(end):
        raise ValueError(f"start {start} is after end {end}")
    keep = np.ones(len(frame), dtype=bool)
    if start is not None:
        keep &= (frame[TIMESTAMP] >= naive_utc(start)).to_numpy()
    if end is not None:
        keep &= (frame[TIMESTAMP] < naive_utc(end)).to_numpy()
    return frame.loc[keep].reset_index(drop=True)


# --------------------------------------------------------------------------------------------
# Seeded scenario generator
# --------------------------------------------------------------------------------------------

DEFAULT_SERVICES: Final = ("checkout", "payments", "search", "catalog", "auth", "gateway")
_MINUTES_PER_DAY: Final = 24 * 60
_OUTPUT_DECIMALS: Final = 4
"""Generated values are rounded so a last-bit difference in a CPU's exp/sin cannot change a snapshot
hash across machines (rounding is monotone, so the metric invariants survive it)."""
_MIN_LATENCY_MS: Final = 0.05
_INCIDENT_MINUTES: Final = (15, 90)
_PERCENT_COLUMNS: Final = frozenset({"cpu_pct", "memory_pct"})


def _require_plain_date(value: object, what: str) -> None:
    # datetime is a date subclass, but comparing it with a date raises, and a time of day would be
    # silently ignored by the day arithmetic: refuse it up front.
    if not isinstance(value, date) or isinstance(value, datetime):
        raise ValueError(f"{what} must be a datetime.date (not a datetime), got {value!r}")


def _require_generated_metric(column: str, what: str) -> None:
    if column not in GENERATED_METRICS:
        raise ValueError(f"{what}: unknown metric {column!r}; choose from {GENERATED_METRICS}")


def _kwargs_from_dict(
    data: Mapping[str, Any], kind: str, converters: Mapping[str, Callable[[Any], Any]]
) -> dict[str, Any]:
    """Shared strict decoding: a typo in a stored scenario must fail, not fall back to a default."""
    if data.get("kind", kind) != kind:
        raise ValueError(f"expected kind {kind!r}, got {data.get('kind')!r}")
    unknown = sorted(set(data) - set(converters) - {"kind"})
    if unknown:
        raise ValueError(f"{kind}: unknown keys {unknown}")
    return {name: convert(data[name]) for name, convert in converters.items() if name in data}


@dataclass(frozen=True)
class ConfigChange:
    """A bad configuration deploy: the service's latency p50 and p99 are multiplied by
    ``latency_factor`` from ``day`` (inclusive) to the end of the scenario.

    Not labeled as an incident: it is a change a drift check and the incident correlator should
    attribute, not an anomaly a detector is trained to flag.
    """

    kind: ClassVar[str] = "config_change"
    day: date
    service: str
    latency_factor: float = 1.8

    def __post_init__(self) -> None:
        _require_plain_date(self.day, "ConfigChange.day")
        if not (math.isfinite(self.latency_factor) and self.latency_factor > 0):
            raise ValueError(f"ConfigChange.latency_factor must be > 0, got {self.latency_factor}")

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "day": self.day.isoformat(),
            "service": self.service,
            "latency_factor": float(self.latency_factor),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ConfigChange:
        return cls(
            **_kwargs_from_dict(
                data,
                cls.kind,
                {"day": date.fromisoformat, "service": str, "latency_factor": float},
            )
        )


@dataclass(frozen=True)
class NullInjection:
    """An upstream bug on one day: ``fraction`` of the service's rows lose ``columns`` (NaN).

    The same rows lose all listed columns, as when a collector drops part of a payload. Not labeled:
    a quality check should catch it.
    """

    kind: ClassVar[str] = "null_injection"
    day: date
    service: str
    columns: tuple[str, ...] = ("latency_p99_ms", "cpu_pct")
    fraction: float = 0.3

    def __post_init__(self) -> None:
        _require_plain_date(self.day, "NullInjection.day")
        if not self.columns or len(set(self.columns)) != len(self.columns):
            raise ValueError(
                f"NullInjection.columns must be distinct and non-empty: {self.columns}"
            )
        for column in self.columns:
            _require_generated_metric(column, "NullInjection.columns")
        if not 0.0 <= self.fraction <= 1.0:
            raise ValueError(f"NullInjection.fraction must be in [0, 1], got {self.fraction}")

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "day": self.day.isoformat(),
            "service": self.service,
            "columns": list(self.columns),
            "fraction": float(self.fraction),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> NullInjection:
        return cls(
            **_kwargs_from_dict(
                data,
                cls.kind,
                {
                    "day": date.fromisoformat,
                    "service": str,
                    "columns": lambda columns: tuple(str(column) for column in columns),
                    "fraction": float,
                },
            )
        )


@dataclass(frozen=True)
class SlowDrift:
    """A leak-like trend: from ``start_day`` on, ``column`` grows by ``per_day_factor`` per day.

    Growth compounds continuously with time (``(1 + per_day_factor) ** elapsed_days`` per row), so
    there is no step at midnight for a detector to latch onto; values are clipped to the column's
    valid range (0..100 for percentages, and the ordering invariants for rates and latencies).
    """

    kind: ClassVar[str] = "slow_drift"
    start_day: date
    service: str
    column: str = "memory_pct"
    per_day_factor: float = 0.04

    def __post_init__(self) -> None:
        _require_plain_date(self.start_day, "SlowDrift.start_day")
        _require_generated_metric(self.column, "SlowDrift.column")
        if not (math.isfinite(self.per_day_factor) and self.per_day_factor > -1.0):
            raise ValueError(f"SlowDrift.per_day_factor must be > -1, got {self.per_day_factor}")

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "start_day": self.start_day.isoformat(),
            "service": self.service,
            "column": self.column,
            "per_day_factor": float(self.per_day_factor),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SlowDrift:
        return cls(
            **_kwargs_from_dict(
                data,
                cls.kind,
                {
                    "start_day": date.fromisoformat,
                    "service": str,
                    "column": str,
                    "per_day_factor": float,
                },
            )
        )


ScenarioEvent: TypeAlias = ConfigChange | NullInjection | SlowDrift
_EVENT_TYPES: Final[dict[str, type[ConfigChange] | type[NullInjection] | type[SlowDrift]]] = {
    ConfigChange.kind: ConfigChange,
    NullInjection.kind: NullInjection,
    SlowDrift.kind: SlowDrift,
}


def _event_from_dict(data: Mapping[str, Any]) -> ScenarioEvent:
    kind = data.get("kind")
    if kind not in _EVENT_TYPES:
        raise ValueError(
            f"unknown scenario event kind {kind!r}; expected one of {sorted(_EVENT_TYPES)}"
        )
    return _EVENT_TYPES[kind].from_dict(data)


@dataclass(frozen=True)
class Scenario:
    """Everything that determines generated telemetry; equal scenarios give bit-identical data.

    Events whose day falls outside ``[start, end)`` are simply inactive, so a shortened scenario
    (e.g. ``default_scenario(days=3)``) stays valid.
    """

    start: date
    days: int
    services: tuple[str, ...]
    seed: int
    step_minutes: int = 5
    incidents_per_service_day: float = 0.35
    events: tuple[ScenarioEvent, ...] = ()

    def __post_init__(self) -> None:
        _require_plain_date(self.start, "Scenario.start")
        if isinstance(self.days, bool) or not isinstance(self.days, int) or self.days < 1:
            raise ValueError(f"Scenario.days must be a positive int, got {self.days!r}")
        if not self.services or len(set(self.services)) != len(self.services):
            raise ValueError(f"Scenario.services must be distinct and non-empty: {self.services!r}")
        if not all(isinstance(service, str) and service.strip() for service in self.services):
            raise ValueError(f"Scenario.services must be non-empty strings: {self.services!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ValueError(f"Scenario.seed must be a non-negative int, got {self.seed!r}")
        if (
            isinstance(self.step_minutes, bool)
            or not isinstance(self.step_minutes, int)
            or self.step_minutes < 1
            or _MINUTES_PER_DAY % self.step_minutes
        ):
            raise ValueError(
                f"Scenario.step_minutes must be a positive divisor of 1440, got {self.step_minutes!r}"
            )
        rate = self.incidents_per_service_day
        if not (math.isfinite(rate) and rate >= 0):
            raise ValueError(f"Scenario.incidents_per_service_day must be >= 0, got {rate!r}")
        for event in self.events:
            if not isinstance(event, ConfigChange | NullInjection | SlowDrift):
                raise ValueError(f"Scenario.events: not a scenario event: {event!r}")
            if event.service not in self.services:
                raise ValueError(
                    f"Scenario.events: {event!r} names service {event.service!r}, "
                    f"which is not in {self.services!r}"
                )

    @property
    def end(self) -> date:
        """Exclusive end date, so ``[start, end)`` composes with daily partitions."""
        return self.start + timedelta(days=self.days)

    @property
    def day_list(self) -> list[date]:
        return [self.start + timedelta(days=offset) for offset in range(self.days)]

    @property
    def rows_per_service_day(self) -> int:
        return _MINUTES_PER_DAY // self.step_minutes

    def to_dict(self) -> dict[str, Any]:
        return {
            "start": self.start.isoformat(),
            "days": self.days,
            "services": list(self.services),
            "seed": self.seed,
            "step_minutes": self.step_minutes,
            "incidents_per_service_day": float(self.incidents_per_service_day),
            "events": [event.to_dict() for event in self.events],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Scenario:
        return cls(
            **_kwargs_from_dict(
                data,
                "scenario",
                {
                    "start": date.fromisoformat,
                    "days": int,
                    "services": lambda services: tuple(str(service) for service in services),
                    "seed": int,
                    "step_minutes": int,
                    "incidents_per_service_day": float,
                    "events": lambda events: tuple(_event_from_dict(event) for event in events),
                },
            )
        )


def default_scenario(
    start: date = date(2026, 1, 5), days: int = 14, seed: int = 20260105
) -> Scenario:
    """The reference scenario: six services, one of each scenario event.

    ``payments`` gets a bad config on day 9, ``search`` loses 30 % of its p99/CPU values on day 6,
    and ``catalog``'s memory starts leaking on day 3 - early enough that a drift check has a clean
    baseline before each event and enough days after it to see the effect.
    """
    return Scenario(
        start=start,
        days=days,
        services=DEFAULT_SERVICES,
        seed=seed,
        events=(
            ConfigChange(day=start + timedelta(days=9), service="payments"),
            NullInjection(day=start + timedelta(days=6), service="search"),
            SlowDrift(start_day=start + timedelta(days=3), service="catalog"),
        ),
    )


def generate(
    scenario: Scenario, start: date | None = None, end: date | None = None
) -> pd.DataFrame:
    """Telemetry for the days ``[start, end)`` (default: the whole scenario), one canonical frame.

    Built from :func:`generate_day`, so any range equals the concatenation of its daily partitions.
    """
    first_day = scenario.start if start is None else start
    stop_day = scenario.end if end is None else end
    _require_plain_date(first_day, "start")
    _require_plain_date(stop_day, "end")
    if not scenario.start <= first_day < stop_day <= scenario.end:
        raise ValueError(
            f"range [{first_day}, {stop_day}) is empty or outside the scenario "
            f"[{scenario.start}, {scenario.end})"
        )
    days = [first_day + timedelta(days=offset) for offset in range((stop_day - first_day).days)]
    frames = [generate_day(scenario, day) for day in days]
    return canonical_telemetry(pd.concat(frames, ignore_index=True))


def generate_day(scenario: Scenario, day: date) -> pd.DataFrame:
    """The canonical telemetry frame for one UTC day of the scenario.

    A pure function of ``(scenario, day)``: every service-day draws from its own random stream
    seeded by ``(scenario.seed, service index, day ordinal)``, and slow components are functions of
    absolute time, so a daily partition can be (re)materialized alone, in any order, on any machine,
    and still match the same day generated as part of a range bit for bit.
    """
    _require_plain_date(day, "day")
    if not scenario.start <= day < scenario.end:
        raise ValueError(f"day {day} is outside the scenario [{scenario.start}, {scenario.end})")
    rows = scenario.rows_per_service_day
    services_in_output_order = sorted(
        range(len(scenario.services)), key=scenario.services.__getitem__
    )
    service_days = [
        _generate_service_day(scenario, index, day) for index in services_in_output_order
    ]
    step = np.timedelta64(scenario.step_minutes * 60_000_000, "us")
    day_timestamps = np.datetime64(day.isoformat(), "us") + np.arange(rows) * step
    service_count = len(service_days)
    # Stack as (service, time) and ravel the transpose: time-major rows with services in name
    # order, which is already the canonical row order.
    frame = pd.DataFrame(
        {
            TIMESTAMP: np.repeat(day_timestamps, service_count),
            SERVICE: pd.Series(
                np.tile(
                    np.array(
                        [scenario.services[i] for i in services_in_output_order], dtype=object
                    ),
                    rows,
                ),
                dtype=object,
            ),
            **{
                metric: np.stack([metrics[metric] for metrics, _ in service_days]).T.ravel()
                for metric in GENERATED_METRICS
            },
            LABEL: np.stack([labels for _, labels in service_days]).T.ravel(),
        }
    )
    return canonical_telemetry(frame)


@dataclass(frozen=True)
class _ServiceProfile:
    """Per-service constants, drawn from ``(seed, service index)`` so they are the same every day."""

    base_request_rate: float
    base_latency_ms: float
    tail_extra: float
    error_fraction: float
    cpu_idle_pct: float
    cpu_busy_pct: float
    memory_base_pct: float
    memory_wave_phases: tuple[float, float]
    peak_hour_utc: float
    weekend_factor: float


_MEMORY_WAVES: Final = ((3.0, 1847), (2.0, 4951))
"""(amplitude in percentage points, period in minutes): incommensurate with a day, so memory wanders
slowly and continuously across midnight instead of repeating daily."""


def _service_profile(seed: int, service_index: int) -> _ServiceProfile:
    rng = np.random.default_rng(np.random.SeedSequence([seed, service_index]))
    return _ServiceProfile(
        base_request_rate=float(np.exp(rng.uniform(np.log(50.0), np.log(800.0)))),
        base_latency_ms=float(rng.uniform(8.0, 60.0)),
        tail_extra=float(rng.uniform(1.0, 2.5)),
        error_fraction=float(rng.uniform(0.001, 0.005)),
        cpu_idle_pct=float(rng.uniform(5.0, 15.0)),
        cpu_busy_pct=float(rng.uniform(45.0, 70.0)),
        memory_base_pct=float(rng.uniform(35.0, 60.0)),
        memory_wave_phases=(float(rng.uniform(0, 2 * np.pi)), float(rng.uniform(0, 2 * np.pi))),
        peak_hour_utc=float(rng.uniform(13.5, 16.5)),
        weekend_factor=float(rng.uniform(0.65, 0.75)),
    )


def _ar1(rng: np.random.Generator, rows: int, *, persistence: float, sd: float) -> FloatArray:
    """Stationary AR(1) noise: telemetry noise is autocorrelated, not white, minute to minute.

    The recursion runs on Python floats (a few hundred steps): plain IEEE multiply-adds give the
    same bits on every machine, and it avoids importing scipy.signal (over a second) for one filter.
    """
    innovations = rng.standard_normal(rows) * (sd * math.sqrt(1.0 - persistence**2))
    level = float(innovations[0]) / math.sqrt(1.0 - persistence**2)  # start in the stationary law
    path = [level]
    for innovation in innovations[1:].tolist():
        level = persistence * level + innovation
        path.append(level)
    return np.asarray(path, dtype=np.float64)


def _generate_service_day(
    scenario: Scenario, service_index: int, day: date
) -> tuple[dict[str, FloatArray], npt.NDArray[np.int8]]:
    service = scenario.services[service_index]
    profile = _service_profile(scenario.seed, service_index)
    rows = scenario.rows_per_service_day
    minute_of_day = np.arange(rows, dtype=np.int64) * scenario.step_minutes
    # Separate streams for normal behaviour, incidents and events: changing the incident rate or
    # adding an event leaves the underlying noise identical, so a with/without comparison isolates
    # exactly the effect being studied.
    base_stream, incident_stream, event_stream = np.random.SeedSequence(
        [scenario.seed, service_index, day.toordinal()]
    ).spawn(3)
    noise = np.random.default_rng(base_stream)

    hours = minute_of_day / 60.0
    daily_shape = 0.5 * (1.0 + np.cos(2.0 * np.pi * (hours - profile.peak_hour_utc) / 24.0))
    daily_load = 0.25 + 0.75 * daily_shape**1.5
    weekly_load = profile.weekend_factor if day.weekday() >= 5 else 1.0
    day_level = math.exp(noise.normal(0.0, 0.05))
    utilization = (
        daily_load * weekly_load * day_level * np.exp(_ar1(noise, rows, persistence=0.85, sd=0.08))
    )
    request_rate = profile.base_request_rate * utilization
    latency_p50 = (
        profile.base_latency_ms
        * (1.0 + 0.35 * utilization**2)
        * np.exp(_ar1(noise, rows, persistence=0.6, sd=0.06))
    )
    tail_factor = 1.2 + profile.tail_extra * np.exp(noise.normal(0.0, 0.25, rows))
    latency_p99 = latency_p50 * tail_factor
    error_rate = request_rate * profile.error_fraction * np.exp(noise.normal(0.0, 0.35, rows))
    cpu = (
        profile.cpu_idle_pct
        + (profile.cpu_busy_pct - profile.cpu_idle_pct) * utilization
        + _ar1(noise, rows, persistence=0.7, sd=2.0)
    )
    absolute_minute = day.toordinal() * _MINUTES_PER_DAY + minute_of_day
    memory = profile.memory_base_pct + 1.5 * utilization + noise.normal(0.0, 0.3, rows)
    for (amplitude, period), phase in zip(_MEMORY_WAVES, profile.memory_wave_phases, strict=True):
        # Reduce the (huge) absolute minute exactly in integers before the sine, so precision does
        # not depend on how far the date is from the epoch.
        memory = memory + amplitude * np.sin(
            2.0 * np.pi * (absolute_minute % period) / period + phase
        )

    in_incident, p50_multiplier, p99_multiplier, error_multiplier, cpu_boost = _incidents(
        np.random.default_rng(incident_stream), scenario, rows
    )
    metrics: dict[str, FloatArray] = {
        "request_rate": request_rate,
        "error_rate": error_rate * error_multiplier,
        "latency_p50_ms": latency_p50 * p50_multiplier,
        "latency_p99_ms": latency_p99 * p99_multiplier,
        "cpu_pct": cpu + cpu_boost,
        "memory_pct": memory,
    }

    for event in scenario.events:
        if event.service != service:
            continue
        if isinstance(event, ConfigChange) and day >= event.day:
            metrics["latency_p50_ms"] = metrics["latency_p50_ms"] * event.latency_factor
            metrics["latency_p99_ms"] = metrics["latency_p99_ms"] * event.latency_factor
        elif isinstance(event, SlowDrift) and day >= event.start_day:
            elapsed_days = (day - event.start_day).days + minute_of_day / _MINUTES_PER_DAY
            grown = metrics[event.column] * (1.0 + event.per_day_factor) ** elapsed_days
            metrics[event.column] = _clip_to_valid_range(event.column, grown, metrics)

    metrics = _enforce_invariants(metrics)
    metrics = {name: np.round(values, _OUTPUT_DECIMALS) for name, values in metrics.items()}

    event_rng = np.random.default_rng(event_stream)
    for event in scenario.events:
        if isinstance(event, NullInjection) and event.service == service and event.day == day:
            lost_rows = event_rng.choice(
                rows, size=math.floor(event.fraction * rows + 0.5), replace=False
            )
            for column in event.columns:
                metrics[column][lost_rows] = np.nan
    return metrics, in_incident.astype(np.int8)


def _incidents(
    rng: np.random.Generator, scenario: Scenario, rows: int
) -> tuple[BoolArray, FloatArray, FloatArray, FloatArray, FloatArray]:
    """Labeled incidents: Poisson count per service-day, each 15-90 minutes inside the day.

    Incidents never cross midnight, so a day stays independent of its neighbours. Overlapping
    incidents take the stronger effect instead of compounding into absurd values.
    """
    step = scenario.step_minutes
    shortest = max(1, math.ceil(_INCIDENT_MINUTES[0] / step))
    longest = min(rows, max(shortest, _INCIDENT_MINUTES[1] // step))
    in_incident = np.zeros(rows, dtype=bool)
    p50_multiplier = np.ones(rows)
    p99_multiplier = np.ones(rows)
    error_multiplier = np.ones(rows)
    cpu_boost = np.zeros(rows)
    for _ in range(int(rng.poisson(scenario.incidents_per_service_day))):
        length = min(int(rng.integers(shortest, longest + 1)), rows)
        first = int(rng.integers(0, rows - length + 1))
        window = slice(first, first + length)
        p50_factor = float(rng.uniform(2.0, 4.0))
        # p99 rises at least as much as p50, so p99 >= p50 holds during incidents too.
        p99_factor = float(rng.uniform(max(3.0, p50_factor), 8.0))
        in_incident[window] = True
        p50_multiplier[window] = np.maximum(p50_multiplier[window], p50_factor)
        p99_multiplier[window] = np.maximum(p99_multiplier[window], p99_factor)
        error_multiplier[window] = np.maximum(error_multiplier[window], rng.uniform(10.0, 40.0))
        cpu_boost[window] = np.maximum(cpu_boost[window], rng.uniform(20.0, 40.0))
    return in_incident, p50_multiplier, p99_multiplier, error_multiplier, cpu_boost


def _clip_to_valid_range(
    column: str, values: FloatArray, metrics: Mapping[str, FloatArray]
) -> FloatArray:
    """Keep a drifted column inside what its meaning allows, given the other metrics."""
    if column in _PERCENT_COLUMNS:
        return np.clip(values, 0.0, 100.0)
    if column == "request_rate":
        return np.maximum(values, metrics["error_rate"])
    if column == "error_rate":
        return np.clip(values, 0.0, metrics["request_rate"])
    if column == "latency_p50_ms":
        return np.clip(values, _MIN_LATENCY_MS, metrics["latency_p99_ms"])
    return np.maximum(values, metrics["latency_p50_ms"])


def _enforce_invariants(metrics: Mapping[str, FloatArray]) -> dict[str, FloatArray]:
    request_rate = np.maximum(metrics["request_rate"], 0.0)
    latency_p50 = np.maximum(metrics["latency_p50_ms"], _MIN_LATENCY_MS)
    return {
        "request_rate": request_rate,
        "error_rate": np.clip(metrics["error_rate"], 0.0, request_rate),
        "latency_p50_ms": latency_p50,
        "latency_p99_ms": np.maximum(metrics["latency_p99_ms"], latency_p50),
        "cpu_pct": np.clip(metrics["cpu_pct"], 0.0, 100.0),
        "memory_pct": np.clip(metrics["memory_pct"], 0.0, 100.0),
    }


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
