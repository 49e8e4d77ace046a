"""``aiops capsule export|import`` leave an audit entry; import needs its own permission; an
identity that is too long or malformed is refused in one line, before any write, and audited."""

from __future__ import annotations

import hashlib
import json
import string
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aiops_assets.core.ledger import AuditEntry, Ledger
from aiops_assets.core.policy import ActorError, check_actor
from aiops_assets.reference.settings import PipelineSettings
from aiops_assets_tests.cli.conftest import Aiops


def _entries(home: Path) -> list[AuditEntry]:
    settings = PipelineSettings(home=home)
    ledger = Ledger.from_env(settings.ledger_url, default_key_file=settings.audit_key_file)
    try:
        return ledger.audit_entries()
    finally:
        ledger.dispose()


def _verified(aiops: Aiops, home: Path) -> None:
    code, out, err = aiops("audit", "verify", "--json", "--home", str(home))
    assert code == 0 and json.loads(out)["ok"], out + err


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _export(aiops: Aiops, home: Path, bundle: Path) -> dict[str, object]:
    code, out, err = aiops(
        "capsule", "export", "champion", str(bundle), "--json", "--home", str(home)
    )
    assert code == 0, err
    return dict(json.loads(out))


def test_a_successful_export_is_audited_with_the_bundles_path_and_hash(
    aiops: Aiops, copied_home: Path, clean_env: Path
) -> None:
    bundle = clean_env / "champion.tar.gz"
    report = _export(aiops, copied_home, bundle)
    assert report["sha256"] == _sha256(bundle)
    entry = _entries(copied_home)[-1]
    assert entry.action == "export" and entry.actor.startswith("local:")
    assert entry.subject == f"capsule:{str(report['capsule_id'])[:12]}"
    assert entry.details["sha256"] == _sha256(bundle)
    assert entry.details["file"] == str(bundle.absolute())
    assert entry.details["capsule_id"] == report["capsule_id"]
    _verified(aiops, copied_home)


def test_a_successful_import_is_audited_with_the_capsule_and_the_bundles_hash(
    aiops: Aiops, copied_home: Path, clean_env: Path
) -> None:
    bundle = clean_env / "champion.tar.gz"
    capsule_id = str(_export(aiops, copied_home, bundle)["capsule_id"])
    fresh = clean_env / "fresh"
    code, out, err = aiops("capsule", "import", str(bundle), "--json", "--home", str(fresh))
    assert code == 0, err
    assert json.loads(out)["capsule_id"] == capsule_id
    entry = _entries(fresh)[-1]
    assert (entry.action, entry.subject) == ("import", f"capsule:{capsule_id[:12]}")
    assert entry.details["capsule_id"] == capsule_id
    assert entry.details["sha256"] == _sha256(bundle)
    assert entry.actor.startswith("local:")
    _verified(aiops, fresh)


@pytest.mark.parametrize("actor", ["sensor:retrain_on_drift", "intruder@example.com"])
def test_import_needs_the_import_permission_and_a_refusal_is_audited(
    aiops: Aiops, clean_env: Path, monkeypatch: pytest.MonkeyPatch, actor: str
) -> None:
    # The permission is checked before the bundle is even opened: any file will do.
    bundle = clean_env / "anything.tar.gz"
    bundle.write_bytes(b"not read")
    home = clean_env / "home"
    monkeypatch.setenv("AIOPS_ACTOR", actor)
    code, _, err = aiops("capsule", "import", str(bundle), "--home", str(home))
    assert code == 3, err
    assert f"refused: {actor} " in err and "may not import bundle:" in err
    assert "grants 'import' to: admin" in err
    [entry] = _entries(home)
    assert (entry.action, entry.actor) == ("access_denied", actor)
    assert entry.subject == f"bundle:{_sha256(bundle)[:12]}"
    assert entry.details["action"] == "import"
    assert not (home / "imported").exists()
    _verified(aiops, home)


@pytest.mark.parametrize(
    ("actor", "shown", "problem"),
    [
        ("a" * 300, "a" * 64 + "…(len 300)", "it is 300 characters long"),
        ("local:ana\nlocal:root", "local:ana\\nlocal:root", "it contains '\\n'"),
        ("ana\x1b[2K", "ana\\x1b[2K", "it contains '\\x1b'"),
        ("local:ana smith", "local:ana smith", "it contains ' '"),
    ],
    ids=["300 characters", "newline", "terminal escape", "space"],
)
def test_a_malformed_actor_is_refused_in_one_line_before_any_write_and_audited(
    aiops: Aiops,
    clean_env: Path,
    monkeypatch: pytest.MonkeyPatch,
    actor: str,
    shown: str,
    problem: str,
) -> None:
    bundle = clean_env / "anything.tar.gz"
    bundle.write_bytes(b"not read")
    home = clean_env / "home"
    monkeypatch.setenv("AIOPS_ACTOR", actor)
    code, out, err = aiops("capsule", "import", str(bundle), "--home", str(home))
    assert code == 3 and out == ""
    [line] = err.splitlines()
    assert line.startswith("aiops capsule import: refused: the acting identity ")
    assert f"'{shown}' (from $AIOPS_ACTOR)" in line and problem in line
    assert "Traceback" not in err
    if shown != actor:
        assert actor not in err, "the raw value never reaches the terminal"
    [entry] = _entries(home)
    assert (entry.action, entry.actor, entry.details["reason"]) == (
        "access_denied",
        shown,
        "malformed_actor",
    )
    assert len(entry.actor) <= 80
    assert entry.details["actor_length"] == len(actor)
    assert entry.details["actor_sha256"] == hashlib.sha256(actor.encode()).hexdigest()
    assert entry.details["action"] == "import"
    assert not (home / "imported").exists()
    monkeypatch.delenv("AIOPS_ACTOR")
    _verified(aiops, home)


def test_a_malformed_actor_cannot_export_either(
    aiops: Aiops, copied_home: Path, clean_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = len(_entries(copied_home))
    monkeypatch.setenv("AIOPS_ACTOR", "local:" + "x" * 250)
    bundle = clean_env / "b.tar.gz"
    code, _, err = aiops("capsule", "export", "champion", str(bundle), "--home", str(copied_home))
    assert code == 3 and len(err.splitlines()) == 1 and "it is 256 characters long" in err
    assert not bundle.exists()
    entries = _entries(copied_home)
    assert len(entries) == before + 1
    assert entries[-1].details["reason"] == "malformed_actor"
    assert entries[-1].details["action"] == "export"


_IDENTITY_CHARACTERS = string.ascii_letters + string.digits + "._-:@/+"


@given(
    st.text(
        st.sampled_from(_IDENTITY_CHARACTERS) | st.characters(codec="utf-8") | st.just("\n"),
        max_size=400,
    )
)
def test_any_text_is_a_valid_identity_or_refused_with_a_bounded_printable_form(text: str) -> None:
    try:
        assert check_actor(text) == text
    except ActorError as error:
        assert len(error.shown) <= 64 + len("…(len 400)")
        assert error.shown.replace("…", "").isascii() and error.shown.isprintable()
        assert str(error).isprintable()
    else:
        assert 1 <= len(text) <= 128 and set(text) <= set(_IDENTITY_CHARACTERS)
