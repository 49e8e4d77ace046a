"""The bridge without a server: how an MLflow registry is judged against the ledger, that the
bridge is off without a tracking URI, and that an unreachable server is one line, quickly."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from aiops_assets.cli import main
from aiops_assets.core.ledger import Ledger
from aiops_assets.core.mlflow_bridge import (
    ALIAS_ELSEWHERE,
    DUPLICATE_VERSION,
    EXTRA_ALIAS,
    EXTRA_VERSION,
    MISSING_ALIAS,
    MISSING_MODEL,
    MISSING_VERSION,
    MODEL_TAG,
    TRACKING_URI_ENV,
    VERSION_TAG,
    VERSION_TAG_DIFFERS,
    BridgeError,
    Expected,
    Snapshot,
    compare,
    expected_state,
    mirror,
    mirror_after_move,
)
from aiops_assets_tests.loopback_server import free_port

KEY = b"mlflow-drift-test-key-0123456789abcdef"


@pytest.fixture
def ledger(tmp_path: Path) -> Ledger:
    opened = Ledger(f"sqlite:///{tmp_path / 'ledger.db'}", audit_key=KEY)
    for n in (1, 2):
        opened.register_model_version(
            "m",
            f"{n:064x}",
            metrics={},
            training_set_version=f"t{n}",
            feature_set_version="f",
            actor="local:test",
            tags={"model_format": "skops"},
        )
    opened.set_alias("m", "champion", 2, actor="local:test", reason="r")
    return opened


def _in_sync(expected: Expected) -> Snapshot:
    """What a faithful mirror holds, with MLflow numbering its versions 10, 11, ..."""
    numbers = {ours: str(9 + ours) for ours in expected.versions}
    return Snapshot(
        tags=dict(expected.model_tags),
        versions={numbers[ours]: dict(tags) for ours, tags in expected.versions.items()},
        aliases={alias: numbers[ours] for alias, ours in expected.aliases.items()},
    )


def test_the_ledger_implies_tags_for_every_version_and_alias(ledger: Ledger) -> None:
    expected = expected_state(ledger, "m")
    seqs = {(e.action, e.subject): e.seq for e in ledger.audit_entries()}
    assert expected.aliases == {"champion": 2}
    assert expected.versions[1] == {
        VERSION_TAG: "1",
        "aiops.sha256": f"{1:064x}",
        "aiops.training_set_version": "t1",
        "aiops.feature_set_version": "f",
        "aiops.capsule": "",
        "aiops.audit_seq": str(seqs[("register_version", "m:v1")]),
        "aiops.tag.model_format": "skops",
    }
    assert expected.model_tags["aiops.alias.champion.audit_seq"] == str(
        seqs[("set_alias", "m:champion")]
    )
    assert expected.sources[2] == f"aiops-store:/sha256/{2:064x}"
    assert compare("m", expected, _in_sync(expected)) == []


def test_every_kind_of_disagreement_is_named(ledger: Ledger) -> None:
    expected = expected_state(ledger, "m")
    faithful = _in_sync(expected)
    assert [d.kind for d in compare("m", expected, None)] == [MISSING_MODEL]

    versions = {number: dict(tags) for number, tags in faithful.versions.items()}
    versions["10"]["aiops.sha256"] = "0" * 64  # v1's hash edited
    versions["10"]["aiops.note"] = "hand-added"  # our prefix, not ours
    versions["12"] = dict(versions["11"])  # v2 registered twice
    versions["13"] = {VERSION_TAG: "7"}  # a version the ledger never had
    versions["14"] = {"team": "theirs"}  # a version someone else made: not ours to judge
    drifted = Snapshot(
        tags={**faithful.tags, "aiops.ledger": "sqlite:///elsewhere.db"},
        versions=versions,
        aliases={"champion": "10", "shadow": "11", "staging": "14"},
    )
    found = [(d.kind, d.subject, d.ledger, d.mlflow) for d in compare("m", expected, drifted)]
    assert found == [
        (MODEL_TAG, "aiops.ledger", ledger.url, "sqlite:///elsewhere.db"),
        (VERSION_TAG_DIFFERS, "v1 aiops.sha256", f"{1:064x}", "0" * 64),
        (VERSION_TAG_DIFFERS, "v1 aiops.note", None, "hand-added"),
        (DUPLICATE_VERSION, "v2", "v2", "mlflow v12"),
        (EXTRA_VERSION, "v7", None, "mlflow v13"),
        (ALIAS_ELSEWHERE, "@champion", "v2", "mlflow v10 (ours v1)"),
        (EXTRA_ALIAS, "@shadow", None, "mlflow v11"),
    ]
    fixable = {d.kind: d.fixable for d in compare("m", expected, drifted)}
    assert not fixable[DUPLICATE_VERSION] and not fixable[EXTRA_VERSION]
    assert fixable[ALIAS_ELSEWHERE] and fixable[VERSION_TAG_DIFFERS]

    gone = Snapshot(tags=faithful.tags, versions={"10": faithful.versions["10"]}, aliases={})
    assert [(d.kind, d.subject) for d in compare("m", expected, gone)] == [
        (MISSING_VERSION, "v2"),
        (MISSING_ALIAS, "@champion"),
    ]


def test_without_a_tracking_uri_the_bridge_is_off(ledger: Ledger) -> None:
    assert mirror_after_move(ledger, "m", environ={}) is None
    with pytest.raises(BridgeError, match=TRACKING_URI_ENV):
        mirror(ledger, "")


def test_an_unreachable_server_is_one_line_and_quick(
    ledger: Ledger,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    down = f"http://127.0.0.1:{free_port()}"
    started = time.monotonic()
    report = mirror_after_move(ledger, "m", environ={TRACKING_URI_ENV: down})
    assert report is not None and not report.in_sync
    assert (report.error or "").startswith(f"MLflow at {down} is not reachable")
    assert ledger.get_alias("m", "champion").version == 2  # type: ignore[union-attr]

    for variable in [name for name in os.environ if name.startswith(("AIOPS_", "MLFLOW_T"))]:
        monkeypatch.delenv(variable)
    monkeypatch.chdir(tmp_path)
    home = tmp_path / "home"
    home.mkdir()
    own = Ledger.from_env(f"sqlite:///{home / 'ledger.db'}", default_key_file=home / "audit.key")
    own.register_model_version(
        "m",
        "a" * 64,
        metrics={},
        training_set_version="t",
        feature_set_version="f",
        actor="local:t",
    )
    own.dispose()
    for command in ("mlflow-sync", "mlflow-drift"):
        code = main(
            ["registry", command, "--home", str(home), "--model", "m", "--tracking-uri", down]
        )
        captured = capsys.readouterr()
        assert (code, captured.out) == (1, ""), captured.err
        [line] = captured.err.splitlines()
        assert line.startswith(f"aiops registry {command}: MLflow at {down} is not reachable")
    assert time.monotonic() - started < 30, "no minutes of client retries"

    code = main(["registry", "mlflow-drift", "--home", str(home)])
    [line] = capsys.readouterr().err.splitlines()
    assert code == 2 and "--tracking-uri" in line

    code = main(
        ["registry", "mlflow-sync", "--home", str(home), "--model", "typo", "--tracking-uri", down]
    )
    [line] = capsys.readouterr().err.splitlines()
    assert code == 2 and line.startswith("aiops registry mlflow-sync: typo has no versions in ")
