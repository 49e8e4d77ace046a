"""The provider's alerts through the same sinks as the Dagster side: a drift ERROR, a promotion
and a rollback from the DAGs reach a webhook (a real HTTP server) and the journal once each; and
with a real Alertmanager a drift alert fires and resolves there while a webhook that is down gets
its copy later from the pending queue."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from aiops_assets.airflow.alerting import champion_alert, check_alert
from aiops_assets.airflow.config import ProviderConfig, close_ledgers
from aiops_assets.airflow.steps_model import candidate_step
from aiops_assets.core.alert_queue import PendingAlerts, pending_path
from aiops_assets.core.alerts import Alert, OutboxSink
from aiops_assets.core.pipeline.training import CandidateSettings
from aiops_assets.core.registry import CHAMPION, MODEL_NAME
from aiops_assets_tests.airflow.conftest import DAYS, START
from aiops_assets_tests.airflow.helpers import asset_events, dags, run
from aiops_assets_tests.alertmanager import Alertmanager, local_alertmanager
from aiops_assets_tests.sensors.webhook import local_webhook

HISTORY = [(START + timedelta(days=offset)).isoformat() for offset in range(6)]
LAST = HISTORY[-1]


@dataclass(frozen=True)
class Alerted:
    journal: list[Alert]
    received: list[dict[str, Any]]
    good_version: int
    noisy_version: int


@pytest.fixture(scope="module")
def alerted(airflow_db: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Alerted]:
    """The loop through the DAGs with ``AIOPS_ALERT_WEBHOOK`` set: a first promotion, the last
    day's ERROR drift (run twice), a forced noisy champion failing that day, its rollback."""
    home = tmp_path_factory.mktemp("airflow-alerts") / "aiops"
    with local_webhook() as hook, pytest.MonkeyPatch.context() as patch:
        patch.setenv("AIOPS_HOME", str(home))
        patch.setenv("AIOPS_START", START.isoformat())
        patch.setenv("AIOPS_DAYS", str(DAYS))
        patch.setenv("AIOPS_ALERT_WEBHOOK", hook.url)
        for name in ("AIOPS_STORE_ROOT", "AIOPS_LEDGER_URL", "AIOPS_AUDIT_WITNESS", "AIOPS_ENV"):
            patch.delenv(name, raising=False)
        the_dags = dags()
        for day in HISTORY:
            assert run(the_dags["daily"], day=day)["features"] == "success", day
        assert set(run(the_dags["train"], until=LAST).values()) == {"success"}
        for _ in range(2):  # the same drifted day twice: one page
            assert run(the_dags["daily"], day=LAST)["drift_check"] == "success"
        config = ProviderConfig.from_env()
        registry = config.ledger()
        good = registry.get_alias(MODEL_NAME, CHAMPION)
        assert good is not None
        noisy = candidate_step(
            config,
            "manual-noisy",
            CandidateSettings(n_estimators=10, max_samples=64, seed=3, alert_quantile=0.75),
        )
        version = int(noisy.facts["model_version"])
        registry.record_promotion(
            MODEL_NAME,
            version,
            champion_version=good.version,
            promoted=True,
            reason="fire drill",
            evidence={"manual": True},
            actor="local:operator",
            run_id="manual-noisy",
        )
        assert run(the_dags["daily"], day=LAST)["request_rollback"] == "success"
        reason = asset_events("rollback_request")[-1]["reason"]
        assert run(the_dags["rollback"], reason=reason)["rollback"] == "success"
        journal = OutboxSink(config.alert_outbox).read()
        received = list(hook.received)
        close_ledgers()
    yield Alerted(journal, received, good.version, version)


