"""`aiops registry ...`: reading the registry never creates one, a mistake is refused before
any run starts, and rows fit the terminal."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from aiops_assets.core.ledger import Ledger
from aiops_assets.core.registry import MODEL_NAME
from aiops_assets.runner import prepare_instance
from aiops_assets_tests.cli.conftest import Aiops
from aiops_assets_tests.cli.process import aiops_process as _aiops


def _ledger(home: Path) -> Ledger:
    return Ledger.from_env(f"sqlite:///{home / 'ledger.db'}", default_key_file=home / "audit.key")


@pytest.mark.slow
def test_promoting_a_version_that_does_not_exist_starts_no_run(
    aiops: Aiops, copied_home: Path
) -> None:
    with prepare_instance(copied_home / "dagster_home") as instance:
        before = instance.get_runs_count()
    code, out, err = aiops(
        "registry", "promote", "99", "--reason", "test", "--home", str(copied_home)
    )
    assert code == 2
    assert out == ""
    [line] = err.splitlines()
    assert line.startswith(f"aiops registry promote: {MODEL_NAME} has no version 99 in sqlite:///")
    assert line.endswith("; see `aiops registry list`)") and "(registered: v1" in line
    with prepare_instance(copied_home / "dagster_home") as instance:
        assert instance.get_runs_count() == before == 0, "no run left behind"
    code, _, err = aiops(
        "registry", "rollback", "--to", "7", "--reason", "x", "--home", str(copied_home)
    )
    assert code == 2 and "has no version 7" in err


def test_history_rows_fit_the_terminal_and_json_keeps_every_character(
    aiops: Aiops, copied_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    reason = "a reason a person pasted from a ticket " * 20
    ledger = _ledger(copied_home)
    ledger.set_alias(MODEL_NAME, "shadow", 1, actor="local:ana", reason=reason)
    ledger.dispose()
    monkeypatch.setenv("COLUMNS", "100")
    code, out, _ = aiops("registry", "history", "--home", str(copied_home))
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split() == ["at", "alias", "from", "to", "kind", "actor", "run", "reason"]
    assert len(lines) >= 3 and all(len(line) <= 100 for line in lines), out
    assert lines[-1].endswith("…") and "shadow" in lines[-1]
    code, out, _ = aiops("registry", "history", "--json", "--home", str(copied_home))
    assert json.loads(out)[-1]["reason"] == reason


@pytest.mark.parametrize(
    "argv",
    [
        ["audit", "verify"],
        ["audit", "verify", "--json"],
        ["registry", "list"],
        ["registry", "history"],
        ["runs", "search"],
        ["runs", "diff", "a", "b"],
        ["rollout", "status"],
        ["flags", "show"],
        ["flags", "history"],
        ["featureset", "list"],
        ["reproduce", "champion"],
    ],
)
def test_a_read_only_command_without_a_home_creates_nothing(
    aiops: Aiops, clean_env: Path, argv: list[str]
) -> None:
    code, out, err = aiops(*argv)
    assert code == 2
    assert out == ""
    command = argv[0] if argv[0] == "reproduce" else f"{argv[0]} {argv[1]}"
    assert err.startswith(f"aiops {command}: no aiops home at "), err
    assert f"no aiops home at {clean_env / '.aiops'}" in err
    assert len(err.splitlines()) == 1
    assert not (clean_env / ".aiops").exists(), "no ledger.db, no audit.key"


@pytest.mark.subprocess
def test_registry_commands_and_a_refused_promotion(tmp_path: Path) -> None:
    home = tmp_path / "h"
    assert _aiops("demo", "--days", "5", "--home", str(home), cwd=tmp_path).returncode == 0

    listing = _aiops("registry", "list", "--json", "--home", str(home), cwd=tmp_path)
    assert listing.returncode == 0, listing.stderr
    [version] = json.loads(listing.stdout)
    assert version["version"] == 1 and "champion" in version["aliases"]

    # The packaged policy gives an unknown identity the viewer role: refused, exit 3, audited.
    refused = _aiops(
        "registry", "promote", "1", "--reason", "try", "--home", str(home),
        cwd=tmp_path, env={"AIOPS_ACTOR": "intruder@example.com"},
    )  # fmt: skip
    assert refused.returncode == 3
    assert "refused: intruder@example.com (role 'viewer') may not promote" in refused.stderr
    assert "Traceback" not in refused.stderr

    # An admin may roll back, but with no earlier good champion the command says so and fails.
    rollback = _aiops(
        "registry", "rollback", "--reason", "drill", "--home", str(home), cwd=tmp_path
    )
    assert rollback.returncode == 1
    assert "no earlier champion has passing checks" in rollback.stderr

    history = _aiops("registry", "history", "--json", "--home", str(home), cwd=tmp_path)
    assert history.returncode == 0, history.stderr
    changes = json.loads(history.stdout)
    assert [(c["alias"], c["kind"], c["to"]) for c in changes] == [
        ("challenger", "assign", 1),
        ("champion", "promote", 1),
    ], "the refused promotion and the failed rollback changed nothing"

    verify = _aiops("audit", "verify", "--json", "--home", str(home), cwd=tmp_path)
    report = json.loads(verify.stdout)
    assert verify.returncode == 0 and report["ok"], report
    text = _aiops("audit", "verify", "--home", str(home), cwd=tmp_path).stdout
    assert text.startswith("audit log verified")
    ledger = Ledger.from_env(f"sqlite:///{home / 'ledger.db'}", default_key_file=home / "audit.key")
    denied = [entry for entry in ledger.audit_entries() if entry.action == "access_denied"]
    ledger.dispose()
    assert [(entry.actor, entry.details["action"]) for entry in denied] == [
        ("intruder@example.com", "promote")
    ]
