"""Incident windows joined to rows, their validation, and when a partition's labels are mature."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aiops_assets.core.delayed_labels import (
    join_incident_labels,
    labels_mature,
    read_incident_csv,
    read_incident_table,
)

ORIGIN = pd.Timestamp("2026-01-05", tz="UTC")
SERVICES = ["checkout", "search", "payments"]


def _brute_force(stamps: pd.Series, services: pd.Series, windows: pd.DataFrame) -> np.ndarray:
    out = np.zeros(len(stamps), dtype="int8")
    for i, (stamp, service) in enumerate(zip(stamps, services, strict=True)):
        for _, window in windows.iterrows():
            if window["service"] == service and window["start"] <= stamp < window["end"]:
                out[i] = 1
    return out


minutes = st.integers(0, 600)


@settings(max_examples=150, deadline=None)
@given(
    rows=st.lists(st.tuples(minutes, st.sampled_from(SERVICES)), max_size=40),
    windows=st.lists(
        st.tuples(st.sampled_from([*SERVICES, "elsewhere"]), minutes, st.integers(1, 120)),
        max_size=6,
    ),
)
def test_a_row_is_labeled_exactly_when_its_service_had_an_incident_covering_it(
    rows: list[tuple[int, str]], windows: list[tuple[str, int, int]]
) -> None:
    stamps = pd.Series(
        [ORIGIN + pd.Timedelta(minutes=m) for m, _ in rows], dtype="datetime64[ns, UTC]"
    )
    services = pd.Series([service for _, service in rows], dtype=object)
    frame = pd.DataFrame(
        {
            "service": [service for service, _, _ in windows],
            "start": [ORIGIN + pd.Timedelta(minutes=start) for _, start, _ in windows],
            "end": [ORIGIN + pd.Timedelta(minutes=start + span) for _, start, span in windows],
        }
    )
    joined = join_incident_labels(stamps, services, frame)
    assert joined.dtype == np.int8
    np.testing.assert_array_equal(joined, _brute_force(stamps, services, frame))


def test_windows_are_half_open_and_naive_times_are_utc(tmp_path: Path) -> None:
    source = tmp_path / "incidents.csv"
    source.write_text("service,start,end\ncheckout,2026-01-05T10:00,2026-01-05T10:10\n")
    windows = read_incident_csv(source)
    stamps = pd.Series(pd.date_range("2026-01-05T09:55", periods=4, freq="5min", tz="UTC"))
    labels = join_incident_labels(stamps, pd.Series(["checkout"] * 4), windows)
    assert labels.tolist() == [0, 1, 1, 0]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("service,begin,end\na,2026-01-05,2026-01-06\n", "lacks the column"),
        ("service,start,end\na,yesterday,2026-01-06\n", "'start' is not a timestamp in row"),
        ("service,start,end\na,2026-01-06,2026-01-05\n", "must end after it starts"),
    ],
)
def test_a_bad_incident_file_is_refused_with_its_rows(
    tmp_path: Path, text: str, message: str
) -> None:
    source = tmp_path / "incidents.csv"
    source.write_text(text)
    with pytest.raises(ValueError, match=message):
        read_incident_csv(source)


def test_a_missing_incident_file_says_which(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="does not exist"):
        read_incident_csv(tmp_path / "nope.csv")


def test_incident_windows_from_a_sql_table(tmp_path: Path) -> None:
    import sqlalchemy as sa

    url = f"sqlite:///{tmp_path / 'labels.db'}"
    engine = sa.create_engine(url)
    pd.DataFrame(
        {"service": ["search"], "start": ["2026-01-05 01:00"], "end": ["2026-01-05 02:00"]}
    ).to_sql("incidents", engine, index=False)
    engine.dispose()
    windows = read_incident_table(url, "incidents")
    assert windows["start"].iloc[0] == pd.Timestamp("2026-01-05T01:00", tz="UTC")
    with pytest.raises(ValueError, match="cannot read incident windows from table 'missing'"):
        read_incident_table(url, "missing")


def test_labels_are_mature_once_the_delay_has_passed() -> None:
    end = datetime(2026, 1, 6, tzinfo=UTC)
    delay = timedelta(days=2)
    assert not labels_mature(end, delay, end + delay - timedelta(minutes=1))
    assert labels_mature(end, delay, end + delay)
    assert labels_mature(end, timedelta(0), end)
    with pytest.raises(ValueError, match="negative"):
        labels_mature(end, -delay, end)
