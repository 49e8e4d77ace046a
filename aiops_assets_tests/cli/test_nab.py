"""``aiops nab verify-scorer`` and ``aiops nab evaluate`` through ``aiops_assets.cli.main``, on
the real NAB folder (../shared/data/nab) as a person would call them."""

from __future__ import annotations

import json
import shutil
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


def test_evaluate_prints_the_cross_validated_score_beside_the_published(
    nab_root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    files = [
        "realAWSCloudwatch/iio_us-east-1_i-a2eb1cd9_NetworkIn.csv",
        "realKnownCause/rogue_agent_key_hold.csv",
        "artificialNoAnomaly/art_flatline.csv",  # no windows: a negative control
    ]
    argv = ["nab", "evaluate", str(nab_root)]
    for key in files:
        argv += ["--file", key]
    assert main([*argv, "--json"]) == 0
    captured = capsys.readouterr()
    result = json.loads(captured.out)
    assert f"[ 1/3] {files[0]}\n" in captured.err and f"[ 3/3] {files[2]}\n" in captured.err
    assert result["headline"] == "leave_one_category_out"
    for protocol in ("leave_one_category_out", "in_sample"):
        assert set(result["ours"][protocol]) == PROFILES
    assert result["ours"]["leave_one_file_out"] is None  # one file per category: no other file
    # The published detectors are normalized on exactly these files: null is 0 on every profile.
    assert result["published"]["null"] == dict.fromkeys(PROFILES, 0.0)
    assert {"numenta", "randomCutForest", "windowedGaussian"} <= set(result["published"])
    assert set(result["files"]) == set(files)
    assert result["scoreboard"]["windows"] == 4
    assert "pipeline" not in result

    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "Headline: cross-validated, leave one category out." in text
    assert "ours, cross-validated, leave one category out" in text
    assert "ours, IN-SAMPLE (chosen on the files scored)" in text
    assert "Per category and profile" in text and "Per detector family" in text


def test_evaluate_scores_ours_alone_on_a_folder_without_published_results(
    nab_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    key = "realAWSCloudwatch/iio_us-east-1_i-a2eb1cd9_NetworkIn.csv"
    (tmp_path / "data" / "realAWSCloudwatch").mkdir(parents=True)
    shutil.copyfile(nab_root / "data" / key, tmp_path / "data" / key)  # a throwaway copy
    (tmp_path / "labels").mkdir()
    windows = json.loads((nab_root / "labels" / "combined_windows.json").read_text())
    (tmp_path / "labels" / "combined_windows.json").write_text(json.dumps({key: windows[key]}))
    assert main(["nab", "evaluate", str(tmp_path), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["published"] == {}
    # One file, one category: nothing to cross-validate on, and the output says so.
    assert result["headline"] == "in_sample"
    assert result["ours"]["leave_one_category_out"] is None
    assert set(result["ours"]["in_sample"]) == PROFILES

    (tmp_path / "labels" / "combined_windows.json").unlink()
    assert main(["nab", "evaluate", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "NAB labels file not found" in err and len(err.splitlines()) == 1


def test_evaluate_runs_the_reference_pipeline_when_asked(
    nab_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    key = "realAWSCloudwatch/iio_us-east-1_i-a2eb1cd9_NetworkIn.csv"
    argv = ["nab", "evaluate", str(nab_root), "--file", key]
    assert main([*argv, "--store", str(tmp_path / "store")]) == 2
    assert "add --pipeline" in capsys.readouterr().err
    assert main([*argv, "--pipeline", "--store", str(tmp_path / "store"), "--json"]) == 0
    pipeline = json.loads(capsys.readouterr().out)["pipeline"]
    assert set(pipeline["ours"]) == PROFILES
    per_file = pipeline["files"][key]
    assert per_file["rows"] == 1243 and len(per_file["snapshot_sha256"]) == 64
    assert pipeline["drift"]["windows"] == 2


def test_evaluate_refuses_what_is_not_a_nab_folder_or_file(
    nab_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["nab", "evaluate", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "is not a NAB folder" in err and len(err.splitlines()) == 1
    assert main(["nab", "evaluate", str(nab_root), "--file", "realKnownCause/absent.csv"]) == 2
    err = capsys.readouterr().err
    assert err == "aiops nab evaluate: no such NAB file(s): realKnownCause/absent.csv\n"
