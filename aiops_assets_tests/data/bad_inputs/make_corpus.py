"""Regenerate the bad-input corpus: ``python aiops_assets_tests/data/bad_inputs/make_corpus.py``.

Every case is one small file for the daily partition 2026-01-05 in the directory-source format
(``timestamp, service``, the six metrics, ``label``), derived from one good day of two services
(``api``, ``db``) at a 5-minute step, plus ``MANIFEST.yaml`` describing what each file exercises
and the outcome the pipeline must produce. The script is deterministic (Python's seeded
``random.Random`` and fixed formatting), so running it again rewrites the same bytes; the tests read
the committed files and never run it.

Expected outcomes:

- ``error``: the ``telemetry_snapshot`` step fails with a ``dagster.Failure`` whose message contains
  every fragment (``{path}`` stands for the case file's path, ``{source}`` for the source folder);
- ``quarantine``: the ``telemetry_default_error`` check fails and a quarantine record whose message
  contains every fragment is filed; the partition keeps its good snapshot;
- ``accepted``: the snapshot is materialized. ``snapshot: same_as_good`` means its bytes (and hence
  its SHA-256) equal the baseline's; ``snapshot: new`` means a different, valid snapshot.
"""

from __future__ import annotations

import codecs
import copy
import io
import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import yaml

HERE = Path(__file__).parent
MANIFEST = "MANIFEST.yaml"
SEED = 20260105
DAY = datetime(2026, 1, 5)
SERVICES = ("api", "db")
STEP = timedelta(minutes=5)
TIMES = 288
HEADER = [
    "timestamp",
    "service",
    "request_rate",
    "error_rate",
    "latency_p50_ms",
    "latency_p99_ms",
    "cpu_pct",
    "memory_pct",
    "label",
]
NO_TELEMETRY = "has no telemetry in [2026-01-05 00:00:00, 2026-01-06 00:00:00)"
MALFORMED = "telemetry from directory({source}) is malformed"

Rows = list[list[str]]


def col(name: str) -> int:
    return HEADER.index(name)


def row_of(time_index: int, service: str) -> int:
    """0-based data row of (time, service): rows are time-major, services in name order."""
    return time_index * len(SERVICES) + SERVICES.index(service)


def line_of(time_index: int, service: str) -> int:
    """1-based physical line of a data row in a CSV written from the good rows (header = 1)."""
    return row_of(time_index, service) + 2


def stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%MZ")


def good_rows() -> Rows:
    """One plausible day: a daily load cycle, noise, and one labeled incident on ``api``."""
    rng = random.Random(SEED)
    base = {
        "api": {"rate": 240.0, "latency": 22.0, "memory": 52.0},
        "db": {"rate": 90.0, "latency": 6.0, "memory": 61.0},
    }
    incident = range(150, 156)
    rows: Rows = []
    for index in range(TIMES):
        hour = index * STEP.total_seconds() / 3600
        load = 0.35 + 0.65 * (0.5 * (1 + math.cos(2 * math.pi * (hour - 15) / 24))) ** 1.5
        for service in SERVICES:
            profile = base[service]
            in_incident = service == "api" and index in incident
            rate = profile["rate"] * load * math.exp(rng.gauss(0, 0.05))
            errors = rate * 0.002 * math.exp(rng.gauss(0, 0.3)) * (20 if in_incident else 1)
            p50 = profile["latency"] * (1 + 0.3 * load) * math.exp(rng.gauss(0, 0.05))
            p99 = p50 * (2.2 + 0.6 * rng.random())
            cpu = 8 + 50 * load + rng.gauss(0, 1.5)
            memory = (
                profile["memory"] + 3 * math.sin(2 * math.pi * index / TIMES) + rng.gauss(0, 0.3)
            )
            if in_incident:
                p50, p99, cpu = p50 * 3, p99 * 4, cpu + 25
            rows.append(
                [
                    stamp(DAY + index * STEP),
                    service,
                    f"{rate:.1f}",
                    f"{errors:.2f}",
                    f"{p50:.1f}",
                    f"{p99:.1f}",
                    f"{cpu:.1f}",
                    f"{memory:.1f}",
                    "1" if in_incident else "0",
                ]
            )
    return rows


GOOD = good_rows()