@pytest.mark.slow
def test_drift_promotion_and_rollback_page_once_each(alerted: Alerted) -> None:
    kinds = [(alert.kind, alert.severity) for alert in alerted.journal]
    assert kinds == [("promotion", "INFO"), ("check_failed", "ERROR"), ("rollback", "ERROR")]
    promotion, drift, rollback = alerted.journal
    assert promotion.asset == "champion_model" and "v1" in promotion.summary
    assert "promoted: all criteria passed" in promotion.summary
    assert (drift.asset, drift.check, drift.partition) == ("features", "drift", LAST)
    assert drift.summary.startswith(f"features:drift[{LAST}] failed: ERROR drift in ")
    assert drift.dedup_key == f"features:drift[{LAST}]"
    assert (
        rollback.summary.startswith(f"{MODEL_NAME} v{alerted.noisy_version}")
        and f"rolled back to {MODEL_NAME} v{alerted.good_version}" in rollback.summary
    )
    assert "anomaly_scores:performance" in rollback.summary  # the request's reason
    assert all(alert.run_id for alert in alerted.journal)
    # The webhook got the same three, in Slack's shape, in the same order.
    assert [body["kind"] for body in alerted.received] == [a.kind for a in alerted.journal]
    assert all(body["text"] and body["blocks"] for body in alerted.received)


@pytest.fixture(scope="module")
def alertmanager() -> Iterator[Alertmanager]:
    with local_alertmanager() as server:
        yield server


@pytest.mark.services
def test_alertmanager_fires_and_resolves_and_a_down_webhook_is_paid_later(
    alertmanager: Alertmanager, tmp_path: Path
) -> None:
    with local_webhook() as hook:
        config = ProviderConfig(
            home=tmp_path / "aiops",
            alert_webhook=hook.url,
            alertmanager_url=alertmanager.url,
            alert_service="payments",
        )
        selector = {"service": "payments", "asset": "features", "partition": "2026-01-10"}
        hook.failures = [503] * 10  # down through every attempt
        fired = check_alert(
            config,
            asset="features",
            check="drift",
            partition="2026-01-10",
            failing=True,
            severity="ERROR",
            summary="ERROR drift in cpu_pct__mean_1h",
        )
        assert fired == "alert"
        [active] = alertmanager.alerts(**selector)
        assert active["labels"]["alertname"] == "AiopsCheckFailed"
        assert active["labels"]["severity"] == "critical"
        assert "ERROR drift in cpu_pct__mean_1h" in active["annotations"]["summary"]
        assert hook.received == []
        [owed] = PendingAlerts(pending_path(config.alert_outbox)).items()
        assert owed.alert.kind == "check_failed" and owed.owed is not None
        assert not any("alertmanager" in target.lower() for target in owed.owed)
        # The same day judged again, still failing: no page, nothing re-sent.
        again = check_alert(
            config,
            asset="features",
            check="drift",
            partition="2026-01-10",
            failing=True,
            severity="ERROR",
            summary="ERROR drift in cpu_pct__mean_1h",
        )
        assert again is None
        hook.failures = []
        # The next alert pays the webhook its owed copy first, then goes out itself.
        assert champion_alert(
            config, "promotion", "INFO", "v2 promoted", asset="champion_model", run_id="r1"
        )
        assert [body["kind"] for body in hook.received] == ["check_failed", "promotion"]
        assert PendingAlerts(pending_path(config.alert_outbox)).items() == []
        recovered = check_alert(
            config,
            asset="features",
            check="drift",
            partition="2026-01-10",
            failing=False,
            severity="ERROR",
            summary="",
        )
        assert recovered == "recovery"
        assert alertmanager.alerts(**selector) == [], "the recovery resolved it"
        assert hook.received[-1]["kind"] == "check_recovered"


def test_a_production_home_without_a_webhook_is_refused_in_one_line(tmp_path: Path) -> None:
    from aiops_assets.airflow.config import ConfigError

    with pytest.raises(ConfigError, match="set AIOPS_ALERT_WEBHOOK or AIOPS_ALERTMANAGER_URL"):
        ProviderConfig.from_env({"AIOPS_HOME": str(tmp_path), "AIOPS_ENV": "prod"})
    paged = ProviderConfig.from_env(
        {"AIOPS_HOME": str(tmp_path), "AIOPS_ENV": "prod", "AIOPS_ALERT_WEBHOOK": "https://x.test"}
    )
    assert paged.alert_outbox == (tmp_path / "prod" / "alerts.jsonl").absolute()
