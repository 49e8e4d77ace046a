"""``rollback_on_regression`` on a real instance and ledger: only the champion's failure counts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from aiops_assets.core.registry import CHAMPION, MODEL_NAME
from aiops_assets.resources import LedgerResource, close_ledgers
from aiops_assets.sensors import build_rollback_on_regression_sensor

CHECK = dg.AssetCheckKey(dg.AssetKey("anomaly_scores"), "performance")


@pytest.fixture
def ledger_resource(tmp_path: Path) -> Any:
    resource = LedgerResource(
        url=f"sqlite:///{tmp_path / 'ledger.db'}", key_file=str(tmp_path / "audit.key")
    )
    ledger = resource.get_ledger()
    for sha in ("a" * 64, "b" * 64):
        version = ledger.register_model_version(
            MODEL_NAME,
            sha,
            metrics={"f1": 0.9},
            training_set_version="t",
            feature_set_version="f",
            actor="test",
        )
        ledger.set_alias(MODEL_NAME, CHAMPION, version.version, actor="test", reason="trained")
    yield resource
    close_ledgers()


def _run_performance_check(instance: dg.DagsterInstance, *, passed: bool, sha: str) -> None:
    @dg.asset
    def anomaly_scores() -> int:
        return 1

    @dg.asset_check(asset=anomaly_scores, name="performance")
    def performance() -> dg.AssetCheckResult:
        return dg.AssetCheckResult(
            passed=passed,
            metadata={
                "model_sha256": dg.MetadataValue.text(sha),
                "summary": dg.MetadataValue.text("false-alarm rate 0.11 > 0.03"),
            },
        )

    dg.materialize([anomaly_scores, performance], instance=instance)


def _tick(
    instance: dg.DagsterInstance, cursor: str | None, ledger_resource: LedgerResource
) -> tuple[str, list[dg.RunRequest], str | None]:
    sensor = build_rollback_on_regression_sensor(job="rollback_job", performance_checks=[CHECK])
    context = dg.build_sensor_context(
        instance=instance, cursor=cursor, resources={"ledger": ledger_resource}
    )
    data = sensor.evaluate_tick(context)
    assert data.cursor is not None
    return data.cursor, list(data.run_requests or []), data.skip_message


def test_only_a_failure_of_the_current_champion_requests_a_rollback(
    instance: dg.DagsterInstance, ledger_resource: LedgerResource
) -> None:
    cursor, requests, _ = _tick(instance, None, ledger_resource)
    assert requests == []

    _run_performance_check(instance, passed=True, sha="b" * 64)
    cursor, requests, message = _tick(instance, cursor, ledger_resource)
    assert requests == [] and message is not None and "no failed performance check" in message

    # v1 is no longer champion: its failure must not roll back v2, which never failed.
    _run_performance_check(instance, passed=False, sha="a" * 64)
    cursor, requests, message = _tick(instance, cursor, ledger_resource)
    assert requests == []
    assert message is not None and "none of the current champion v2" in message

    _run_performance_check(instance, passed=False, sha="b" * 64)
    cursor, [request], _ = _tick(instance, cursor, ledger_resource)
    assert request.run_key == f"rollback_on_regression:{MODEL_NAME}:v2"
    assert request.run_config == {
        "ops": {
            "champion_model": {
                "config": {
                    "action": "rollback",
                    "reason": "anomaly_scores:performance failed for v2: "
                    "false-alarm rate 0.11 > 0.03",
                }
            }
        }
    }
    assert request.tags["aiops/actor"] == "sensor:rollback_on_regression"
