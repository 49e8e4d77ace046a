"""`aiops incident -m <host module>` on the foreign project's own model ranks a planted cause first.

The project is ``slo_ops`` of ``test_foreign_model.py`` (its gradient-boosting SLO-breach
classifier, built with ``build_model_lifecycle``), run on a SQLite instance in its own home the
way its daemon would run it. After the champion passed six served days, checkout's collector
starts reporting ``error_rate`` in percent (x100) on 2025-03-13, and the same day someone retrains
on corrupted labels (a decoy: the gate keeps the champion). The performance check fails that day;
`aiops incident` reads the location's own change log and check history, characterizes the host's
own served rows, replays the suspects with the host's own model, and must put checkout's unit
change first, with replay evidence. Everything goes through the CLI, as the person on call runs it.
"""

from __future__ import annotations

import importlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from aiops_assets.cli import main
from aiops_assets.resources import close_ledgers
from aiops_assets_tests.test_foreign_model import MODEL, PACKAGE, Host, slo_project

__all__ = ["slo_project"]  # the project fixture, shared with the lifecycle tests

GOOD_DAYS = [f"2025-03-{day:02d}" for day in range(7, 13)]
BAD_DAY = "2025-03-13"
PLANTED = "checkout"


@pytest.fixture
def host_instance(slo_project: Path) -> Iterator[dg.DagsterInstance]:
    """The project's own SQLite instance, under the home its resources use."""
    dagster_home = slo_project / ".aiops" / "dagster_home"
    dagster_home.mkdir(parents=True)
    (dagster_home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
        yield instance


def _incident(
    root: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *args: str
) -> tuple[int, str, str]:
    """``aiops incident`` on the project, in its folder, with nothing of the developer's."""
    for name in list(os.environ):
        if name.startswith(("AIOPS_", "DAGSTER_")):
            monkeypatch.delenv(name)
    monkeypatch.chdir(root)
    capsys.readouterr()
    code = main(["incident", "-m", f"{PACKAGE}.definitions", "-d", str(root),
                 "--home", str(root / ".aiops"), *args])  # fmt: skip
    close_ledgers()
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _served(host: Host, day: str, **config: Any) -> bool:
    host.materialize(
        [dg.AssetKey("service_metrics")],
        partition=day,
        config={"service_metrics": {"config": config}},
    )
    result = host.materialize([dg.AssetKey(f"{MODEL}_scores")], partition=day)
    (evaluation,) = result.get_asset_check_evaluations()
    return bool(evaluation.passed)


def test_aiops_incident_on_the_host_module_ranks_the_planted_unit_change_first(
    slo_project: Path,
    host_instance: dg.DagsterInstance,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    defs = importlib.import_module(f"{PACKAGE}.definitions").defs
    host = Host(defs, host_instance, slo_project / ".aiops")
    assert host.train()["champion"]["decision"] == "promoted"
    assert [_served(host, day) for day in GOOD_DAYS] == [True] * len(GOOD_DAYS)

    # Nothing failed yet: the command says so.
    code, _, err = _incident(slo_project, monkeypatch, capsys)
    assert code == 0, err
    assert f"no failed performance check of {MODEL}" in err

    # The decoy: a retrain on corrupted labels, refused by the gate, on the failing day.
    assert host.train(corrupt=True)["champion"]["decision"] == "kept"
    # The cause: checkout's collector reports error_rate in percent from the failing day on.
    assert not _served(host, BAD_DAY, percent_error_services=[PLANTED])

    code, out, err = _incident(slo_project, monkeypatch, capsys, "--json")
    assert code == 0, err
    report = json.loads(out)
    assert report["model"] == MODEL
    assert report["window"]["first_bad"]["partition"] == BAD_DAY
    assert report["window"]["last_good"]["partition"] == GOOD_DAYS[-1]
    top = report["suspects"][0]
    change = top["change"]
    assert (change["kind"], change["subject"], change["partition"]) == (
        "data",
        "service_metrics",
        BAD_DAY,
    ), [s["change"]["summary"] for s in report["suspects"][:5]]
    assert change["details"]["service"] == PLANTED
    assert "error_rate" in change["features"] or "error_rate" in change["summary"]
    # The evidence is the host model's own replay: checkout's rows from a good day pass again.
    assert top["evidence_source"] == "replay", top
    (replay,) = [
        r
        for r in report["replays"]
        if r["change"].startswith(f"data|service_metrics|{BAD_DAY}|{PLANTED}|")
    ]
    assert replay["error"] is None and replay["passed"] is True and replay["effect"] > 0.5
    assert replay["observed"] < replay["replayed"], replay
    # The decoy is ranked, below the cause, and what cannot be replayed on a host says so.
    subjects = [s["change"]["subject"] for s in report["suspects"]]
    assert "training_set" in subjects[1:], subjects

    # The markdown answer's likely-cause line names it, with what to do.
    code, out, err = _incident(slo_project, monkeypatch, capsys, "--no-cache")
    assert code == 0, err
    (cause,) = [line for line in out.splitlines() if "Likely cause:" in line]
    assert PLANTED in cause and "service_metrics" in cause and "fix the feed" in cause, cause
