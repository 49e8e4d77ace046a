"""Signed critical actions: a sensor's identity needs the daemon's key, a person's their own, and
verify names an entry whose signature no longer signs it or whose signer the policy does not pin."""

from __future__ import annotations

import json
import sqlite3
import stat
from pathlib import Path

import pytest

from aiops_assets.core.ledger import GENESIS_HASH, Ledger, entry_hash
from aiops_assets.core.ledger.audit import sign
from aiops_assets.core.ledger.signatures import (
    DAEMON_KEY_ENV,
    create_signer,
    daemon_key_path,
    identity_key_path,
    load_signer,
)
from aiops_assets.core.policy import (
    AccessPolicy,
    PolicyError,
    SignatureRefused,
    acting_identity,
    authorize,
    verify_signers,
)

MODEL = "anomaly_detector"
CHAMPION = f"{MODEL}:champion"
AUDIT_KEY = b"k" * 32
SENSOR = "sensor:retrain_on_drift"


def _policy(sensor_keys: list[str], local_keys: list[str] | None = None) -> AccessPolicy:
    local = "" if local_keys is None else f", public_keys: {json.dumps(local_keys)}"
    return AccessPolicy.parse(
        "roles: {admin: [promote, rollback, export], automation: [promote, rollback]}\n"
        "members:\n"
        f'  - {{identity: "sensor:*", role: automation, public_keys: {json.dumps(sensor_keys)}}}\n'
        f'  - {{identity: "local:*", role: admin{local}}}\n',
        source="pinned.yaml",
    )


@pytest.fixture
def key_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "keys"
    monkeypatch.setenv("AIOPS_KEY_DIR", str(folder))
    monkeypatch.delenv(DAEMON_KEY_ENV, raising=False)
    monkeypatch.delenv("AIOPS_ACTOR", raising=False)
    return folder


@pytest.fixture
def ledger(tmp_path: Path, key_folder: Path) -> Ledger:
    del key_folder
    made = Ledger(f"sqlite:///{tmp_path / 'ledger.db'}", audit_key=AUDIT_KEY)
    for n in (1, 2):
        made.register_model_version(
            MODEL,
            f"{n:064x}",
            metrics={"f1": 0.5},
            training_set_version="t",
            feature_set_version="f",
            actor="system",
        )
    made.set_alias(MODEL, "champion", 1, actor="system", reason="first")
    return made


def _promote(ledger: Ledger, actor: str, version: int = 2) -> None:
    ledger.set_alias(MODEL, "champion", version, actor=actor, reason="test", kind="promote")


def _last(ledger: Ledger, action: str = "set_alias") -> dict[str, object]:
    return [entry for entry in ledger.audit_entries() if entry.action == action][-1].details


def test_the_laptop_default_signs_with_a_key_made_on_first_use(
    ledger: Ledger, key_folder: Path
) -> None:
    actor = acting_identity({}, {})
    signer = authorize(
        AccessPolicy.load(environ={}), ledger, actor=actor, action="promote", subject=CHAMPION
    )
    key_file = identity_key_path(actor)
    assert key_file.parent == key_folder and key_file.is_file()
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(key_folder.stat().st_mode) == 0o700
    _promote(ledger, actor)
    signature = _last(ledger)["signature"]
    assert isinstance(signature, dict)
    assert signature["signer"] == actor and signature["public_key"] == signer.public_key
    verification = ledger.verify_audit()
    assert verification.ok, verification.summary()
    judged = verify_signers(AccessPolicy.load(environ={}), ledger.audit_entries(), verification)
    assert judged.ok and judged.problems == []
    # The unsigned champion move by "system" came before signing began: a note, not tampering.
    assert any("before signing" in note for note in judged.notes)


def test_an_asserted_identity_is_never_given_a_key_of_its_own(ledger: Ledger) -> None:
    signer = authorize(
        AccessPolicy.load(environ={}), ledger, actor="local:demo", action="promote", subject="x"
    )
    assert signer.identity == acting_identity({}, {}), "vouched for by the local user's key"
    assert not identity_key_path("local:demo").exists()


def test_a_pinned_sensor_identity_without_the_daemon_key_is_refused_and_audited(
    ledger: Ledger, tmp_path: Path
) -> None:
    daemon = create_signer(tmp_path / "elsewhere" / "daemon.ed25519", "daemon")
    policy = _policy([daemon.public_key])
    with pytest.raises(SignatureRefused, match="no private key for sensor:retrain_on_drift"):
        authorize(policy, ledger, actor=SENSOR, action="promote", subject=CHAMPION)
    assert not daemon_key_path().exists(), "a pinned daemon key is never made up"
    denied = _last(ledger, "access_denied")
    assert denied["reason"] == "unsigned" and denied["policy"] == "pinned.yaml"
    champion = ledger.get_alias(MODEL, "champion")
    assert champion is not None and champion.version == 1, "nothing was written"


def test_a_daemon_key_the_policy_does_not_pin_is_a_bad_signature(
    ledger: Ledger, tmp_path: Path
) -> None:
    pinned = create_signer(tmp_path / "real" / "daemon.ed25519", "daemon")
    create_signer(daemon_key_path(), "daemon")  # a key of the user's own, at the usual place
    with pytest.raises(SignatureRefused, match=r"is not one the access policy pinned\.yaml names"):
        authorize(
            _policy([pinned.public_key]), ledger, actor=SENSOR, action="rollback", subject="m"
        )
    assert _last(ledger, "access_denied")["reason"] == "bad_signature"


