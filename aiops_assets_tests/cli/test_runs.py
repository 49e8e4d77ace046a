"""``aiops runs search`` and ``aiops runs diff`` against a real ledger in a temporary folder, as
a person would call them: parsed arguments in, text or JSON and an exit code out."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from aiops_assets.cli import main
from aiops_assets.core.capsule import build_capsule
from aiops_assets.core.experiments import ExperimentRun
from aiops_assets.core.ledger import Ledger
from aiops_assets.reference.settings import PipelineSettings

RUN_A = "aaaaaaaa-0000-4000-8000-000000000001"
RUN_B = "bbbbbbbb-0000-4000-8000-000000000002"
RUN_C = "cccccccc-0000-4000-8000-000000000003"
DATASET_1 = "d1" * 32
DATASET_2 = "d2" * 32
FEATURES = "fe" * 32


@dataclass
class Cli:
    home: Path
    capsys: pytest.CaptureFixture[str]

    def __call__(self, *argv: str) -> tuple[int, str, str]:
        # The defaults point elsewhere (.aiops): --home alone must lead to the test's ledger.
        code = main([*argv, "--home", str(self.home)])
        out, err = self.capsys.readouterr()
        return code, out, err


def _environment(numpy: str, commit: str) -> dict[str, Any]:
    return {
        "python": "3.11.9",
        "platform": "linux-x86_64",
        "packages": {"numpy": numpy, "scikit-learn": "1.5.2"},
        "uv_lock_sha256": "0" * 64,
        "git_commit": commit,
        "git_dirty": False,
        "env": {},
    }


def _capsule_id(ledger: Ledger, run_id: str, environment: dict[str, Any]) -> str:
    capsule = build_capsule(
        kind="training",
        asset="candidate_model",
        run_id=run_id,
        seeds={"model": 7},
        config={},
        inputs={},
        code_versions={},
        outputs={},
        metrics={},
        environment=environment,
        created_at=datetime(2026, 1, 13, tzinfo=UTC),
    )
    return ledger.record_capsule(capsule)


def _config(n_estimators: int, until: str) -> dict[str, Any]:
    return {
        "training_set": {"holdout_days": 4, "seed": 17, "until": until},
        "candidate_model": {"n_estimators": n_estimators, "seed": 7},
    }


@pytest.fixture
def cli(
    clean_env: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> Iterator[Cli]:
    monkeypatch.setenv("AIOPS_AUDIT_KEY", "a test key that is long enough to be a secret")
    home = tmp_path / "aiops"
    settings = PipelineSettings(home=home)
    ledger = Ledger.from_env(settings.ledger_url, default_key_file=settings.audit_key_file)
    try:
        capsule_a = _capsule_id(ledger, RUN_A, _environment("2.1.0", "1" * 40))
        capsule_b = _capsule_id(ledger, RUN_B, _environment("2.2.0", "2" * 40))
        runs = [
            ExperimentRun(
                run_id=RUN_A,
                model_name="anomaly_detector",
                model_version=1,
                capsule_id=capsule_a,
                at=datetime(2026, 1, 10, 9, 0, tzinfo=UTC),
                config=_config(200, "2026-01-09"),
                metrics={"f1": 0.72, "pr_auc": 0.91, "false_alarm_rate": 0.03},
                tags={"goal": "baseline"},
                dataset_version=DATASET_1,
                feature_set_version=FEATURES,
                hypothesis="the default forest is a fair baseline",
                success_criterion="pr_auc>=0.9",
                criterion_met=True,
            ),
            ExperimentRun(
                run_id=RUN_B,
                model_name="anomaly_detector",
                model_version=2,
                capsule_id=capsule_b,
                at=datetime(2026, 1, 12, 9, 0, tzinfo=UTC),
                config=_config(400, "2026-01-11"),
                metrics={"f1": 0.84, "pr_auc": 0.96, "false_alarm_rate": 0.01},
                tags={"goal": "more trees"},
                dataset_version=DATASET_2,
                feature_set_version=FEATURES,
                hypothesis="twice the trees cut false alarms below 2%",
                success_criterion="pr_auc>=0.95, false_alarm_rate<0.02",
                criterion_met=True,
            ),
            ExperimentRun(
                run_id=RUN_C,
                model_name="anomaly_detector",
                model_version=None,
                capsule_id=None,
                at=datetime(2026, 1, 13, 9, 0, tzinfo=UTC),
                config=_config(800, "2026-01-12"),
                metrics={"pr_auc": 0.94},
                dataset_version=DATASET_2,
                feature_set_version=FEATURES,
                hypothesis="",
            ),
        ]
        for run in runs:
            ledger.record_experiment_run(run)
    finally:
        ledger.dispose()
    yield Cli(home, capsys)


def _run_ids(out: str) -> list[str]:
    return [record["run_id"] for record in json.loads(out)]


def test_search_everything_as_a_table(cli: Cli) -> None:
    code, out, err = cli("runs", "search")
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert lines[0].split() == [
        "run",
        "at",
        "model",
        "dataset",
        "feature_set",
        "f1",
        "pr_auc",
        "far",
        "criterion",
        "hypothesis",
    ]
    assert [line[:8] for line in lines[1:]] == ["aaaaaaaa", "bbbbbbbb", "cccccccc"]
    assert "anomaly_detector v2" in lines[2] and DATASET_2[:12] in lines[2]
    assert "0.840" in lines[2] and "0.960" in lines[2] and "0.010" in lines[2]
    assert " met " in lines[2] and "twice the trees" in lines[2]
    assert DATASET_2[:13] not in out  # digests are cut to a prefix


def test_search_by_metric_time_and_dataset(cli: Cli) -> None:
    code, out, _ = cli("runs", "search", "--metric", "pr_auc>=0.93", "--json")
    assert code == 0 and _run_ids(out) == [RUN_B, RUN_C]
    # Repeated --metric and a comma-separated criterion are both conjunctions; C has no f1.
    code, out, _ = cli(
        "runs", "search", "--metric", "pr_auc>=0.93", "--metric", "f1 > 0.5", "--json"
    )
    assert _run_ids(out) == [RUN_B]
    code, out, _ = cli("runs", "search", "--metric", "pr_auc>=0.9, false_alarm_rate<0.02", "--json")
    assert _run_ids(out) == [RUN_B]
    code, out, _ = cli("runs", "search", "--time", "2026-01-11..2026-01-13T09:00", "--json")
    assert _run_ids(out) == [RUN_B]  # the end is exclusive
    code, out, _ = cli("runs", "search", "--since", "2026-01-11", "--json")
    assert _run_ids(out) == [RUN_B, RUN_C]
    code, out, _ = cli("runs", "search", "--dataset", DATASET_2[:8], "--json")
    assert _run_ids(out) == [RUN_B, RUN_C]
    code, out, _ = cli(
        "runs", "search", "--dataset", DATASET_2[:8], "--until", "2026-01-13", "--json"
    )
    assert _run_ids(out) == [RUN_B]
    code, out, _ = cli("runs", "search", "--tag", "goal=baseline", "--json")
    assert _run_ids(out) == [RUN_A]
    code, out, _ = cli("runs", "search", "--feature-set", FEATURES[:6], "--model", "x", "--json")
    assert code == 0 and json.loads(out) == []


def test_search_json_has_every_field(cli: Cli) -> None:
    code, out, _ = cli("runs", "search", "--metric", "f1>0.8", "--json")
    assert code == 0
    (record,) = json.loads(out)
    assert set(record) == set(ExperimentRun.__dataclass_fields__)
    assert record["at"] == "2026-01-12T09:00:00+00:00"
    assert record["config"]["candidate_model"]["n_estimators"] == 400
    assert record["success_criterion"] == "pr_auc>=0.95, false_alarm_rate<0.02"
    assert record["criterion_met"] is True


def test_an_empty_result_is_not_an_error(cli: Cli) -> None:
    code, out, err = cli("runs", "search", "--metric", "f1>0.99")
    assert (code, out) == (0, "")
    assert "no runs match" in err


def test_search_prints_what_a_diff_needs(cli: Cli, capsys: pytest.CaptureFixture[str]) -> None:
    _, out, _ = cli("runs", "search", "--metric", "f1>0")
    print(out)  # shown with -s; the prefixes in the first column are what diff takes
    run_a, run_b = (line.split()[0] for line in out.splitlines()[1:])
    code, out, _ = cli("runs", "diff", run_a, run_b)
    assert code == 0 and "candidate_model.n_estimators" in out


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["--metric", "f1=0.8"], "use '==' for equality"),
        (["--metric", "f1>high"], "expected a number after '>', got 'high'"),
        (["--time", "2026-01-13"], "expected a range"),
        (["--since", "last week"], "'last week'"),
        (["--since", "2026-01-13", "--time", "..2026-01-12"], "before its end"),
        (["--tag", "goal"], "key=value"),
    ],
)
def test_a_bad_query_exits_2(cli: Cli, argv: list[str], fragment: str) -> None:
    code, out, err = cli("runs", "search", *argv)
    assert (code, out) == (2, "")
    assert err.startswith("aiops runs search: ") and fragment in err
    assert len(err.splitlines()) == 1


def test_diff_as_text(cli: Cli) -> None:
    code, out, err = cli("runs", "diff", RUN_A[:8], RUN_B[:10])
    assert (code, err) == (0, "")
    assert out.startswith("a  aaaaaaaa  anomaly_detector v1")
    for section in ("config", "data versions", "environment", "tags", "metrics"):
        assert f"\n{section}\n" in out
    assert "candidate_model.n_estimators  200" in out
    assert "training_set.until" in out and "2026-01-11" in out
    assert "training_set.seed" not in out  # unchanged paths are left out
    assert "package numpy 2.1.0 -> 2.2.0" in out
    assert "git commit" in out
    metric_lines = {line.split()[0]: line.split() for line in out.splitlines()[-3:]}
    assert metric_lines["f1"] == ["f1", "0.720", "0.840", "+0.120"]
    assert metric_lines["false_alarm_rate"][-1] == "-0.020"


def test_diff_as_json(cli: Cli) -> None:
    code, out, _ = cli("runs", "diff", RUN_B, RUN_C, "--json")
    assert code == 0
    diff = json.loads(out)
    assert (diff["a"], diff["b"]) == (RUN_B, RUN_C)
    assert {"path": "candidate_model.n_estimators", "a": 400, "b": 800} in diff["config"]
    fields = {entry["field"] for entry in diff["data"]}
    assert fields == {"model_version", "capsule_id"}  # same dataset and features
    metrics = {entry["metric"]: entry for entry in diff["metrics"]}
    assert metrics["pr_auc"]["delta"] == pytest.approx(-0.02)
    assert metrics["f1"] == {"metric": "f1", "a": 0.84, "b": None, "delta": None}
    assert diff["environment"] == []  # C has no capsule: not compared, not "the same"
    assert diff["identical"] is False


def test_diff_of_a_run_with_itself(cli: Cli) -> None:
    code, out, _ = cli("runs", "diff", RUN_A, RUN_A)
    assert code == 0
    assert "the two runs recorded the same config, data, tags, metrics and environment" in out


def test_diff_of_a_missing_run_exits_2(cli: Cli) -> None:
    code, out, err = cli("runs", "diff", RUN_A, "ffffffff")
    assert (code, out) == (2, "")
    assert err.startswith("aiops runs diff: no run ffffffff in sqlite:///")
    assert len(err.splitlines()) == 1
    code, _, err = cli("runs", "diff", "nothing", RUN_B, "--json")
    assert code == 2 and "no run nothing" in err
