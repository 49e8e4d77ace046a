from __future__ import annotations

import json
from collections.abc import Callable
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from aiops_assets.core import telemetry
from aiops_assets.core.quality import (
    DEFAULT_FEATURES_SUITE,
    DEFAULT_TELEMETRY_SUITE,
    QuarantineRecord,
    Severity,
    SuiteFormatError,
    list_quarantine,
    load_suite,
    quarantine,
    validate_frame,
    window_parameters,
)
from aiops_assets.core.store import ArtifactStore

DAY = date(2026, 1, 10)
WINDOW = window_parameters(pd.Timestamp(DAY), pd.Timestamp(DAY) + pd.Timedelta(days=1))
SUITE = load_suite(DEFAULT_TELEMETRY_SUITE)


def _good_day() -> pd.DataFrame:
    return telemetry.generate_day(telemetry.default_scenario(), DAY)


def _failed(frame: pd.DataFrame) -> list[tuple[str, tuple[str, ...]]]:
    report = validate_frame(frame, SUITE, parameters=WINDOW)
    return [(outcome.expectation, outcome.columns) for outcome in report.failures(Severity.ERROR)]


def test_the_default_suite_is_versioned_by_the_hash_of_its_file() -> None:
    assert SUITE.name == "telemetry_default" and SUITE.version == 3
    assert len(SUITE.sha256) == 64
    assert SUITE.version_id.startswith("telemetry_default-v3-")
    assert SUITE.severities() == [Severity.ERROR, Severity.WARN]
    assert load_suite(DEFAULT_FEATURES_SUITE).severities() == [Severity.WARN]


def test_a_good_generated_day_passes_every_expectation() -> None:
    report = validate_frame(_good_day(), SUITE, parameters=WINDOW)
    assert report.passed(), report.failure_message(Severity.ERROR, subject="good day")
    assert report.rows == 6 * 288
    assert report.suite_sha256 == SUITE.sha256


def test_the_null_injection_day_fails_on_the_nulled_columns_and_names_the_slice() -> None:
    scenario = telemetry.default_scenario()
    null_day = scenario.start + pd.Timedelta(days=6).to_pytimedelta()
    frame = telemetry.generate_day(scenario, null_day)
    parameters = window_parameters(
        pd.Timestamp(null_day), pd.Timestamp(null_day) + pd.Timedelta(days=1)
    )
    report = validate_frame(frame, SUITE, parameters=parameters)
    failures = report.failures(Severity.ERROR)
    assert sorted(outcome.columns for outcome in failures) == [("cpu_pct",), ("latency_p99_ms",)]
    for outcome in failures:
        assert outcome.expectation == "expect_column_values_to_not_be_null"
        assert outcome.slices == {"service=search": outcome.unexpected_count}
        assert outcome.failing_rows and outcome.failing_rows[0]["service"] == "search"
    message = report.failure_message(Severity.ERROR, subject="telemetry_snapshot[2026-01-11]")
    assert "latency_p99_ms" in message and "cpu_pct" in message and "service=search" in message
    assert report.passed(Severity.WARN)


@pytest.mark.parametrize(
    ("corrupt", "expected"),
    [
        (
            lambda f: f.assign(cpu_pct=f["cpu_pct"] + 150.0),
            ("expect_column_values_to_be_between", ("cpu_pct",)),
        ),
        (
            lambda f: f.assign(latency_p99_ms=f["latency_p50_ms"] / 2),
            (
                "expect_column_pair_values_a_to_be_greater_than_b",
                ("latency_p99_ms", "latency_p50_ms"),
            ),
        ),
        (
            lambda f: f.assign(request_rate=-f["request_rate"]),
            ("expect_column_values_to_be_between", ("request_rate",)),
        ),
        (
            lambda f: f.assign(label=f["label"].where(f.index != 3, 2).astype("int8")),
            ("expect_column_values_to_be_in_set", ("label",)),
        ),
        (
            lambda f: pd.concat([f, f.iloc[:2]], ignore_index=True),
            ("expect_compound_columns_to_be_unique", ("service", "timestamp")),
        ),
        (
            lambda f: f.assign(timestamp=f["timestamp"] + pd.Timedelta(days=1)),
            ("expect_column_values_to_be_between", ("timestamp",)),
        ),
        (lambda f: f.assign(extra=1.0), ("expect_table_columns_to_match_set", ())),
        (lambda f: f.drop(columns=["memory_pct"]), ("expect_table_columns_to_match_set", ())),
    ],
    ids=[
        "percent-over-100",
        "p99-below-p50",
        "negative-rate",
        "label-2",
        "duplicate-key",
        "outside-window",
        "extra-column",
        "missing-column",
    ],
)
def test_each_kind_of_bad_data_fails_the_expectation_that_names_it(
    corrupt: Callable[[pd.DataFrame], pd.DataFrame], expected: tuple[str, tuple[str, ...]]
) -> None:
    assert expected in _failed(corrupt(_good_day()))


