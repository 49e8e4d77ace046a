"""``audit_verify_job``: passes on an intact chain, and on a tampered one fails and alerts."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from aiops_assets.audits import build_audit_verify_job
from aiops_assets.reference.definitions import build_resources
from aiops_assets.reference.settings import PipelineSettings
from aiops_assets.resources import close_ledgers


@pytest.fixture
def settings(tmp_path: Path) -> Iterator[PipelineSettings]:
    settings = PipelineSettings(home=tmp_path / "aiops")
    settings.root.mkdir(parents=True)
    yield settings
    close_ledgers()


def _resources(settings: PipelineSettings) -> dict[str, Any]:
    resources = build_resources(settings)
    return {name: resources[name] for name in ("ledger", "access_policy", "alert_sink")}


def _with_history(settings: PipelineSettings) -> dict[str, Any]:
    resources = _resources(settings)
    ledger = resources["ledger"].get_ledger()
    for n in (1, 2):
        ledger.register_model_version(
            "detector",
            f"{n:064x}",
            metrics={"pr_auc": 0.5},
            training_set_version=f"train-{n}",
            feature_set_version="fs1",
            actor="local:test",
        )
    ledger.set_alias("detector", "champion", 2, actor="local:test", reason="test")
    return resources


def _alerts(settings: PipelineSettings) -> list[dict[str, Any]]:
    outbox = settings.alert_outbox
    if not outbox.is_file():
        return []
    return [json.loads(line) for line in outbox.read_text().splitlines() if line.strip()]


def _run(resources: dict[str, Any], instance: dg.DagsterInstance) -> dg.ExecuteInProcessResult:
    return build_audit_verify_job().execute_in_process(
        resources=resources, instance=instance, raise_on_error=False
    )


def test_an_intact_chain_passes_without_an_alert(
    settings: PipelineSettings, instance: dg.DagsterInstance
) -> None:
    result = _run(_with_history(settings), instance)
    assert result.success
    assert _alerts(settings) == []


def test_a_tampered_chain_fails_the_run_and_alerts_naming_the_entry(
    settings: PipelineSettings, instance: dg.DagsterInstance
) -> None:
    resources = _with_history(settings)
    close_ledgers()  # the attacker edits the file, outside any open engine
    database = settings.ledger_url.removeprefix("sqlite:///")
    with sqlite3.connect(database) as connection:
        connection.execute("UPDATE audit_log SET details = '{\"forged\": true}' WHERE seq = 2")
    result = _run(resources, instance)
    assert not result.success
    failure = result.get_step_failure_events()[0].step_failure_data.error
    assert failure is not None and "seq 2" in failure.message
    alerts = _alerts(settings)
    assert [alert["kind"] for alert in alerts] == ["audit_verify_failed"]
    assert alerts[0]["severity"] == "ERROR"
    assert "seq 2" in alerts[0]["summary"]
    assert alerts[0]["run_id"] == result.run_id
