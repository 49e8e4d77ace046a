"""Drift episodes and acknowledgements in core: the fold over verdicts, and what an ack covers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from aiops_assets.core.drift import build_profile, calibrate, evaluate_drift, load_policy
from aiops_assets.core.drift.acknowledgements import (
    Acknowledgement,
    acknowledged_by,
    acknowledgements,
    record_acknowledgement,
    ref_name,
)
from aiops_assets.core.drift.episodes import EpisodeState, fold_episodes, next_episode
from aiops_assets.core.store import ArtifactStore


def _groups(verdicts: list[str], bridge: int) -> list[list[int]]:
    """The reference answer: ERROR positions grouped when at most ``bridge`` partitions apart."""
    groups: list[list[int]] = []
    for index, verdict in enumerate(verdicts):
        if verdict != "error":
            continue
        if groups and index - groups[-1][-1] - 1 <= bridge:
            groups[-1].append(index)
        else:
            groups.append([index])
    return groups


@given(
    st.lists(st.sampled_from(["ok", "warn", "error"]), max_size=40),
    st.integers(min_value=0, max_value=3),
)
def test_episodes_group_errors_bridged_by_at_most_bridge_quiet_partitions(
    verdicts: list[str], bridge: int
) -> None:
    partitions = [f"p{index:03d}" for index in range(len(verdicts))]
    states = fold_episodes(zip(partitions, verdicts, strict=True), bridge=bridge)
    groups = _groups(verdicts, bridge)
    starts = [i for i, state in enumerate(states) if state.status == "started"]
    assert starts == [group[0] for group in groups]
    ended = [state.ended_id for state in states if state.ended_id]
    opened = [states[i].episode_id for i in starts]
    assert ended == opened[: len(ended)], "every episode ends once, in order"
    assert len(opened) - len(ended) in (0, 1), "at most the last one is still open"
    for group in groups:
        last = states[group[-1]]
        assert last.length == len(group) and last.start == partitions[group[0]]
        assert all(states[i].episode_id == states[group[0]].episode_id for i in group)
    for index, verdict in enumerate(verdicts):
        assert (verdict == "error") == (states[index].status in ("started", "continues"))


def test_a_new_baseline_ends_the_open_episode_and_starts_afresh() -> None:
    open_ = next_episode(None, partition="d1", verdict="error", baseline_sha256="a" * 64)
    assert open_.episode_id == "d1@aaaaaaaa"
    absorbed = next_episode(open_, partition="d2", verdict="ok", baseline_sha256="b" * 64)
    assert absorbed.status == "ended" and absorbed.ended_id == "d1@aaaaaaaa"
    still = next_episode(open_, partition="d2", verdict="error", baseline_sha256="b" * 64)
    assert still.status == "started" and still.episode_id == "d2@bbbbbbbb"
    assert still.ended_id == "d1@aaaaaaaa", "the old episode's recovery is still owed"


def test_episode_state_round_trips_through_check_metadata() -> None:
    state = next_episode(None, partition="2026-01-08", verdict="error", baseline_sha256="c" * 64)
    assert EpisodeState.from_metadata(state.to_metadata()) == state
    assert EpisodeState.from_metadata({"verdict": "error"}) is None, "a result before episodes"
    with pytest.raises(ValueError, match="bridge"):
        next_episode(None, partition="x", verdict="ok", bridge=-1)


def _ack(**changes: object) -> Acknowledgement:
    fields: dict[str, object] = {
        "check": "features:drift",
        "partition": "2026-01-09",
        "episode_id": "2026-01-08@aaaaaaaa",
        "baseline_sha256": "a" * 64,
        "features": ("memory_pct__z_24h",),
        "reason": "known leak, fix deploying",
        "actor": "local:ops",
        "at": "2026-01-09T10:00:00+00:00",
    }
    fields.update(changes)
    return Acknowledgement(**fields)  # type: ignore[arg-type]


def test_an_acknowledgement_covers_its_episode_and_a_return_of_the_same_shift() -> None:
    ack = _ack()
    same = {"baseline_sha256": "a" * 64, "partition": "2026-01-12"}
    assert ack.covers(episode_id="2026-01-08@aaaaaaaa", drifted=[], **same)
    assert ack.covers(episode_id="2026-01-12@aaaaaaaa", drifted=["memory_pct__z_24h"], **same)
    assert not ack.covers(
        episode_id="2026-01-12@aaaaaaaa", drifted=["memory_pct__z_24h", "p99_ms"], **same
    ), "a new feature drifting pages again"
    assert not ack.covers(
        episode_id="2026-01-12@bbbbbbbb",
        drifted=["memory_pct__z_24h"],
        baseline_sha256="b" * 64,
        partition="2026-01-12",
    ), "a new baseline starts afresh"
    assert not ack.covers(
        episode_id="2026-01-05@aaaaaaaa",
        drifted=["memory_pct__z_24h"],
        baseline_sha256="a" * 64,
        partition="2026-01-05",
    ), "not backwards in time"
    assert not ack.covers(episode_id="", drifted=["memory_pct__z_24h"], **same)


def test_acknowledgements_are_kept_per_check_in_the_store(tmp_path: Path) -> None:
    store = ArtifactStore(str(tmp_path / "store"))
    assert acknowledgements(store, "features:drift") == []
    first, second = _ack(), _ack(partition="2026-01-10", reason="second look")
    record_acknowledgement(store, first)
    record_acknowledgement(store, second)
    record_acknowledgement(store, _ack(check="anomaly_scores:drift"))
    assert acknowledgements(store, "features:drift") == [first, second]
    assert ref_name("features:drift") == "drift-acks/features/drift"
    found = acknowledged_by(
        acknowledgements(store, "features:drift"),
        episode_id="2026-01-08@aaaaaaaa",
        baseline_sha256="a" * 64,
        partition="2026-01-10",
        drifted=[],
    )
    assert found == second, "the latest covering acknowledgement"


def test_a_calibrated_profile_uses_the_calibrated_error_floor() -> None:
    """The real-telemetry floor (0.75 sigma) is for references too short to calibrate; one that
    knows its own day-to-day spread keeps the version-1 floor."""
    rng = np.random.default_rng(21)
    days = [pd.DataFrame({"x": rng.normal(0.0, 1.0, 2000)}) for _ in range(3)]
    plain = build_profile(pd.concat(days))
    calibrated = calibrate(plain, days)
    shifted = pd.DataFrame({"x": rng.normal(0.4, 1.0, 2000)})  # 0.4 sigma: between the floors
    policy = load_policy()
    assert policy.kinds["numeric"].error == 0.75
    assert policy.kinds["numeric"].error_calibrated == 0.25
    on_plain = evaluate_drift(plain, shifted, policy).feature("x")
    on_calibrated = evaluate_drift(calibrated, shifted, policy).feature("x")
    assert on_plain.verdict == "warn" and on_plain.error_threshold == 0.75
    assert on_calibrated.verdict == "error" and on_calibrated.calibrated
    assert on_calibrated.error_threshold == max(0.25, on_calibrated.warn_threshold)
    with pytest.raises(ValueError, match="error_calibrated"):
        policy.replace(
            {"kinds": {"numeric": {"warn": 0.3, "error": 0.75, "error_calibrated": 0.2}}}
        )
