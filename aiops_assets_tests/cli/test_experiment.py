"""`aiops featureset`, `aiops flags` and `aiops env` on a pipeline's real store and ledger."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from aiops_assets.cli import main
from aiops_assets.core.features import FeatureSetSpec, Ratio
from aiops_assets.core.ledger import Ledger
from aiops_assets.reference.demo import DEMO_FEATURE_SET_CHANGES
from aiops_assets.reference.settings import PipelineSettings

CANDIDATE = FeatureSetSpec(
    version=5,
    ratios=(
        Ratio("error_ratio", "error_rate", "request_rate"),
        Ratio("latency_spread", "latency_p99_ms", "latency_p50_ms"),
    ),
)
WINDOW = "2026-01-06..2026-01-09"


@pytest.fixture
def home(trained_home: PipelineSettings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    copied = tmp_path / "aiops"
    shutil.copytree(trained_home.home, copied)
    for name in ("AIOPS_ENV", "AIOPS_AUDIT_KEY", "AIOPS_LEDGER_URL", "AIOPS_STORE_ROOT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AIOPS_HOME", str(copied))
    monkeypatch.setenv("AIOPS_ACTOR", "local:ana")
    return copied


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.mark.slow
def test_a_candidate_is_refused_then_promoted_with_its_ablation(
    home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _run(capsys, "featureset", "register", "--production")[0] == 0
    spec_file = tmp_path / "candidate.json"
    spec_file.write_text(json.dumps(CANDIDATE.to_dict()))
    code, out, _ = _run(capsys, "featureset", "register", str(spec_file))
    assert (code, out.strip()) == (0, f"{CANDIDATE.version_id}: experimental")
    code, _, err = _run(capsys, "featureset", "promote", CANDIDATE.version_id, "--window", WINDOW)
    assert code == 2 and "is experimental; only a candidate can be promoted" in err
    code, _, _ = _run(
        capsys, "featureset", "status", CANDIDATE.version_id, "candidate", "--reason", "sandbox ok"
    )
    assert code == 0

    code, out, _ = _run(capsys, "featureset", "promote", CANDIDATE.version_id, "--window", WINDOW)
    assert code == 1
    assert "refused: ablation failed (no ablation run" in out
    assert "pass drift_stability" in out

    code, out, _ = _run(
        capsys,
        "featureset",
        "ablate",
        CANDIDATE.version_id,
        "--hypothesis",
        "the p99/p50 spread separates latency incidents from load",
        "--criterion",
        "delta.f1>=0.0",
        "--json",
    )
    assert code == 0
    ablation = json.loads(out)
    assert ablation["criterion_met"] is True

    code, out, _ = _run(
        capsys,
        "featureset",
        "promote",
        CANDIDATE.version_id,
        "--window",
        WINDOW,
        "--ablation",
        ablation["run_id"],
    )
    assert code == 0, out
    assert "promoted: all 4 criteria passed" in out
    code, out, _ = _run(capsys, "featureset", "list")
    assert f"production    {CANDIDATE.version_id}" in out
    code, out, _ = _run(capsys, "featureset", "history", CANDIDATE.version_id)
    assert "candidate -> production by local:ana" in out
    assert _run(capsys, "audit", "verify")[0] == 0


def test_flags_are_set_shown_and_kept_in_history(
    home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # The set the demo promoted: the one it replaced is retired, and a flag cannot serve it.
    reference = FeatureSetSpec.from_dict(
        {**FeatureSetSpec().to_dict(), **DEMO_FEATURE_SET_CHANGES}
    ).version_id
    assert _run(capsys, "featureset", "register", "--production")[0] == 0
    flags = tmp_path / "flags.yaml"
    flags.write_text(
        "version: 1\nflags:\n  detector:\n    kind: model\n    target: anomaly_detector\n"
        "    default: champion\n    rules: [{value: v1, services: [checkout]}]\n"
        f"  features:\n    kind: feature_set\n    target: telemetry_core\n    default: {reference}\n"
    )
    code, out, _ = _run(capsys, "flags", "set", str(flags), "--reason", "pin checkout to v1")
    # The demo that made this home switched the features flag once already (its own version).
    assert code == 0 and re.search(r"flags v\d+ in force", out), out
    assert "detector (model anomaly_detector): default champion -> " in out
    code, out, _ = _run(capsys, "flags", "show", "--service", "checkout", "--json")
    assert json.loads(out)["services"]["checkout"] == {"detector": "v1", "features": reference}
    # For people: the document in force, then one row per service and flag (no dict repr).
    code, out, _ = _run(capsys, "flags", "show", "--service", "checkout", "--service", "search")
    assert code == 0 and "{'" not in out
    rows = [line.split() for line in out.split("\n\n")[-1].splitlines()]
    assert rows[0] == ["service", "flag", "value"]
    assert ["checkout", "detector", "v1"] in rows and ["search", "detector", "champion"] in rows
    assert ["checkout", "features", reference] in rows
    code, out, _ = _run(capsys, "flags", "history")
    assert "v1 " in out and "by local:ana: pin checkout to v1" in out
    ledger = Ledger.from_env(f"sqlite:///{home / 'ledger.db'}", default_key_file=home / "audit.key")
    try:
        assert [e.action for e in ledger.audit_entries()][-1] == "flags_change"
    finally:
        ledger.dispose()


def test_the_environment_decides_where_and_what(
    home: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("AIOPS_ENV", "sandbox")
    code, out, _ = _run(capsys, "env", "--json")
    shown = json.loads(out)
    assert shown["environment"] == "sandbox" and shown["can_promote"] is False
    assert shown["store_root"] == str((home / "sandbox" / "store").absolute())
    code, _, err = _run(capsys, "featureset", "promote", "x", "--window", WINDOW)
    assert code == 1 and "sandbox environment cannot promote anything" in err
