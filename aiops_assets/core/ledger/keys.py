"""Where the audit HMAC keys come from, and which one signs: secrets kept apart from the data.

Whoever can write ``$AIOPS_HOME`` (the ledger, the store) must not thereby read the key that
vouches for the chain, so a key comes from a secret: ``AIOPS_AUDIT_KEY`` (a ``dg.EnvVar`` in a
deployment), the output of ``AIOPS_AUDIT_KEY_COMMAND`` (a secret manager's CLI, run without a
shell), or a key file in a folder outside the home: ``$AIOPS_KEY_DIR``, else
``$XDG_CONFIG_HOME/aiops/keys``, else ``~/.config/aiops/keys`` (0700; files 0600).

A key's id is the first 16 hex digits of its SHA-256 (it names the key, it reveals nothing), its
file is ``audit-<id>.key`` and every entry records the id it was signed with. The key that signs
a ledger's new entries is the one the folder notes for it (``ledger-<hash>.current``, written
when a key first signs and at each rotation: the ledger's writers cannot repoint it), else the
one its last rotation entry or newest entry names. Old entries keep verifying with the key their
id names, for as long as that key stays in the folder (or in ``AIOPS_AUDIT_OLD_KEYS``).
"""

from __future__ import annotations

import hashlib
import os
import secrets
import shlex
import subprocess
from collections.abc import Iterable, Mapping
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path

from aiops_assets.core.ledger.records import LedgerError

AUDIT_KEY_ENV = "AIOPS_AUDIT_KEY"
AUDIT_KEY_COMMAND_ENV = "AIOPS_AUDIT_KEY_COMMAND"
AUDIT_OLD_KEYS_ENV = "AIOPS_AUDIT_OLD_KEYS"
KEY_DIR_ENV = "AIOPS_KEY_DIR"
KEY_ID_LENGTH = 16
_COMMAND_TIMEOUT_S = 30


class UnknownKeyError(LedgerError):
    """An entry names a key id that none of the available keys has."""

    def __init__(self, key_id: str) -> None:
        super().__init__(f"signed with unknown key {key_id}")
        self.key_id = key_id


def key_id_of(secret: bytes) -> str:
    return hashlib.sha256(secret).hexdigest()[:KEY_ID_LENGTH]


@dataclass(frozen=True)
class AuditKey:
    """One HMAC key and where it came from (for messages; never the secret itself)."""

    secret: bytes = field(repr=False)
    source: str

    def __post_init__(self) -> None:
        if not self.secret:
            raise LedgerError(f"the audit key from {self.source} is empty")

    @property
    def key_id(self) -> str:
        return key_id_of(self.secret)


@dataclass
class KeyRing:
    """The key that signs new entries, and the keys old entries may name by id.

    ``folder`` is searched (lazily, by id) for keys the ring was not given; ``unlabelled`` signed
    the entries written before entries recorded a key id.
    """

    current: AuditKey
    others: dict[str, AuditKey] = field(default_factory=dict)
    folder: Path | None = None
    unlabelled: AuditKey | None = None
    warnings: list[str] = field(default_factory=list)
    pending: bool = False  # ``current`` is new and not yet in ``folder``
    marker: Path | None = None  # the folder's note of which key signs this ledger
    marked: bool = False

    def signing_key(self) -> AuditKey:
        """The current key, written to the folder before it signs its first entry (a ledger
        opened for writing but never written leaves no key behind), and noted as this ledger's
        key in the folder, where the ledger's writers cannot point it elsewhere."""
        if self.pending and self.folder is not None:
            self.current = create_key(self.folder, self.current.secret)
            self.pending = False
        if self.marker is not None and not self.marked:
            write_marker(self.marker, self.current.key_id)
            self.marked = True
        return self.current

    def key(self, key_id: str | None) -> AuditKey:
        """The key an entry names; entries without an id were signed with the unlabelled key."""
        if key_id is None:
            return self.unlabelled or self.current
        if key_id == self.current.key_id:
            return self.current
        if key_id not in self.others and self.folder is not None:
            found = _read_key_file(key_path(self.folder, key_id))
            if found is not None and found.key_id == key_id:
                self.others[key_id] = found
        if key_id not in self.others:
            raise UnknownKeyError(key_id)
        return self.others[key_id]

    def unlabelled_candidates(self) -> list[AuditKey]:
        """Keys that may have signed an entry without a key id, likeliest first: the ring's
        unlabelled key, the current one, then every other key it has or its folder holds (an
        old home's key moved into the folder at a rotation signs the entries before it)."""
        if self.folder is not None and self.folder.is_dir():
            for path in sorted(self.folder.glob("audit-*.key")):
                found = _read_key_file(path)
                if found is not None:
                    self.others.setdefault(found.key_id, found)
        first = [self.unlabelled] if self.unlabelled is not None else []
        return [*first, self.current, *self.others.values()]

    @property
    def injected(self) -> bool:
        """Whether the current key comes from the deployment (environment or command)."""
        return self.current.source in (AUDIT_KEY_ENV, AUDIT_KEY_COMMAND_ENV)


