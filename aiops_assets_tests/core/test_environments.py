"""One variable picks the environment: where state lives and what may be served or promoted."""

from __future__ import annotations

from pathlib import Path

import pytest

from aiops_assets.core.environments import (
    ENVIRONMENTS,
    EnvironmentRefusal,
    current_environment,
    get_environment,
)
from aiops_assets.core.features import FeatureSetSpec
from aiops_assets.core.ledger import Ledger
from aiops_assets.core.lifecycle import register_feature_set, transition
from aiops_assets.core.policy import AccessPolicy, authorize
from aiops_assets.reference.settings import PipelineSettings

KEY = b"environments-test-key-" + b"k" * 10


def test_dev_is_the_default_and_keeps_the_old_layout(tmp_path: Path) -> None:
    home = tmp_path / "aiops"
    settings = PipelineSettings.from_env({"AIOPS_HOME": str(home)})
    assert settings.environment == "dev"
    assert settings.store_root == str((home / "store").absolute())
    assert settings.ledger_url == f"sqlite:///{(home / 'ledger.db').absolute()}"
    assert settings.dagster_home == (home / "dagster_home").absolute()
    assert settings.alert_outbox == (home / "alerts.jsonl").absolute()
    assert current_environment({}).name == "dev"


@pytest.mark.parametrize("name", ["staging", "sandbox"])
def test_other_environments_keep_their_state_apart(tmp_path: Path, name: str) -> None:
    home = tmp_path / "aiops"
    settings = PipelineSettings.from_env({"AIOPS_HOME": str(home), "AIOPS_ENV": name})
    root = (home / name).absolute()
    assert settings.store_root == str(root / "store")
    assert settings.ledger_url == f"sqlite:///{root / 'ledger.db'}"
    assert settings.dagster_home == root / "dagster_home"
    assert settings.alert_outbox == root / "alerts.jsonl"
    assert settings.audit_key_file == root / "audit.key"
    # Explicit locations still win, as in dev.
    chosen = PipelineSettings.from_env(
        {"AIOPS_HOME": str(home), "AIOPS_ENV": name, "AIOPS_LEDGER_URL": "sqlite:///x.db"}
    )
    assert chosen.ledger_url == "sqlite:///x.db"
    moved = settings.with_overrides(home=tmp_path / "elsewhere")
    assert moved.store_root == str((tmp_path / "elsewhere" / name / "store").absolute())


def test_prod_needs_a_webhook_and_unknown_names_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="prod environment sends alerts to a webhook"):
        PipelineSettings.from_env({"AIOPS_HOME": str(tmp_path), "AIOPS_ENV": "prod"})
    prod = PipelineSettings.from_env(
        {
            "AIOPS_HOME": str(tmp_path),
            "AIOPS_ENV": "prod",
            "AIOPS_ALERT_WEBHOOK": "https://hooks.example.invalid/x",
        }
    )
    assert prod.deployment.name == "prod" and not prod.deployment.allow_experimental_feature_sets
    with pytest.raises(ValueError, match="choose one of dev, staging, prod, sandbox"):
        PipelineSettings.from_env({"AIOPS_ENV": "qa"})


def test_prod_refuses_an_experimental_feature_set(tmp_path: Path) -> None:
    ledger = Ledger(f"sqlite:///{tmp_path / 'l.db'}", audit_key=KEY)
    try:
        spec = FeatureSetSpec(version=2, windows=("30min", "1h", "24h"))
        record = register_feature_set(ledger, spec, actor="local:ana")
        prod, staging = get_environment("prod"), get_environment("staging")
        with pytest.raises(EnvironmentRefusal, match="it is experimental"):
            prod.require_feature_set(record)
        staging.require_feature_set(record)
        transition(ledger, spec.version_id, "candidate", actor="local:ana", reason="ready")
        candidate = ledger.get_feature_set(spec.version_id)
        assert candidate is not None
        prod.require_feature_set(candidate)
    finally:
        ledger.dispose()


def test_the_sandbox_refuses_to_promote_a_model_and_audits_the_attempt(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ledger = Ledger(f"sqlite:///{tmp_path / 'l.db'}", audit_key=KEY)
    policy = AccessPolicy.load(environ={})
    try:
        monkeypatch.setenv("AIOPS_ENV", "sandbox")
        with pytest.raises(EnvironmentRefusal, match="sandbox environment cannot promote"):
            authorize(policy, ledger, actor="local:ana", action="promote", subject="m:champion")
        refusal = ledger.audit_entries()[-1]
        assert refusal.action == "access_denied"
        assert refusal.details["environment"] == "sandbox"
        # Rolling back is not promoting: the sandbox may still undo its own mistakes.
        authorize(policy, ledger, actor="local:ana", action="rollback", subject="m:champion")
        monkeypatch.setenv("AIOPS_ENV", "dev")
        authorize(policy, ledger, actor="local:ana", action="promote", subject="m:champion")
    finally:
        ledger.dispose()


def test_only_the_sandbox_cannot_promote() -> None:
    assert [name for name, env in ENVIRONMENTS.items() if not env.can_promote] == ["sandbox"]
