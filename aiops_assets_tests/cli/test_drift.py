"""``aiops drift ack|acks``: an acknowledged shift stops paging, under the access policy, audited."""

import json
from pathlib import Path

import pytest

from aiops_assets.cli._common import ledger_of, load_settings
from aiops_assets.io import ArtifactRefIOManager
from aiops_assets.resources import ArtifactStoreResource, close_ledgers
from aiops_assets.runner import prepare_instance
from aiops_assets_tests.checks.test_drift_episodes import _baseline, _days, _tick, keys_between
from aiops_assets_tests.cli.conftest import Aiops
from aiops_assets_tests.sensors.webhook import local_webhook


def test_an_acknowledged_shift_stops_paging_and_the_act_is_audited(
    aiops: Aiops, clean_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = clean_env / "home"
    settings = load_settings(home)
    with ledger_of(settings):
        pass  # a home has a ledger (the demo makes one); acknowledging writes to it
    store = str(Path(settings.store_root))
    resources: dict[str, object] = {
        "artifact_store": ArtifactStoreResource(root=store),
        "artifact_io_manager": ArtifactRefIOManager(root=store),
    }
    instance = prepare_instance(settings.dagster_home)
    _baseline(instance, resources, ["2026-03-01", "2026-03-02", "2026-03-03"])
    with local_webhook() as hook:
        cursor = _tick(instance, hook, None)
        _days(instance, resources, keys_between("2026-03-04", "2026-03-07"))
        cursor = _tick(instance, hook, cursor)
        assert [a["kind"] for a in hook.received] == ["check_failed"]

        code, _, err = aiops("drift", "ack", "p99:drift", "--partition", "2026-03-04",
                             "--reason", "known", "--home", str(home))  # fmt: skip
        assert code == 2 and "is in no drift episode (verdict ok)" in err
        assert "Traceback" not in err
        code, _, err = aiops("drift", "ack", "p99", "--partition", "2026-03-07",
                             "--reason", "known", "--home", str(home))  # fmt: skip
        assert code == 2 and "not a check: 'p99'" in err
        monkeypatch.setenv("AIOPS_ACTOR", "intruder@example.com")
        code, _, err = aiops("drift", "ack", "p99:drift", "--partition", "2026-03-07",
                             "--reason", "known", "--home", str(home))  # fmt: skip
        assert code == 3 and "refused: intruder@example.com (role 'viewer')" in err
        monkeypatch.delenv("AIOPS_ACTOR")

        code, out, err = aiops("drift", "ack", "p99:drift", "--partition", "2026-03-07",
                               "--reason", "load test, planned", "--home", str(home),
                               "--json")  # fmt: skip
        assert code == 0, err
        ack = json.loads(out)
        assert ack["episode_id"].startswith("2026-03-06@") and ack["features"] == ["p99_ms"]
        assert ack["actor"].startswith("local:") and ack["reason"] == "load test, planned"

        # The episode ends (its recovery is owed: it was paged), then the same shift comes back:
        # covered by the acknowledgement, so no page.
        seen = _days(instance, resources, keys_between("2026-03-08", "2026-03-11"))
        _tick(instance, hook, cursor)
        assert seen["2026-03-10"]["episode_status"] == "started"
        assert seen["2026-03-10"]["episode_acknowledged"] is True
        assert "load test, planned" in str(seen["2026-03-11"]["acknowledged_by"])
        assert [a["kind"] for a in hook.received] == ["check_failed", "check_recovered"]

    close_ledgers()
    with ledger_of(settings, read_only=True) as ledger:
        entries = [e for e in ledger.audit_entries() if e.action == "acknowledge_drift"]
    assert [(e.subject, e.details["partition"]) for e in entries] == [("p99:drift", "2026-03-07")]
    code, out, _ = aiops("drift", "acks", "p99:drift", "--home", str(home))
    assert code == 0 and "load test, planned" in out and ack["episode_id"] in out
    instance.dispose()