def key_dir(environ: Mapping[str, str] | None = None) -> Path:
    """The key folder (not created: only a write that needs a new key makes it).

    The folder is a setting of the machine, not a secret: a value in ``environ`` wins, and the
    process environment fills in, so an ``environ`` of secrets alone never moves the folder.
    """
    env = {**os.environ, **(environ or {})}
    configured = env.get(KEY_DIR_ENV, "").strip()
    if configured:
        return Path(configured).expanduser().absolute()
    config_home = env.get("XDG_CONFIG_HOME", "").strip()
    base = Path(config_home).expanduser() if config_home else Path.home() / ".config"
    return (base / "aiops" / "keys").absolute()


def key_path(folder: Path, key_id: str) -> Path:
    return folder / f"audit-{key_id}.key"


def marker_path(folder: Path, ledger: str) -> Path:
    """Where the folder notes which key signs the ledger at ``ledger`` (its URL, no password)."""
    return folder / f"ledger-{hashlib.sha256(ledger.encode('utf-8')).hexdigest()[:16]}.current"


def read_marker(path: Path) -> str | None:
    try:
        text = path.read_text(encoding="ascii", errors="replace").strip()
    except FileNotFoundError:
        return None
    if len(text) != KEY_ID_LENGTH or any(char not in "0123456789abcdef" for char in text):
        raise LedgerError(f"{path} should hold one key id (16 hex digits); it does not")
    return text


