"""The mapping file, the step grid and the Prometheus encodings, without a server.

Properties (hypothesis): any float64 survives OpenMetrics and Prometheus's JSON exactly; any
window's step grid is the part of the global grid inside it, so adjacent partitions tile; and
``query_range`` results built from any canonical frame read back as that frame.
"""

from __future__ import annotations

import math
import struct
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aiops_assets.core import telemetry
from aiops_assets.core.telemetry.prometheus import frame_from_results, step_grid

EPOCH = datetime(1970, 1, 1)
finite = st.floats(allow_nan=False, allow_infinity=False, width=64)
cells = st.one_of(finite, st.just(math.nan))
services = st.lists(
    st.text(alphabet='abcxyz-_"\\\n é', min_size=1, max_size=6).map(str.strip).filter(bool),
    min_size=1,
    max_size=3,
    unique_by=lambda name: telemetry.canonical_telemetry(
        pd.DataFrame({"timestamp": [EPOCH], "service": [name], "m": [0.0]})
    )["service"][0],
)


def bits(value: float) -> bytes:
    return struct.pack("<d", value)


def go_format(value: float) -> str:
    """What Prometheus prints: strconv.FormatFloat(v, 'f', -1, 64), shortest positional digits."""
    if math.isnan(value):
        return "NaN"
    return np.format_float_positional(value, unique=True, trim="-")


@st.composite
def frames(draw: st.DrawFn) -> pd.DataFrame:
    names = draw(services)
    steps = draw(st.integers(min_value=1, max_value=6))
    first = draw(st.integers(min_value=0, max_value=2_000_000_000)) * 1000  # whole ms
    rows = [
        {
            "timestamp": EPOCH + timedelta(milliseconds=first + 300_000 * step),
            "service": name,
            "cpu_pct": draw(cells),
            "error_rate": draw(cells),
            "label": draw(st.integers(min_value=0, max_value=1)),
        }
        for step in range(steps)
        for name in names
    ]
    return telemetry.canonical_telemetry(pd.DataFrame(rows))


def query_results(frame: pd.DataFrame, column: str) -> list[dict[str, Any]]:
    """``frame``'s column as Prometheus answers a range query: one series per service."""
    results: list[dict[str, Any]] = []
    for service, rows in frame.groupby("service", sort=False):
        seconds = rows["timestamp"].astype("int64") / 1_000_000
        results.append(
            {
                "metric": {"service": service, "__name__": column},
                "values": [
                    [float(stamp), go_format(float(value))]
                    for stamp, value in zip(seconds, rows[column], strict=True)
                ],
            }
        )
    return results


@given(frames())
@settings(max_examples=60, deadline=None)
def test_query_results_of_any_frame_read_back_as_that_frame(frame: pd.DataFrame) -> None:
    mapping = telemetry.parse_mapping(
        {"metrics": {"cpu_pct": "a", "error_rate": "b"}, "label": "c"}, kind="prometheus"
    )
    labels = [
        series
        for series in query_results(frame, "label")
        if any(value != "0" for _, value in series["values"])
    ]
    columns = {column: query_results(frame, column) for column in ("cpu_pct", "error_rate")}
    read = frame_from_results(columns, labels, mapping)
    pd.testing.assert_frame_equal(read, frame, check_exact=True)


@given(frames())
@settings(max_examples=60, deadline=None)
def test_openmetrics_prints_every_value_and_time_exactly(frame: pd.DataFrame) -> None:
    text = telemetry.to_openmetrics(frame)
    assert text.endswith("# EOF\n")
    samples = [line for line in text.splitlines() if not line.startswith("#")]
    assert len(samples) == 3 * len(frame)
    written = {}
    for line in samples:
        selector, value, stamp = line.rsplit(" ", 2)
        written[(selector, stamp)] = value
    micros = frame["timestamp"].to_numpy(dtype="datetime64[us]").astype("int64")
    for row, since_epoch in zip(frame.to_dict("records"), micros, strict=True):
        whole, fraction = divmod(int(since_epoch), 1_000_000)
        stamp = f"{whole}.{fraction:06d}".rstrip("0").rstrip(".")
        service = str(row["service"])
        escaped = service.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
        for column in ("cpu_pct", "error_rate", "label"):
            value = written[(f'aiops_{column}{{service="{escaped}"}}', stamp)]
            original = float(row[column])
            assert bits(float(value)) == bits(original) or (math.isnan(original) and value == "NaN")


