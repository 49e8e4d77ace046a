"""Ed25519 signatures of critical registry actions: who acted is proven, not just asserted.

The HMAC chain proves that an entry was written by someone holding the audit key; it cannot say
*who* among the key's holders acted, and the acting identity is a name anyone can assert (a run
tag, ``$AIOPS_ACTOR``). A critical entry (a champion move, a rollout start or manual halt, an
export, an import, a flag, feature-set status or threshold change) therefore also carries an
Ed25519 signature by the acting identity's private key, which the access policy pins by its
public key (``core/policy.py``).

What is signed is the entry's own hash computed without the signature: its seq, time, actor,
action, subject, details, run id and the previous entry's hash, so a signature cannot be moved
to another entry, another place in the chain or another ledger state. It is stored in the
entry's details (``signature``: signer, key id, public key, value); ``verify_chain`` re-checks
each one.

Private keys live in the key folder (``keys.key_dir``, outside ``$AIOPS_HOME``, 0700, files
0600): ``identity-<name>.ed25519`` for a person, ``daemon.ed25519`` (or ``$AIOPS_DAEMON_KEY``)
for the sensors. ``policy.authorize`` decides which key may sign for an actor and activates it
for that actor's writes to that ledger in the current context; a sensor's own writes (a rollout
stage that completes a rollout) are signed with the daemon key whenever the process holds it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import re
from collections.abc import Mapping
from contextlib import suppress
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from aiops_assets.core.ledger.keys import key_dir, write_private_file
from aiops_assets.core.ledger.records import LedgerError

SIGNATURE_DETAIL = "signature"
DAEMON_KEY_ENV = "AIOPS_DAEMON_KEY"
DAEMON_KEY_FILE = "daemon.ed25519"
DAEMON = "daemon"
SENSOR_PREFIX = "sensor:"
# Domain separation: an action signature can never be mistaken for a signature of anything else.
_CONTEXT = b"aiops-signed-action/v1:"
_NOT_FILE_CHARACTER = re.compile(r"[^A-Za-z0-9._-]")

# Audit actions that are always critical; the others below are critical in some cases only.
_CRITICAL = frozenset(
    {"rollout_start", "export", "import", "flags_change", "feature_set_status", "threshold_change"}
)


class SigningError(LedgerError):
    """A private key file that cannot be read or is not an Ed25519 key."""


@dataclass(frozen=True)
class Signer:
    """One private key and whose it is (``daemon`` or an identity); never shown."""

    identity: str
    private_key: Ed25519PrivateKey = field(repr=False)
    source: str

    @property
    def public_key(self) -> str:
        """The raw public key in base64: the form the access policy pins."""
        return public_key_text(self.private_key.public_key())

    @property
    def key_id(self) -> str:
        return key_id_of(self.public_key)

    def sign(self, digest: str) -> dict[str, str]:
        """The signature record stored in the entry's details."""
        value = self.private_key.sign(_CONTEXT + digest.encode("ascii"))
        return {
            "signer": self.identity,
            "key_id": self.key_id,
            "public_key": self.public_key,
            "value": base64.b64encode(value).decode("ascii"),
        }


def public_key_text(key: Ed25519PublicKey) -> str:
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return base64.b64encode(raw).decode("ascii")


def key_id_of(public_key: str) -> str:
    return hashlib.sha256(public_key.encode("utf-8")).hexdigest()[:16]


def parse_public_key(text: str) -> Ed25519PublicKey:
    """A base64 raw Ed25519 public key; ``ValueError`` when it is not one."""
    try:
        raw = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError) as error:
        raise ValueError(f"{text!r} is not base64") from error
    if len(raw) != 32:
        raise ValueError(f"{text!r} is {len(raw)} bytes, an Ed25519 public key is 32")
    return Ed25519PublicKey.from_public_bytes(raw)


# --- which entries are critical ---------------------------------------------------------------


def is_critical(action: str, subject: str, details: Mapping[str, Any]) -> bool:
    """Whether an audit entry records a critical action, the kind that must be signed.

    A champion move (promotion, rollback, a rollout's completion), a promotion decision that
    promoted, a rollout start or a manual halt, and the always-critical actions above. A gate
    that refused, a challenger move or a sensor's measured stage verdict are not: the code that
    writes them acts on evidence, not on someone's say-so.
    """
    if action in _CRITICAL:
        return True
    if action == "set_alias":
        return subject.endswith(":champion")
    if action == "promotion_decision":
        return details.get("promoted") is True
    if action == "rollout_stage":
        evidence = details.get("evidence")
        manual = isinstance(evidence, dict) and evidence.get("manual") is True
        return manual and details.get("rollout_status") == "halted"
    return False


# --- signing at append time -------------------------------------------------------------------

