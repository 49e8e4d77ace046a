"""Level, spread, rows and labels of a partition against a baseline profile (core, no Dagster)."""

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aiops_assets.core.baseline_quality import (
    BaselineTolerances,
    compare_with_baseline,
    label_column_health,
    profile_quantiles,
)
from aiops_assets.core.drift import build_profile, calibrate

SERVICES = ("api", "db", "web")


def _day(seed: int, rows: int = 200, scale: dict[str, float] | None = None) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    parts = []
    for index, service in enumerate(SERVICES):
        factor = (scale or {}).get(service, 1.0)
        parts.append(
            pd.DataFrame(
                {
                    "service": [service] * rows,
                    "latency_ms": rng.lognormal(math.log(20.0 * (index + 1)), 0.3, rows) * factor,
                    "delta": rng.normal(0.0, 1.0, rows),  # centred: no ratio, spread only
                    "label": (rng.random(rows) < 0.05).astype(np.int8),
                }
            )
        )
    return pd.concat(parts, ignore_index=True)


def _profile(days: list[pd.DataFrame]):
    reference = pd.concat(days, ignore_index=True)
    profile = build_profile(
        reference, numeric=["latency_ms", "delta"], labels=["label"], slice_by="service"
    )
    return calibrate(profile, days)


REFERENCE_DAYS = [_day(seed) for seed in (1, 2, 3)]
PROFILE = _profile(REFERENCE_DAYS)


@settings(max_examples=60, deadline=None)
@given(
    values=st.lists(
        st.floats(min_value=0.01, max_value=1e6, allow_nan=False), min_size=40, max_size=120
    ),
    decades=st.floats(min_value=-4.0, max_value=4.0),
)
def test_a_scaled_copy_of_the_reference_fails_exactly_beyond_its_tolerance(
    values: list[float], decades: float
) -> None:
    reference = pd.DataFrame({"value": values})
    profile = build_profile(reference, numeric=["value"])
    factor = 10.0**decades
    tolerances = BaselineTolerances(level=2.0, spread=1e9)
    report = compare_with_baseline(
        profile, pd.DataFrame({"value": np.asarray(values) * factor}), tolerances
    )
    median = next(item for item in report.comparisons if item.statistic == "median")
    assert median.factor == pytest.approx(factor, rel=1e-9)
    if abs(abs(decades) - math.log10(2.0)) > 1e-6:  # away from the boundary itself
        assert median.failed is (abs(decades) > math.log10(2.0))
    nearest = round(decades)
    assert median.unit_change is (abs(nearest) >= 2 and abs(decades - nearest) <= 0.2)
    assert report.passed is not median.failed


def test_only_the_scaled_service_fails_and_its_words_say_how() -> None:
    report = compare_with_baseline(PROFILE, _day(9, scale={"db": 0.001}))

    assert report.failed_slices() == ["db"]
    assert report.verdict == "error"
    assert report.slice_verdicts() == {"api": "ok", "db": "error", "web": "ok"}
    words = [item.words("service") for item in report.failures]
    assert words[0].startswith("db latency_ms median x0.001 vs baseline (")
    assert words[0].endswith("(probable unit change)")
    assert any(
        item.statistic == "spread" and item.column == "latency_ms" for item in report.failures
    )
    assert all(item.column != "delta" for item in report.failures)


def test_x3_is_a_warning_not_a_unit_change() -> None:
    report = compare_with_baseline(PROFILE, _day(9, scale={"web": 3.0}))

    (failure,) = report.failures
    assert (failure.slice, failure.column, failure.statistic) == ("web", "latency_ms", "median")
    assert failure.factor == pytest.approx(3.0, rel=0.15)
    assert not failure.unit_change and report.verdict == "warn"


def test_clean_days_pass() -> None:
    for seed in range(10, 20):
        report = compare_with_baseline(PROFILE, _day(seed))
        assert report.passed, report.to_markdown()


def test_a_missing_service_and_a_short_one_fail_a_new_one_is_only_named() -> None:
    day = _day(9)
    day = day[day["service"] != "api"]
    short = day[day["service"] == "db"].iloc[:60]
    new = _day(10).assign(service="queue").iloc[:200]
    frame = pd.concat([day[day["service"] == "web"], short, new], ignore_index=True)

    report = compare_with_baseline(PROFILE, frame)

    kinds = {(item.slice, item.statistic) for item in report.failures}
    assert ("api", "presence") in kinds and ("db", "rows") in kinds
    assert report.failures[0].slice == "api"  # a missing service comes first
    rows = next(item for item in report.failures if item.statistic == "rows")
    assert rows.reference == 200 and rows.current == 60
    assert report.new_slices == ("queue",)
    assert "Not in the baseline (not judged): service=queue." in report.to_markdown()
    assert report.verdict == "error"