@given(
    start=st.integers(min_value=0, max_value=10**10),
    length=st.integers(min_value=1, max_value=10**5),
    cut=st.floats(min_value=0, max_value=1),
    step=st.sampled_from([1, 15, 60, 300, 3600, 7200, 86400, 97]),
)
@settings(deadline=None)
def test_the_step_grid_of_adjacent_windows_tiles_their_union(
    start: int, length: int, cut: float, step: int
) -> None:
    begin = EPOCH + timedelta(seconds=start)
    middle = begin + timedelta(seconds=round(length * cut))
    end = begin + timedelta(seconds=length)

    def points(a: datetime, b: datetime) -> list[int]:
        first, last = step_grid(a, b, step)
        return list(range(first, last + 1, step)) if first <= last else []

    whole = points(begin, end)
    assert whole == [t for t in range(-(-start // step) * step, start + length, step)]
    assert points(begin, middle) + points(middle, end) == whole


@pytest.mark.parametrize(
    ("text", "seconds"), [("5m", 300), ("1h30m", 5400), ("300", 300), ("1d", 86400)]
)
def test_steps_read_as_prometheus_durations(text: str, seconds: int) -> None:
    mapping = telemetry.parse_mapping(
        {"metrics": {"cpu_pct": "x"}, "step": text}, kind="prometheus"
    )
    assert mapping.step == seconds


@pytest.mark.parametrize(
    ("document", "problem"),
    [
        ({"metrics": {"cpu_pct": "x"}, "step": "500ms"}, "whole number of seconds"),
        ({"metrics": {"cpu_pct": "x"}, "step": "5 minutes"}, "duration such as"),
        ({"metrics": {"cpu_pct": "x"}, "lable": "y"}, r"unknown key\(s\) \['lable'\]"),
        ({"metrics": {"cpu_pct": "x"}, "table": "t"}, "unknown key"),
        ({"metrics": {}}, "'metrics' must map"),
        ({"metrics": {"label": "x"}}, "not a metric column"),
        ({"metrics": {"cpu_pct": ""}}, "non-empty"),
    ],
)
def test_prometheus_mapping_mistakes_are_named(document: dict[str, object], problem: str) -> None:
    with pytest.raises(telemetry.MappingError, match=problem):
        telemetry.parse_mapping(document, kind="prometheus", origin="m.yaml")


@pytest.mark.parametrize(
    ("document", "problem"),
    [
        ({"metrics": {"cpu_pct": "cpu"}}, "exactly one of 'table' or 'query'"),
        ({"metrics": {"cpu_pct": "cpu"}, "table": "t", "query": "SELECT 1"}, "exactly one"),
        ({"metrics": {"cpu_pct": "cpu"}, "table": "t", "step": "5m"}, "unknown key"),
        ({"metrics": {"cpu_pct": "ts"}, "table": "t", "timestamp": "ts"}, "mapped to two"),
    ],
)
def test_sql_mapping_mistakes_are_named(document: dict[str, object], problem: str) -> None:
    with pytest.raises(telemetry.MappingError, match=problem):
        telemetry.parse_mapping(document, kind="sql", origin="m.yaml")


def test_a_mapping_file_that_is_not_yaml_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("metrics: [unclosed\n")
    with pytest.raises(telemetry.MappingError, match=r"broken\.yaml is not valid YAML"):
        telemetry.load_mapping(path, kind="sql")


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("http://prom:9090", "http://prom:9090"),
        ("https://ops:s3cret@prom.example:443/api", "https://ops:***@prom.example:443/api"),
        ("postgresql+psycopg2://u:p%40ss@db/x", "postgresql+psycopg2://u:***@db/x"),
    ],
)
def test_urls_in_messages_never_show_the_password(url: str, shown: str) -> None:
    assert telemetry.redact_url(url) == shown


@pytest.mark.parametrize("kind", ["prometheus", "sql"])
def test_settings_refuse_a_mapped_source_without_its_url_and_mapping(kind: str) -> None:
    from aiops_assets.reference.settings import PipelineSettings

    with pytest.raises(ValueError, match="AIOPS_SOURCE_URL, AIOPS_SOURCE_MAPPING"):
        PipelineSettings.from_env({"AIOPS_SOURCE_KIND": kind, "AIOPS_SOURCE_URL": "x://y"})
