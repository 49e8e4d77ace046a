"""Random corruption of a good telemetry file never gets past ingest unnoticed.

Hypothesis damages ``bad_inputs/good.csv`` (flipped or inserted bytes, truncation, deleted,
duplicated or swapped lines) and runs the snapshot's ingest path at core level: ``load_directory``
for the partition's day, ``canonical_telemetry``, then the default suite. Whatever the damage, the
outcome is one of:

- a :class:`TelemetryFormatError` naming the file (never any other exception);
- no rows for the day (the snapshot asset turns this into a "no telemetry" failure);
- a report with at least one failed ERROR expectation (the snapshot is quarantined);
- a passing report, and then the frame is exactly what an independent, strict re-parse of the
  damaged bytes gives: the damage produced other valid telemetry (a digit changed, a line
  dropped), not a half-read file.
"""

from __future__ import annotations

import csv
import io
import math
import tempfile
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from aiops_assets.core.quality import (
    DEFAULT_TELEMETRY_SUITE,
    QualitySuite,
    Severity,
    load_suite,
    validate_frame,
    window_parameters,
)
from aiops_assets.core.telemetry import (
    GENERATED_METRICS,
    LABEL,
    SERVICE,
    TIMESTAMP,
    TelemetryFormatError,
    canonical_telemetry,
    load_directory,
)
from aiops_assets_tests.paths import BAD_INPUTS

GOOD_FILE = BAD_INPUTS / "good.csv"
GOOD = GOOD_FILE.read_bytes()
PARTITION_START = pd.Timestamp("2026-01-05")
PARTITION_END = pd.Timestamp("2026-01-06")
PARAMETERS = window_parameters(PARTITION_START, PARTITION_END)
MISSING_TOKENS = frozenset({"", "nan", "+nan", "-nan", "na", "n/a", "null", "none"})
LABEL_TOKENS = {"true": 1, "false": 0}
# Bytes that matter to a CSV of numbers and ISO timestamps, plus a few that are never valid.
INTERESTING_BYTES = b'0123456789,.-+:TZ eE"\n\r\t\x00\xff\xc3'

Corruption = Callable[[bytes], bytes]


@pytest.fixture(scope="module")
def suite() -> QualitySuite:
    return load_suite(DEFAULT_TELEMETRY_SUITE)


@pytest.fixture
def scratch() -> Iterator[Path]:
    """A fresh folder per test call; each example makes its own sub-folder."""
    with tempfile.TemporaryDirectory() as parent:
        yield Path(parent)


# -- corruptions --------------------------------------------------------------------------------


def _lines(data: bytes) -> list[bytes]:
    return data.splitlines(keepends=True)


@st.composite
def corruptions(draw: st.DrawFn) -> tuple[str, Corruption]:
    """One named, reproducible damage to a file's bytes (positions drawn as fractions)."""
    kind = draw(
        st.sampled_from(
            [
                "flip",
                "truncate",
                "delete_line",
                "duplicate_line",
                "swap_lines",
                "insert_junk",
                "replace_field",
            ]
        )
    )
    where = draw(st.floats(0.0, 1.0, exclude_max=True))
    other = draw(st.floats(0.0, 1.0, exclude_max=True))
    if kind == "flip":
        byte = draw(st.one_of(st.sampled_from(list(INTERESTING_BYTES)), st.integers(0, 255)))

        def flip(data: bytes) -> bytes:
            at = int(where * len(data))
            return data[:at] + bytes([byte]) + data[at + 1 :] if data else data

        return f"flip(at={where:.4f}, byte={byte:#04x})", flip
    if kind == "truncate":
        return f"truncate(at={where:.4f})", lambda data: data[: int(where * len(data))]
    if kind == "insert_junk":
        junk = draw(
            st.one_of(
                st.binary(min_size=1, max_size=6),
                st.lists(st.sampled_from(list(INTERESTING_BYTES)), min_size=1, max_size=6).map(
                    bytes
                ),
            )
        )

        def insert(data: bytes) -> bytes:
            at = int(where * (len(data) + 1))
            return data[:at] + junk + data[at:]

        return f"insert(at={where:.4f}, junk={junk!r})", insert
    if kind == "replace_field":
        # A plausible-looking but wrong value in one cell: what a buggy exporter writes.
        field = draw(st.integers(0, 8))
        value = draw(
            st.one_of(
                st.floats(allow_nan=True, allow_infinity=True).map(repr),
                st.integers(-(10**16), 10**16).map(str),
                st.sampled_from(["", "NaN", "-1", "-0.0", "1e15", "1e400", "x", "2", "TRUE"]),
            )
        )

        def replace(data: bytes) -> bytes:
            lines = _lines(data)
            if len(lines) < 2:
                return data
            row = 1 + int(where * (len(lines) - 1))
            ending = lines[row][len(lines[row].rstrip(b"\r\n")) :]
            cells = lines[row][: len(lines[row]) - len(ending)].split(b",")
            if field < len(cells):
                cells[field] = value.encode()
            lines[row] = b",".join(cells) + ending
            return b"".join(lines)

        return f"replace_field(row={where:.4f}, field={field}, value={value!r})", replace

    def on_lines(change: Callable[[list[bytes], int, int], None]) -> Corruption:
        def apply(data: bytes) -> bytes:
            lines = _lines(data)
            if not lines:
                return data
            change(lines, int(where * len(lines)), int(other * len(lines)))
            return b"".join(lines)

        return apply

    def delete(lines: list[bytes], first: int, _second: int) -> None:
        del lines[first]

    def duplicate(lines: list[bytes], first: int, second: int) -> None:
        lines.insert(second, lines[first])

    def swap(lines: list[bytes], first: int, second: int) -> None:
        lines[first], lines[second] = lines[second], lines[first]

    change = {"delete_line": delete, "duplicate_line": duplicate, "swap_lines": swap}[kind]
    return f"{kind}({where:.4f}, {other:.4f})", on_lines(change)


