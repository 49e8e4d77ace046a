"""Per-slice baseline profiles: they round-trip, leave the overall profile alone, and a shift in
one service's rows makes exactly that slice drift."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aiops_assets.core.drift import (
    BaselineProfile,
    build_profile,
    calibrate,
    evaluate_drift,
    evaluate_slices,
    merge_profiles,
    slices_markdown,
)
from aiops_assets.core.telemetry import SERVICE

# Levels orders of magnitude apart, as real services' request rates and latencies are.
SCALES = {"checkout": (10.0, 1.0), "payments": (1_000.0, 50.0), "search": (100_000.0, 5_000.0)}
ROWS_PER_SERVICE = 400


def _day(seed: int, shifted: str | None = None, shift_sigmas: float = 0.0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frames = []
    for service, (level, spread) in SCALES.items():
        offset = shift_sigmas * spread if service == shifted else 0.0
        frames.append(
            pd.DataFrame(
                {
                    SERVICE: pd.Series([service] * ROWS_PER_SERVICE, dtype=object),
                    "latency": rng.normal(level + offset, spread, ROWS_PER_SERVICE),
                    "errors": rng.normal(level / 10, spread / 10, ROWS_PER_SERVICE),
                    "label": (rng.random(ROWS_PER_SERVICE) < 0.02).astype("int8"),
                }
            )
        )
    return pd.concat(frames, ignore_index=True).sample(frac=1.0, random_state=seed)


@pytest.fixture(scope="module")
def reference() -> tuple[BaselineProfile, list[pd.DataFrame]]:
    chunks = [_day(seed) for seed in (1, 2, 3)]
    frame = pd.concat(chunks, ignore_index=True)
    profile = build_profile(
        frame, numeric=["latency", "errors"], labels=["label"], slice_by=SERVICE
    )
    return calibrate(profile, chunks), chunks


def test_a_sliced_profile_round_trips_and_keeps_the_overall_profile_unchanged(
    reference: tuple[BaselineProfile, list[pd.DataFrame]],
) -> None:
    profile, chunks = reference
    assert profile.slice_column == SERVICE
    assert list(profile.slices) == sorted(SCALES)
    # Each slice is calibrated on its own rows, not the pooled ones.
    for service, part in profile.slices.items():
        assert part.names == profile.names
        assert part.feature("latency").count == 3 * ROWS_PER_SERVICE
        assert part.feature("latency").calibration, service
        assert part.feature("latency").std == pytest.approx(SCALES[service][1], rel=0.15)

    loaded = BaselineProfile.from_bytes(profile.to_bytes())
    assert loaded.sha256 == profile.sha256
    assert loaded.to_dict() == profile.to_dict()
    assert list(loaded.slices) == list(profile.slices)

    # The overall part is byte for byte the profile built without slices, and such a profile
    # (the only kind stored before slices existed) serializes without any slice field.
    frame = pd.concat(chunks, ignore_index=True)
    plain = calibrate(build_profile(frame, numeric=["latency", "errors"], labels=["label"]), chunks)
    assert "slices" not in plain.to_dict()
    overall_only = BaselineProfile(
        features=profile.features, psi_bins=profile.psi_bins, sketch_bins=profile.sketch_bins
    )
    assert overall_only.to_bytes() == plain.to_bytes()
    assert BaselineProfile.from_bytes(plain.to_bytes()).slices == {}


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    values=st.lists(
        st.tuples(
            st.sampled_from(["a", "b", "c", "d"]),
            st.floats(-1e6, 1e6, allow_nan=False),
            st.one_of(st.none(), st.floats(-10, 10, allow_nan=False)),
        ),
        min_size=1,
        max_size=120,
    ),
    mode=st.sampled_from(["exact", "sketch"]),
    min_slice_rows=st.integers(1, 20),
)
def test_any_sliced_profile_round_trips_through_bytes(
    values: list[tuple[str, float, float | None]], mode: str, min_slice_rows: int
) -> None:
    frame = pd.DataFrame(
        {
            "service": pd.Series([row[0] for row in values], dtype=object),
            "x": [row[1] for row in values],
            "y": [np.nan if row[2] is None else row[2] for row in values],
        }
    )
    profile = build_profile(
        frame,
        slice_by="service",
        mode=mode,  # type: ignore[arg-type]
        sketch_bins=10,
        min_slice_rows=min_slice_rows,
    )
    assert profile.names == ["x", "y"], "the slice column is not a feature"
    sizes = frame["service"].value_counts()
    assert set(profile.slices) == {str(s) for s, n in sizes.items() if n >= min_slice_rows}
    for service, part in profile.slices.items():
        assert part.feature("x").count == sizes[service]
    loaded = BaselineProfile.from_bytes(profile.to_bytes())
    assert loaded.to_bytes() == profile.to_bytes()
    assert loaded.to_dict() == profile.to_dict()


def test_a_shift_in_one_service_drifts_that_slice_only(
    reference: tuple[BaselineProfile, list[pd.DataFrame]],
) -> None:
    profile, _ = reference
    quiet = _day(10)
    shifted = _day(10, shifted="checkout", shift_sigmas=1.0)

    calm = evaluate_slices(profile, quiet)
    assert {service: result.verdict for service, result in calm.items()} == dict.fromkeys(
        sorted(SCALES), "ok"
    )

    results = evaluate_slices(profile, shifted)
    verdicts = {service: result.verdict for service, result in results.items()}
    assert verdicts == {"checkout": "error", "payments": "ok", "search": "ok"}
    assert results["checkout"].drifted == ("latency",)
    # One sigma of the quietest service is nothing against the pooled spread, which is why each
    # service needs its own reference: the overall verdict does not see it.
    assert evaluate_drift(profile, shifted).verdict == "ok"

    section = slices_markdown(results, SERVICE)
    assert "Per-service slices" in section and "1 of 3 drifted" in section
    assert "- checkout: ERROR (`latency`)" in section
    assert "payments" not in section


def test_slices_absent_from_the_partition_are_not_judged(
    reference: tuple[BaselineProfile, list[pd.DataFrame]],
) -> None:
    profile, _ = reference
    day = _day(11, shifted="payments", shift_sigmas=2.0)
    only_payments = day[day[SERVICE] == "payments"]
    results = evaluate_slices(profile, only_payments)
    assert list(results) == ["payments"] and results["payments"].verdict == "error"
    assert evaluate_slices(profile, day.drop(columns=[SERVICE])) == {}
    # Restricting the profile to some columns restricts its slices alike.
    selected = profile.select(["errors"])
    assert all(part.names == ["errors"] for part in selected.slices.values())
    assert evaluate_slices(selected, day)["payments"].verdict == "ok"


def test_merged_partition_profiles_carry_merged_slices() -> None:
    chunks = [_day(seed) for seed in (1, 2)]
    parts = [build_profile(chunk, numeric=["latency"], slice_by=SERVICE) for chunk in chunks]
    whole = build_profile(pd.concat(chunks), numeric=["latency"], slice_by=SERVICE)
    merged = merge_profiles(*parts)
    assert merged.slice_column == SERVICE and list(merged.slices) == list(whole.slices)
    for service, part in whole.slices.items():
        left, right = merged.slices[service].feature("latency"), part.feature("latency")
        assert left.values is not None and right.values is not None
        assert np.array_equal(left.values, right.values)  # the same sorted values: exact
        assert left.mean == pytest.approx(right.mean, rel=1e-12)
        assert left.m2 == pytest.approx(right.m2, rel=1e-12)
