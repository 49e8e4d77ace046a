"""``aiops incident`` on a home only the Airflow provider ran: no Dagster instance, the report from
the shared ledger and the provider's stored drift facts, through the command line."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from aiops_assets.airflow.config import ProviderConfig, close_ledgers
from aiops_assets.airflow.steps_model import candidate_step
from aiops_assets.cli import main
from aiops_assets.core.pipeline.incident import performance_points
from aiops_assets.core.pipeline.training import CandidateSettings
from aiops_assets.core.registry import CHAMPION, MODEL_NAME
from aiops_assets_tests.airflow.conftest import DAYS, START
from aiops_assets_tests.airflow.helpers import asset_events, dags, run
from aiops_assets_tests.cli.process import aiops_process

# A whole pipeline through Airflow before the first question: the full lane's.
pytestmark = pytest.mark.slow

HISTORY = [(START + timedelta(days=offset)).isoformat() for offset in range(6)]
LAST = HISTORY[-1]
PLANTED = "fire drill: page-happy detector forced into service"

Cli = Callable[..., tuple[int, str, str]]


@dataclass(frozen=True)
class Regressed:
    home: Path
    good_version: int
    noisy_version: int
    passed_at: datetime  # the good champion's passing check of the fifth day
    failed_at: datetime  # the noisy champion's failing check of the sixth


@pytest.fixture(scope="module")
def regressed(airflow_db: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Regressed]:
    """Six days and a champion through the DAGs, which passes its check on the fifth; then an
    operator forces a noisy model into service (the planted change) and the sixth day fails."""
    home = tmp_path_factory.mktemp("airflow-incident") / "aiops"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AIOPS_HOME", str(home))
        patch.setenv("AIOPS_START", START.isoformat())
        patch.setenv("AIOPS_DAYS", str(DAYS))
        for name in ("AIOPS_STORE_ROOT", "AIOPS_LEDGER_URL", "AIOPS_AUDIT_WITNESS", "AIOPS_ENV"):
            patch.delenv(name, raising=False)
        the_dags = dags()
        for day in HISTORY:
            assert run(the_dags["daily"], day=day)["features"] == "success", day
        assert set(run(the_dags["train"], until=LAST).values()) == {"success"}
        # The champion scores the day before the last one and passes its check there.
        assert run(the_dags["daily"], day=HISTORY[-2])["anomaly_scores"] == "success"
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
            reason=PLANTED,
            evidence={"manual": True, "gate": "skipped"},
            actor="local:operator",
            run_id="manual-noisy",
        )
        run(the_dags["daily"], day=LAST)
        performance = asset_events("anomaly_scores")[-1]["checks"]["performance"]
        assert performance["passed"] is False and performance["model_version"] == version
        checks = {
            (p.model_version, p.passed): p.at for p in performance_points(registry, MODEL_NAME)
        }
        close_ledgers()
    yield Regressed(
        home=home,
        good_version=good.version,
        noisy_version=version,
        passed_at=checks[(good.version, True)],
        failed_at=checks[(version, False)],
    )


@pytest.fixture
def cli(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> Iterator[Cli]:
    """``cli(*argv)`` -> (exit code, stdout, stderr): ``aiops`` in-process, nothing of the
    developer's ``AIOPS_*``/``DAGSTER_*`` variables leaking in."""
    for name in list(os.environ):
        if name.startswith(("AIOPS_", "DAGSTER_")):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)

    def call(*argv: str) -> tuple[int, str, str]:
        code = main(list(argv))
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    yield call


def test_aiops_incident_names_the_planted_change_on_an_airflow_home(
    regressed: Regressed, tmp_path: Path
) -> None:
    assert not (regressed.home / "dagster_home").exists()  # Airflow only: no Dagster instance
    began = time.perf_counter()
    completed = aiops_process("incident", "--home", str(regressed.home), cwd=tmp_path)
    seconds = time.perf_counter() - began
    assert completed.returncode == 0, completed.stderr
    report = completed.stdout
    assert report.startswith(f"# Incident: {MODEL_NAME}")
    # The first line for the person on call: the forced promotion, the failing day, the version.
    cause = report.splitlines()[2]
    assert PLANTED in cause, report
    assert f"by local:operator: {PLANTED}" in cause
    assert f"v{regressed.noisy_version}'s f1 went from" in cause
    assert f"({HISTORY[-2]}, v{regressed.good_version})" in cause and f"({LAST})" in cause
    assert "an Airflow provider home" in completed.stderr
    assert "Traceback" not in completed.stderr
    # Measured, and bounded loosely: a read of a ledger and a store, no pipeline run.
    print(f"aiops incident on an Airflow home: {seconds:.2f} s (fresh process)")
    assert seconds < 60


def test_aiops_incident_json_has_the_dagster_paths_shape(regressed: Regressed, cli: Cli) -> None:
    code, out, err = cli("incident", "--home", str(regressed.home), "--json")
    assert code == 0, err
    answer = json.loads(out)
    assert set(answer) >= {"model", "likely_cause", "verdict", "window", "suspects", "timeline"}
    assert answer["window"]["first_bad"]["partition"] == LAST
    assert answer["window"]["first_bad"]["model_version"] == regressed.noisy_version
    assert answer["window"]["last_good"]["model_version"] == regressed.good_version
    assert answer["window"]["last_good"]["partition"] == HISTORY[-2]
    top = answer["suspects"][0]["change"]
    assert top["kind"] == "alias" and PLANTED in top["summary"]
    assert top["after"] == regressed.noisy_version


def test_at_a_moment_before_the_failing_check_there_is_no_incident(
    regressed: Regressed, cli: Cli
) -> None:
    between = regressed.passed_at + (regressed.failed_at - regressed.passed_at) / 2
    code, out, err = cli("incident", "--home", str(regressed.home), "--at", between.isoformat())
    assert code == 0, err
    assert out == ""
    assert f"no failed performance check of {MODEL_NAME} up to {between.isoformat()}" in err
    assert "no incident" in err
    code, out, err = cli(
        "incident", "--home", str(regressed.home), "--at", regressed.failed_at.isoformat()
    )
    assert code == 0, err
    assert PLANTED in out


def test_a_png_of_the_timeline_is_written(regressed: Regressed, cli: Cli, tmp_path: Path) -> None:
    target = tmp_path / "incident.png"
    code, _, err = cli("incident", "--home", str(regressed.home), "--png", str(target))
    assert code == 0, err
    assert target.read_bytes().startswith(b"\x89PNG")


def test_nothing_to_diagnose_is_one_line(regressed: Regressed, cli: Cli, tmp_path: Path) -> None:
    code, out, err = cli("incident", "--home", str(regressed.home), "--model", "no_such_model")
    assert code == 2 and out == ""
    assert err.count("\n") == 1, err
    assert "has no version of no_such_model: nothing to diagnose" in err
    empty = tmp_path / "empty"
    empty.mkdir()
    code, out, err = cli("incident", "--home", str(empty))
    assert code == 2 and out == ""
    assert err.count("\n") == 1, err
    assert "no Dagster instance" in err and "no Airflow provider home" in err
    assert not (empty / "store").exists()  # a read: nothing was created


def test_the_drift_is_read_from_the_store_without_the_runs_settings(regressed: Regressed) -> None:
    from aiops_assets.airflow.steps_incident import drift_points
    from aiops_assets.core.store import ArtifactStore

    # Drift is judged once the training DAG made the baseline: the two days run after it.
    points = drift_points(ArtifactStore(regressed.home / "store"))
    assert sorted({point.partition for point in points}) == [HISTORY[-2], LAST]
    assert all(point.feature and point.effect == point.effect for point in points)