def test_a_labeling_bug_is_a_warning_not_an_error() -> None:
    frame = _good_day().assign(label=np.int8(1))
    report = validate_frame(frame, SUITE, parameters=WINDOW)
    assert report.passed(Severity.ERROR)
    (warning,) = report.failures(Severity.WARN)
    assert warning.expectation == "expect_column_mean_to_be_between"
    assert warning.observed_value == "1.0"


def test_a_day_cut_short_is_a_warning() -> None:
    frame = _good_day()
    cut_short = frame[frame["timestamp"] < pd.Timestamp(DAY) + pd.Timedelta(hours=20)]
    report = validate_frame(cut_short, SUITE, parameters=WINDOW)
    assert report.passed(Severity.ERROR)
    (warning,) = report.failures(Severity.WARN)
    assert (warning.expectation, warning.columns) == (
        "expect_column_max_to_be_between",
        ("timestamp",),
    )


def test_a_schema_change_names_the_missing_and_unexpected_columns() -> None:
    frame = _good_day().drop(columns=["memory_pct"]).assign(disk_pct=1.0)
    report = validate_frame(frame, SUITE, parameters=WINDOW)
    (schema,) = [
        o for o in report.failures() if o.expectation == "expect_table_columns_to_match_set"
    ]
    assert schema.observed_value == "unexpected: ['disk_pct'], missing: ['memory_pct']"


def test_a_missing_column_is_reported_not_raised() -> None:
    report = validate_frame(_good_day().drop(columns=["cpu_pct"]), SUITE, parameters=WINDOW)
    broken = [outcome for outcome in report.failures() if outcome.error]
    assert broken and all(outcome.columns == ("cpu_pct",) for outcome in broken)
    assert any("cpu_pct" in outcome.error for outcome in broken)


def test_the_report_table_markdown_and_dict_are_complete(tmp_path: Path) -> None:
    frame = _good_day()
    frame.loc[:5, "cpu_pct"] = 120.0
    report = validate_frame(frame, SUITE, parameters=WINDOW)
    rows = report.table_rows(Severity.ERROR)
    assert len(rows) == len(SUITE.only(Severity.ERROR).expectations)
    (failing,) = [row for row in rows if not row["passed"]]
    assert failing["unexpected_count"] == 6 and failing["columns"] == "cpu_pct"
    assert failing["unexpected_percent"] == pytest.approx(100 * 6 / len(frame), abs=1e-3)
    assert "timestamp=" in failing["failing_rows"]
    markdown = report.summary_markdown(Severity.ERROR)
    assert "expectations passed on 1728 rows" in markdown and "cpu_pct" in markdown
    json.dumps(report.to_dict(), allow_nan=False)


def test_quarantine_keeps_the_artifact_and_its_report(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path)
    frame = _good_day().assign(cpu_pct=500.0)
    report = validate_frame(frame, SUITE, parameters=WINDOW)
    artifact = store.put_frame(frame)
    name = quarantine(
        store,
        QuarantineRecord(
            asset="telemetry_snapshot",
            partition="2026-01-10",
            artifact=artifact,
            report=report.to_dict(),
            source="test",
            message=report.failure_message(Severity.ERROR, subject="x"),
        ),
    )
    assert name.startswith("quarantine/telemetry_snapshot/2026-01-10/")
    (record,) = list_quarantine(store, "telemetry_snapshot")
    assert record.artifact == artifact and store.verify(artifact)
    assert "cpu_pct" in record.message
    assert record.report["suite_sha256"] == SUITE.sha256
    assert list_quarantine(store, "features") == []


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("name: x\nversion: 1\n", "missing top-level key 'expectations'"),
        ("name: x\nversion: 1\nexpectations: []\n", "non-empty list"),
        (
            "name: x\nversion: 1\nexpectations:\n  - {type: expect_the_moon}\n",
            "unknown Great Expectations type",
        ),
        (
            "name: x\nversion: 1\nexpectations:\n  - {type: expect_column_to_exist, severity: FATAL}\n",
            "severity must be ERROR or WARN",
        ),
        ("name: [unclosed\n", "not valid YAML"),
    ],
)
def test_a_malformed_suite_file_is_refused_with_its_name(
    tmp_path: Path, content: str, message: str
) -> None:
    path = tmp_path / "suite.yaml"
    path.write_text(content)
    with pytest.raises(SuiteFormatError, match=message) as raised:
        load_suite(path)
    assert str(path) in str(raised.value)
