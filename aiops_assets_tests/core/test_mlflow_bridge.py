"""The MLflow bridge against a real tracking server: MLflow's champion alias follows the ledger's
through a promotion and a rollback, a hand edit in MLflow is reported and repaired, and the
ledger (the truth) is never changed, nor mirrored when its audit chain does not verify."""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from mlflow import MlflowClient

from aiops_assets.cli import main
from aiops_assets.core.ledger import Ledger, ModelVersion
from aiops_assets.core.mlflow_bridge import (
    ALIAS_ELSEWHERE,
    AUDIT_SEQ_TAG,
    EXTRA_VERSION,
    MODEL_TAG,
    SHA256_TAG,
    VERSION_TAG,
    VERSION_TAG_DIFFERS,
    BridgeError,
    drift_report,
    mirror,
    mirror_after_move,
)
from aiops_assets.core.mlflow_format import FORMAT_NAME, put_pyfunc
from aiops_assets.core.store import ArtifactStore
from aiops_assets_tests.core.test_mlflow_format import NO_UV_FILES, SAVE, Scaled
from aiops_assets_tests.mlflow_server import QUIET_ENV, MlflowServer, local_mlflow

pytestmark = pytest.mark.services

MODEL = "slo_breach"
KEY = b"mlflow-bridge-test-key-0123456789abcdef"
CHAMPION_SEQ = "aiops.alias.champion.audit_seq"


@pytest.fixture(scope="module")
def server() -> Iterator[MlflowServer]:
    with pytest.MonkeyPatch.context() as patch:
        for name, value in QUIET_ENV.items():
            patch.setenv(name, value)
        with local_mlflow() as running:
            yield running


def _register(ledger: Ledger, n: int, **tags: str) -> ModelVersion:
    return ledger.register_model_version(
        MODEL,
        f"{n:064x}",
        metrics={"pr_auc": 0.5 + n / 100},
        training_set_version=f"train-{n}",
        feature_set_version=f"features-{n}",
        actor="local:test",
        capsule_ref=f"capsule-{n}",
        tags=tags,
    )


def _champion(client: MlflowClient, name: str = MODEL) -> dict[str, str]:
    return dict(client.get_model_version_by_alias(name, "champion").tags)


def _seq(ledger: Ledger, action: str, subject: str) -> int:
    return max(e.seq for e in ledger.audit_entries() if (e.action, e.subject) == (action, subject))


def test_the_champion_alias_follows_a_promotion_and_a_rollback(
    server: MlflowServer, tmp_path: Path
) -> None:
    ledger = Ledger(f"sqlite:///{tmp_path / 'ledger.db'}", audit_key=KEY)
    client = MlflowClient(tracking_uri=server.url, registry_uri=server.url)
    _register(ledger, 1)
    _register(ledger, 2)
    ledger.set_alias(MODEL, "champion", 1, actor="local:test", reason="first")
    ledger.set_alias(MODEL, "challenger", 2, actor="local:test", reason="candidate")
    head_before = ledger.audit_head()
    first = mirror(ledger, server.url)
    assert ledger.audit_head() == head_before, "mirroring reads the ledger, never writes it"
    assert first.in_sync and first.remaining == []
    assert _champion(client)[VERSION_TAG] == "1"
    assert _champion(client)[SHA256_TAG] == f"{1:064x}"
    assert _champion(client)[AUDIT_SEQ_TAG] == str(_seq(ledger, "register_version", f"{MODEL}:v1"))
    challenger = client.get_model_version_by_alias(MODEL, "challenger")
    assert challenger.tags["aiops.training_set_version"] == "train-2"
    assert challenger.tags["aiops.capsule"] == "capsule-2"
    assert mirror(ledger, server.url).actions == [], "a second mirror changes nothing"

    ledger.record_promotion(
        MODEL,
        2,
        champion_version=1,
        promoted=True,
        reason="better on the holdout",
        evidence={"delta": 0.01},
        actor="local:test",
    )
    stale = {(d.kind, d.subject): d for d in drift_report(ledger, server.url)}
    assert set(stale) == {(ALIAS_ELSEWHERE, "@champion"), (MODEL_TAG, CHAMPION_SEQ)}
    assert stale[(ALIAS_ELSEWHERE, "@champion")].ledger == "v2"
    assert mirror(ledger, server.url).in_sync
    assert _champion(client)[VERSION_TAG] == "2"
    model_tags = client.get_registered_model(MODEL).tags
    assert model_tags[CHAMPION_SEQ] == str(_seq(ledger, "set_alias", f"{MODEL}:champion"))

    ledger.set_alias(MODEL, "champion", 1, actor="local:test", reason="regressed", kind="rollback")
    head_before = ledger.audit_head()
    after = mirror_after_move(ledger, MODEL, tracking_uri=server.url)
    assert after is not None and after.in_sync, after
    assert _champion(client)[VERSION_TAG] == "1"
    assert ledger.get_alias(MODEL, "champion").version == 1  # type: ignore[union-attr]
    assert ledger.audit_head() == head_before
    ledger.dispose()


