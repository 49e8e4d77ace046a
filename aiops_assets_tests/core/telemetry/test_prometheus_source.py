"""The Prometheus source against a real Prometheus whose TSDB holds generated telemetry.

The server is backfilled once per module (``promtool tsdb create-blocks-from openmetrics``) with
three days of the reference scenario, and every test reads it back through the source: the
frame must equal the generated one bit for bit (floats, NaN cells, labels, timestamps), and
``telemetry_snapshot`` must store the same content hash from Prometheus as from CSV files.
"""

from __future__ import annotations

import http.server
import json
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import dagster as dg
import pandas as pd
import pytest

from aiops_assets.core import telemetry
from aiops_assets.core.telemetry import prometheus as prometheus_source
from aiops_assets.resources import TelemetrySourceResource
from aiops_assets_tests.core.telemetry.snapshots import (
    DAYS,
    FIRST_DAY,
    assert_same_snapshots_as_files,
    scenario_days,
)
from aiops_assets_tests.loopback_server import free_port
from aiops_assets_tests.prometheus import backfilled_prometheus

pytestmark = pytest.mark.services

START = datetime.combine(FIRST_DAY, datetime.min.time())
END = START + timedelta(days=DAYS)


def mapping_text(step: str = "5m", label: str = "aiops_label") -> str:
    metrics = "\n".join(f"  {column}: aiops_{column}" for column in telemetry.GENERATED_METRICS)
    return f"service: service\nstep: {step}\nmetrics:\n{metrics}\nlabel: {label}\n"


@pytest.fixture(scope="module")
def generated() -> pd.DataFrame:
    return scenario_days()


@pytest.fixture(scope="module")
def server(generated: pd.DataFrame) -> Iterator[str]:
    with backfilled_prometheus(generated) as url:
        yield url


@pytest.fixture
def mapping_file(tmp_path: Path) -> Path:
    path = tmp_path / "prometheus.yaml"
    path.write_text(mapping_text())
    return path


def test_days_read_back_from_prometheus_equal_the_generated_days_bit_for_bit(
    server: str, generated: pd.DataFrame, mapping_file: Path
) -> None:
    mapping = telemetry.load_mapping(mapping_file, kind="prometheus")
    frame = telemetry.load_prometheus(server, mapping, start=START, end=END)
    assert generated[["cpu_pct", "latency_p99_ms"]].isna().any().all(), "NaN cells are exercised"
    assert generated[telemetry.LABEL].sum() > 0, "incident labels are exercised"
    pd.testing.assert_frame_equal(frame, generated, check_exact=True)


def test_each_day_alone_equals_its_share_of_the_whole_range(
    server: str, generated: pd.DataFrame, mapping_file: Path
) -> None:
    mapping = telemetry.load_mapping(mapping_file, kind="prometheus")
    days = [
        telemetry.load_prometheus(
            server, mapping, start=START + timedelta(days=n), end=START + timedelta(days=n + 1)
        )
        for n in range(DAYS)
    ]
    assert [len(day) for day in days] == [288 * 6] * DAYS
    joined = telemetry.canonical_telemetry(pd.concat(days, ignore_index=True))
    pd.testing.assert_frame_equal(joined, generated, check_exact=True)


def test_an_unaligned_window_keeps_only_its_own_step_instants(
    server: str, generated: pd.DataFrame, tmp_path: Path
) -> None:
    path = tmp_path / "ten_minutes.yaml"
    path.write_text(mapping_text(step="10m"))
    start, end = START + timedelta(minutes=7), START + timedelta(hours=2)
    frame = telemetry.load_prometheus(
        server, telemetry.load_mapping(path, kind="prometheus"), start=start, end=end
    )
    times = generated[telemetry.TIMESTAMP]
    on_grid = (times >= start) & (times < end) & (times.dt.minute % 10 == 0)
    expected = generated.loc[on_grid].reset_index(drop=True)
    assert frame[telemetry.TIMESTAMP].min() == pd.Timestamp(START + timedelta(minutes=10))
    assert frame[telemetry.TIMESTAMP].max() == pd.Timestamp(START + timedelta(minutes=110))
    pd.testing.assert_frame_equal(frame, expected, check_exact=True)