def write_marker(path: Path, key_id: str) -> None:
    """Replace the note atomically (temporary file, fsync, rename), private like the keys."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(descriptor, "w", encoding="ascii") as handle:
            handle.write(key_id + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def _read_key_file(path: Path) -> AuditKey | None:
    try:
        secret = path.read_bytes().strip()
    except FileNotFoundError:
        return None
    if not secret:
        raise LedgerError(f"the audit key file {path} is empty")
    return AuditKey(secret, str(path))


def create_key(folder: Path, secret: bytes | None = None) -> AuditKey:
    """A new key file in ``folder`` (0700, created if missing), written 0600 whatever the umask;
    ``secret`` keeps an existing key (one moved out of a home) under its id."""
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(folder, 0o700)
    key = AuditKey(secret or secrets.token_hex(32).encode("ascii"), "a new key")
    path = key_path(folder, key.key_id)
    write_private_file(path, key.secret + b"\n")
    return AuditKey(key.secret, str(path))


def write_private_file(path: Path, content: bytes) -> None:
    """``content`` at ``path``, 0600 whatever the umask, unless the file already exists.

    A private temporary file linked into place: two writers never see a half-written key, and
    the first one to link wins."""
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.fchmod(descriptor, 0o600)
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(content)
            handle.flush()
            os.fsync(handle.fileno())
        with suppress(FileExistsError):
            os.link(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def key_from_command(command: str) -> AuditKey:
    """The key a secret manager prints (``AIOPS_AUDIT_KEY_COMMAND``, split like a shell would,
    run without one)."""
    try:
        done = subprocess.run(  # the operator's own command, split, with no shell
            shlex.split(command),
            capture_output=True,
            check=False,
            timeout=_COMMAND_TIMEOUT_S,
        )
    except (OSError, ValueError, subprocess.TimeoutExpired) as error:
        raise LedgerError(f"{AUDIT_KEY_COMMAND_ENV} could not run: {error}") from error
    if done.returncode != 0:
        raise LedgerError(f"{AUDIT_KEY_COMMAND_ENV} exited with status {done.returncode}")
    return AuditKey(done.stdout.strip(), AUDIT_KEY_COMMAND_ENV)


def given_keys(secrets_: Iterable[bytes | str]) -> dict[str, AuditKey]:
    """Old keys by id, from values (``AIOPS_AUDIT_OLD_KEYS`` is them comma-separated)."""
    keys = [
        AuditKey(value.encode("utf-8") if isinstance(value, str) else bytes(value), "old keys")
        for value in secrets_
        if value
    ]
    return {key.key_id: key for key in keys}


def secret_key(environ: Mapping[str, str]) -> AuditKey | None:
    """The key a deployment injects (environment, then command), if it injects one."""
    if environ.get(AUDIT_KEY_ENV, ""):
        return AuditKey(environ[AUDIT_KEY_ENV].encode("utf-8"), AUDIT_KEY_ENV)
    if environ.get(AUDIT_KEY_COMMAND_ENV, "").strip():
        return key_from_command(environ[AUDIT_KEY_COMMAND_ENV])
    return None


@dataclass(frozen=True)
class KeySearch:
    """Everything ``resolve_keys`` may use, and what the ledger it keys already says."""

    environ: Mapping[str, str]
    folder: Path
    ledger: str  # the ledger's URL without its password: names its note in the folder
    legacy_file: Path | None  # a key an older home kept beside its data: read, never made
    data_folder: Path | None  # the SQLite ledger's folder, to say a key file sits beside it
    newest_key_id: str | None  # the key id the ledger's newest entry records
    has_entries: bool
    create: bool


def resolve_keys(search: KeySearch) -> KeyRing:
    """The ring for one ledger; a missing key is a one-line error naming where it looked."""
    old = given_keys(search.environ.get(AUDIT_OLD_KEYS_ENV, "").split(","))
    injected = secret_key(search.environ)
    if injected is not None:
        # A home's own key file is ignored: anyone who writes the home could have planted it.
        return KeyRing(injected, old, search.folder)
    legacy = _read_key_file(search.legacy_file) if search.legacy_file is not None else None
    marker = marker_path(search.folder, search.ledger)
    pinned = read_marker(marker)
    if pinned is not None and (legacy is None or legacy.key_id != pinned):
        legacy = None  # the folder names this ledger's key: a key file in the home is not it
    ring = _ring_for(search, pinned or search.newest_key_id, legacy, old)
    ring.marker, ring.marked = marker, pinned == ring.current.key_id
    if legacy is not None:
        ring.others.setdefault(legacy.key_id, legacy)
        ring.unlabelled = ring.unlabelled or legacy
        if _beside(search.legacy_file, search.data_folder) and ring.current is legacy:
            ring.warnings.append(
                f"the audit key {search.legacy_file} sits beside the ledger: whoever can write "
                "the ledger can read it; run `aiops audit rotate-key` to move to a key kept "
                f"in {search.folder}, then delete it"
            )
    return ring


def _ring_for(
    search: KeySearch, key_id: str | None, legacy: AuditKey | None, old: dict[str, AuditKey]
) -> KeyRing:
    if key_id is not None:
        named = _read_key_file(key_path(search.folder, key_id))
        if named is not None:
            return KeyRing(named, old, search.folder)
        if legacy is not None and legacy.key_id == key_id:
            return KeyRing(legacy, old, search.folder)
        raise LedgerError(_missing_key(search, f"key {key_id}"))
    if legacy is not None:
        return KeyRing(legacy, old, search.folder)
    if search.has_entries or not search.create:
        raise LedgerError(_missing_key(search, "audit key"))
    fresh = AuditKey(secrets.token_hex(32).encode("ascii"), "a new key")
    return KeyRing(fresh, old, search.folder, pending=True)


def rotate(ring: KeyRing) -> tuple[AuditKey, AuditKey]:
    """A new current key in the ring's folder; returns (old, new). The old key stays there (an
    old home's key is copied in under its id) so the entries it signed keep verifying."""
    if ring.injected:
        raise LedgerError(
            f"the audit key comes from {ring.current.source}: rotate it where it is kept (give "
            f"the new key there and the old one in {AUDIT_OLD_KEYS_ENV})"
        )
    if ring.folder is None:
        raise LedgerError("this ledger was given its key directly: it has no key folder")
    old = ring.signing_key()
    if not key_path(ring.folder, old.key_id).is_file():
        old = create_key(ring.folder, old.secret)
    new = create_key(ring.folder)
    ring.others[old.key_id] = old
    ring.current, ring.marked = new, False  # the next signature notes the new key
    return old, new


def _missing_key(search: KeySearch, what: str) -> str:
    places = [f"{AUDIT_KEY_ENV}", f"{AUDIT_KEY_COMMAND_ENV}", str(search.folder)]
    if search.legacy_file is not None:
        places.append(str(search.legacy_file))
    signed = " that signed this ledger" if search.has_entries else ""
    return f"no {what}{signed}: looked in {', '.join(places)}; none was created"


def _beside(path: Path | None, data_folder: Path | None) -> bool:
    if path is None or data_folder is None:
        return False
    return path.absolute().parent == data_folder.absolute()
