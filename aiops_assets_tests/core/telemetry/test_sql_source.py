"""The SQL source against the local PostgreSQL: a throwaway schema per test, dropped after.

Generated telemetry is stored under a team's own column names (``ts timestamptz``, ``svc``,
``cpu``, ..., ``is_incident boolean``) and read back through the mapping, by table and by query;
the frame must equal the generated one bit for bit and give the same snapshot hashes as the
directory source.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa

from aiops_assets.core import telemetry
from aiops_assets_tests.core.telemetry.snapshots import (
    DAYS,
    FIRST_DAY,
    assert_same_snapshots_as_files,
    scenario_days,
)
from aiops_assets_tests.postgres import SERVER_URL, server_or_fail

pytestmark = pytest.mark.services

START = datetime.combine(FIRST_DAY, datetime.min.time())
END = START + timedelta(days=DAYS)
COLUMNS = {
    "cpu_pct": "cpu",
    "error_rate": "errors",
    "latency_p50_ms": "p50",
    "latency_p99_ms": "p99",
    "memory_pct": "mem",
    "request_rate": "rps",
}


@pytest.fixture(scope="module")
def generated() -> pd.DataFrame:
    return scenario_days()


@pytest.fixture(scope="module")
def schema(generated: pd.DataFrame) -> Iterator[str]:
    """A schema unique to this module holding ``metrics`` (the generated days), dropped after."""
    engine = server_or_fail()
    name = f"aiops_sql_test_{uuid.uuid4().hex[:12]}"
    metrics = ", ".join(f"{column} double precision" for column in COLUMNS.values())
    rows = [
        {
            "ts": row["timestamp"].to_pydatetime().replace(tzinfo=UTC),
            "svc": row["service"],
            **{source: float(row[column]) for column, source in COLUMNS.items()},
            "is_incident": bool(row["label"]),
        }
        for row in generated.to_dict("records")
    ]
    with engine.begin() as connection:
        connection.execute(sa.text(f'CREATE SCHEMA "{name}"'))
        connection.execute(
            sa.text(
                f'CREATE TABLE "{name}".metrics (ts timestamptz NOT NULL, svc text NOT NULL, '
                f"{metrics}, is_incident boolean NOT NULL)"
            )
        )
        table = sa.table(
            "metrics",
            *(sa.column(key) for key in ("ts", "svc", *COLUMNS.values(), "is_incident")),
            schema=name,
        )
        connection.execute(sa.insert(table), rows)
    try:
        yield name
    finally:
        with engine.begin() as connection:
            connection.execute(sa.text(f'DROP SCHEMA IF EXISTS "{name}" CASCADE'))
        engine.dispose()


def mapping_yaml(schema: str, *, target: str | None = None) -> str:
    metrics = "\n".join(f"  {column}: {source}" for column, source in COLUMNS.items())
    target = target or f"table: {schema}.metrics"
    return f"service: svc\ntimestamp: ts\nlabel: is_incident\n{target}\nmetrics:\n{metrics}\n"


@pytest.fixture
def mapping_file(schema: str, tmp_path: Path) -> Path:
    path = tmp_path / "sql.yaml"
    path.write_text(mapping_yaml(schema))
    return path


def test_a_table_read_through_the_mapping_equals_the_generated_days(
    schema: str, generated: pd.DataFrame, mapping_file: Path
) -> None:
    mapping = telemetry.load_mapping(mapping_file, kind="sql")
    frame = telemetry.load_sql(SERVER_URL, mapping, start=START, end=END)
    assert generated["cpu_pct"].isna().any() and generated["label"].sum() > 0
    pd.testing.assert_frame_equal(frame, generated, check_exact=True)


def test_a_query_is_filtered_to_the_window_by_the_database(
    schema: str, generated: pd.DataFrame, tmp_path: Path
) -> None:
    query = f"query: SELECT * FROM {schema}.metrics WHERE svc <> 'search'"
    mapping = telemetry.parse_mapping(mapping_yaml(schema, target=query), kind="sql")
    day = (START + timedelta(days=1), START + timedelta(days=2))
    frame = telemetry.load_sql(SERVER_URL, mapping, start=day[0], end=day[1])
    times = generated["timestamp"]
    keep = (times >= day[0]) & (times < day[1]) & (generated["service"] != "search")
    pd.testing.assert_frame_equal(frame, generated.loc[keep].reset_index(drop=True))


def test_window_bounds_mean_utc_whatever_the_session_time_zone(
    schema: str, generated: pd.DataFrame, mapping_file: Path
) -> None:
    tokyo = sa.make_url(SERVER_URL).update_query_dict({"options": "-c timezone=Asia/Tokyo"})
    mapping = telemetry.load_mapping(mapping_file, kind="sql")
    start, end = START + timedelta(hours=1), START + timedelta(hours=2)
    frame = telemetry.load_sql(tokyo, mapping, start=start, end=end)
    assert frame["timestamp"].min() == pd.Timestamp(start)
    assert frame["timestamp"].max() == pd.Timestamp(end - timedelta(minutes=5))
    assert len(frame) == 12 * generated["service"].nunique()


def test_an_aware_window_is_the_same_instant_as_its_naive_utc_spelling(
    schema: str, mapping_file: Path
) -> None:
    mapping = telemetry.load_mapping(mapping_file, kind="sql")
    naive = telemetry.load_sql(SERVER_URL, mapping, start=START, end=START + timedelta(hours=1))
    aware = telemetry.load_sql(
        SERVER_URL,
        mapping,
        start=START.replace(tzinfo=UTC).astimezone(),
        end=(START + timedelta(hours=1)).replace(tzinfo=UTC).astimezone(),
    )
    pd.testing.assert_frame_equal(naive, aware)


def test_a_missing_table_is_a_one_line_error_from_the_database(schema: str) -> None:
    mapping = telemetry.parse_mapping(
        {"table": f"{schema}.nope", "metrics": {"cpu_pct": "cpu"}}, kind="sql"
    )
    with pytest.raises(telemetry.TelemetrySourceError) as raised:
        telemetry.load_sql(SERVER_URL, mapping, start=START, end=END)
    message = str(raised.value)
    assert "\n" not in message and "nope" in message and "does not exist" in message


def test_a_password_in_the_url_never_reaches_the_message(schema: str) -> None:
    url = sa.make_url(SERVER_URL).set(password="hunter2-secret", port=1)
    mapping = telemetry.parse_mapping(
        {"table": f"{schema}.metrics", "metrics": {"cpu_pct": "cpu"}}, kind="sql"
    )
    with pytest.raises(telemetry.TelemetrySourceError) as raised:
        telemetry.load_sql(url, mapping, start=START, end=END)
    assert "hunter2-secret" not in str(raised.value) and "***" in str(raised.value)


def test_text_in_a_metric_column_fails_naming_the_column_and_value(schema: str) -> None:
    mapping = telemetry.parse_mapping(
        {
            "query": f"SELECT ts, svc, CASE WHEN cpu > 50 THEN 'high' ELSE cpu::text END AS c "
            f"FROM {schema}.metrics",
            "service": "svc",
            "timestamp": "ts",
            "metrics": {"cpu_pct": "c"},
        },
        kind="sql",
    )
    with pytest.raises(telemetry.TelemetryFormatError, match=r"'cpu_pct'.*'high'"):
        telemetry.load_sql(SERVER_URL, mapping, start=START, end=END)


def test_numeric_columns_read_as_floats(schema: str) -> None:
    mapping = telemetry.parse_mapping(
        {
            "query": f"SELECT ts, svc, round(cpu::numeric, 1) AS c FROM {schema}.metrics",
            "service": "svc",
            "timestamp": "ts",
            "metrics": {"cpu_pct": "c"},
        },
        kind="sql",
    )
    frame = telemetry.load_sql(SERVER_URL, mapping, start=START, end=START + timedelta(hours=1))
    assert frame["cpu_pct"].dtype == "float64" and frame["cpu_pct"].notna().any()


def test_sql_and_directory_sources_give_the_same_snapshot_hashes(
    schema: str, generated: pd.DataFrame, mapping_file: Path, tmp_path: Path
) -> None:
    assert_same_snapshots_as_files("sql", SERVER_URL, mapping_file, generated, tmp_path)
