"""Keys apart from data (issue 19, point 3): the audit key comes from a secret or a key folder
outside the home, verify never makes one, keys have ids and rotate, the ledger is private."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import sqlite3
import stat
import sys
from pathlib import Path

import pytest

from aiops_assets.cli import main
from aiops_assets.core.ledger import Ledger, LedgerError
from aiops_assets.core.ledger.keys import key_id_of
from aiops_assets.reference.settings import PipelineSettings
from aiops_assets.resources import LedgerResource, close_ledgers


@pytest.fixture
def keys(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The key folder, outside the home; no key of the developer's environment leaks in."""
    for name in list(os.environ):
        if name.startswith(("AIOPS_", "DAGSTER_")):
            monkeypatch.delenv(name)
    folder = tmp_path / "config" / "aiops" / "keys"
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.chdir(tmp_path)
    return folder


@pytest.fixture
def home(tmp_path: Path) -> PipelineSettings:
    return PipelineSettings(home=tmp_path / "aiops")


def _open(settings: PipelineSettings, *, create_key: bool = True) -> Ledger:
    return Ledger.from_env(
        settings.ledger_url, default_key_file=settings.audit_key_file, create_key=create_key
    )


def _write(settings: PipelineSettings, note: str) -> None:
    ledger = _open(settings)
    try:
        ledger.audit("note", actor="a", subject=note)
    finally:
        ledger.dispose()