def rows() -> Rows:
    return copy.deepcopy(GOOD)


def csv_bytes(body: Rows, header: list[str] = HEADER, newline: str = "\n") -> bytes:
    lines = [",".join(header), *(",".join(cells) for cells in body)]
    return (newline.join(lines) + newline).encode("utf-8")


def parquet_bytes(table: pa.Table) -> bytes:
    buffer = io.BytesIO()
    pq.write_table(table, buffer, compression="zstd")
    return buffer.getvalue()


def parse_stamp(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


def good_table(body: Rows | None = None) -> pa.Table:
    body = GOOD if body is None else body
    columns: dict[str, Any] = {
        "timestamp": pa.array(
            [parse_stamp(cells[0]) for cells in body], type=pa.timestamp("us", tz="UTC")
        ),
        "service": pa.array([cells[1] for cells in body], type=pa.string()),
    }
    for name in HEADER[2:-1]:
        columns[name] = pa.array([float(cells[col(name)]) for cells in body], type=pa.float64())
    columns["label"] = pa.array([int(cells[-1]) for cells in body], type=pa.int8())
    return pa.table(columns)


def replaced(table: pa.Table, name: str, values: pa.Array) -> pa.Table:
    return table.set_column(table.schema.get_field_index(name), name, values)


@dataclass(frozen=True)
class Case:
    file: str
    exercises: str
    outcome: str
    content: Callable[[], bytes]
    fragments: list[str] = field(default_factory=list)
    snapshot: str | None = None

    def manifest_entry(self) -> dict[str, Any]:
        entry: dict[str, Any] = {
            "file": self.file,
            "exercises": self.exercises,
            "outcome": self.outcome,
        }
        if self.snapshot:
            entry["snapshot"] = self.snapshot
        entry["fragments"] = list(self.fragments)
        return entry


def set_cells(changes: dict[tuple[int, str], dict[str, str]]) -> Rows:
    body = rows()
    for (time_index, service), cells in changes.items():
        for name, value in cells.items():
            body[row_of(time_index, service)][col(name)] = value
    return body


def with_column(name: str, values: Callable[[int, list[str]], str], after: str) -> bytes:
    position = col(after) + 1
    header = [*HEADER[:position], name, *HEADER[position:]]
    body = [
        [*cells[:position], values(index, cells), *cells[position:]]
        for index, cells in enumerate(GOOD)
    ]
    return csv_bytes(body, header)


def without_column(name: str) -> bytes:
    position = col(name)
    header = [*HEADER[:position], *HEADER[position + 1 :]]
    return csv_bytes([[*c[:position], *c[position + 1 :]] for c in GOOD], header)


def blank_where(name: str, keep: Callable[[int], bool]) -> bytes:
    body = rows()
    for index, cells in enumerate(body):
        if not keep(index):
            cells[col(name)] = ""
    return csv_bytes(body)


# ------------------------------------------------------------------------------------------
# Cases whose builders need a few lines of their own
# ------------------------------------------------------------------------------------------


def duplicate_row() -> bytes:
    body = rows()
    at = row_of(50, "db")
    body.insert(at + 1, list(body[at]))
    return csv_bytes(body)


def swapped_rows() -> bytes:
    body = rows()
    first, second = row_of(100, "api"), row_of(101, "api")
    body[first], body[second] = body[second], body[first]
    return csv_bytes(body)


def newest_first() -> bytes:
    return csv_bytes(list(reversed(rows())))


MIXED_TZ_TIMES = range(96, 102)


def mixed_timezones() -> bytes:
    body = rows()
    for index in MIXED_TZ_TIMES:
        for service in SERVICES:
            body[row_of(index, service)][0] = (DAY + index * STEP).strftime("%Y-%m-%dT%H:%M")
    return csv_bytes(body)


def offsets_differ() -> bytes:
    body = rows()
    paris = timezone(timedelta(hours=1))
    for index in range(TIMES // 2):
        for service in SERVICES:
            moment = (DAY + index * STEP).replace(tzinfo=UTC).astimezone(paris)
            body[row_of(index, service)][0] = moment.isoformat(timespec="minutes")
    return csv_bytes(body)


def shifted_days(days: int) -> Rows:
    body = rows()
    for cells in body:
        cells[0] = stamp(parse_stamp(cells[0]).replace(tzinfo=None) + timedelta(days=days))
    return body


def mixed_days() -> bytes:
    """The good day plus the last hour of the day before and the first hour of the day after."""
    before = [cells for cells in shifted_days(-1) if cells[0] >= "2026-01-04T23:00Z"]
    after = [cells for cells in shifted_days(1) if cells[0] < "2026-01-06T01:00Z"]
    return csv_bytes([*before, *rows(), *after])


def epoch_seconds() -> bytes:
    body = rows()
    for cells in body:
        cells[0] = str(int(parse_stamp(cells[0]).timestamp()))
    return csv_bytes(body)


LATIN1_ROW = row_of(99, "db")


def latin1_bytes() -> tuple[bytes, int]:
    text = csv_bytes(rows())
    lines = text.split(b"\n")
    line_index = LATIN1_ROW + 1
    lines[line_index] = lines[line_index].replace(b",db,", b",db\xb0,", 1)
    offset = sum(len(line) + 1 for line in lines[:line_index]) + lines[line_index].index(b"\xb0")
    return b"\n".join(lines), offset


def utf16() -> bytes:
    return codecs.BOM_UTF16_LE + csv_bytes(rows()[:24]).decode("utf-8").encode("utf-16-le")


def crlf_bom_blank_lines() -> bytes:
    text = csv_bytes(rows(), newline="\r\n")
    lines = text.split(b"\r\n")
    lines.insert(100, b"")
    lines.insert(300, b"")
    return codecs.BOM_UTF8 + b"\r\n".join(lines) + b"\r\n"


TRUNCATED_AT = 13  # bytes cut off the end: the last line loses its last fields


def truncated_csv() -> tuple[bytes, int]:
    text = csv_bytes(rows())[:-TRUNCATED_AT]
    fields = len(text.rsplit(b"\n", 1)[1].split(b","))
    return text, fields


def too_many_fields() -> bytes:
    body = rows()
    body[row_of(70, "api")].append("1")
    return csv_bytes(body)


def trailing_comma() -> bytes:
    return csv_bytes([[*cells, ""] for cells in rows()], [*HEADER, ""])


def nul_bytes() -> bytes:
    body = set_cells({(45, "db"): {"memory_pct": "5\x001.2"}})
    return csv_bytes(body)


def parquet_epoch_timestamp() -> bytes:
    table = good_table()
    seconds = pa.array([int(parse_stamp(c[0]).timestamp()) for c in GOOD], type=pa.int64())
    return parquet_bytes(replaced(table, "timestamp", seconds))


PARQUET_TEXT_ROW = row_of(33, "api")


def parquet_text_in_metric() -> bytes:
    values = [cells[col("cpu_pct")] for cells in GOOD]
    values[PARQUET_TEXT_ROW] = "high"
    return parquet_bytes(replaced(good_table(), "cpu_pct", pa.array(values, type=pa.string())))


def parquet_metric_as_timestamp() -> bytes:
    values = pa.array([parse_stamp(c[0]) for c in GOOD], type=pa.timestamp("ms", tz="UTC"))
    return parquet_bytes(replaced(good_table(), "memory_pct", values))


PARQUET_NULL_ROW = row_of(7, "db")


def parquet_null_timestamp() -> bytes:
    stamps: list[datetime | None] = [parse_stamp(c[0]) for c in GOOD]
    stamps[PARQUET_NULL_ROW] = None
    values = pa.array(stamps, type=pa.timestamp("us", tz="UTC"))
    return parquet_bytes(replaced(good_table(), "timestamp", values))


PARQUET_SWAP = (row_of(20, "db"), row_of(21, "db"))


def parquet_out_of_order() -> bytes:
    body = rows()
    first, second = PARQUET_SWAP
    body[first], body[second] = body[second], body[first]
    return parquet_bytes(good_table(body))


PARQUET_LABEL_ROW = row_of(152, "api")


def parquet_label_fraction() -> bytes:
    labels = [float(cells[-1]) for cells in GOOD]
    labels[PARQUET_LABEL_ROW] = 0.5
    return parquet_bytes(replaced(good_table(), "label", pa.array(labels, type=pa.float64())))


def truncated_parquet() -> bytes:
    data = parquet_bytes(good_table())
    return data[: len(data) // 2]


def header_only_parquet() -> bytes:
    return parquet_bytes(good_table().slice(0, 0))


def p99_below_p50() -> bytes:
    body = rows()
    for index in range(200, 210):
        cells = body[row_of(index, "api")]
        p50, p99 = col("latency_p50_ms"), col("latency_p99_ms")
        cells[p50], cells[p99] = cells[p99], cells[p50]
    return csv_bytes(body)


def errors_exceed_requests() -> bytes:
    body = rows()
    cells = body[row_of(30, "db")]
    cells[col("error_rate")] = f"{2 * float(cells[col('request_rate')]):.2f}"
    return csv_bytes(body)


def memory_in_megabytes() -> bytes:
    body = rows()
    for index in range(TIMES):
        cells = body[row_of(index, "db")]
        cells[col("memory_pct")] = f"{float(cells[col('memory_pct')]) * 163.84:.1f}"
    return csv_bytes(body)


def line_at(time_index: int, service: str) -> str:
    return f"line {line_of(time_index, service)}"


def cell(time_index: int, service: str, name: str) -> str:
    return GOOD[row_of(time_index, service)][col(name)]


def ts(time_index: int) -> str:
    return str(DAY + time_index * STEP)


def build_cases() -> list[Case]:
    latin1, latin1_offset = latin1_bytes()
    truncated, truncated_fields = truncated_csv()
    path_malformed = [MALFORMED, "{path}"]
    cases = [
        # -- the baseline and inputs that must be accepted as the same day ---------------------
        Case(
            "good.csv",
            "the baseline: 2 services x 288 rows of 2026-01-05 that pass the default suite",
            "accepted",
            lambda: csv_bytes(rows()),
            snapshot="same_as_good",
        ),
        Case(
            "good.parquet",
            "the same day as a Parquet file (UTC timestamps, int8 labels): same snapshot bytes",
            "accepted",
            lambda: parquet_bytes(good_table()),
            snapshot="same_as_good",
        ),
        Case(
            "mixed_days.csv",
            "the good day plus the hour before and the hour after it: rows of other days belong "
            "to other partitions, so the 2026-01-05 snapshot is exactly the good one",
            "accepted",
            mixed_days,
            snapshot="same_as_good",
        ),
        Case(
            "offsets_differ.csv",
            "the first half of the day written with a +01:00 offset, the rest with Z: every value "
            "names its instant, so different offsets are fine and the snapshot is the good one",
            "accepted",
            offsets_differ,
            snapshot="same_as_good",
        ),
        Case(
            "crlf_bom_blank_lines.csv",
            "a UTF-8 byte-order mark, CRLF line ends and two blank lines: the same day",
            "accepted",
            crlf_bom_blank_lines,
            snapshot="same_as_good",
        ),
        Case(
            "few_nans.csv",
            "3 of 576 request_rate values missing (0.5%), within the suite's 1% allowance: a new, "
            "valid snapshot (NaN means missing)",
            "accepted",
            lambda: blank_where("request_rate", lambda index: index % 200 != 7),
            snapshot="new",
        ),
        # -- files that cannot be read ------------------------------------------------------------
        Case(
            "zero_bytes.csv",
            "0-byte CSV file",
            "error",
            lambda: b"",
            [*path_malformed, "cannot read CSV: empty file (0 bytes)"],
        ),
        Case(
            "zero_bytes.parquet",
            "0-byte Parquet file",
            "error",
            lambda: b"",
            [*path_malformed, "cannot read Parquet", "0 bytes"],
        ),
        Case(
            "blank_lines.csv",
            "empty file: only blank lines, no header",
            "error",
            lambda: b"\n\n\n",
            [*path_malformed, "empty file (only blank lines)"],
        ),
        Case(
            "header_only.csv",
            "a header and no rows: a valid empty table, so the day has no telemetry (the snapshot "
            "fails with the 'no telemetry' message naming the source folder)",
            "error",
            lambda: csv_bytes([]),
            ["directory({source})", NO_TELEMETRY],
        ),
        Case(
            "header_only.parquet",
            "a Parquet file with the schema and no rows: no telemetry for the day",
            "error",
            header_only_parquet,
            ["directory({source})", NO_TELEMETRY],
        ),
        Case(
            "truncated.parquet",
            "a Parquet file cut in half (no footer)",
            "error",
            truncated_parquet,
            [*path_malformed, "cannot read Parquet"],
        ),
        Case(
            "truncated.csv",
            f"a CSV cut {TRUNCATED_AT} bytes before its end: the last line lacks fields",
            "error",
            lambda: truncated,
            [
                *path_malformed,
                "fewer fields than the header's 9",
                f"{line_at(TIMES - 1, 'db')} ({truncated_fields} field(s))",
            ],
        ),
        Case(
            "latin1.csv",
            "non-UTF-8 CSV: a Latin-1 degree sign in a service name",
            "error",
            lambda: latin1,
            [
                *path_malformed,
                "not UTF-8",
                "byte(s) b0",
                f"byte offset {latin1_offset}",
                f"(line {LATIN1_ROW + 2})",
            ],
        ),
        Case(
            "utf16.csv",
            "a UTF-16 CSV (as some spreadsheet exports write it)",
            "error",
            utf16,
            [*path_malformed, "UTF-16 byte-order mark", "byte offset 0 (line 1)"],
        ),
        Case(
            "too_many_fields.csv",
            "one line with an extra field",
            "error",
            too_many_fields,
            [
                *path_malformed,
                "more fields than the header's 9",
                f"on {line_at(70, 'api')} (10 field(s))",
            ],
        ),
        Case(
            "unclosed_quote.csv",
            "an opening double quote that is never closed swallows the rest of the file",
            "error",
            lambda: csv_bytes(set_cells({(40, "api"): {"service": '"api'}})),
            [*path_malformed, f"the double quote opened on {line_at(40, 'api')} is never closed"],
        ),
        Case(
            "trailing_comma.csv",
            "a trailing comma on every line (spreadsheet export): a column without a name",
            "error",
            trailing_comma,
            [*path_malformed, "position(s) [10]", "empty name"],
        ),
        Case(
            "repeated_column.csv",
            "two columns named cpu_pct (memory_pct mislabeled)",
            "error",
            lambda: csv_bytes(
                rows(), [*HEADER[: col("memory_pct")], "cpu_pct", *HEADER[col("label") :]]
            ),
            [*path_malformed, "repeated column name(s) ['cpu_pct']"],
        ),
        # -- timestamps ---------------------------------------------------------------------------
        Case(
            "missing_timestamp_column.csv",
            "the time column is called 'time'",
            "error",
            lambda: csv_bytes(rows(), ["time", *HEADER[1:]]),
            [*path_malformed, "missing column 'timestamp'"],
        ),
        Case(
            "epoch_seconds.csv",
            "wrong dtype: timestamps as Unix epoch seconds (unit and zone are a guess)",
            "error",
            epoch_seconds,
            [
                *path_malformed,
                "column 'timestamp'",
                "missing or unparseable timestamp in 576 row(s)",
                "line 2: '1767571200'",
                "(and 571 more)",
            ],
        ),
        Case(
            "unparseable_timestamp.csv",
            "an hour 25 and a day-first date",
            "error",
            lambda: csv_bytes(
                set_cells(
                    {
                        (30, "api"): {"timestamp": "2026-01-05T25:00Z"},
                        (31, "db"): {"timestamp": "05/01/2026 02:35"},
                    }
                )
            ),
            [
                *path_malformed,
                "column 'timestamp'",
                "missing or unparseable timestamp in 2 row(s)",
                f"{line_at(30, 'api')}: '2026-01-05T25:00Z'",
                f"{line_at(31, 'db')}: '05/01/2026 02:35'",
            ],
        ),
        Case(
            "empty_timestamp.csv",
            "one row without a timestamp",
            "error",
            lambda: csv_bytes(set_cells({(12, "db"): {"timestamp": ""}})),
            [*path_malformed, "column 'timestamp'", f"{line_at(12, 'db')}: ''"],
        ),
        Case(
            "duplicate_timestamps.csv",
            "a row repeated on the next line (duplicate service and timestamp)",
            "error",
            duplicate_row,
            [
                MALFORMED,
                "{path} " + line_at(50, "db") + " and {path} line " + str(line_of(50, "db") + 1),
                "columns 'service', 'timestamp': duplicate (service, timestamp) in 1 case(s)",
                f"('db', {ts(50)})",
            ],
        ),
        Case(
            "out_of_order.csv",
            "two rows of one service swapped: time goes backwards within the file",
            "error",
            swapped_rows,
            [
                *path_malformed,
                "column 'timestamp': timestamps out of order within a service in 1 place(s)",
                f"service 'api': {line_at(101, 'api')} ({ts(100)}) comes after {line_at(100, 'api')} "
                f"({ts(101)})",
            ],
        ),
        Case(
            "newest_first.csv",
            "the whole file in reverse time order (newest first)",
            "error",
            newest_first,
            [
                *path_malformed,
                "out of order within a service in 574 place(s)",
                f"service 'db': line 4 ({ts(TIMES - 2)}) comes after line 2 ({ts(TIMES - 1)})",
                "(and 569 more)",
            ],
        ),
        Case(
            "mixed_timezones.csv",
            "12 rows written without a UTC offset among rows with Z: local or UTC is ambiguous",
            "error",
            mixed_timezones,
            [
                *path_malformed,
                "column 'timestamp': mixed time zones",
                "564 timestamp(s) have a UTC offset (first: line 2: '2026-01-05T00:00Z') but these "
                "do not",
                "in 12 row(s)",
                f"{line_at(96, 'api')}: '2026-01-05T08:00'",
            ],
        ),
        Case(
            "all_next_day.csv",
            "rows outside the partition: the whole file is 2026-01-06",
            "error",
            lambda: csv_bytes(shifted_days(1)),
            ["directory({source})", NO_TELEMETRY],
        ),
        # -- services and labels ------------------------------------------------------------------
        Case(
            "empty_service.csv",
            "one row with an empty service name",
            "error",
            lambda: csv_bytes(set_cells({(20, "api"): {"service": ""}})),
            [
                *path_malformed,
                "column 'service': missing or empty service name",
                line_at(20, "api"),
            ],
        ),
        Case(
            "label_2.csv",
            "label 2 (labels are 0 or 1); refused by the loader's frame contract before the suite",
            "error",
            lambda: csv_bytes(set_cells({(150, "api"): {"label": "2"}})),
            [*path_malformed, "column 'label': label is not 0 or 1", f"{line_at(150, 'api')}: '2'"],
        ),
        Case(
            "label_missing.csv",
            "one empty label (unknown is not normal)",
            "error",
            lambda: csv_bytes(set_cells({(10, "db"): {"label": ""}})),
            [*path_malformed, "column 'label'", f"{line_at(10, 'db')}: ''"],
        ),
        # -- metric values the loader refuses -----------------------------------------------------
        Case(
            "text_in_numeric.csv",
            "text in a numeric column: a letter O for a zero, and a percent sign",
            "error",
            lambda: csv_bytes(
                set_cells({(58, "api"): {"cpu_pct": "4O.2"}, (59, "db"): {"cpu_pct": "12%"}})
            ),
            [
                *path_malformed,
                "column 'cpu_pct': value is not a finite number in 2 row(s)",
                f"{line_at(58, 'api')}: '4O.2'",
                f"{line_at(59, 'db')}: '12%'",
            ],
        ),
        Case(
            "extra_text_column.csv",
            "an extra text column (region): every non-reserved column is a metric",
            "error",
            lambda: with_column("region", lambda index, cells: "eu", after="service"),
            [*path_malformed, "column 'region': not a numeric column", "line 2: 'eu'"],
        ),
        Case(
            "inf.csv",
            "inf and -Infinity in a latency column",
            "error",
            lambda: csv_bytes(
                set_cells(
                    {
                        (80, "api"): {"latency_p99_ms": "inf"},
                        (81, "api"): {"latency_p99_ms": "-Infinity"},
                    }
                )
            ),
            [
                *path_malformed,
                "column 'latency_p99_ms': value is not a finite number in 2 row(s)",
                f"{line_at(80, 'api')}: 'inf'",
                f"{line_at(81, 'api')}: '-Infinity'",
            ],
        ),
        Case(
            "overflow.csv",
            "absurd magnitude beyond float64 (1e400 overflows to infinity)",
            "error",
            lambda: csv_bytes(set_cells({(90, "db"): {"request_rate": "1e400"}})),
            [*path_malformed, "column 'request_rate'", f"{line_at(90, 'db')}: '1e400'"],
        ),
        Case(
            "nul_bytes.csv",
            "a NUL byte inside a number",
            "error",
            nul_bytes,
            [*path_malformed, "column 'memory_pct'", f"{line_at(45, 'db')}: '5\\x001.2'"],
        ),
        # -- Parquet with the wrong types or values -----------------------------------------------
        Case(
            "parquet_epoch_timestamp.parquet",
            "wrong dtype: int64 epoch seconds in the Parquet timestamp column",
            "error",
            parquet_epoch_timestamp,
            [
                *path_malformed,
                "column 'timestamp': expected ISO 8601 text or datetimes, got dtype int64",
                "row 0: 1767571200",
            ],
        ),
        Case(
            "parquet_text_in_metric.parquet",
            "wrong dtype: cpu_pct stored as text, one value not a number",
            "error",
            parquet_text_in_metric,
            [*path_malformed, "column 'cpu_pct'", f"row {PARQUET_TEXT_ROW}: 'high'"],
        ),
        Case(
            "parquet_metric_as_timestamp.parquet",
            "wrong dtype: memory_pct stored as a timestamp column",
            "error",
            parquet_metric_as_timestamp,
            [*path_malformed, "column 'memory_pct': expected numbers, got dtype datetime64"],
        ),
        Case(
            "parquet_null_timestamp.parquet",
            "a null in the Parquet timestamp column",
            "error",
            parquet_null_timestamp,
            [
                *path_malformed,
                "column 'timestamp': missing or unparseable timestamp in 1 row(s)",
                f"row {PARQUET_NULL_ROW}",
            ],
        ),
        Case(
            "parquet_out_of_order.parquet",
            "two rows of one service swapped in a Parquet file (rows named by 0-based index)",
            "error",
            parquet_out_of_order,
            [
                *path_malformed,
                "out of order within a service in 1 place(s)",
                f"service 'db': row {PARQUET_SWAP[1]} ({ts(20)}) comes after row {PARQUET_SWAP[0]}",
            ],
        ),
        Case(
            "parquet_label_fraction.parquet",
            "a label of 0.5 in a float label column",
            "error",
            parquet_label_fraction,
            [
                *path_malformed,
                "column 'label': label is not 0 or 1",
                f"row {PARQUET_LABEL_ROW}: 0.5",
            ],
        ),
        # -- well-formed files whose values fail the default suite: quarantined -------------------
        Case(
            "missing_metric_column.csv",
            "the memory_pct column is missing",
            "quarantine",
            lambda: without_column("memory_pct"),
            ["expect_table_columns_to_match_set", "memory_pct"],
        ),
        Case(
            "extra_numeric_column.csv",
            "an extra numeric column (disk_pct), i.e. a schema change",
            "quarantine",
            lambda: with_column("disk_pct", lambda index, cells: "71.5", after="memory_pct"),
            ["expect_table_columns_to_match_set", "disk_pct"],
        ),
        Case(
            "negative_request_rate.csv",
            "negative request rates",
            "quarantine",
            lambda: csv_bytes(
                set_cells(
                    {
                        (120, "api"): {"request_rate": "-5.0"},
                        (121, "api"): {"request_rate": "-0.5"},
                    }
                )
            ),
            [
                "expect_column_values_to_be_between on request_rate: 2 row(s)",
                "service=api (",
                f"timestamp={ts(120).replace(' ', 'T')}",
            ],
        ),
        Case(
            "negative_error_rate.csv",
            "a negative error rate",
            "quarantine",
            lambda: csv_bytes(set_cells({(60, "db"): {"error_rate": "-0.10"}})),
            [
                "expect_column_values_to_be_between on error_rate: 1 row(s)",
                "service=db",
                f"timestamp={ts(60).replace(' ', 'T')}",
            ],
        ),
        Case(
            "p99_below_p50.csv",
            "latency p99 below p50 in 10 rows (the columns were swapped)",
            "quarantine",
            p99_below_p50,
            [
                "expect_column_pair_values_a_to_be_greater_than_b on latency_p99_ms, "
                "latency_p50_ms: 10 row(s)",
                "service=api",
            ],
        ),
        Case(
            "errors_exceed_requests.csv",
            "more errors than requests",
            "quarantine",
            errors_exceed_requests,
            [
                "expect_column_pair_values_a_to_be_greater_than_b on request_rate, error_rate: "
                "1 row(s)",
                "service=db",
            ],
        ),
        Case(
            "cpu_over_100.csv",
            "percentages above 100",
            "quarantine",
            lambda: csv_bytes(
                set_cells({(160, "api"): {"cpu_pct": "130.0"}, (161, "api"): {"cpu_pct": "101.5"}})
            ),
            [
                "expect_column_values_to_be_between on cpu_pct: 2 row(s)",
                "service=api",
                f"timestamp={ts(160).replace(' ', 'T')}",
            ],
        ),
        Case(
            "memory_in_megabytes.csv",
            "wrong unit: db's memory_pct holds megabytes (thousands), every db row out of range",
            "quarantine",
            memory_in_megabytes,
            ["expect_column_values_to_be_between on memory_pct: 288 row(s)", "service=db (288)"],
        ),
        Case(
            "absurd_request_rate.csv",
            "absurd magnitude: 1e15 requests per second",
            "quarantine",
            lambda: csv_bytes(set_cells({(200, "db"): {"request_rate": "1e15"}})),
            ["expect_column_values_to_be_between on request_rate: 1 row(s)", "service=db"],
        ),
        Case(
            "absurd_latency.csv",
            "absurd magnitude: latencies of 3.6e9 ms (six weeks)",
            "quarantine",
            lambda: csv_bytes(
                set_cells({(210, "api"): {"latency_p50_ms": "3.6e9", "latency_p99_ms": "7.2e9"}})
            ),
            [
                "expect_column_values_to_be_between on latency_p50_ms: 1 row(s)",
                "expect_column_values_to_be_between on latency_p99_ms: 1 row(s)",
                "service=api",
            ],
        ),
        Case(
            "nan_over_threshold.csv",
            "18 of 576 request_rate values missing (3.1%), over the suite's 1% allowance",
            "quarantine",
            lambda: blank_where("request_rate", lambda index: index % 32 != 5),
            ["expect_column_values_to_not_be_null on request_rate: 18 row(s)"],
        ),
        Case(
            "mostly_nan.csv",
            "a column that is mostly NaN (60% of cpu_pct missing)",
            "quarantine",
            lambda: blank_where("cpu_pct", lambda index: index % 5 >= 3),
            ["expect_column_values_to_not_be_null on cpu_pct: 346 row(s)"],
        ),
        Case(
            "all_nan_column.csv",
            "a column that is entirely NaN (memory_pct)",
            "quarantine",
            lambda: csv_bytes([[*c[: col("memory_pct")], "NaN", c[-1]] for c in rows()]),
            ["expect_column_values_to_not_be_null on memory_pct: 576 row(s)"],
        ),
    ]
    names = [case.file for case in cases]
    if len(set(names)) != len(names):
        raise ValueError("case file names must be unique")
    return cases


def write_corpus(directory: Path = HERE) -> list[Case]:
    cases = build_cases()
    for case in cases:
        (directory / case.file).write_bytes(case.content())
    header = (
        "# The bad-input corpus: one entry per file in this folder (generated by make_corpus.py;\n"
        "# edit the script, not this file). Outcomes: error (the snapshot step fails with a\n"
        "# dagster Failure containing every fragment), quarantine (the telemetry_default_error\n"
        "# check fails and a quarantine record's message contains every fragment), accepted (a\n"
        "# snapshot is materialized; same_as_good = byte-identical to good.csv's). In fragments,\n"
        "# {path} is the case file's path and {source} the source folder at test time.\n"
    )
    document = {
        "partition": DAY.date().isoformat(),
        "baseline": "good.csv",
        "cases": [case.manifest_entry() for case in cases],
    }
    text = yaml.safe_dump(document, sort_keys=False, allow_unicode=False, width=100)
    (directory / MANIFEST).write_text(header + text, encoding="utf-8")
    return cases


if __name__ == "__main__":
    written = write_corpus()
    print(f"wrote {len(written)} cases and {MANIFEST} to {HERE}")