def test_a_hand_edit_in_mlflow_is_reported_and_repaired(
    server: MlflowServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(NO_UV_FILES, "false")
    name = "hand_edited"
    ledger = Ledger(f"sqlite:///{tmp_path / 'ledger.db'}", audit_key=KEY)
    client = MlflowClient(tracking_uri=server.url, registry_uri=server.url)
    store = ArtifactStore(tmp_path / "store")
    ref, tags = put_pyfunc(store, Scaled(2.0), save_options=SAVE)
    for n in (1, 2):
        ledger.register_model_version(
            name,
            ref.sha256 if n == 1 else f"{n:064x}",
            metrics={},
            training_set_version="t",
            feature_set_version="f",
            actor="local:test",
            tags=tags if n == 1 else {},
        )
    ledger.set_alias(name, "champion", 1, actor="local:test", reason="first")
    assert mirror(ledger, server.url, models=[name]).in_sync
    assert _champion(client, name)["aiops.tag.model_format"] == FORMAT_NAME

    number_of = {
        v.tags[VERSION_TAG]: v.version for v in client.search_model_versions(f"name='{name}'")
    }
    client.set_registered_model_alias(name, "champion", number_of["2"])
    client.set_model_version_tag(name, number_of["1"], SHA256_TAG, "0" * 64)
    client.create_model_version(name, "s3://elsewhere/model", tags={VERSION_TAG: "9"})

    drifts = {(d.kind, d.subject): d for d in drift_report(ledger, server.url, models=[name])}
    assert set(drifts) == {
        (ALIAS_ELSEWHERE, "@champion"),
        (VERSION_TAG_DIFFERS, f"v1 {SHA256_TAG}"),
        (EXTRA_VERSION, "v9"),
    }
    assert drifts[(ALIAS_ELSEWHERE, "@champion")].mlflow == f"mlflow v{number_of['2']} (ours v2)"
    assert drifts[(VERSION_TAG_DIFFERS, f"v1 {SHA256_TAG}")].ledger == ref.sha256

    repaired = mirror(ledger, server.url, models=[name])
    assert [(d.kind, d.subject) for d in repaired.remaining] == [(EXTRA_VERSION, "v9")]
    assert _champion(client, name)[VERSION_TAG] == "1"
    assert _champion(client, name)[SHA256_TAG] == ref.sha256
    assert ledger.get_alias(name, "champion").version == 1  # type: ignore[union-attr]
    ledger.dispose()


def test_a_ledger_edited_around_its_chain_is_not_mirrored(
    server: MlflowServer, tmp_path: Path
) -> None:
    path = tmp_path / "ledger.db"
    ledger = Ledger(f"sqlite:///{path}", audit_key=KEY)
    _register(ledger, 1)
    with sqlite3.connect(path) as raw:
        raw.execute("UPDATE model_versions SET sha256 = ? WHERE version = 1", ("f" * 64,))
    with pytest.raises(BridgeError, match="audit chain does not verify"):
        mirror(ledger, server.url, models=[MODEL])
    report = mirror_after_move(ledger, MODEL, tracking_uri=server.url)
    assert report is not None and not report.in_sync
    assert "audit chain does not verify" in (report.error or "")
    ledger.dispose()


def _aiops(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_the_cli_syncs_and_reports_drift(
    server: MlflowServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    for variable in [name for name in os.environ if name.startswith(("AIOPS_", "MLFLOW_T"))]:
        monkeypatch.delenv(variable)
    monkeypatch.chdir(tmp_path)
    home = tmp_path / "home"
    home.mkdir()
    ledger = Ledger.from_env(f"sqlite:///{home / 'ledger.db'}", default_key_file=home / "audit.key")
    _register(ledger, 1)
    ledger.set_alias(MODEL, "champion", 1, actor="local:test", reason="first")
    ledger.dispose()
    where = [
        "--home",
        str(home),
        "--model",
        MODEL,
        "--tracking-uri",
        server.url,
        "--prefix",
        "cli-",
    ]

    code, out, err = _aiops(capsys, "registry", "mlflow-drift", *where)
    assert code == 1, err
    assert f"{MODEL} (registered model): missing model" in out

    code, out, err = _aiops(capsys, "registry", "mlflow-sync", *where)
    assert code == 0, err
    assert out.splitlines()[-1] == f"cli-{MODEL} in {server.url}: 3 changes, in sync"

    code, out, _ = _aiops(capsys, "registry", "mlflow-drift", "--json", *where)
    assert (code, json.loads(out)) == (0, [])
    client = MlflowClient(tracking_uri=server.url, registry_uri=server.url)
    assert _champion(client, f"cli-{MODEL}")[VERSION_TAG] == "1"
