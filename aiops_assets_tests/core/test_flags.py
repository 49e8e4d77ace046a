"""Flags pick versions per service deterministically, validate loudly, and every change is audited."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aiops_assets.core.environments import EnvironmentRefusal, get_environment
from aiops_assets.core.features import FeatureSetSpec
from aiops_assets.core.flags import (
    DEFAULT_FLAGS_PATH,
    FlagError,
    FlagSet,
    apply_flags,
    bucket,
    changed_services,
    current_flags,
)
from aiops_assets.core.ledger import Ledger
from aiops_assets.core.lifecycle import register_feature_set, transition

KEY = b"flags-test-key-" + b"k" * 17
V1 = FeatureSetSpec()
V2 = FeatureSetSpec(version=2, windows=("30min", "1h", "24h"))
SERVICES = [f"svc-{n:04d}" for n in range(2000)]


def flags_text(percent: float = 25, services: str = "[checkout]", value: str = "") -> str:
    return f"""
version: 1
flags:
  features:
    kind: feature_set
    target: telemetry_core
    default: {V1.version_id}
    rules:
      - value: {value or V2.version_id}
        services: {services}
      - value: {value or V2.version_id}
        percent: {percent}
  detector:
    kind: model
    target: anomaly_detector
    default: champion
"""


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[Ledger]:
    ticks = iter(range(1_000_000))
    start = datetime(2026, 1, 12, 9, 0, tzinfo=UTC)
    opened = Ledger(
        f"sqlite:///{tmp_path / 'ledger.db'}",
        audit_key=KEY,
        clock=lambda: start + timedelta(minutes=next(ticks)),
    )
    register_feature_set(opened, V1, actor="local:ops", status="production")
    register_feature_set(opened, V2, actor="local:ana")
    yield opened
    opened.dispose()


@settings(max_examples=60, deadline=None)
@given(st.text(min_size=1, max_size=40), st.floats(0, 100), st.floats(0, 100))
def test_raising_a_percentage_only_adds_services(service: str, low: float, high: float) -> None:
    low, high = sorted((low, high))
    place = bucket("features", service)
    assert 0 <= place < 100
    assert place == bucket("features", service)
    assert not (place < low) or place < high


def test_a_percentage_selects_about_that_share_and_lists_win() -> None:
    flags = FlagSet.parse(flags_text(percent=25))
    chosen = flags.assignments("feature_set", "telemetry_core", SERVICES)
    share = sum(value == V2.version_id for value in chosen.values()) / len(SERVICES)
    assert 0.22 < share < 0.28
    assert flags.resolve("feature_set", "telemetry_core", "checkout") == V2.version_id
    # Deterministic by name: the same services every time, in any process.
    again = FlagSet.parse(flags_text(percent=25)).assignments(
        "feature_set", "telemetry_core", SERVICES
    )
    assert again == chosen
    wider = FlagSet.parse(flags_text(percent=50))
    moved = changed_services(flags, wider, SERVICES)["features"]
    assert all(old == V1.version_id and new == V2.version_id for old, new in moved.values())


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("version: 2\nflags: {}", "`version` must be 1"),
        (
            "version: 1\nflags: {f: {kind: deploy, target: t, default: d}}",
            "flag 'f': `kind` must be one of feature_set, model",
        ),
        (
            "version: 1\nflags: {f: {kind: model, target: t, default: d, "
            "rules: [{value: v2, percent: 120}]}}",
            "flag 'f' rule #1: `percent` must be between 0 and 100",
        ),
        (
            "version: 1\nflags: {f: {kind: model, target: t, default: d, rules: [{value: v2}]}}",
            "selects no service",
        ),
        (
            "version: 1\nflags: {a: {kind: model, target: t, default: d}, "
            "b: {kind: model, target: t, default: e}}",
            "'a' and 'b' both select the model of 't'",
        ),
    ],
)
def test_bad_flags_are_refused_with_the_place(text: str, message: str) -> None:
    with pytest.raises(FlagError, match=message.replace("(", r"\(")):
        FlagSet.parse(text)


def test_the_packaged_default_parses_and_names_the_reference_feature_set() -> None:
    flags = FlagSet.load(DEFAULT_FLAGS_PATH)
    assert flags.resolve("feature_set", "telemetry_core", "checkout") == V1.version_id
    assert flags.resolve("model", "anomaly_detector", "checkout") == "champion"


def test_every_flag_change_is_versioned_and_audited(ledger: Ledger) -> None:
    dev = get_environment("dev")
    assert current_flags(ledger).sha256 == FlagSet.load(DEFAULT_FLAGS_PATH).sha256
    first, lines = apply_flags(
        ledger, flags_text(10), actor="local:ana", reason="canary v2", environment=dev
    )
    assert first.version == 1
    assert lines == [
        f"features (feature_set telemetry_core): default {V1.version_id} -> "
        f"features (feature_set telemetry_core): default {V1.version_id}; "
        f"{V2.version_id} for checkout; {V2.version_id} for 10% of services"
    ]
    second, lines = apply_flags(
        ledger, flags_text(50), actor="local:ana", reason="widen", environment=dev
    )
    assert second.version == 2
    assert lines == [
        f"features (feature_set telemetry_core): default {V1.version_id}; "
        f"{V2.version_id} for checkout; {V2.version_id} for 10% of services -> "
        f"features (feature_set telemetry_core): default {V1.version_id}; "
        f"{V2.version_id} for checkout; {V2.version_id} for 50% of services"
    ]
    same, lines = apply_flags(
        ledger, flags_text(50), actor="local:bob", reason="again", environment=dev
    )
    assert (same.version, lines) == (2, [])
    entries = [entry for entry in ledger.audit_entries() if entry.action == "flags_change"]
    assert [entry.details["version"] for entry in entries] == [1, 2]
    assert entries[1].details["previous_sha256"] == first.sha256
    assert current_flags(ledger).text == flags_text(50)
    assert ledger.verify_audit().ok
    with pytest.raises(FlagError, match="needs a reason"):
        apply_flags(ledger, flags_text(60), actor="local:ana", reason=" ", environment=dev)


def test_prod_refuses_flags_that_would_serve_an_experimental_set(ledger: Ledger) -> None:
    prod = get_environment("prod")
    with pytest.raises(EnvironmentRefusal, match=f"refuses feature set {V2.version_id}"):
        apply_flags(ledger, flags_text(10), actor="local:ana", reason="canary", environment=prod)
    assert ledger.latest_flags() is None
    transition(ledger, V2.version_id, "candidate", actor="local:ana", reason="ready for canary")
    version, _ = apply_flags(
        ledger, flags_text(10), actor="local:ana", reason="canary", environment=prod
    )
    assert version.version == 1


def test_prod_refuses_a_model_trained_in_a_sandbox(ledger: Ledger) -> None:
    sandboxed = ledger.register_model_version(
        "anomaly_detector",
        "a" * 64,
        metrics={"f1": 0.9},
        training_set_version="t",
        feature_set_version=V1.version_id,
        actor="local:ana",
        tags={"origin": "sandbox"},
    )
    text = f"""
version: 1
flags:
  detector:
    kind: model
    target: anomaly_detector
    default: champion
    rules: [{{value: v{sandboxed.version}, services: [checkout]}}]
"""
    with pytest.raises(EnvironmentRefusal, match="trained in a sandbox"):
        apply_flags(
            ledger, text, actor="local:ana", reason="x", environment=get_environment("prod")
        )
    version, _ = apply_flags(
        ledger, text, actor="local:ana", reason="x", environment=get_environment("dev")
    )
    assert version.version == 1
