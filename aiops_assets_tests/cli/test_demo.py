"""`aiops demo`: the whole pipeline in a fresh process (subprocess lane), and its arguments
checked in-process before anything in the home moves."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from aiops_assets_tests.cli.conftest import Aiops
from aiops_assets_tests.cli.process import aiops_process as _aiops

# Seven days reach the scenario's null-injection day (2026-01-11), whose snapshot must be refused.
DAYS = "7"


def _demo_json(home: Path, cwd: Path, *, archived: bool = False) -> dict[str, Any]:
    completed = _aiops("demo", "--json", "--days", DAYS, "--home", str(home), cwd=cwd)
    assert completed.returncode == 0, completed.stderr
    if archived:
        # Before the demo replaces the previous one it names the archive and the way back.
        assert "the previous demo is archived in " in completed.stderr
        assert "aiops demo --restore " in completed.stderr
    last_line = completed.stdout.strip().splitlines()[-1]
    result: dict[str, Any] = json.loads(last_line)
    assert (
        "drift_baseline, telemetry_baseline, training_set, candidate_model, champion_model, "
        "score_baseline" in completed.stderr
    ), "progress is shown"
    return result


@pytest.mark.subprocess
def test_demo_json_is_identical_in_fresh_homes_and_on_a_rerun(tmp_path: Path) -> None:
    first = _demo_json(tmp_path / "a", cwd=tmp_path)
    second = _demo_json(tmp_path / "b", cwd=tmp_path)
    rerun = _demo_json(tmp_path / "a", cwd=tmp_path, archived=True)
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


@pytest.mark.subprocess
def test_demo_without_json_says_where_to_look(tmp_path: Path) -> None:
    completed = _aiops("demo", "--days", "5", "--home", str(tmp_path / "h"), cwd=tmp_path)
    assert completed.returncode == 0, completed.stderr
    assert "Champion model" in completed.stdout
    assert "make dev" in completed.stdout


@pytest.mark.subprocess
def test_demo_refuses_too_few_days_with_a_clear_message(tmp_path: Path) -> None:
    completed = _aiops("demo", "--days", "2", "--home", str(tmp_path / "h"), cwd=tmp_path)
    assert completed.returncode == 2
    assert "needs more than 4 days" in completed.stderr
    assert "Traceback" not in completed.stderr


def _working_home(home: Path) -> dict[str, bytes]:
    """A home as a previous demo leaves it: a ledger, an outbox and some Dagster history."""
    files = {
        "ledger.db": b"the registry",
        "alerts.jsonl": b"{}\n",
        "dagster_home/history/runs.db": b"runs",
    }
    for name, data in files.items():
        (home / name).parent.mkdir(parents=True, exist_ok=True)
        (home / name).write_bytes(data)
    return files


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["--days", "3"], "4 days"),
        (["--days", "0"], "days must be at least 1"),
        (["--start", "next monday"], "expected an ISO date"),
        (["--seed", "x"], "'x' is not a valid integer"),
    ],
)
def test_a_bad_argument_is_one_line_and_archives_nothing(
    aiops: Aiops, clean_env: Path, argv: list[str], fragment: str
) -> None:
    home = clean_env / "h"
    files = _working_home(home)
    code, out, err = aiops("demo", *argv, "--home", str(home))
    assert code == 2
    assert out == ""
    assert len(err.strip().splitlines()) == 1, err
    assert err.startswith("aiops demo: ") and fragment in err
    assert not (home / "archive").exists(), "nothing was archived"
    assert {name: (home / name).read_bytes() for name in files} == files


def test_archives_are_listed_and_restored(aiops: Aiops, clean_env: Path) -> None:
    from aiops_assets.reference.demo import archive_previous_demo
    from aiops_assets.reference.settings import PipelineSettings

    home = clean_env / "h"
    files = _working_home(home)
    settings = PipelineSettings(home=home)
    archived = archive_previous_demo(settings, settings.dagster_home)
    assert archived is not None and not (home / "ledger.db").exists()

    code, out, _ = aiops("demo", "--list-archives", "--json", "--home", str(home))
    assert code == 0
    assert [entry["name"] for entry in json.loads(out)] == [archived.name]

    code, out, err = aiops("demo", "--restore", "--home", str(home))
    assert code == 0, err
    assert str(archived) in out
    assert (home / "ledger.db").read_bytes() == files["ledger.db"]

    code, _, err = aiops("demo", "--restore", "no-such-archive", "--home", str(home))
    assert code == 2 and len(err.strip().splitlines()) == 1, err
