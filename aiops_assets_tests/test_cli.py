"""The `aiops` command as a user runs it: a fresh process each time."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from aiops_assets.core.ledger import Ledger

# Seven days reach the scenario's null-injection day (2026-01-11), whose snapshot must be refused.
DAYS = "7"


def _aiops(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    environment = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("DAGSTER_", "AIOPS_"))
    } | (env or {})
    return subprocess.run(
        [sys.executable, "-m", "aiops_assets.cli", *args],
        cwd=cwd,
        env=environment,
        capture_output=True,
        text=True,
        timeout=300,
    )


def _demo_json(home: Path, cwd: Path) -> dict[str, Any]:
    completed = _aiops("demo", "--json", "--days", DAYS, "--home", str(home), cwd=cwd)
    assert completed.returncode == 0, completed.stderr
    last_line = completed.stdout.strip().splitlines()[-1]
    result: dict[str, Any] = json.loads(last_line)
    assert (
        "drift_baseline, training_set, candidate_model, champion_model, score_baseline"
        in completed.stderr
    ), "progress is shown"
    return result


def test_demo_json_is_identical_in_fresh_homes_and_on_a_rerun(tmp_path: Path) -> None:
    first = _demo_json(tmp_path / "a", cwd=tmp_path)
    second = _demo_json(tmp_path / "b", cwd=tmp_path)
    rerun = _demo_json(tmp_path / "a", cwd=tmp_path)
    assert first == second == rerun
    assert set(first) == {
        "assets",
        "checks",
        "model_sha256",
        "metrics",
        "registry",
        "alerts",
        "audit",
    }
    assert list((tmp_path / "a" / "archive").iterdir()), "the first run is kept, not deleted"
    assert first["audit"]["ok"] and first["audit"]["entries"] > 0
    assert first["registry"]["champion"] == "v1"
    assert first["registry"]["promotions"][0]["promoted"]
    assert first["assets"]["champion_model"] == first["model_sha256"]
    assert "telemetry_snapshot[2026-01-09]" in first["assets"]
    null_day = "telemetry_snapshot.telemetry_default_error[2026-01-11]"
    assert first["checks"][null_day] == {"passed": False, "severity": "ERROR"}
    assert "telemetry_snapshot[2026-01-11]" not in first["assets"]
    assert "features[2026-01-11]" not in first["assets"]
    failed = sorted(
        label
        for label, outcome in first["checks"].items()
        if not outcome["passed"] and ".drift[" not in label
    )
    assert failed == [null_day], "every other day and quality check is unaffected"
    # The scenario's slow memory drift on catalog starts on 2026-01-08; the first days are the
    # drift reference and cannot drift from themselves.
    assert first["checks"]["features.drift[2026-01-05]"]["passed"]
    assert not first["checks"]["features.drift[2026-01-08]"]["passed"]
    for day in ("2026-01-05", "2026-01-10"):
        assert first["checks"][f"features.point_in_time_correct[{day}]"]["passed"]
        assert first["checks"][f"telemetry_snapshot.telemetry_default_warn[{day}]"]["passed"]
    assert set(first["metrics"]) == {"precision", "recall", "f1", "pr_auc"}
    assert (tmp_path / "a" / "dagster_home" / "dagster.yaml").is_file()
    # Seven days have no regression: the incident command says so and succeeds.
    incident = _aiops("incident", "--home", str(tmp_path / "a"), cwd=tmp_path)
    assert incident.returncode == 0, incident.stderr
    assert "no incident" in incident.stderr


def test_demo_without_json_says_where_to_look(tmp_path: Path) -> None:
    completed = _aiops("demo", "--days", "5", "--home", str(tmp_path / "h"), cwd=tmp_path)
    assert completed.returncode == 0, completed.stderr
    assert "Champion model" in completed.stdout
    assert "make dev" in completed.stdout


def test_demo_refuses_too_few_days_with_a_clear_message(tmp_path: Path) -> None:
    completed = _aiops("demo", "--days", "2", "--home", str(tmp_path / "h"), cwd=tmp_path)
    assert completed.returncode == 2
    assert "needs more than 4 days" in completed.stderr
    assert "Traceback" not in completed.stderr


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
    ledger = Ledger(
        f"sqlite:///{home / 'ledger.db'}", audit_key=(home / "audit.key").read_bytes().strip()
    )
    denied = [entry for entry in ledger.audit_entries() if entry.action == "access_denied"]
    ledger.dispose()
    assert [(entry.actor, entry.details["action"]) for entry in denied] == [
        ("intruder@example.com", "promote")
    ]