# -- an independent, strict reading of a clean file ---------------------------------------------


def _reference_number(text: str) -> float:
    token = text.strip()
    if token.lower() in MISSING_TOKENS:
        return math.nan
    value = float(token)
    assert math.isfinite(value), f"the loader accepted a non-finite value {text!r}"
    return value


def _reference_label(text: str) -> int:
    token = text.strip().lower()
    value = LABEL_TOKENS[token] if token in LABEL_TOKENS else float(token)  # "1.0", "+0" too
    assert value in (0, 1), f"the loader accepted label {text!r}"
    return int(value)


def _reference_timestamp(text: str) -> datetime:
    moment = datetime.fromisoformat(text.strip())
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC).replace(tzinfo=None)
    return moment


def reference_frame(data: bytes) -> pd.DataFrame:
    """The day's rows as a plain csv-module parse reads them; fails on anything unclean."""
    text = data.decode("utf-8-sig")
    records = [
        record
        for record in csv.reader(io.StringIO(text, newline=""))
        if any(field.strip() for field in record)
    ]
    header, body = records[0], records[1:]
    metrics = sorted(GENERATED_METRICS)
    assert sorted(header) == sorted([TIMESTAMP, SERVICE, *metrics, LABEL])
    rows = []
    for record in body:
        cells = dict(zip(header, record, strict=True))
        rows.append(
            {
                TIMESTAMP: _reference_timestamp(cells[TIMESTAMP]),
                SERVICE: cells[SERVICE],
                **{metric: _reference_number(cells[metric]) for metric in metrics},
                LABEL: _reference_label(cells[LABEL]),
            }
        )
    frame = pd.DataFrame(rows, columns=[TIMESTAMP, SERVICE, *metrics, LABEL])
    frame[TIMESTAMP] = frame[TIMESTAMP].astype("datetime64[us]")
    frame[SERVICE] = frame[SERVICE].astype(object)
    frame[metrics] = frame[metrics].astype(np.float64)
    frame[LABEL] = frame[LABEL].astype(np.int8)
    in_day = (frame[TIMESTAMP] >= PARTITION_START) & (frame[TIMESTAMP] < PARTITION_END)
    day = frame[in_day].sort_values([TIMESTAMP, SERVICE], kind="stable", ignore_index=True)
    assert not day.duplicated([SERVICE, TIMESTAMP]).any()
    return day


def _error_kind(message: str, path: Path) -> str:
    """A short label for hypothesis' statistics: the message without its file and values."""
    text = message.replace(str(path), "").replace(str(path.parent), "").lstrip(": ")
    return text.split(" in ")[0].split(":")[0][:40]


def ingest(path: Path) -> pd.DataFrame:
    """What the snapshot asset does before judging a day: load the window, canonicalize."""
    loaded = load_directory(
        path.parent, start=PARTITION_START.to_pydatetime(), end=PARTITION_END.to_pydatetime()
    )
    return canonical_telemetry(loaded)


def test_the_good_file_is_clean_by_both_readings(suite: QualitySuite) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / GOOD_FILE.name
        path.write_bytes(GOOD)
        frame = ingest(path)
    assert validate_frame(frame, suite, parameters=PARAMETERS).passed(Severity.ERROR)
    pd.testing.assert_frame_equal(frame, reference_frame(GOOD))
    assert len(frame) == 576


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(damage=st.lists(corruptions(), min_size=1, max_size=3))
def test_a_randomly_corrupted_file_is_refused_quarantined_or_still_valid(
    suite: QualitySuite, scratch: Path, damage: list[tuple[str, Corruption]]
) -> None:
    data = GOOD
    for _name, corrupt in damage:
        data = corrupt(data)
    folder = Path(tempfile.mkdtemp(dir=scratch))
    path = folder / GOOD_FILE.name
    path.write_bytes(data)
    try:
        frame = ingest(path)
    except TelemetryFormatError as error:
        assert str(path) in str(error), f"the error does not name the file: {error}"
        event(f"refused: {_error_kind(str(error), path)}")
        return
    if frame.empty:
        event("no rows for the day")
        return  # the snapshot asset fails with "no telemetry in [start, end)"
    report = validate_frame(frame, suite, parameters=PARAMETERS)
    if not report.passed(Severity.ERROR):
        assert any(outcome.severity is Severity.ERROR for outcome in report.failures())
        event(f"quarantined: {report.failures(Severity.ERROR)[0].expectation}")
        return
    event("accepted" + ("" if data == GOOD else " (changed)"))
    # Accepted: it must be exactly what a strict, independent reading of the bytes gives.
    pd.testing.assert_frame_equal(frame, reference_frame(data))
    values = frame[list(GENERATED_METRICS)].to_numpy()
    assert not np.isinf(values).any()
    assert set(frame[LABEL].unique()) <= {0, 1}
    assert not frame.duplicated([SERVICE, TIMESTAMP]).any()