def test_a_profile_without_slices_judges_the_whole_partition() -> None:
    profile = build_profile(pd.concat(REFERENCE_DAYS), numeric=["latency_ms"])
    report = compare_with_baseline(profile, _day(9, scale=dict.fromkeys(SERVICES, 1000.0)))

    (median,) = [item for item in report.failures if item.statistic == "median"]
    assert median.slice == "all" and median.unit_change
    assert median.words(None).startswith("the partition latency_ms median x1000 vs baseline")


def test_sketched_quantiles_are_close_to_exact_ones() -> None:
    values = np.random.default_rng(5).lognormal(3.0, 1.0, 20_000)
    frame = pd.DataFrame({"value": values})
    exact = build_profile(frame, numeric=["value"], mode="exact").feature("value")
    sketch = build_profile(frame, numeric=["value"], mode="sketch").feature("value")
    wanted = [0.25, 0.5, 0.75]
    np.testing.assert_allclose(profile_quantiles(exact, wanted), np.quantile(values, wanted))
    np.testing.assert_allclose(
        profile_quantiles(sketch, wanted), np.quantile(values, wanted), rtol=0.01
    )


def test_bad_requests_are_refused_in_one_line() -> None:
    with pytest.raises(ValueError, match=r"profiles no numeric columns \['cpu'\]"):
        compare_with_baseline(PROFILE, _day(9), columns=["cpu"])
    with pytest.raises(ValueError, match=r"lacks the profiled columns \['delta'\]"):
        compare_with_baseline(PROFILE, _day(9).drop(columns=["delta"]))
    with pytest.raises(ValueError, match="sliced by 'service'"):
        compare_with_baseline(PROFILE, _day(9).drop(columns=["service"]))
    with pytest.raises(ValueError, match="must be a factor above 1"):
        BaselineTolerances(level=0.5)
    with pytest.raises(ValueError, match=r"columns\['latency_ms'\] must be a factor above 1"):
        BaselineTolerances(columns={"latency_ms": 1.0})


LABEL = PROFILE.feature("label")


def test_labels_constant_for_a_run_of_partitions_fail_from_the_run_length() -> None:
    quiet = _day(9).assign(label=np.int8(0))
    first = label_column_health(quiet, "label", LABEL, quiet_partitions=2, slice_column="service")
    second = label_column_health(
        quiet, "label", LABEL, previous_constant_partitions=1, quiet_partitions=2
    )

    assert first.passed and first.constant_partitions == 1
    assert first.positives_by_slice == dict.fromkeys(SERVICES, 0)
    assert not second.passed and second.verdict == "warn"
    assert second.constant_partitions == 2
    assert "every label is 0 for 2 partitions in a row" in second.problems[0]
    ended = label_column_health(_day(9), "label", LABEL, previous_constant_partitions=5)
    assert ended.passed and ended.constant_partitions == 0


def test_all_positive_missing_and_invalid_labels_fail_at_once() -> None:
    positive = label_column_health(_day(9).assign(label=np.int8(1)), "label", LABEL)
    assert not positive.passed and positive.verdict == "warn"

    broken = _day(9)
    broken["label"] = broken["label"].astype("float64")
    broken.loc[:4, "label"] = np.nan
    broken.loc[5:6, "label"] = 2.0
    health = label_column_health(broken, "label", LABEL)
    assert health.verdict == "error"
    assert (health.missing, health.invalid, health.invalid_values) == (5, 2, ("2.0",))
    assert len(health.problems) == 2


def test_constant_labels_pass_when_the_reference_never_varied() -> None:
    never = build_profile(
        _day(1).assign(label=np.int8(0)), numeric=["latency_ms"], labels=["label"]
    ).feature("label")
    quiet = _day(9).assign(label=np.int8(0))
    health = label_column_health(
        quiet, "label", never, previous_constant_partitions=10, quiet_partitions=2
    )
    assert health.passed and health.reference_rate == 0.0
