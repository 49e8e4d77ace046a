"""Flags through Dagster: a change enters the change log and the incident report; assets read
them through a resource that the environment guards."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import pytest

from aiops_assets.changelog import collect_changes
from aiops_assets.core.environments import get_environment
from aiops_assets.core.features import FeatureSetSpec
from aiops_assets.core.flags import apply_flags
from aiops_assets.core.incidents import PerformancePoint, build_incident_report
from aiops_assets.core.ledger import Ledger
from aiops_assets.core.lifecycle import register_feature_set, transition
from aiops_assets.reference.definitions import build_definitions
from aiops_assets.reference.settings import PipelineSettings
from aiops_assets.resources import FeatureFlagsResource, close_ledgers

KEY = b"flags-changelog-key-" + b"k" * 12
V1 = FeatureSetSpec()
V2 = FeatureSetSpec(version=2, windows=("30min", "1h", "24h"))
# The ledger's clock: one hour per write, from here.
START = datetime(2026, 1, 12, 0, 0, tzinfo=UTC)
CANARY = f"""
version: 1
flags:
  features:
    kind: feature_set
    target: telemetry_core
    default: {V1.version_id}
    rules: [{{value: {V2.version_id}, percent: 30}}]
"""


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[Ledger]:
    ticks = iter(range(1_000_000))
    opened = Ledger(
        f"sqlite:///{tmp_path / 'ledger.db'}",
        audit_key=KEY,
        clock=lambda: START + timedelta(hours=next(ticks)),
    )
    yield opened
    opened.dispose()


def _point(hours: float, passed: bool, f1: float) -> PerformancePoint:
    at = START + timedelta(hours=hours)
    return PerformancePoint(
        partition=at.strftime("%Y-%m-%dT%H"), at=at, passed=passed, metrics={"f1": f1}
    )


def test_a_flag_change_reaches_the_incident_report(
    ledger: Ledger, instance: dg.DagsterInstance, small_settings: PipelineSettings
) -> None:
    register_feature_set(ledger, V1, actor="local:ops", status="production")  # hour 0
    register_feature_set(ledger, V2, actor="local:ana")  # hour 1
    transition(ledger, V2.version_id, "candidate", actor="local:ana", reason="canary")  # hour 2
    version, _ = apply_flags(  # hour 3
        ledger, CANARY, actor="local:ana", reason="canary 30%", environment=get_environment("dev")
    )
    changes = collect_changes(instance, ledger, build_definitions(small_settings))

    flag_changes = [change for change in changes if change.subject == "flags"]
    assert len(flag_changes) == 1
    flag_change = flag_changes[0]
    assert flag_change.kind == "config"
    assert flag_change.at == version.at == START + timedelta(hours=3)
    assert "flags - -> v1 by local:ana" in flag_change.summary
    assert f"{V2.version_id} for 30% of services" in flag_change.summary
    assert "(canary 30%)" in flag_change.summary
    statuses = [c for c in changes if c.subject == f"feature_set:{V2.version_id}"]
    assert [(c.before, c.after) for c in statuses] == [
        (None, "experimental"),
        ("experimental", "candidate"),
    ]

    performance = [_point(2.5, True, 0.9), _point(4, False, 0.4)]
    report = build_incident_report("anomaly_detector", changes, performance, [])
    assert report is not None
    assert flag_change in report.timeline
    assert flag_change in [suspect.change for suspect in report.suspects]
    assert "canary 30%" in report.markdown()


def test_assets_read_flags_through_the_resource_and_prod_refuses_experimental_sets(
    tmp_path: Path, instance: dg.DagsterInstance, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AIOPS_AUDIT_KEY", raising=False)
    key_file = tmp_path / "audit.key"
    url = f"sqlite:///{tmp_path / 'flags.db'}"
    ledger = Ledger.from_env(url, default_key_file=key_file)
    try:
        register_feature_set(ledger, V1, actor="local:ops", status="production")
        register_feature_set(ledger, V2, actor="local:ana")
        # Written straight into the ledger, around `aiops flags set` and its environment check.
        ledger.record_flags(
            CANARY.replace("percent: 30", "services: [checkout]"), actor="x", reason="r"
        )
    finally:
        ledger.dispose()

    @dg.asset
    def serving_plan(flags: FeatureFlagsResource) -> dict[str, str]:
        return {service: flags.feature_set_for(service) for service in ("checkout", "search")}

    def materialize(environment: str) -> dg.ExecuteInProcessResult:
        resource = FeatureFlagsResource(
            ledger_url=url, key_file=str(key_file), environment=environment
        )
        return dg.materialize(
            [serving_plan], resources={"flags": resource}, instance=instance, raise_on_error=False
        )

    try:
        dev = materialize("dev")
        assert dev.success
        assert dev.output_for_node("serving_plan") == {
            "checkout": V2.version_id,
            "search": V1.version_id,
        }
        prod = materialize("prod")
        assert not prod.success
        error = prod.get_step_failure_events()[0].step_failure_data.error
        assert error is not None
        assert f"refuses feature set {V2.version_id}: it is experimental" in error.to_string()
    finally:
        close_ledgers()
