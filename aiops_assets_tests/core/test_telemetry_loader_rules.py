"""The loader's rules against data that passes every per-cell check but is still wrong.

Each rule is exercised through ``load_directory`` (and ``load_nab`` for links): service names
spelled two ways, numbers only Python reads, rows dated in the future, a window with too few
rows, a replayed window, and links that leave the source folder; a replay that no folder shows
(the folder only ever holds the newest day) through the snapshot asset. Each test fails without its
rule: the bad data would load as a plausible frame.
"""

from __future__ import annotations

import json
import tempfile
import unicodedata
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from aiops_assets.core.store import ArtifactStore
from aiops_assets.core.telemetry import (
    SERVICE,
    TIMESTAMP,
    TelemetryFormatError,
    canonical_telemetry,
    default_scenario,
    generate_day,
    load_directory,
    load_nab,
)
from aiops_assets.reference.definitions import BASELINE_CHECKS, build_definitions
from aiops_assets.reference.settings import PipelineSettings
from aiops_assets.runner import materialize_selection

DAY = datetime(2026, 1, 5)
NEXT_DAY = DAY + timedelta(days=1)
STEP = timedelta(minutes=5)
ROWS_PER_DAY = 288
NON_ASCII_DIGITS = "\u0660\u0661\u0662\u0665\u06f3\u07c1\u09ea\uff10\uff11\uff15"


@pytest.fixture
def scratch() -> Iterator[Path]:
    with tempfile.TemporaryDirectory() as parent:
        yield Path(parent)


def day_rows(
    service: str, first: datetime = DAY, rows: int = ROWS_PER_DAY, seed: int = 0
) -> pd.DataFrame:
    """A service's noisy rows at the 5-minute step, timestamps as ISO text with Z."""
    rng = np.random.default_rng(seed)
    times = pd.date_range(first, periods=rows, freq="5min")
    return pd.DataFrame(
        {
            TIMESTAMP: times.strftime("%Y-%m-%dT%H:%M:%SZ"),
            SERVICE: service,
            "cpu_pct": np.round(rng.uniform(10, 90, rows), 3),
            "latency_p50_ms": np.round(rng.uniform(5, 50, rows), 3),
        }
    )


def write(folder: Path, name: str, *frames: pd.DataFrame) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    pd.concat(frames, ignore_index=True).to_csv(path, index=False)
    return path


def load_day(folder: Path, day: datetime = DAY) -> pd.DataFrame:
    return load_directory(folder, start=day, end=day + timedelta(days=1))


# -- service names ------------------------------------------------------------------------------


def test_a_service_written_one_way_is_trimmed_and_nfc_normalized(tmp_path: Path) -> None:
    decomposed = unicodedata.normalize("NFD", "café")
    write(tmp_path, "a.csv", day_rows(" api "), day_rows(decomposed, seed=1))
    frame = load_day(tmp_path)
    assert sorted(set(frame[SERVICE])) == ["api", unicodedata.normalize("NFC", "café")]
    assert len(frame) == 2 * ROWS_PER_DAY


@pytest.mark.parametrize(
    ("first", "second", "shown"),
    [
        ("api ", "api", ["'api '", "'api'"]),
        (
            unicodedata.normalize("NFC", "café"),
            unicodedata.normalize("NFD", "café"),
            ["'caf\\xe9'", "'cafe\\u0301'"],
        ),
    ],
)
def test_two_spellings_of_one_service_are_refused_naming_both(
    tmp_path: Path, first: str, second: str, shown: list[str]
) -> None:
    path = write(tmp_path, "a.csv", day_rows(first, rows=3), day_rows(second, DAY + STEP * 3, 3))
    with pytest.raises(TelemetryFormatError) as caught:
        load_directory(tmp_path)
    message = str(caught.value)
    assert "spelled more than one way" in message and "'service'" in message
    for spelling in shown:
        assert spelling in message
    assert f"{path} line 2" in message and f"{path} line 5" in message


def test_two_spellings_across_files_are_refused(tmp_path: Path) -> None:
    write(tmp_path, "a.csv", day_rows("api"))
    write(tmp_path, "b.csv", day_rows("api\t", NEXT_DAY))
    with pytest.raises(TelemetryFormatError, match=r"'api\\t' \(288 row\(s\), first: .*b\.csv"):
        load_directory(tmp_path)


def test_clean_names_keep_the_frame_exactly() -> None:
    # Clean data takes the untouched path: canonicalizing again changes no byte.
    day = generate_day(default_scenario(), DAY.date())
    again = canonical_telemetry(day)
    pd.testing.assert_frame_equal(again, day)
    assert pd.util.hash_pandas_object(again).equals(pd.util.hash_pandas_object(day))