def test_long_windows_are_chunked_under_the_server_point_limit(
    server: str, generated: pd.DataFrame, mapping_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(prometheus_source, "MAX_POINTS_PER_QUERY", 100)
    mapping = telemetry.load_mapping(mapping_file, kind="prometheus")
    frame = telemetry.load_prometheus(server, mapping, start=START, end=END)
    pd.testing.assert_frame_equal(frame, generated, check_exact=True)


def test_promql_expressions_map_to_contract_columns(server: str, generated: pd.DataFrame) -> None:
    mapping = telemetry.parse_mapping(
        {
            "service": "service",
            "metrics": {"cpu_fraction": "aiops_cpu_pct / 100", "error_rate": "aiops_error_rate"},
            "label": 'aiops_label{service="payments"}',
        },
        kind="prometheus",
    )
    frame = telemetry.load_prometheus(server, mapping, start=START, end=END)
    assert telemetry.metric_columns(frame) == ["cpu_fraction", "error_rate"]
    pd.testing.assert_series_equal(
        frame["cpu_fraction"], generated["cpu_pct"] / 100, check_names=False, check_exact=True
    )
    payments = (frame[telemetry.SERVICE] == "payments").to_numpy()
    assert (
        frame[telemetry.LABEL][payments].tolist() == generated[telemetry.LABEL][payments].tolist()
    )
    assert frame[telemetry.LABEL][~payments].eq(0).all(), "no label series: 0"


def test_a_metric_query_with_no_series_is_a_one_line_error_naming_the_query(
    server: str,
) -> None:
    mapping = telemetry.parse_mapping(
        {"metrics": {"cpu_pct": "aiops_cpu_pct", "memory_pct": "node_memory_typo"}},
        kind="prometheus",
    )
    with pytest.raises(telemetry.TelemetrySourceError) as raised:
        telemetry.load_prometheus(server, mapping, start=START, end=END)
    message = str(raised.value)
    assert "\n" not in message
    assert "'memory_pct' returned no series" in message and "node_memory_typo" in message


def test_a_query_the_server_refuses_is_named_with_the_server_reason(server: str) -> None:
    mapping = telemetry.parse_mapping({"metrics": {"cpu_pct": "sum(("}}, kind="prometheus")
    with pytest.raises(telemetry.TelemetrySourceError, match=r"query refused \(.*parse error"):
        telemetry.load_prometheus(server, mapping, start=START, end=END)


@pytest.mark.parametrize(
    ("query", "problem"),
    [
        ("sum(aiops_cpu_pct)", "has no 'service' label"),
        ('{__name__=~"aiops_cpu_pct|aiops_memory_pct"}', "has two series"),
    ],
)
def test_series_that_do_not_name_one_service_each_are_refused(
    server: str, query: str, problem: str
) -> None:
    mapping = telemetry.parse_mapping({"metrics": {"cpu_pct": query}}, kind="prometheus")
    with pytest.raises(telemetry.TelemetryFormatError, match=problem):
        telemetry.load_prometheus(server, mapping, start=START, end=END)


def test_a_server_that_is_down_fails_the_resource_in_one_line_after_its_retries(
    mapping_file: Path,
) -> None:
    source = TelemetrySourceResource(
        kind="prometheus",
        url=f"http://127.0.0.1:{free_port()}",
        mapping=str(mapping_file),
        max_attempts=3,
        backoff_seconds=0.05,
    )
    with pytest.raises(dg.Failure) as raised:
        source.load_window(START, END)
    description = raised.value.description or ""
    assert "cannot reach the server" in description and "Connection refused" in description
    assert "\n" not in description


class _FlakyPrometheus(http.server.BaseHTTPRequestHandler):
    """Answers 503 to the first ``failures`` requests, then one service's range result."""

    failures = 2
    requests: list[str]  # set per server below

    def do_GET(self) -> None:
        self.requests.append(self.path)
        if len(self.requests) <= self.failures:
            self.send_response(503)
            self.end_headers()
            return
        body: dict[str, Any] = {
            "status": "success",
            "data": {
                "resultType": "matrix",
                "result": [
                    {"metric": {"service": "api"}, "values": [[1767571200, "0.1"]]},
                ],
            },
        }
        payload = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args: object) -> None:
        del args


def test_transient_server_errors_are_retried_with_backoff() -> None:
    seen: list[str] = []
    handler = type("Flaky", (_FlakyPrometheus,), {"requests": seen})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        mapping = telemetry.parse_mapping({"metrics": {"cpu_pct": "up"}}, kind="prometheus")
        began = time.monotonic()
        frame = telemetry.load_prometheus(
            f"http://127.0.0.1:{server.server_address[1]}",
            mapping,
            start=datetime(2026, 1, 5),
            end=datetime(2026, 1, 5, 0, 5),
            max_attempts=3,
            backoff_seconds=0.2,
        )
        waited = time.monotonic() - began
    finally:
        server.shutdown()
        server.server_close()
    assert len(seen) == 3, "two 503s, then the answer"
    assert waited >= 0.2, "the retries waited"
    assert frame[["service", "cpu_pct"]].to_dict("records") == [{"service": "api", "cpu_pct": 0.1}]


def test_prometheus_and_directory_sources_give_the_same_snapshot_hashes(
    server: str, generated: pd.DataFrame, mapping_file: Path, tmp_path: Path
) -> None:
    assert_same_snapshots_as_files("prometheus", server, mapping_file, generated, tmp_path)