# (ledger URL, actor) -> the signer ``authorize`` resolved for that actor's writes to that ledger.
_ACTIVE: ContextVar[Mapping[tuple[str, str], Signer] | None] = ContextVar(
    "aiops_signers", default=None
)


def activate(ledger_url: str, actor: str, signer: Signer) -> None:
    """Sign ``actor``'s critical entries in ``ledger_url`` with ``signer`` from now on, in this
    context (a CLI command, a run's step): the key that was checked is the key that signs."""
    _ACTIVE.set({**(_ACTIVE.get() or {}), (ledger_url, actor): signer})


def signer_at_append(ledger_url: str, actor: str) -> Signer | None:
    """The signer for an entry ``actor`` appends now: the one ``authorize`` activated, else for
    a sensor the daemon key if this process holds one (never made here), else none."""
    active = (_ACTIVE.get() or {}).get((ledger_url, actor))
    if active is not None:
        return active
    if actor.startswith(SENSOR_PREFIX):
        return daemon_signer(create=False)
    return None


def with_signature(details: Mapping[str, Any], signature: Mapping[str, str]) -> dict[str, Any]:
    return {**details, SIGNATURE_DETAIL: dict(signature)}


def split_signature(details: Any) -> tuple[Any, Any]:
    """(details without the signature, the signature record or None)."""
    if not isinstance(details, dict) or SIGNATURE_DETAIL not in details:
        return details, None
    rest = dict(details)
    return rest, rest.pop(SIGNATURE_DETAIL)


def signature_problem(signature: Any, digest: str) -> str | None:
    """Why ``signature`` does not sign ``digest`` (the entry's hash without it), or None."""
    if not isinstance(signature, dict):
        return "its signature record is not a mapping"
    try:
        public = parse_public_key(str(signature.get("public_key", "")))
        value = base64.b64decode(str(signature.get("value", "")), validate=True)
        public.verify(value, _CONTEXT + digest.encode("ascii"))
    except (ValueError, binascii.Error, UnicodeEncodeError) as error:
        return f"its signature record is malformed ({error})"
    except InvalidSignature:
        return (
            f"its signature by {signature.get('signer')!r} (key {signature.get('key_id')}) does "
            "not sign this entry: the entry was edited and re-hashed, or the signature was "
            "copied from another entry"
        )
    return None


# --- key files --------------------------------------------------------------------------------


def identity_key_path(identity: str, folder: Path | None = None) -> Path:
    """The identity's private key file: its name made file-safe, plus a hash against clashes."""
    digest = hashlib.sha256(identity.encode("utf-8")).hexdigest()[:8]
    name = _NOT_FILE_CHARACTER.sub("_", identity)
    return (folder or key_dir()) / f"identity-{name}-{digest}.ed25519"


def daemon_key_path(environ: Mapping[str, str] | None = None) -> Path:
    env = os.environ if environ is None else environ
    configured = env.get(DAEMON_KEY_ENV, "").strip()
    return Path(configured).expanduser() if configured else key_dir(environ) / DAEMON_KEY_FILE


def daemon_signer(*, create: bool, environ: Mapping[str, str] | None = None) -> Signer | None:
    """The sensors' signer; ``create`` makes the folder's key (never ``$AIOPS_DAEMON_KEY``'s)."""
    env = os.environ if environ is None else environ
    path = daemon_key_path(env)
    found = load_signer(path, DAEMON)
    if found is None and create and not env.get(DAEMON_KEY_ENV, "").strip():
        return create_signer(path, DAEMON)
    return found


def load_signer(path: Path, identity: str) -> Signer | None:
    """The key in ``path``, None when there is no such file; a bad file is ``SigningError``."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as error:
        raise SigningError(f"cannot read the signing key {path}: {error}") from error
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as error:
        raise SigningError(f"{path} is not an unencrypted PEM private key: {error}") from error
    if not isinstance(key, Ed25519PrivateKey):
        raise SigningError(f"{path} holds a {type(key).__name__}, not an Ed25519 key")
    return Signer(identity, key, str(path))


def create_signer(path: Path, identity: str) -> Signer:
    """A new key at ``path`` (folder 0700, file 0600 whatever the umask); a key another process
    made first wins, so two first uses never leave two keys."""
    try:
        _write_new_key(path)
    except OSError as error:
        raise SigningError(f"cannot create the signing key {path}: {error}") from error
    made = load_signer(path, identity)
    if made is None:  # pragma: no cover - the file was linked just above
        raise SigningError(f"could not create the signing key {path}")
    return made


def _write_new_key(path: Path) -> None:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    with suppress(PermissionError):
        os.chmod(path.parent, 0o700)
    pem = Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    write_private_file(path, pem)
