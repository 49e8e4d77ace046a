"""``aiops nab verify-scorer`` and ``aiops nab evaluate`` through ``aiops_assets.cli.main``, on
the real NAB folder (../shared/data/nab) as a person would call them."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd
import pytest

from aiops_assets.cli import main

PROFILES = {"standard", "reward_low_FP_rate", "reward_low_FN_rate"}


def test_verify_scorer_passes_on_the_published_rows(
    nab_root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["nab", "verify-scorer", str(nab_root)]) == 0
    text = capsys.readouterr().out
    assert "PASS: 18 scores" in text
    assert "realKnownCause/machine_temperature_system_failure.csv" in text

    assert main(["nab", "verify-scorer", str(nab_root), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["passed"] is True
    assert report["max_difference"] <= 0.01
    assert len(report["checks"]) == 18
    assert {check["profile"] for check in report["checks"]} == PROFILES


def test_verify_scorer_fails_when_a_published_score_disagrees(
    nab_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for part in ("data", "labels"):
        (tmp_path / part).symlink_to(nab_root / part)
    scoreboard = tmp_path / "scoreboard"
    (scoreboard / "per_file").mkdir(parents=True)
    (scoreboard / "numenta_rows").symlink_to(nab_root / "scoreboard" / "numenta_rows")
    (scoreboard / "thresholds.json").symlink_to(nab_root / "scoreboard" / "thresholds.json")
    per_file = pd.read_csv(
        nab_root / "scoreboard" / "per_file" / "all_detectors_per_file_scores.csv",
        keep_default_na=False,
    )
    target = (
        (per_file["Detector"] == "numenta")
        & (per_file["Profile"] == "standard")
        & (per_file["File"] == "realAWSCloudwatch/grok_asg_anomaly.csv")
    )
    assert target.sum() == 1
    per_file.loc[target, "Score"] += 0.02
    per_file.to_csv(scoreboard / "per_file" / "all_detectors_per_file_scores.csv", index=False)

    assert main(["nab", "verify-scorer", str(tmp_path)]) == 1
    text = capsys.readouterr().out
    assert "FAIL: 18 scores, largest difference 2.00e-02" in text


def test_evaluate_prints_ours_beside_the_published_and_the_drift_verdicts(
    nab_root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    files = [
        "realAWSCloudwatch/iio_us-east-1_i-a2eb1cd9_NetworkIn.csv",
        "realAWSCloudwatch/ec2_cpu_utilization_c6585a.csv",  # no windows: a negative control
    ]
    argv = ["nab", "evaluate", str(nab_root), "--json"]
    for key in files:
        argv += ["--file", key]
    assert main(argv) == 0
    captured = capsys.readouterr()
    result = json.loads(captured.out)
    # A minute per file on the whole corpus: each file is announced as it starts.
    assert f"[ 1/2] {files[0]}\n" in captured.err and f"[ 2/2] {files[1]}\n" in captured.err
    assert set(result["ours"]) == PROFILES
    assert all(math.isfinite(score) for score in result["ours"].values())
    # The published detectors are normalized on exactly these files: null is 0 on every profile.
    assert result["published"]["null"] == dict.fromkeys(PROFILES, 0.0)
    assert {"numenta", "randomCutForest", "windowedGaussian"} <= set(result["published"])
    assert set(result["files"]) == set(files)
    assert result["scoreboard"]["windows"] == 2
    drift = result["drift"]
    assert set(drift["per_file"]) == set(files)
    assert drift["negative_control_files"] == 1
    assert drift["windows"] == 2
    assert (
        drift["windows_alarmed_before_start"]
        + drift["windows_alarmed_inside"]
        + drift["windows_without_alarm"]
        == 2
    )
    per_file = result["files"]["realAWSCloudwatch/iio_us-east-1_i-a2eb1cd9_NetworkIn.csv"]
    assert per_file["rows"] == 1243
    assert len(per_file["snapshot_sha256"]) == 64


def test_evaluate_refuses_what_is_not_a_nab_folder_or_file(
    nab_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["nab", "evaluate", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "is not a NAB folder" in err and len(err.splitlines()) == 1
    assert main(["nab", "evaluate", str(nab_root), "--file", "realKnownCause/absent.csv"]) == 2
    err = capsys.readouterr().err
    assert err == "aiops nab evaluate: no such NAB file(s): realKnownCause/absent.csv\n"
