"""Signed critical actions through `aiops`: a laptop promotes, exports and imports with no setup
and each entry is signed and verifies; a deployment that pins `sensor:*` to the daemon's key refuses a user who
only claims to be a sensor, audited, with nothing written."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from aiops_assets.core.ledger import Ledger
from aiops_assets.core.ledger.signatures import create_signer
from aiops_assets.core.policy import acting_identity
from aiops_assets.core.registry import MODEL_NAME
from aiops_assets_tests.cli.conftest import Aiops


def _ledger(home: Path) -> Ledger:
    return Ledger.from_env(f"sqlite:///{home / 'ledger.db'}", default_key_file=home / "audit.key")


@pytest.mark.slow
def test_a_laptop_promotion_export_and_import_are_signed_and_verify(
    aiops: Aiops, copied_home: Path
) -> None:
    code, _, err = aiops(
        "registry", "promote", "2", "--reason", "drill", "--home", str(copied_home)
    )
    assert code == 0, err
    ledger = _ledger(copied_home)
    try:
        [move] = [
            entry
            for entry in ledger.audit_entries()
            if entry.action == "set_alias" and entry.details.get("kind") == "promote"
            and entry.details.get("to_version") == 2
        ]  # fmt: skip
    finally:
        ledger.dispose()
    assert move.details["signature"]["signer"] == acting_identity({}, {})
    bundle = copied_home.parent / "champion.tar.gz"
    code, _, err = aiops("capsule", "export", "champion", str(bundle), "--home", str(copied_home))
    assert code == 0, err
    fresh = copied_home.parent / "fresh"
    code, _, err = aiops("capsule", "import", str(bundle), "--home", str(fresh))
    assert code == 0, err
    # The shared trained home may hold another test's export already: only this one's counts.
    for home, action, since in ((copied_home, "export", move.seq), (fresh, "import", 0)):
        ledger = _ledger(home)
        try:
            [entry] = [e for e in ledger.audit_entries() if e.action == action and e.seq > since]
        finally:
            ledger.dispose()
        assert entry.details["signature"]["signer"] == acting_identity({}, {}), action
        code, out, _ = aiops("audit", "verify", "--json", "--home", str(home))
        report = json.loads(out)
        assert code == 0 and report["ok"] and report["problems"] == [], report


def test_a_claimed_sensor_identity_without_the_daemon_key_is_refused(
    aiops: Aiops, copied_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    daemon = create_signer(tmp_path / "daemon-host" / "daemon.ed25519", "daemon")
    policy = tmp_path / "policy.yaml"
    policy.write_text(
        "roles: {admin: [promote, rollback], automation: [promote, rollback]}\n"
        "members:\n"
        f'  - {{identity: "sensor:*", role: automation, public_keys: ["{daemon.public_key}"]}}\n'
        '  - {identity: "local:*", role: admin}\n',
        encoding="utf-8",
    )
    monkeypatch.setenv("AIOPS_ACCESS_POLICY", str(policy))
    monkeypatch.setenv("AIOPS_ACTOR", "sensor:retrain_on_drift")
    # This user's machine holds no daemon key (whatever earlier tests left in the key folder).
    monkeypatch.setenv("AIOPS_DAEMON_KEY", str(tmp_path / "not-here" / "daemon.ed25519"))
    ledger = _ledger(copied_home)
    before = len(ledger.audit_entries())
    ledger.dispose()

    code, out, err = aiops("registry", "promote", "2", "--reason", "me", "--home", str(copied_home))

    assert code == 3 and out == "", err
    assert "refused: sensor:retrain_on_drift may not promote anomaly_detector:champion" in err
    assert "no private key for sensor:retrain_on_drift" in err and "Traceback" not in err
    ledger = _ledger(copied_home)
    try:
        entries = ledger.audit_entries()
        champion = ledger.get_alias(MODEL_NAME, "champion")
    finally:
        ledger.dispose()
    [denied] = entries[before:]
    assert (denied.action, denied.actor, denied.details["reason"]) == (
        "access_denied",
        "sensor:retrain_on_drift",
        "unsigned",
    )
    assert champion is not None and champion.version == 1, "nothing was written"
