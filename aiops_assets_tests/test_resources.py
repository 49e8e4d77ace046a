"""Secrets reach resources by name: the UI's resource config never shows a password or a webhook."""

from __future__ import annotations

import json
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.remote_representation.external_data import (
    RepositorySnap,
    ResourceConfigEnvVarSnap,
)

from aiops_assets.reference.definitions import build_definitions
from aiops_assets.reference.settings import PipelineSettings
from aiops_assets.resources import AlertSinkResource, LedgerResource

PASSWORD = "s3cr3t-Pa55"
LEDGER_URL = f"postgresql+psycopg2://aiops:{PASSWORD}@db.internal:5432/aiops"
WEBHOOK = "https://hooks.slack.com/services/T0AIOPS/B0AIOPS/webhooktoken123"
SECRETS = (PASSWORD, WEBHOOK, "webhooktoken123", "hooks.slack.com")


def _served_definitions(monkeypatch: pytest.MonkeyPatch, home: Path) -> dg.Definitions:
    """The reference location as ``dagster dev`` builds it: settings from the environment."""
    monkeypatch.setenv("AIOPS_HOME", str(home))
    monkeypatch.setenv("AIOPS_LEDGER_URL", LEDGER_URL)
    monkeypatch.setenv("AIOPS_ALERT_WEBHOOK", WEBHOOK)
    return build_definitions(PipelineSettings.from_env())


def _ui_config(definitions: dg.Definitions) -> dict[str, dict[str, object]]:
    """Each top-level resource's configured values as the UI receives them (the repository
    snapshot the webserver serves): JSON values, or the name of an environment variable."""
    snapshot = RepositorySnap.from_def(definitions.get_repository_def(), defer_snapshots=True)
    return {
        resource.name: {
            field: (
                {"env": value.name}
                if isinstance(value, ResourceConfigEnvVarSnap)
                else json.loads(value)
            )
            for field, value in resource.configured_values.items()
        }
        for resource in snapshot.resources or ()
    }


def test_no_resource_config_shows_the_ledger_password_or_the_webhook(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    config = _ui_config(_served_definitions(monkeypatch, tmp_path / "aiops"))

    shown = json.dumps(config, sort_keys=True)
    assert config, "the reference location defines resources"
    for secret in SECRETS:
        assert secret not in shown
    assert config["ledger"]["url"] == {"env": "AIOPS_LEDGER_URL"}
    assert config["feature_flags"]["ledger_url"] == {"env": "AIOPS_LEDGER_URL"}
    assert config["alert_sink"]["webhook_url"] == {"env": "AIOPS_ALERT_WEBHOOK"}


def test_the_resource_definitions_carry_names_not_values(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    resources = _served_definitions(monkeypatch, tmp_path / "aiops").get_repository_def()

    for name, definition in resources.get_top_level_resources().items():
        schema = definition.config_schema
        shown = schema.default_value_as_json_str if schema.default_provided else ""
        for secret in SECRETS:
            assert secret not in shown, f"resource {name} shows a secret"


def test_secrets_passed_by_name_still_reach_the_resource(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIOPS_TEST_WEBHOOK", WEBHOOK)
    monkeypatch.setenv("AIOPS_TEST_LEDGER", "sqlite:///:memory:")
    captured: dict[str, str] = {}

    @dg.sensor()
    def inspects(alert_sink: AlertSinkResource, ledger: LedgerResource) -> dg.SkipReason:
        captured.update(webhook=alert_sink.webhook_url, ledger=ledger.url)
        return dg.SkipReason("inspected")

    with dg.build_sensor_context(
        resources={
            "alert_sink": AlertSinkResource(webhook_url=dg.EnvVar("AIOPS_TEST_WEBHOOK")),
            "ledger": LedgerResource(url=dg.EnvVar("AIOPS_TEST_LEDGER")),
        }
    ) as context:
        inspects(context)

    assert captured == {"webhook": WEBHOOK, "ledger": "sqlite:///:memory:"}


def test_the_embedded_defaults_need_no_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for name in ("AIOPS_LEDGER_URL", "AIOPS_ALERT_WEBHOOK"):
        monkeypatch.delenv(name, raising=False)
    settings = PipelineSettings(home=tmp_path / "aiops")

    config = _ui_config(build_definitions(settings))

    assert config["ledger"]["url"] == settings.ledger_url
    assert str(config["ledger"]["url"]).startswith("sqlite:///")
    assert config["alert_sink"]["webhook_url"] == ""


def test_a_resource_used_directly_resolves_its_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIOPS_TEST_WEBHOOK", WEBHOOK)
    sink = AlertSinkResource(webhook_url=dg.EnvVar("AIOPS_TEST_WEBHOOK"), outbox_path="unused")

    assert "hooks.slack.com" in sink.get_sink().describe()


def test_alertmanager_urls_fan_out_with_the_webhook_and_go_by_name(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    managers = "http://ops:s3cr3t@am-1.example:9093, http://am-2.example:9093"
    monkeypatch.setenv("AIOPS_ALERTMANAGER_URL", managers)
    monkeypatch.setenv("AIOPS_ALERT_WEBHOOK", WEBHOOK)
    monkeypatch.setenv("AIOPS_ALERT_SERVICE", "checkout")
    settings = PipelineSettings.from_env().with_overrides(home=tmp_path / "aiops")
    config = _ui_config(build_definitions(settings))
    assert "s3cr3t" not in json.dumps(config, default=str)
    assert config["alert_sink"]["service"] == "checkout"

    sink = AlertSinkResource(
        webhook_url=dg.EnvVar("AIOPS_ALERT_WEBHOOK"),
        alertmanager_urls=dg.EnvVar("AIOPS_ALERTMANAGER_URL"),
        outbox_path=str(tmp_path / "alerts.jsonl"),
    ).get_sink()
    assert sink.describe().count("alertmanager http://am-") == 2
    assert "s3cr3t" not in sink.describe() and "hooks.slack.com" in sink.describe()
    assert len(getattr(sink, "targets", ())) == 3


def test_prod_accepts_alertmanager_as_its_pager(tmp_path: Path) -> None:
    settings = PipelineSettings(
        home=tmp_path, environment="prod", alertmanager_url="http://am.example:9093"
    )
    assert settings.with_overrides(home=tmp_path / "other").alertmanager_url
    with pytest.raises(ValueError, match="AIOPS_ALERTMANAGER_URL"):
        PipelineSettings(home=tmp_path, environment="prod")


def test_a_sql_source_url_with_its_password_goes_by_name(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    mapping = tmp_path / "sql.yaml"
    mapping.write_text("table: metrics\nmetrics: {cpu_pct: cpu}\n")
    monkeypatch.setenv("AIOPS_SOURCE_KIND", "sql")
    monkeypatch.setenv("AIOPS_SOURCE_URL", LEDGER_URL)
    monkeypatch.setenv("AIOPS_SOURCE_MAPPING", str(mapping))
    definitions = _served_definitions(monkeypatch, tmp_path / "aiops")
    config = _ui_config(definitions)

    assert PASSWORD not in json.dumps(config, sort_keys=True)
    assert config["telemetry_source"]["url"] == {"env": "AIOPS_SOURCE_URL"}
    assert config["telemetry_source"]["kind"] == "sql"
