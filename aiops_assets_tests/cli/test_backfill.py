"""`aiops backfill`: the daily assets for a range of days, in order, in the project's instance."""

from __future__ import annotations

import contextlib
import io
import json
import shutil
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from aiops_assets.cli import main
from aiops_assets.core.store import ArtifactStore
from aiops_assets.reference.settings import PipelineSettings
from aiops_assets.resources import close_ledgers

# Backfills over many days through the real pipeline.
pytestmark = pytest.mark.slow

# The scenario refuses the snapshot of 2026-01-11 (null injection): a range across it shows a
# quarantined day in the middle of a backfill.
QUARANTINED = "2026-01-11"


def _backfill(home: Path, first: str, last: str, *extra: str) -> tuple[int, dict[str, Any]]:
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        code = main(["backfill", "--from", first, "--to", last, "--home", str(home), *extra])
    close_ledgers()
    out_lines = buffer.getvalue().strip().splitlines()
    return code, json.loads(out_lines[-1]) if out_lines else {}


def _materialized(home: Path, asset: str) -> dict[str, dict[str, str]]:
    """Partition -> tags of its latest materialization, from the instance the UI reads."""
    with dg.DagsterInstance.from_config(str(home / "dagster_home")) as instance:
        records = instance.fetch_materializations(dg.AssetKey(asset), limit=100).records
        latest: dict[str, dict[str, str]] = {}
        for record in records:
            materialization = record.asset_materialization
            if materialization is None or materialization.partition is None:
                continue
            run = instance.get_run_by_id(record.run_id)
            latest.setdefault(materialization.partition, dict(run.tags if run else {}))
        return latest


def test_a_backfill_over_a_30_day_range_runs_each_day_in_order_past_a_quarantined_day(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("AIOPS_DAYS", "30")
    home = clean_env / "aiops"
    code, result = _backfill(home, "2026-01-10", "2026-01-12", "--json")
    assert code == 0
    assert [day["partition"] for day in result["days"]] == ["2026-01-10", QUARANTINED, "2026-01-12"]
    assert [day["status"] for day in result["days"]] == ["done", "stopped", "done"]
    assert "telemetry_snapshot.telemetry_default_error" in result["days"][1]["failed_checks"]
    assert result["assets"] == ["telemetry_snapshot", "features"], "no champion: ingest only"
    progress = capsys.readouterr().err
    # Not a terminal: a numbered line per day, its verdict under it.
    assert "[ 2/3] 2026-01-11\n        2026-01-11  stopped by a failed blocking check" in progress
    assert "scoring skipped: champion_model" in progress

    for asset in ("telemetry_snapshot", "features"):
        tags = _materialized(home, asset)
        assert sorted(tags) == ["2026-01-10", "2026-01-12"], asset
        assert all(t["aiops/backfill"] == "2026-01-10...2026-01-12" for t in tags.values())
    store = ArtifactStore(home / "store")
    for day in ("2026-01-10", "2026-01-12"):
        ref = store.require_ref(f"assets/features/{day}")
        assert store.verify(ref)
    assert store.get_ref(f"assets/features/{QUARANTINED}") is None

    # A second backfill of the same days changes nothing: same bytes, same data versions.
    before = {
        day: store.require_ref(f"assets/features/{day}") for day in ("2026-01-10", "2026-01-12")
    }
    code, again = _backfill(home, "2026-01-10", "2026-01-12", "--json")
    assert code == 0
    assert [day["status"] for day in again["days"]] == ["done", "stopped", "done"]
    assert before == {day: store.require_ref(f"assets/features/{day}") for day in before}


def test_a_range_outside_the_partitions_is_refused_with_the_variables_to_set(
    clean_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    home = clean_env / "aiops"
    code, _ = _backfill(home, "2026-01-10", "2026-02-08")
    assert code == 2
    assert "outside the daily partitions 2026-01-05..2026-01-18" in capsys.readouterr().err
    code, _ = _backfill(home, "2026-01-12", "2026-01-10")
    assert code == 2
    err = capsys.readouterr().err
    assert err == "aiops backfill: --to 2026-01-10 is before --from 2026-01-12\n"
    code, _ = _backfill(home, "2026-01-12", "January")
    assert code == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and "expected an ISO date such as 2026-01-05" in err
    assert not (home / "dagster_home").exists(), "nothing was started"


def test_with_a_champion_in_service_the_backfill_also_scores_each_day(
    clean_env: Path, trained_home: PipelineSettings
) -> None:
    home = clean_env / "aiops"
    shutil.copytree(trained_home.home, home)
    code, result = _backfill(home, "2026-01-09", "2026-01-10", "--json")
    assert code == 0
    assert result["assets"] == ["telemetry_snapshot", "features", "anomaly_scores"]
    assert [day["status"] for day in result["days"]] == ["done", "done"]
    assert sorted(_materialized(home, "anomaly_scores")) == ["2026-01-09", "2026-01-10"]
