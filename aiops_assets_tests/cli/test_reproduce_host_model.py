"""``aiops reproduce`` on a host project's own model, as its team runs it from its project folder.

The host is ``slo_ops`` of ``test_foreign_model.py`` (a gradient-boosting SLO-breach classifier
built with the public lifecycle factory). The command reads only the host's home: the capsule says
which training to re-run, so it needs no code location option.
"""

from __future__ import annotations

import json
from pathlib import Path

import dagster as dg
import pytest

from aiops_assets_tests.cli.process import aiops_process
from aiops_assets_tests.test_foreign_model import MODEL, _load, slo_project

__all__ = ["slo_project"]  # the fixture, imported so pytest finds it here


@pytest.mark.subprocess
def test_aiops_reproduce_verifies_the_host_champion(
    slo_project: Path, instance: dg.DagsterInstance
) -> None:
    host = _load(slo_project, instance)
    assert host.train()["champion"]["decision"] == "promoted"
    home = str(host.home)

    completed = aiops_process(
        "reproduce", "champion", "--model", MODEL, "--home", home, "--json", cwd=slo_project
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    report = json.loads(completed.stdout)
    assert report["ok"] is True
    names = {item["name"] for item in report["comparisons"]}
    assert {"training_set sha256", "model sha256", "metric f1"} <= names, names

    unknown = aiops_process(
        "reproduce", "champion", "--model", "no_such_model", "--home", home, cwd=slo_project
    )
    assert unknown.returncode != 0
    assert "Traceback" not in unknown.stderr
    assert len(unknown.stderr.strip().splitlines()) == 1, unknown.stderr
    assert "no_such_model" in unknown.stderr
