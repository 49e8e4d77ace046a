"""The file source: a directory of CSV and Parquet exports, read as recorded and never repaired.

Every error names the file, the column and the first offending rows (CSV: 1-based physical line
numbers, header = line 1; Parquet: 0-based row positions) with their raw values. Within one file
each service's rows must already be in time order (a file whose rows went backwards was spliced or
concatenated wrongly, and sorting it would hide that), and a timestamp column must not mix values
with and without a UTC offset (a naive value next to aware ones is a local time that cannot be
placed).

Rows are also held to rules about where they sit in time and where the file lives: when a window
is asked for, a timestamp later than now + 1 day is refused (a clock or export bug whose row would otherwise silently fall
outside every partition; rows of other days are the normal many-days layout and simply belong to
other partitions); a window whose services report fewer than half the rows their own median step
implies is refused (a partial or truncated export); a window that repeats the previous window's
values exactly with shifted timestamps is refused (a replayed export); and a link that leads out
of the source folder is refused (a source folder holds its own data).
"""

from __future__ import annotations

import codecs
import csv
import io
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Final, TypeAlias

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from aiops_assets.core.telemetry.contract import (
    LABEL,
    MAX_REPORTED_ROWS,
    SERVICE,
    TIMESTAMP,
    BoolArray,
    IntArray,
    RowDescriber,
    TelemetryFormatError,
    _bad_rows_error,
    _finalize,
    _service_name,
    _typed_frame,
    beyond_shown,
    metric_columns,
    naive_utc,
    replayed_services,
)

__all__ = ["load_directory"]