# -- Python-only numbers ------------------------------------------------------------------------


def one_value_file(folder: Path, cell: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "svc.csv"
    with path.open("w", encoding="utf-8", newline="") as handle:
        handle.write(f'timestamp,value\n2026-01-05T00:00Z,1\n2026-01-05T00:05Z,"{cell}"\n')
    return path


@pytest.mark.parametrize(
    "cell",
    ["1_2_0.5", "1_000", "\u0661\u0662\u0660.\u0665", "\uff11\uff12", "12\u00a0", "1e1_0"],
)
def test_a_number_only_python_reads_is_refused(tmp_path: Path, cell: str) -> None:
    float(cell)  # Python reads it: that is the trap
    path = one_value_file(tmp_path, cell)
    with pytest.raises(TelemetryFormatError) as caught:
        load_directory(tmp_path)
    message = str(caught.value)
    assert f"{path}: column 'value'" in message and "only Python reads" in message
    assert f"line 3: {cell!r}" in message


def test_a_label_only_python_reads_is_refused(tmp_path: Path) -> None:
    write(tmp_path, "a.csv", day_rows("api", rows=2).assign(label=["0", "\u0661"]))
    with pytest.raises(TelemetryFormatError, match=r"'label': label is not 0 or 1.*line 3"):
        load_directory(tmp_path)


def _has_underscore_or_non_ascii_digit(text: str) -> bool:
    return "_" in text or any(char.isdigit() and not char.isascii() for char in text)


@settings(
    max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    cell=st.text(
        alphabet=st.sampled_from([*"0123456789._eE+- ", *NON_ASCII_DIGITS]), max_size=10
    ).filter(_has_underscore_or_non_ascii_digit)
)
@example(cell="1_2_0.5")
@example(cell="\u0661")
def test_any_number_text_with_an_underscore_or_non_ascii_digit_is_refused(
    scratch: Path, cell: str
) -> None:
    folder = Path(tempfile.mkdtemp(dir=scratch))
    path = one_value_file(folder, cell)
    with pytest.raises(TelemetryFormatError) as caught:
        load_directory(folder)
    assert f"{path}: column 'value'" in str(caught.value)


@settings(
    max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    value=st.floats(min_value=-1e300, max_value=1e300),  # rounding 1.79e308 overflows
    spelling=st.sampled_from(["{!r}", "{:e}", "{:E}", "{:.6g}", "{:.3f}", "{:+.2e}", " {!r} "]),
)
def test_ordinary_decimal_and_exponent_text_round_trips(
    scratch: Path, value: float, spelling: str
) -> None:
    text = spelling.format(value)
    folder = Path(tempfile.mkdtemp(dir=scratch))
    one_value_file(folder, text)
    frame = load_directory(folder)
    assert frame["value"].tolist() == [1.0, float(text)]


# -- rows outside the window --------------------------------------------------------------------


def test_a_row_dated_in_the_far_future_is_refused_not_dropped(tmp_path: Path) -> None:
    stray = pd.DataFrame(
        {
            TIMESTAMP: ["2300-01-05T00:00:00Z"],
            SERVICE: ["api"],
            "cpu_pct": [50.0],
            "latency_p50_ms": [10.0],
        }
    )
    path = write(tmp_path, "api.csv", day_rows("api"), stray)
    with pytest.raises(TelemetryFormatError) as caught:
        load_day(tmp_path)
    message = str(caught.value)
    assert f"{path}: column 'timestamp'" in message and "later than now + 1 day" in message
    assert f"line {ROWS_PER_DAY + 2}: '2300-01-05 00:00:00'" in message


def test_a_row_a_year_from_the_rest_is_refused_not_dropped(tmp_path: Path) -> None:
    epoch = pd.DataFrame(
        {
            TIMESTAMP: ["1970-01-01T00:00:00Z"],
            SERVICE: ["api"],
            "cpu_pct": [5.0],
            "latency_p50_ms": [1.0],
        }
    )
    path = write(tmp_path, "api.csv", epoch, day_rows("api"))
    with pytest.raises(TelemetryFormatError) as caught:
        load_day(tmp_path)
    message = str(caught.value)
    assert "1 row(s) more than 365 days from every other row of their service" in message
    assert "service 'api' at 1970-01-01 00:00:00" in message and str(path) in message


def test_an_outage_of_weeks_is_history_not_a_stray_row(tmp_path: Path) -> None:
    later = DAY + timedelta(days=60)
    write(tmp_path, "api.csv", day_rows("api"), day_rows("api", later, rows=1, seed=1))
    write(tmp_path, "db.csv", day_rows("db", seed=2))
    assert len(load_day(tmp_path)) == 2 * ROWS_PER_DAY


def test_a_folder_of_many_days_loads_each_day_on_its_own(tmp_path: Path) -> None:
    # The normal layout: one folder, many days (even many files), each partition its window.
    write(
        tmp_path, "all.csv", *(day_rows("api", DAY + timedelta(days=d), seed=d) for d in range(5))
    )
    write(
        tmp_path, "db.csv", *(day_rows("db", DAY + timedelta(days=d), seed=9 + d) for d in range(5))
    )
    for offset in range(5):
        frame = load_day(tmp_path, DAY + timedelta(days=offset))
        assert len(frame) == 2 * ROWS_PER_DAY


# -- coverage -----------------------------------------------------------------------------------


@pytest.mark.parametrize("rows", [1, 2, 143])
def test_a_window_with_fewer_than_half_the_expected_rows_is_refused(
    tmp_path: Path, rows: int
) -> None:
    path = write(tmp_path, "api.csv", day_rows("api"), day_rows("api", NEXT_DAY, rows=rows, seed=2))
    with pytest.raises(TelemetryFormatError) as caught:
        load_day(tmp_path, NEXT_DAY)
    message = str(caught.value)
    assert "too few rows in [2026-01-06 00:00:00, 2026-01-07 00:00:00)" in message
    assert (
        f"service 'api': {rows} row(s), expected about 288 (one every 0 days 00:05:00)" in message
    )
    assert str(path) in message


def test_half_a_window_is_enough(tmp_path: Path) -> None:
    write(tmp_path, "api.csv", day_rows("api", rows=144))
    assert len(load_day(tmp_path)) == 144


def test_a_folder_of_one_short_day_is_refused(tmp_path: Path) -> None:
    write(tmp_path, "api.csv", day_rows("api", rows=2))
    with pytest.raises(
        TelemetryFormatError, match=r"service 'api': 2 row\(s\), expected about 288"
    ):
        load_day(tmp_path)


def test_a_single_row_is_refused_whatever_its_step(tmp_path: Path) -> None:
    write(tmp_path, "api.csv", day_rows("api", rows=1))
    with pytest.raises(TelemetryFormatError, match=r"'api': 1 row\(s\) and no second row"):
        load_day(tmp_path)


def test_a_single_row_service_is_judged_by_the_other_services_step(tmp_path: Path) -> None:
    write(tmp_path, "a.csv", day_rows("api"), day_rows("db", rows=1))
    with pytest.raises(TelemetryFormatError, match=r"service 'db': 1 row\(s\), expected about 288"):
        load_day(tmp_path)


def test_an_hourly_service_is_judged_by_its_own_step(tmp_path: Path) -> None:
    hourly = day_rows("batch", rows=24).assign(
        timestamp=pd.date_range(DAY, periods=24, freq="1h").strftime("%Y-%m-%dT%H:%M:%SZ")
    )
    write(tmp_path, "a.csv", day_rows("api"), hourly)
    assert len(load_day(tmp_path)) == ROWS_PER_DAY + 24


# -- replayed window ----------------------------------------------------------------------------


def test_a_replayed_day_is_refused(tmp_path: Path) -> None:
    yesterday = day_rows("api")
    replay = yesterday.assign(
        timestamp=pd.date_range(NEXT_DAY, periods=ROWS_PER_DAY, freq="5min").strftime(
            "%Y-%m-%dT%H:%M:%SZ"
        )
    )
    write(tmp_path, "day1.csv", yesterday, day_rows("db", seed=5))
    path = write(tmp_path, "day2.csv", replay, day_rows("db", NEXT_DAY, seed=6))
    assert len(load_day(tmp_path)) == 2 * ROWS_PER_DAY  # the first day is fine
    with pytest.raises(TelemetryFormatError) as caught:
        load_day(tmp_path, NEXT_DAY)
    message = str(caught.value)
    assert "service 'api': the 288 rows of [2026-01-06 00:00:00, 2026-01-07 00:00:00)" in message
    assert "shifted by 1 days 00:00:00" in message and "replayed export" in message
    assert str(path) in message


def test_a_constant_series_is_not_a_replay(tmp_path: Path) -> None:
    flat = [
        day_rows("api", DAY + timedelta(days=d)).assign(cpu_pct=40.0, latency_p50_ms=5.0)
        for d in range(2)
    ]
    write(tmp_path, "api.csv", *flat)
    assert len(load_day(tmp_path, NEXT_DAY)) == ROWS_PER_DAY


# -- links --------------------------------------------------------------------------------------


def test_a_link_out_of_the_source_folder_is_refused(tmp_path: Path) -> None:
    elsewhere = write(tmp_path / "elsewhere", "secret.csv", day_rows("api"))
    source = tmp_path / "source"
    write(source, "own.csv", day_rows("db"))
    link = source / "link.csv"
    link.symlink_to(Path("..") / "elsewhere" / "secret.csv")
    with pytest.raises(TelemetryFormatError) as caught:
        load_directory(source)
    message = str(caught.value)
    assert f"{link}: leads to {elsewhere.resolve()}, outside the source folder" in message


def test_a_link_inside_the_folder_and_a_linked_folder_are_followed(tmp_path: Path) -> None:
    real = tmp_path / "real"
    write(real, "api.csv", day_rows("api"))
    (real / "archive").mkdir()
    write(real / "archive", "db.csv", day_rows("db"))
    (real / "db.csv").symlink_to(Path("archive") / "db.csv")
    linked = tmp_path / "linked"
    linked.symlink_to(real, target_is_directory=True)
    assert sorted(set(load_day(linked)[SERVICE])) == ["api", "db"]


def test_a_dangling_link_is_refused(tmp_path: Path) -> None:
    write(tmp_path, "api.csv", day_rows("api"))
    (tmp_path / "gone.csv").symlink_to(tmp_path / "missing.csv")
    with pytest.raises(TelemetryFormatError, match=r"gone\.csv: a link to .*missing\.csv"):
        load_directory(tmp_path)


def nab_tree(root: Path) -> Path:
    category = root / "data" / "realTest"
    category.mkdir(parents=True)
    (category / "own.csv").write_text("timestamp,value\n2014-04-10 07:00:00,1\n", encoding="utf-8")
    (root / "labels").mkdir()
    windows: dict[str, list[list[str]]] = {
        "realTest/own.csv": [],
        "realTest/link.csv": [],
        "../../outside.csv": [],
    }
    (root / "labels" / "combined_windows.json").write_text(json.dumps(windows), encoding="utf-8")
    return category


def test_nab_refuses_a_file_that_links_out_of_its_data_folder(tmp_path: Path) -> None:
    category = nab_tree(tmp_path / "nab")
    outside = tmp_path / "outside.csv"
    outside.write_text("timestamp,value\n2014-04-10 07:00:00,2\n", encoding="utf-8")
    (category / "link.csv").symlink_to(outside)
    with pytest.raises(TelemetryFormatError, match=r"link\.csv: leads to .*outside the NAB data"):
        load_nab(tmp_path / "nab")
    with pytest.raises(TelemetryFormatError, match=r"outside the NAB data folder"):
        load_nab(tmp_path / "nab", files=["../../outside.csv"])
    (category / "link.csv").unlink()
    assert load_nab(tmp_path / "nab")["value"].tolist() == [1.0]


# -- a replay through the snapshot asset ---------------------------------------------------------


def test_the_snapshot_refuses_a_replay_of_the_previous_partition_from_a_fresh_folder(
    tmp_path: Path, instance: dg.DagsterInstance
) -> None:
    # The folder only ever holds the newest day, so the loader has nothing to compare with:
    # the snapshot compares with the previous partition's stored snapshot.
    source = tmp_path / "telemetry"
    suite = tmp_path / "cpu_only.yaml"
    suite.write_text(
        "name: cpu_only\nversion: 1\nexpectations:\n  - {type: expect_column_values_to_be_between,"
        " kwargs: {column: cpu_pct, min_value: 0, max_value: 100}}\n"
    )
    settings = PipelineSettings(
        days=2,
        home=tmp_path / "aiops",
        source_kind="directory",
        source_path=str(source),
        quality_suite=str(suite),
    )
    definitions = build_definitions(settings)
    ingest = dg.AssetSelection.assets("telemetry_snapshot") - dg.AssetSelection.checks(
        *BASELINE_CHECKS
    )
    first = day_rows("api")
    write(source, "today.csv", first)
    materialize_selection(definitions, instance, selection=ingest, partition_key="2026-01-05")

    shifted = pd.date_range(NEXT_DAY, periods=ROWS_PER_DAY, freq="5min")
    write(source, "today.csv", first.assign(timestamp=shifted.strftime("%Y-%m-%dT%H:%M:%SZ")))
    with pytest.raises(dg.Failure) as caught:
        materialize_selection(definitions, instance, selection=ingest, partition_key="2026-01-06")
    message = str(caught.value)
    assert "replays telemetry_snapshot[2026-01-05]" in message
    assert "'api' (288 rows)" in message and "shifted by 1 days 00:00:00" in message
    store = ArtifactStore(settings.store_root)
    assert store.get_ref("assets/telemetry_snapshot/2026-01-06") is None

    write(source, "today.csv", day_rows("api", NEXT_DAY, seed=7))
    materialize_selection(definitions, instance, selection=ingest, partition_key="2026-01-06")
    assert store.get_ref("assets/telemetry_snapshot/2026-01-06") is not None
