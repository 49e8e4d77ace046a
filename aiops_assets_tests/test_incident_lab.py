"""The incident lab's draws and planted faults, without serving anything.

The benchmark's figures are only as good as what it plants: a decoy that could be taken for the
cause would make a correct diagnosis count as a miss, and a fault that breaks the telemetry
contract would be a quality failure, not an incident.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aiops_assets.core.telemetry import LABEL, SERVICE
from aiops_assets_tests.incident_lab import FAMILIES, Fault, IncidentSpec, Predicate, draw_incident
from aiops_assets_tests.incident_lab.families import cause_services
from aiops_assets_tests.incident_lab.faults import apply_data_faults, snapshot_config
from aiops_assets_tests.incident_lab.pipeline import base_day, label_counts
from aiops_assets_tests.incident_lab.spec import DAYS, FIRST_INCIDENT_DAY, first_rank, partition

BASE_SEED = 1101
seeds = st.integers(min_value=0, max_value=10**6)
attempts = st.integers(min_value=0, max_value=4)
families = st.sampled_from(sorted(FAMILIES))


def _draw(family: str, seed: int, attempt: int) -> IncidentSpec:
    return draw_incident(family, seed, BASE_SEED, attempt, label_counts(BASE_SEED))


def _overlap(a: Predicate, b: Predicate) -> bool:
    if (a.kind, a.subject) != (b.kind, b.subject):
        return False
    if a.partitions is None or b.partitions is None:
        return True
    return bool(set(a.partitions) & set(b.partitions))


@settings(max_examples=60, deadline=None)
@given(family=families, seed=seeds, attempt=attempts)
def test_a_draw_is_seeded_and_no_decoy_can_be_taken_for_the_cause(
    family: str, seed: int, attempt: int
) -> None:
    spec = _draw(family, seed, attempt)
    assert spec == _draw(family, seed, attempt)
    assert IncidentSpec.from_dict(spec.to_dict()) == spec
    assert FIRST_INCIDENT_DAY <= spec.cause.day <= spec.last_day < DAYS
    assert spec.cause.predicates, "every cause says how a report names it"
    assert len(spec.decoys) <= 2
    for decoy in spec.decoys:
        assert FIRST_INCIDENT_DAY <= decoy.day <= spec.last_day
        assert not any(
            _overlap(mine, theirs) for mine in decoy.predicates for theirs in spec.cause.predicates
        ), (decoy, spec.cause)
        if decoy.kind == "unrelated_change":
            assert decoy.params["service"] not in cause_services(spec.cause)


def test_the_draws_vary_service_magnitude_day_and_decoys() -> None:
    drawn = [_draw("unit_change", seed, 0) for seed in range(40)]
    assert len({spec.cause.params["service"] for spec in drawn}) >= 4
    assert len({spec.cause.params["release"] for spec in drawn}) == 3
    assert len({spec.cause.params["at_hour"] for spec in drawn}) >= 30
    assert {spec.cause.day for spec in drawn} == {FIRST_INCIDENT_DAY, FIRST_INCIDENT_DAY + 1}
    assert {len(spec.decoys) for spec in drawn} == {0, 1, 2}


def _contract_holds(frame: pd.DataFrame) -> None:
    both = frame[["latency_p50_ms", "latency_p99_ms"]].dropna()
    assert (both["latency_p50_ms"] <= both["latency_p99_ms"]).all()
    rates = frame[["error_rate", "request_rate"]].dropna()
    assert (rates["error_rate"] <= rates["request_rate"]).all()
    for column in ("cpu_pct", "memory_pct"):
        assert frame[column].dropna().between(0.0, 100.0).all()
    assert frame["latency_p99_ms"].dropna().max() <= 600_000.0


DATA_FAMILIES = ["unit_change", "spikes", "gradual", "nulls", "missing_service", "label_break"]


@settings(max_examples=12, deadline=None)
@given(family=st.sampled_from(DATA_FAMILIES), seed=seeds)
def test_a_planted_data_fault_changes_its_service_and_keeps_the_contract(
    family: str, seed: int
) -> None:
    spec = _draw(family, seed, 0)
    day = spec.last_day
    clean = base_day(BASE_SEED, day)
    faulty = apply_data_faults(clean, day, spec.faults, spec.seed)
    _contract_holds(faulty)
    params = spec.cause.params
    services = list(params.get("services") or [params.get("service")])
    mine = faulty[SERVICE].isin(services).to_numpy()
    was_mine = clean[SERVICE].isin(services).to_numpy()
    if family == "missing_service":
        assert not mine.any() and len(faulty) == len(clean) - was_mine.sum()
    elif family == "label_break":
        assert int(faulty[LABEL].sum()) == 0
    elif family == "nulls":
        for service in services:
            rows = faulty[faulty[SERVICE] == service]
            for column in params["columns"]:
                assert rows[column].isna().mean() >= params["fraction"] - 0.02
    elif family == "unit_change":
        assert day > spec.cause.day, "the day after the release: every collector updated"
        for column, factor in params["factors"].items():
            after, before = faulty.loc[mine, column], clean.loc[mine, column]
            # Only the contract's ceiling (a p99 of 600 s) may cut a scaled value.
            kept = (after < 600_000.0).to_numpy()
            ratio = (after[kept] / before[kept]).dropna()
            assert len(ratio) > 0.9 * mine.sum() and np.allclose(ratio, factor)
    else:  # spikes, gradual: the service's values only grow
        for column in params["columns"]:
            grown = faulty.loc[mine, column].fillna(0) - clean.loc[mine, column].fillna(0)
            assert (grown >= -1e-9).all() and (grown > 0).any()
    touched = set(services) | {d.params.get("service") for d in spec.decoys}
    if family not in ("label_break", "missing_service"):
        untouched = ~faulty[SERVICE].isin(touched).to_numpy()
        before = clean.loc[~clean[SERVICE].isin(touched).to_numpy()]
        pd.testing.assert_frame_equal(
            faulty.loc[untouched].reset_index(drop=True), before.reset_index(drop=True)
        )


def test_config_faults_become_the_snapshot_run_config_from_their_day_on() -> None:
    wrong = Fault(
        "config_change", 8, {"service": "checkout", "factors": {"latency_p99_ms": 1000.0}}
    )
    noop = Fault("noop_config", 7, {"service": "search", "factors": {"cpu_pct": 1.0}})
    assert snapshot_config((wrong, noop), 6) == {}
    assert snapshot_config((wrong, noop), 7) == {"unit_scale": {"search": {"cpu_pct": 1.0}}}
    assert snapshot_config((wrong, noop), 8) == {
        "unit_scale": {"search": {"cpu_pct": 1.0}, "checkout": {"latency_p99_ms": 1000.0}}
    }


@pytest.mark.parametrize(
    ("details", "expected"),
    [({}, True), ({"service": "checkout"}, True), ({"service": "search"}, False)],
)
def test_a_data_predicate_checks_the_service_only_where_the_change_names_one(
    details: dict[str, str], expected: bool
) -> None:
    truth = Predicate("data", "telemetry_snapshot", (partition(7),), "checkout")
    change = {
        "kind": "data",
        "subject": "telemetry_snapshot",
        "partition": partition(7),
        "details": details,
    }
    assert truth.matches(change) is expected
    assert truth.service_checked(change) is bool(details)
    elsewhere = {**change, "partition": partition(8)}
    assert not truth.matches(elsewhere)
    assert first_rank([elsewhere, change], [truth]) == (2 if expected else None)