def test_the_daemon_key_signs_sensor_actions(
    ledger: Ledger, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    daemon = create_signer(tmp_path / "daemon" / "daemon.ed25519", "daemon")
    monkeypatch.setenv(DAEMON_KEY_ENV, daemon.source)
    policy = _policy([daemon.public_key])
    authorize(policy, ledger, actor=SENSOR, action="promote", subject=CHAMPION)
    _promote(ledger, SENSOR)
    # A sensor's own write (a rollout completing) is signed with the daemon key it holds.
    _promote(ledger, "sensor:staged_rollout", version=1)
    for entry in [e for e in ledger.audit_entries() if e.actor.startswith("sensor:")]:
        assert entry.details["signature"]["signer"] == "daemon"
    judged = verify_signers(policy, ledger.audit_entries(), ledger.verify_audit())
    assert judged.ok, judged.summary()


def test_verify_names_a_signed_entry_edited_by_someone_holding_the_audit_key(
    ledger: Ledger, tmp_path: Path
) -> None:
    authorize(
        AccessPolicy.load(environ={}),
        ledger,
        actor=acting_identity({}, {}),
        action="promote",
        subject=CHAMPION,
    )
    _promote(ledger, acting_identity({}, {}))
    seq = ledger.audit_entries()[-1].seq
    _rewrite_entry(tmp_path / "ledger.db", seq, lambda details: {**details, "reason": "forged"})
    verification = ledger.verify_audit()
    [problem] = [p for p in verification.problems if p.seq == seq]
    assert problem.kind == "bad signature" and "does not sign this entry" in problem.message


def test_verify_names_a_signer_the_policy_does_not_pin_and_a_missing_signature(
    ledger: Ledger, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    daemon = create_signer(tmp_path / "daemon" / "daemon.ed25519", "daemon")
    monkeypatch.setenv(DAEMON_KEY_ENV, daemon.source)
    authorize(_policy([daemon.public_key]), ledger, actor=SENSOR, action="promote", subject="m")
    _promote(ledger, SENSOR)  # signed by the daemon
    monkeypatch.delenv(DAEMON_KEY_ENV)
    _promote(ledger, "sensor:forged", version=1)  # no daemon key here: unsigned
    other = create_signer(tmp_path / "other.ed25519", "daemon")
    judged = verify_signers(
        _policy([other.public_key]), ledger.audit_entries(), ledger.verify_audit()
    )
    kinds = [(problem.kind, problem.message.split(" (")[0]) for problem in judged.problems]
    seqs = [entry.seq for entry in ledger.audit_entries() if entry.actor.startswith("sensor:")]
    assert kinds == [("bad signature", f"entry {seqs[0]}"), ("unsigned", f"entry {seqs[1]}")]
    assert not judged.ok


def test_a_pinned_person_gets_a_key_on_first_use_and_is_told_its_public_key(
    ledger: Ledger, tmp_path: Path
) -> None:
    colleague = create_signer(tmp_path / "colleague.ed25519", "local:colleague")
    policy = _policy([], local_keys=[colleague.public_key])
    actor = acting_identity({}, {})
    with pytest.raises(SignatureRefused) as refused:
        authorize(policy, ledger, actor=actor, action="export", subject="capsule:x")
    assert refused.value.reason == "bad_signature"
    made = identity_key_path(actor)
    assert made.is_file(), "the local user's own key, to have pinned"
    signer = authorize(
        _policy([], local_keys=[colleague.public_key, _public_key_of(made, actor)]),
        ledger,
        actor=actor,
        action="export",
        subject="capsule:x",
    )
    assert signer.public_key in str(refused.value)
    # An asserted identity the policy pins is never signed for by someone else's key.
    with pytest.raises(SignatureRefused, match="no private key for local:colleague"):
        authorize(policy, ledger, actor="local:colleague", action="export", subject="capsule:x")


def _public_key_of(path: Path, identity: str) -> str:
    signer = load_signer(path, identity)
    assert signer is not None
    return signer.public_key


def test_a_public_key_that_is_not_an_ed25519_key_is_a_policy_error() -> None:
    with pytest.raises(PolicyError, match=r"members\[0\]: a public key is not a raw Ed25519 key"):
        _policy(["bm90IGEga2V5"])


def _rewrite_entry(db: Path, seq: int, edit: object) -> None:
    """What someone with the database and the audit key can do: edit an entry, re-hash it,
    re-MAC it and move the head, so that the chain itself is intact again."""
    connection = sqlite3.connect(db)
    try:
        row = connection.execute(
            "SELECT at, actor, action, subject, details, run_id, prev_hash FROM audit_log "
            "WHERE seq = ?",
            (seq,),
        ).fetchone()
        at, actor, action, subject, details, run_id, prev_hash = row
        assert callable(edit)
        text = json.dumps(edit(json.loads(details)), sort_keys=True, separators=(",", ":"))
        digest = entry_hash(
            seq=seq,
            at=at,
            actor=actor,
            action=action,
            subject=subject,
            details=text,
            run_id=run_id,
            prev_hash=prev_hash or GENESIS_HASH,
        )
        connection.execute(
            "UPDATE audit_log SET details = ?, entry_hash = ?, mac = ? WHERE seq = ?",
            (text, digest, sign(AUDIT_KEY, digest), seq),
        )
        connection.execute("UPDATE audit_head SET last_hash = ? WHERE id = 1", (digest,))
        connection.commit()
    finally:
        connection.close()