def _aiops(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    close_ledgers()
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_new_ledger_keeps_its_key_outside_the_home_private(
    keys: Path, home: PipelineSettings
) -> None:
    os.umask(0o022)
    _write(home, "first")
    key_files = list(keys.glob("audit-*.key"))
    assert len(key_files) == 1
    assert not home.audit_key_file.exists()
    assert not list(home.root.rglob("*.key")), "no key anywhere in the home"
    assert _mode(key_files[0]) == 0o600 and _mode(keys) == 0o700
    secret = key_files[0].read_bytes().strip()
    assert key_files[0].name == f"audit-{key_id_of(secret)}.key"
    ledger = _open(home)
    assert ledger.key_id == key_id_of(secret)
    assert ledger.audit_entries()[-1].subject == "first" and ledger.verify_audit().ok
    ledger.dispose()


def test_the_sqlite_ledger_and_the_store_are_created_private(
    keys: Path, home: PipelineSettings
) -> None:
    del keys
    previous = os.umask(0o022)
    try:
        _write(home, "first")
        from aiops_assets.core.store import ArtifactStore

        ArtifactStore(home.store_root)
    finally:
        os.umask(previous)
    database = Path(home.ledger_url.removeprefix("sqlite:///"))
    assert _mode(database) == 0o600
    assert _mode(database.parent) == 0o700
    assert _mode(Path(home.store_root)) == 0o700


def test_verify_on_a_home_whose_key_was_deleted_fails_in_one_line_and_makes_none(
    keys: Path, home: PipelineSettings, capsys: pytest.CaptureFixture[str]
) -> None:
    _write(home, "first")
    for key_file in keys.glob("audit-*.key"):
        key_file.unlink()
    code, out, err = _aiops(capsys, "audit", "verify", "--home", str(home.home))
    assert code != 0 and out == ""
    message = err.strip()
    assert len(message.splitlines()) == 1 and "Traceback" not in err
    assert "that signed this ledger" in message and str(keys) in message
    assert "none was created" in message
    assert not list(keys.glob("audit-*.key")), "verify made no key"
    assert not home.audit_key_file.exists()
    # A writer does not silently start a new key for a ledger whose key is gone either.
    with pytest.raises(LedgerError, match="that signed this ledger"):
        _open(home)


def test_a_new_ledger_opened_but_never_written_leaves_no_key(
    keys: Path, home: PipelineSettings
) -> None:
    for _ in range(3):
        _open(home).dispose()
    assert not keys.exists() or not list(keys.iterdir())


def test_read_only_opening_of_a_new_ledger_makes_no_key(keys: Path, home: PipelineSettings) -> None:
    with pytest.raises(LedgerError, match="no audit key: looked in"):
        _open(home, create_key=False)
    assert not keys.exists() or not list(keys.iterdir())


def test_entries_before_and_after_a_rotation_verify_and_an_old_key_gone_is_named(
    keys: Path, home: PipelineSettings, capsys: pytest.CaptureFixture[str]
) -> None:
    _write(home, "before")
    (old_file,) = keys.glob("audit-*.key")
    code, out, err = _aiops(capsys, "audit", "rotate-key", "--json", "--home", str(home.home))
    assert code == 0, err
    rotation = json.loads(out)
    assert old_file.name == f"audit-{rotation['from_key_id']}.key"
    assert (keys / f"audit-{rotation['to_key_id']}.key").is_file()
    _write(home, "after")

    ledger = _open(home)
    assert ledger.key_id == rotation["to_key_id"]
    entries = ledger.audit_entries()
    assert [entry.action for entry in entries] == ["note", "audit_key_rotated", "note"]
    assert ledger.verify_audit().ok
    ledger.dispose()
    code, out, err = _aiops(capsys, "audit", "verify", "--json", "--home", str(home.home))
    assert code == 0 and json.loads(out)["ok"], out + err

    old_file.unlink()
    code, out, _ = _aiops(capsys, "audit", "verify", "--json", "--home", str(home.home))
    report = json.loads(out)
    assert code == 1 and not report["ok"]
    assert [(p["seq"], p["kind"]) for p in report["problems"]] == [(1, "unknown key")]
    assert f"signed with unknown key {rotation['from_key_id']}" in report["problems"][0]["message"]


def test_a_key_planted_in_the_home_does_not_vouch_for_a_re_signed_chain(
    keys: Path, home: PipelineSettings, capsys: pytest.CaptureFixture[str]
) -> None:
    """The attacker writes the home: plants an ``audit.key`` of their own, clears every entry's
    key id (as if the ledger were older than key ids) and re-signs every entry with it."""
    _write(home, "first")
    _write(home, "second")
    planted = b"attacker-secret"
    home.audit_key_file.write_bytes(planted + b"\n")
    with sqlite3.connect(home.ledger_url.removeprefix("sqlite:///")) as raw:
        for seq, digest in raw.execute("SELECT seq, entry_hash FROM audit_log").fetchall():
            mac = hmac.new(planted, digest.encode("ascii"), hashlib.sha256).hexdigest()
            raw.execute("UPDATE audit_log SET key_id = NULL, mac = ? WHERE seq = ?", (mac, seq))
    code, out, _ = _aiops(capsys, "audit", "verify", "--json", "--home", str(home.home))
    assert code == 1 and not json.loads(out)["ok"], out


def test_a_process_still_on_the_old_key_does_not_undo_a_rotation(
    keys: Path, home: PipelineSettings
) -> None:
    _write(home, "before")
    stale = _open(home)  # a long-running process, opened before the rotation
    rotating = _open(home)
    old_id, new_id = rotating.rotate_key(actor="a")
    rotating.dispose()
    stale.audit("note", actor="a", subject="signed with the old key")
    assert stale.key_id == old_id
    stale.dispose()
    reopened = _open(home)
    assert reopened.key_id == new_id and reopened.verify_audit().ok
    reopened.dispose()
    assert len(list(keys.glob("audit-*.key"))) == 2


def test_an_old_key_can_come_from_the_environment(
    keys: Path, home: PipelineSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AIOPS_AUDIT_KEY", "first-secret")
    _write(home, "before")
    monkeypatch.setenv("AIOPS_AUDIT_KEY", "second-secret")
    ledger = _open(home)
    with pytest.raises(LedgerError, match="AIOPS_AUDIT_KEY"):
        ledger.rotate_key(actor="a")  # an injected key is rotated where it is kept
    ledger.audit("note", actor="a", subject="after")
    problems = ledger.verify_audit().problems
    assert [(p.seq, p.kind) for p in problems] == [(1, "unknown key")]
    ledger.dispose()
    monkeypatch.setenv("AIOPS_AUDIT_OLD_KEYS", "unrelated,first-secret")
    ledger = _open(home)
    assert ledger.verify_audit().ok
    ledger.dispose()
    assert not keys.exists() or not list(keys.iterdir()), "an injected key writes no file"


def test_a_key_command_supplies_the_key_without_a_shell(
    keys: Path, home: PipelineSettings, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    marker = tmp_path / "not-made"
    command = f"{sys.executable} -c \"print('from-a-vault')\" ; touch {marker}"
    monkeypatch.setenv("AIOPS_AUDIT_KEY_COMMAND", command)
    _write(home, "first")
    ledger = _open(home)
    assert ledger.key_id == key_id_of(b"from-a-vault") and ledger.verify_audit().ok
    ledger.dispose()
    assert not marker.exists(), "no shell ran the rest of the line"
    monkeypatch.setenv("AIOPS_AUDIT_KEY_COMMAND", f"{sys.executable} -c 'raise SystemExit(4)'")
    with pytest.raises(LedgerError, match="exited with status 4"):
        _open(home)


def test_ledger_resource_takes_the_key_by_env_var(
    keys: Path, home: PipelineSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    import dagster as dg

    monkeypatch.setenv("TEAM_AUDIT_KEY", "resource-secret")
    resource = LedgerResource(url=home.ledger_url, audit_key=dg.EnvVar("TEAM_AUDIT_KEY"))
    try:
        ledger = resource.get_ledger()
        ledger.audit("note", actor="a", subject="s")
        assert ledger.key_id == key_id_of(b"resource-secret")
    finally:
        close_ledgers()
    assert not keys.exists() or not list(keys.iterdir())


def test_a_legacy_home_with_its_key_inside_still_verifies_with_a_warning(
    keys: Path, home: PipelineSettings, capsys: pytest.CaptureFixture[str]
) -> None:
    home.root.mkdir(parents=True)
    home.audit_key_file.write_text("legacy-secret\n")
    legacy = Ledger(home.ledger_url, audit_key=b"legacy-secret")
    legacy.audit("note", actor="a", subject="old")
    legacy.dispose()
    # As written before entries named their key.
    with sqlite3.connect(home.ledger_url.removeprefix("sqlite:///")) as raw:
        raw.execute("UPDATE audit_log SET key_id = NULL")

    code, out, err = _aiops(capsys, "audit", "verify", "--json", "--home", str(home.home))
    assert code == 0 and json.loads(out)["ok"], out + err
    assert "warning:" in err and "beside the ledger" in err and "rotate-key" in err
    assert not keys.exists() or not list(keys.iterdir()), "verify moved or made no key"

    _write(home, "still written with the home's key")
    code, out, err = _aiops(capsys, "audit", "rotate-key", "--home", str(home.home))
    assert code == 0 and f"delete {home.audit_key_file}" in out, err
    home.audit_key_file.unlink()
    code, out, err = _aiops(capsys, "audit", "verify", "--json", "--home", str(home.home))
    assert code == 0 and json.loads(out)["ok"], out + err
    assert "warning:" not in err


def test_rotating_the_key_needs_its_permission_and_a_refusal_is_audited(
    keys: Path,
    home: PipelineSettings,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    _write(home, "before")
    before = sorted(keys.glob("audit-*.key"))
    policy = tmp_path / "policy.yaml"
    policy.write_text(
        "version: 1\nroles:\n  admin: [rotate_key]\n  viewer: []\n"
        "members:\n  - identity: 'local:*'\n    role: viewer\n"
    )
    monkeypatch.setenv("AIOPS_ACCESS_POLICY", str(policy))
    code, _, err = _aiops(capsys, "audit", "rotate-key", "--home", str(home.home))
    assert code == 3 and "refused" in err and "rotate_key" in err, err
    assert sorted(keys.glob("audit-*.key")) == before
    ledger = _open(home)
    denied = [entry for entry in ledger.audit_entries() if entry.action == "access_denied"]
    assert denied and denied[-1].details["action"] == "rotate_key"
    ledger.dispose()