_LINE_BREAK: Final = re.compile(r"\r\n|\r|\n")
_CsvLayout: TypeAlias = tuple[list[int], IntArray]
"""Per data record of a CSV: the physical line it starts on, and its number of fields."""
_FUTURE_TOLERANCE: Final = timedelta(days=1)
"""How far past the wall clock a timestamp may be: clock skew between hosts, never a day."""
_STRAY_GAP: Final = timedelta(days=365)
"""A row further than this from every other row of its service is a mistyped date (an epoch-zero
1970, a wrong century), not history: real archives have outages of days or weeks, not years."""


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
    its rows fall outside today's window. Rows of other days are expected (one folder may hold
    many days, each partition loading its own window), but when a bound is given a timestamp
    later than now + 1 day is refused wherever it sits (it would leave every window unseen;
    without bounds nothing is filtered, so nothing can leave). With both bounds, a row outside
    the window more than 365 days from every other row of its service is refused too (a
    mistyped date such as 1970-01-01, not history), and the window is judged as a whole: each
    service found in it needs at least half the rows its median step (over the whole folder)
    implies for the window's length, and a service whose rows repeat the previous window's
    values exactly (at least 12 rows, not all alike), shifted in time, is a replayed export.

    Links are followed only within the folder: a ``*.csv``/``*.parquet`` entry that resolves
    outside it (or to nothing) is refused.

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
            and line), an empty (0-byte or blank) CSV, an unreadable file, a directory without
            data files, a service name written two ways (``'api '`` and ``'api'``), a number
            only Python reads (``1_2_0.5``), a timestamp later than now + 1 day, a link out of
            the folder, and (with both bounds) a window with too few rows for a service or a
            window that replays the previous one.
    """
    directory = Path(path)
    if not directory.is_dir():
        raise TelemetryFormatError(f"{directory}: not a directory")
    window = _window(start, end)
    data_files = _data_files(directory)
    if not data_files:
        raise TelemetryFormatError(f"{directory}: no *.csv or *.parquet files to load")
    loaded = [_load_table_file(file, default_service=file.stem) for file in data_files]
    bounded = start is not None or end is not None
    frame = _combine_all(loaded, source=str(directory), refuse_future=bounded)
    if window is not None:
        files_of = _files_by_service(loaded)
        _raise_on_stray_rows(frame, window, files_of, source=str(directory))
        _raise_on_thin_coverage(frame, window, files_of, source=str(directory))
        _raise_on_replayed_window(frame, window, files_of, source=str(directory))
    return _filter_time(frame, start=start, end=end)


def _window(
    start: datetime | None, end: datetime | None
) -> tuple[pd.Timestamp, pd.Timestamp] | None:
    """Both bounds as naive UTC, or ``None`` when the load is not for one window."""
    if start is not None and end is not None and naive_utc(start) > naive_utc(end):
        raise ValueError(f"start {start} is after end {end}")
    if start is None or end is None:
        return None
    return naive_utc(start), naive_utc(end)


def _data_files(directory: Path) -> list[Path]:
    root = directory.resolve()
    files = []
    for entry in sorted(directory.iterdir()):
        if entry.suffix.lower() not in (".csv", ".parquet"):
            continue
        if entry.is_symlink():
            _raise_if_outside(entry, root, what="the source folder")
        if entry.is_file():
            files.append(entry)
    return files


def _raise_if_outside(path: Path, root: Path, *, what: str) -> None:
    """A data file must resolve inside ``root`` (the folder itself may be a link)."""
    target = path.resolve()
    if not target.is_relative_to(root):
        raise TelemetryFormatError(
            f"{path}: leads to {target}, outside {what} {root}: refused (a source folder holds "
            "its own data; copy the file in, or point the source at the folder it lives in)"
        )
    if not target.exists():
        raise TelemetryFormatError(f"{path}: a link to {target}, which does not exist")


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
    text = _read_csv_text(path)
    cells = _parse_csv_text(path, text)
    header = [str(name) for name in cells.iloc[0]]
    body = cells.iloc[1:]
    record_index = np.flatnonzero(~_blank_rows(body))
    kept = body.iloc[record_index].reset_index(drop=True)
    kept.columns = pd.Index(header, dtype=object)
    layout = _lazy_layout(text, expected_records=len(body))
    describe_rows = _line_describer(layout, record_index)
    # pandas pads a line with too few fields with empty strings, which would then read as missing
    # values; Python's csv module still knows how many fields each line had. A short line always
    # ends in an empty cell, so files without one skip the extra pass.
    maybe_short = len(header) > 1 and (kept.iloc[:, -1] == "").any()
    known = layout() if maybe_short else None
    if known is not None:
        _raise_on_short_rows(path, len(header), known[1][record_index], describe_rows)
    return kept, describe_rows


def _read_csv_text(path: Path) -> str:
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
    return text


def _parse_csv_text(path: Path, text: str) -> pd.DataFrame:
    """Every record as text cells, the header as row 0 and blank lines as rows of empty cells."""
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
    return cells.astype(object).fillna("")


def _blank_rows(body: pd.DataFrame) -> BoolArray:
    blank_rows = np.ones(len(body), dtype=bool)
    for column in body.columns:
        blank_rows &= (body[column].str.strip() == "").to_numpy(dtype=bool)
    return blank_rows


def _lazy_layout(text: str, *, expected_records: int) -> Callable[[], _CsvLayout | None]:
    """The layout, computed once and only when needed: an error to report, or a possibly short row."""
    layouts: list[_CsvLayout | None] = []

    def layout() -> _CsvLayout | None:
        if not layouts:
            layouts.append(_csv_layout(text, expected_records=expected_records))
        return layouts[0]

    return layout


def _line_describer(
    layout: Callable[[], _CsvLayout | None], record_index: IntArray
) -> RowDescriber:
    """Rows kept after dropping blank lines -> their physical line numbers in the file."""

    def describe_rows(positions: IntArray) -> list[str]:
        known = layout()
        return [
            f"line {known[0][record_index[position]] if known else record_index[position] + 2}"
            for position in positions
        ]

    return describe_rows


def _raise_on_short_rows(
    path: Path, header_fields: int, field_counts: IntArray, describe_rows: RowDescriber
) -> None:
    short = field_counts < header_fields
    if not short.any():
        return
    positions = np.flatnonzero(short)
    shown = positions[:MAX_REPORTED_ROWS]
    examples = ", ".join(
        f"{where} ({int(field_counts[position])} field(s))"
        for where, position in zip(describe_rows(shown), shown, strict=True)
    )
    more = beyond_shown(len(positions))
    raise TelemetryFormatError(
        f"{path}: cannot read CSV: fewer fields than the header's {header_fields} (a "
        f"truncated or hand-edited line) in {len(positions)} row(s): {examples}{more}"
    )


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


def _csv_layout(text: str, *, expected_records: int) -> _CsvLayout | None:
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
    _window(start, end)
    bounded = start is not None or end is not None
    frame = _combine_all(loaded, source=source, refuse_future=bounded)
    return _filter_time(frame, start=start, end=end)


def _combine_all(
    loaded: Sequence[_LoadedFile], *, source: str, refuse_future: bool
) -> pd.DataFrame:
    """Every file's rows as one validated telemetry frame, before any window is applied.

    ``refuse_future`` when a window is asked for: only then could a future row leave unseen.
    """
    if not any(metric_columns(item.typed) for item in loaded):
        files = ", ".join(str(item.path) for item in loaded)
        raise TelemetryFormatError(
            f"{source}: no metric columns in any file ({files}): a telemetry frame needs at least "
            f"one numeric column besides {TIMESTAMP!r}, {SERVICE!r} and {LABEL!r}"
        )

    if refuse_future:
        now = naive_utc(datetime.now(UTC))
        for item in loaded:
            _raise_on_future_rows(item, now)

    def check_recorded_order() -> None:
        for item in loaded:
            _raise_on_out_of_order(item)

    return _finalize(
        _concatenate(loaded),
        source=source,
        describe_rows=_file_and_row_describer(loaded),
        check_recorded_order=check_recorded_order,
    )


def _raise_on_future_rows(item: _LoadedFile, now: pd.Timestamp) -> None:
    """A row dated after tomorrow cannot have been recorded: refuse it, wherever its window is.

    Rows before or after the requested window are the normal many-days layout, so they leave the
    window silently; but a future row would leave every window, and so would never be seen.
    """
    limit = now + _FUTURE_TOLERANCE
    times = item.typed[TIMESTAMP]
    future = (times > limit).to_numpy(dtype=bool)
    if not future.any():
        return
    raise _bad_rows_error(
        str(item.path),
        TIMESTAMP,
        f"timestamp later than now + 1 day ({limit:%Y-%m-%d %H:%M} UTC; a clock or export bug, "
        "and such a row would fall outside every partition)",
        future,
        times.astype(str).to_numpy(dtype=object),
        item.describe_rows,
    )


def _files_by_service(loaded: Sequence[_LoadedFile]) -> dict[str, list[str]]:
    """Which files hold each (normalized) service, to point at them in window-wide errors."""
    files: dict[str, list[str]] = {}
    for item in loaded:
        for raw in pd.unique(item.typed[SERVICE].to_numpy(dtype=object)):
            files.setdefault(_service_name(str(raw)), []).append(str(item.path))
    return files


def _raise_on_stray_rows(
    frame: pd.DataFrame,
    window: tuple[pd.Timestamp, pd.Timestamp],
    files_of: dict[str, list[str]],
    *,
    source: str,
) -> None:
    """Refuse a row outside the window that is more than a year from its service's other rows.

    Rows of other days leave the window by design; a row a year away from everything else would
    leave every window, as a future row would, and is a mistyped date rather than history. A
    service with a single row has no neighbour to be far from and is left to the coverage rule.
    """
    start, end = window
    services = frame[SERVICE]
    by_service = frame[TIMESTAMP].groupby(services, sort=False)
    nearest = pd.concat([by_service.diff(), -by_service.diff(-1)], axis=1).min(axis=1)
    outside = ((frame[TIMESTAMP] < start) | (frame[TIMESTAMP] >= end)).to_numpy(dtype=bool)
    stray = outside & (nearest > _STRAY_GAP).to_numpy(dtype=bool)
    if not stray.any():
        return
    positions = np.flatnonzero(stray)
    examples = []
    for position in positions[:MAX_REPORTED_ROWS]:
        service = str(services.iloc[position])
        examples.append(
            f"service {service!r} at {frame[TIMESTAMP].iloc[position]} ({nearest.iloc[position]} "
            f"from its nearest row; {', '.join(files_of.get(service, []))})"
        )
    more = beyond_shown(len(positions))
    raise TelemetryFormatError(
        f"{source}: column {TIMESTAMP!r}: {len(positions)} row(s) more than "
        f"{_STRAY_GAP.days} days from every other row of their service (a mistyped date that "
        f"would fall outside every partition): {'; '.join(examples)}{more}"
    )


def _raise_on_thin_coverage(
    frame: pd.DataFrame,
    window: tuple[pd.Timestamp, pd.Timestamp],
    files_of: dict[str, list[str]],
    *,
    source: str,
) -> None:
    """Refuse a window where a service has fewer than half the rows its own step implies.

    The step is the service's median spacing over everything loaded (another service's when it
    has a single row), so a day of one or two rows cannot pass for a quiet day. Services absent
    from the window are not judged here: a missing service is the quality suite's finding.
    """
    start, end = window
    services = frame[SERVICE]
    steps = frame[TIMESTAMP].groupby(services, sort=False).diff()
    own_step = steps.groupby(services, sort=False).median()
    pooled_step = steps.median()
    inside = ((frame[TIMESTAMP] >= start) & (frame[TIMESTAMP] < end)).to_numpy(dtype=bool)
    found = services[inside].value_counts(sort=False)
    thin = []
    for service in sorted(found.index):
        count = int(found[service])
        step = own_step.get(service, pd.NaT)
        step = pooled_step if pd.isna(step) else step
        files = ", ".join(files_of.get(service, []))
        if pd.isna(step):
            thin.append(
                f"service {service!r}: {count} row(s) and no second row anywhere to learn its "
                f"reporting step from ({files})"
            )
        elif 2 * count < (expected := (end - start) / pd.Timedelta(step)):
            thin.append(
                f"service {service!r}: {count} row(s), expected about {expected:.0f} (one every "
                f"{step}) ({files})"
            )
    if thin:
        shown = "; ".join(thin[:MAX_REPORTED_ROWS])
        more = beyond_shown(len(thin))
        raise TelemetryFormatError(
            f"{source}: too few rows in [{start}, {end}) (fewer than half of what each "
            f"service's median reporting step implies: a partial or truncated export): "
            f"{shown}{more}"
        )


def _raise_on_replayed_window(
    frame: pd.DataFrame,
    window: tuple[pd.Timestamp, pd.Timestamp],
    files_of: dict[str, list[str]],
    *,
    source: str,
) -> None:
    """Refuse a window that repeats the previous window of the same folder, time-shifted."""
    start, end = window
    previous_start = start - (end - start)
    times = frame[TIMESTAMP]
    current = frame.loc[((times >= start) & (times < end)).to_numpy(dtype=bool)]
    previous = frame.loc[((times >= previous_start) & (times < start)).to_numpy(dtype=bool)]
    replayed = replayed_services(current, previous)
    if replayed:
        first = replayed[0]
        raise TelemetryFormatError(
            f"{source}: service {first.service!r}: the {first.rows} rows of [{start}, {end}) "
            f"repeat the values of [{previous_start}, {start}) exactly, every timestamp shifted "
            f"by {first.shift} (a replayed export, e.g. an earlier file re-sent under new dates; "
            f"{len(replayed)} service(s) replayed: {[item.service for item in replayed]}) "
            f"({', '.join(files_of.get(first.service, []))})"
        )


def _file_and_row_describer(loaded: Sequence[_LoadedFile]) -> RowDescriber:
    """Rows of the concatenated files -> the file and the words that find the row inside it."""
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

    return describe_rows


def _concatenate(loaded: Sequence[_LoadedFile]) -> pd.DataFrame:
    combined = pd.concat([item.typed for item in loaded], ignore_index=True, sort=False)
    # Files without a given metric contribute NaN; re-assert dtypes that concatenation may widen.
    for column in metric_columns(combined):
        combined[column] = combined[column].astype(np.float64)
    combined[SERVICE] = combined[SERVICE].astype(object)
    combined[LABEL] = combined[LABEL].astype(np.int8)
    return combined


def _raise_on_out_of_order(loaded: _LoadedFile) -> None:
    """Within one file, every service's rows must be in increasing time order, as recorded.

    Services may interleave (time-major exports) and different files may overlap in time; but a
    service whose timestamps go backwards within a file means lines were swapped, appended twice or
    spliced from another export, which sorting would silently paper over.
    """
    typed = loaded.typed
    later_rows, earlier_rows = _backward_steps(typed)
    if not len(later_rows):
        return
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
    more = beyond_shown(len(later_rows))
    raise TelemetryFormatError(
        f"{loaded.path}: column {TIMESTAMP!r}: timestamps out of order within a service in "
        f"{len(later_rows)} place(s) (each service's rows must be in time order, as recorded): "
        f"{'; '.join(examples)}{more}"
    )


def _backward_steps(typed: pd.DataFrame) -> tuple[IntArray, IntArray]:
    """Rows whose time is before their service's previous row, and that previous row, in file order."""
    if len(typed) < 2:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    codes, _ = pd.factorize(typed[SERVICE].to_numpy(dtype=object))
    by_service = np.argsort(codes, kind="stable")  # file order kept within each service
    times = typed[TIMESTAMP].to_numpy()[by_service]
    same_service = codes[by_service][1:] == codes[by_service][:-1]
    backwards = np.flatnonzero(same_service & (times[1:] < times[:-1]))
    later_rows, earlier_rows = by_service[backwards + 1], by_service[backwards]
    # Report in file order: the first place where a service's clock went back comes first.
    order = np.argsort(later_rows, kind="stable")
    return later_rows[order], earlier_rows[order]


def _filter_time(
    frame: pd.DataFrame, *, start: datetime | None, end: datetime | None
) -> pd.DataFrame:
    if start is None and end is None:
        return frame
    keep = np.ones(len(frame), dtype=bool)
    if start is not None:
        keep &= (frame[TIMESTAMP] >= naive_utc(start)).to_numpy()
    if end is not None:
        keep &= (frame[TIMESTAMP] < naive_utc(end)).to_numpy()
    return frame.loc[keep].reset_index(drop=True)
