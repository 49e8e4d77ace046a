"""The access policy: which acting identity may promote, roll back, export, import or change a
threshold.

A registry change is only as trustworthy as the record of who made it and whether they were
allowed to. The policy is a small YAML file (roles to actions, identities to roles) so that it can
be reviewed and versioned with the deployment; a refusal is written to the audit log before it is
raised, so attempts are provable too, not just successes.

An identity is also a value written into the ledger: a name that is over-long or carries control
characters would break the audit insert (the actor column is bounded) or forge lines in a report,
so a malformed one is refused as soon as it is resolved, before anything is written, and the
refusal is audited under a bounded, escaped form of it.

An identity is a name anyone can assert (a run tag, ``$AIOPS_ACTOR``), so a member may also pin
its identities to Ed25519 public keys (``public_keys``): ``authorize`` then needs the private key
of one of them (the daemon's for ``sensor:*``, the person's own in the key folder) and refuses,
audited, an action it cannot sign. The key it checked signs the action's audit entry
(``core/ledger/signatures.py``), and ``verify_signers`` re-checks each critical entry against
the policy's keys. A member without keys (the laptop default) is vouched for by the local user's
own key, made on first use outside the home.
"""

from __future__ import annotations

import fnmatch
import getpass
import hashlib
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aiops_assets.core.environments import EnvironmentRefusal, current_environment
from aiops_assets.core.ledger.records import AuditEntry, AuditProblem, AuditVerification
from aiops_assets.core.ledger.signatures import (
    SENSOR_PREFIX,
    SIGNATURE_DETAIL,
    Signer,
    SigningError,
    activate,
    create_signer,
    daemon_key_path,
    daemon_signer,
    identity_key_path,
    is_critical,
    key_id_of,
    load_signer,
    parse_public_key,
)
from aiops_assets.core.yaml_mapping import parse_yaml_mapping

if TYPE_CHECKING:
    from aiops_assets.core.ledger import Ledger

ACTIONS = (
    "promote",
    "rollback",
    "export",
    "import",
    "change_threshold",
    "promote_feature_set",
    "change_flags",
    "rotate_key",
)
# Actions a deployment that cannot promote (``core.environments``) refuses whatever the policy.
PROMOTING_ACTIONS = ("promote", "promote_feature_set")
ACTOR_TAG = "aiops/actor"
ACTOR_ENV = "AIOPS_ACTOR"
POLICY_ENV = "AIOPS_ACCESS_POLICY"
DEFAULT_POLICY_PATH = Path(__file__).with_name("access_policy.yaml")
ACTOR_MAX_LENGTH = 128
ACTOR_CHARACTERS = "ASCII letters, digits and . _ - : @ / +"
_NOT_ACTOR_CHARACTER = re.compile(r"[^A-Za-z0-9._\-:@/+]")
# How much of a refused identity the audit entry keeps: far below the ledger's 200-char column.
_SHOWN_PREFIX = 64


class PolicyError(ValueError):
    """The policy file is missing or malformed; the message names the file and the problem."""


class AccessDenied(PermissionError):
    """An identity tried an action its role does not allow."""

    def __init__(
        self,
        actor: str,
        role: str | None,
        action: str,
        subject: str,
        *,
        source: str,
        allowed_roles: list[str],
    ):
        self.actor = actor
        self.role = role
        self.action = action
        self.subject = subject
        role_text = f"role {role!r}" if role else "no role"
        super().__init__(
            f"{actor} ({role_text}) may not {action} {subject}; the access policy {source} "
            f"grants {action!r} to: {', '.join(allowed_roles) or 'no role'}"
        )


class ActorError(PermissionError):
    """The acting identity is not a well-formed name; the message shows only its safe form."""

    def __init__(self, actor: str, source: str, problem: str):
        self.actor = actor
        self.source = source
        self.shown = printable_actor(actor)
        super().__init__(
            f"the acting identity '{self.shown}' (from {source}) is not valid: {problem}; an "
            f"identity is 1-{ACTOR_MAX_LENGTH} characters of {ACTOR_CHARACTERS}"
        )


def printable_actor(actor: str) -> str:
    """``actor`` escaped to printable ASCII and cut to a bounded length (with the true length
    kept), so that recording a refused identity can never fail or forge a line."""
    escaped = actor.encode("unicode_escape").decode("ascii") or "(empty)"
    if len(escaped) <= _SHOWN_PREFIX:
        return escaped
    return f"{escaped[:_SHOWN_PREFIX]}…(len {len(actor)})"


def check_actor(actor: str, *, source: str = "the caller") -> str:
    """``actor`` if it is a well-formed identity, else ``ActorError`` naming the first problem."""
    if not actor:
        raise ActorError(actor, source, "it is empty")
    if len(actor) > ACTOR_MAX_LENGTH:
        raise ActorError(actor, source, f"it is {len(actor)} characters long")
    bad = _NOT_ACTOR_CHARACTER.search(actor)
    if bad is not None:
        shown = bad.group().encode("unicode_escape").decode("ascii")
        raise ActorError(actor, source, f"it contains '{shown}'")
    return actor


class SignatureRefused(AccessDenied):
    """An allowed action that cannot be signed as the policy requires: ``reason`` is
    ``unsigned`` (no private key for the identity) or ``bad_signature`` (a key it does not pin)."""

    def __init__(
        self, actor: str, role: str | None, action: str, subject: str, reason: str, why: str
    ):
        PermissionError.__init__(self, f"{actor} may not {action} {subject}: {why}")
        self.actor, self.role, self.action, self.subject = actor, role, action, subject
        self.reason = reason


@dataclass(frozen=True)
class Member:
    identity: str
    role: str
    public_keys: tuple[str, ...] = ()  # base64 raw Ed25519 keys; empty: not pinned


@dataclass(frozen=True)
class AccessPolicy:
    """A parsed policy. ``source`` is where it came from, shown in every refusal."""

    roles: Mapping[str, frozenset[str]]
    members: tuple[Member, ...]
    source: str
    sha256: str

    @classmethod
    def load(
        cls, path: str | Path | None = None, *, environ: Mapping[str, str] | None = None
    ) -> AccessPolicy:
        """The policy at ``path``, else at ``$AIOPS_ACCESS_POLICY``, else the packaged default."""
        env = os.environ if environ is None else environ
        chosen = Path(path) if path else Path(env[POLICY_ENV]) if env.get(POLICY_ENV) else None
        policy_path = chosen or DEFAULT_POLICY_PATH
        try:
            text = policy_path.read_text(encoding="utf-8")
        except OSError as error:
            raise PolicyError(f"cannot read the access policy {policy_path}: {error}") from error
        return cls.parse(text, source=str(policy_path))

    @classmethod
    def parse(cls, text: str, *, source: str = "<string>") -> AccessPolicy:
        document = parse_yaml_mapping(
            text,
            what=f"access policy {source}",
            error=PolicyError,
            expected="a mapping with roles and members",
        )
        raw_roles = document.get("roles")
        if not isinstance(raw_roles, dict) or not raw_roles:
            raise PolicyError(f"access policy {source}: `roles` must map role names to actions")
        roles: dict[str, frozenset[str]] = {}
        for role, actions in raw_roles.items():
            actions = actions or []
            if not isinstance(actions, list):
                raise PolicyError(f"access policy {source}: role {role!r} must list actions")
            unknown = sorted(set(map(str, actions)) - set(ACTIONS))
            if unknown:
                raise PolicyError(
                    f"access policy {source}: role {role!r} names unknown action(s) "
                    f"{', '.join(unknown)}; known actions: {', '.join(ACTIONS)}"
                )
            roles[str(role)] = frozenset(map(str, actions))
        raw_members = document.get("members") or []
        if not isinstance(raw_members, list):
            raise PolicyError(f"access policy {source}: `members` must be a list")
        members: list[Member] = []
        for index, item in enumerate(raw_members):
            if not isinstance(item, dict) or "identity" not in item or "role" not in item:
                raise PolicyError(
                    f"access policy {source}: members[{index}] needs `identity` and `role`"
                )
            if str(item["role"]) not in roles:
                raise PolicyError(
                    f"access policy {source}: members[{index}] names undefined role "
                    f"{item['role']!r}; defined roles: {', '.join(sorted(roles))}"
                )
            members.append(
                Member(
                    identity=str(item["identity"]),
                    role=str(item["role"]),
                    public_keys=_public_keys(
                        item.get("public_keys"), f"{source}: members[{index}]"
                    ),
                )
            )
        return cls(
            roles=roles,
            members=tuple(members),
            source=source,
            sha256=hashlib.sha256(text.encode("utf-8")).hexdigest(),
        )

    def member_of(self, actor: str) -> Member | None:
        """The first member pattern matching ``actor`` (case-sensitive globs)."""
        for member in self.members:
            if fnmatch.fnmatchcase(actor, member.identity):
                return member
        return None

    def role_of(self, actor: str) -> str | None:
        member = self.member_of(actor)
        return None if member is None else member.role

    def allows(self, actor: str, action: str) -> bool:
        if action not in ACTIONS:
            raise PolicyError(f"unknown action {action!r}; known actions: {', '.join(ACTIONS)}")
        role = self.role_of(actor)
        return role is not None and action in self.roles[role]

    def require(self, actor: str, action: str, subject: str) -> None:
        if self.allows(actor, action):
            return
        raise AccessDenied(
            actor,
            self.role_of(actor),
            action,
            subject,
            source=self.source,
            allowed_roles=sorted(role for role, actions in self.roles.items() if action in actions),
        )


def _public_keys(raw: Any, where: str) -> tuple[str, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise PolicyError(f"access policy {where}: `public_keys` must list base64 Ed25519 keys")
    for text in raw:
        try:
            parse_public_key(str(text))
        except ValueError as error:
            raise PolicyError(
                f"access policy {where}: a public key is not a raw Ed25519 key: {error}"
            ) from error
    return tuple(str(text).strip() for text in raw)


def acting_identity(
    tags: Mapping[str, str] | None = None, environ: Mapping[str, str] | None = None
) -> str:
    """Who is acting: the run's ``aiops/actor`` tag, else ``$AIOPS_ACTOR``, else the OS user.

    An asserted identity (tag or variable) that is not well formed is ``ActorError``; the OS
    user, which nobody asserted, is made well formed instead (other characters become ``_``),
    so the laptop default always works.
    """
    if tags and tags.get(ACTOR_TAG):
        return check_actor(str(tags[ACTOR_TAG]), source=f"the run tag {ACTOR_TAG}")
    env = os.environ if environ is None else environ
    if env.get(ACTOR_ENV):
        return check_actor(env[ACTOR_ENV], source=f"${ACTOR_ENV}")
    return _local_user()


def _local_user() -> str:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no passwd entry, e.g. an arbitrary container UID
        user = str(os.getuid()) if hasattr(os, "getuid") else "unknown"
    prefix = "local:"
    cleaned = _NOT_ACTOR_CHARACTER.sub("_", user)[: ACTOR_MAX_LENGTH - len(prefix)]
    return prefix + (cleaned or "unknown")


def identify(
    ledger: Ledger,
    *,
    action: str,
    subject: str,
    tags: Mapping[str, str] | None = None,
    environ: Mapping[str, str] | None = None,
    run_id: str | None = None,
) -> str:
    """``acting_identity``, with a malformed identity's refusal audited before it is raised."""
    try:
        return acting_identity(tags, environ)
    except ActorError as error:
        audit_malformed_actor(ledger, error, action=action, subject=subject, run_id=run_id)
        raise


def audit_malformed_actor(
    ledger: Ledger, error: ActorError, *, action: str, subject: str, run_id: str | None = None
) -> None:
    """An ``access_denied`` entry under the identity's printable form; its length and hash let
    an investigator match the raw value without the entry ever holding it."""
    raw = error.actor.encode("utf-8", "surrogatepass")
    details = {
        "action": action,
        "reason": "malformed_actor",
        "source": error.source,
        "actor_length": len(error.actor),
        "actor_sha256": hashlib.sha256(raw).hexdigest(),
        "message": str(error),
    }
    ledger.audit(
        "access_denied", actor=error.shown, subject=subject, details=details, run_id=run_id
    )


def authorize(
    policy: AccessPolicy,
    ledger: Ledger,
    *,
    actor: str,
    action: str,
    subject: str,
    run_id: str | None = None,
) -> Signer:
    """Raise ``AccessDenied`` unless allowed; a refusal is audited first, so it cannot go unseen.

    A deployment whose environment cannot promote (the sandbox) refuses ``promote`` whatever the
    policy says, with ``EnvironmentRefusal``, audited the same way; so is an ``actor`` that is
    not a well-formed identity (``ActorError``), whoever resolved it. An allowed action must
    also be signable (``resolve_signer``; else ``SignatureRefused``, audited): the signer is
    returned and signs ``actor``'s critical entries in ``ledger`` from here on, in this context.
    """
    try:
        check_actor(actor)
    except ActorError as error:
        audit_malformed_actor(ledger, error, action=action, subject=subject, run_id=run_id)
        raise
    environment = current_environment()
    if action in PROMOTING_ACTIONS and not environment.can_promote:
        try:
            environment.require_promotion(subject)
        except EnvironmentRefusal as refusal:
            refused = {"action": action, "environment": environment.name, "message": str(refusal)}
            ledger.audit(
                "access_denied", actor=actor, subject=subject, details=refused, run_id=run_id
            )
            raise

    def audit_refusal(role: str | None, message: str, **reason: str) -> None:
        details: dict[str, Any] = {
            "action": action,
            **reason,
            "role": role,
            "policy": policy.source,
            "policy_sha256": policy.sha256,
            "message": message,
        }
        ledger.audit("access_denied", actor=actor, subject=subject, details=details, run_id=run_id)

    try:
        policy.require(actor, action, subject)
    except AccessDenied as error:
        audit_refusal(error.role, str(error))
        raise
    try:
        signer = resolve_signer(policy, actor, action=action, subject=subject)
    except SignatureRefused as error:
        audit_refusal(error.role, str(error), reason=error.reason)
        raise
    activate(ledger.url, actor, signer)
    return signer


def resolve_signer(
    policy: AccessPolicy,
    actor: str,
    *,
    action: str = "act",
    subject: str = "",
    environ: Mapping[str, str] | None = None,
) -> Signer:
    """The key that signs ``actor``'s actions, or ``SignatureRefused``.

    A sensor signs with the daemon's key (``$AIOPS_DAEMON_KEY``, else the key folder's); anyone
    else with their own key in the key folder, which is made on first use for the local user
    only. Where the member ``actor`` matches pins public keys, the key must be one of them, and
    nothing else will do; where it pins none (the laptop default), an asserted identity without
    a key of its own is vouched for by the local user's key: the same person at the same desk.
    """
    member = policy.member_of(actor)
    role = None if member is None else member.role
    pinned = () if member is None else member.public_keys
    try:
        signer, looked = _find_signer(actor, pinned=bool(pinned), environ=environ)
    except SigningError as error:
        raise SignatureRefused(actor, role, action, subject, "unsigned", str(error)) from error
    if signer is None:
        why = (
            f"the access policy {policy.source} pins {member.identity if member else actor} to "
            f"signing keys and no private key for {actor} was found (looked at "
            f"{', '.join(map(str, looked))})"
        )
        raise SignatureRefused(actor, role, action, subject, "unsigned", why)
    if pinned and signer.public_key not in pinned:
        why = (
            f"the key {signer.source} (public key {signer.public_key}) is not one the access "
            f"policy {policy.source} names for {member.identity if member else actor}"
        )
        raise SignatureRefused(actor, role, action, subject, "bad_signature", why)
    return signer


def _find_signer(
    actor: str, *, pinned: bool, environ: Mapping[str, str] | None
) -> tuple[Signer | None, list[Path]]:
    if actor.startswith(SENSOR_PREFIX):
        return daemon_signer(create=not pinned, environ=environ), [daemon_key_path(environ)]
    own = identity_key_path(actor)
    local = _local_user()
    found = load_signer(own, actor)
    if found is not None:
        return found, [own]
    if actor == local:
        return create_signer(own, actor), [own]
    if pinned:
        return None, [own]
    mine = identity_key_path(local)
    return load_signer(mine, local) or create_signer(mine, local), [own, mine]


def verify_signers(
    policy: AccessPolicy, entries: Iterable[AuditEntry], verification: AuditVerification
) -> AuditVerification:
    """``verification`` with every critical entry's signer judged against the policy's keys.

    A critical entry signed by a key the policy does not pin for its actor's member is ``bad
    signature``; an unsigned one is ``unsigned`` when the member pins keys. Unsigned entries
    before the first signed one (written before signing) and those of members that pin no keys
    are counted in a note: not tampering. (Whether each signature signs its entry is the
    chain's own check: ``verify_chain``.)
    """
    problems: list[AuditProblem] = []
    before, unpinned, signed = 0, 0, False
    for entry in entries:
        details = entry.details if isinstance(entry.details, dict) else {}
        if not is_critical(entry.action, entry.subject, details):
            continue
        signature = details.get(SIGNATURE_DETAIL)
        member = policy.member_of(entry.actor)
        pinned = () if member is None else member.public_keys
        if signature is None:
            if not signed:
                before += 1
            elif pinned:
                problems.append(_unsigned_problem(entry, policy))
            else:
                unpinned += 1
            continue
        signed = True
        key = signature.get("public_key") if isinstance(signature, dict) else None
        if pinned and key not in pinned:
            problems.append(_unpinned_key_problem(entry, policy, str(key)))
    notes = list(verification.notes)
    if before:
        notes.append(
            f"{before} critical entries written before signing began are unsigned "
            "(unsigned (before signing): not tampering)"
        )
    if unpinned:
        notes.append(
            f"{unpinned} critical entries are unsigned, by identities the access policy "
            f"{policy.source} pins to no key (trusted code, such as the demo): not tampering"
        )
    return AuditVerification(
        ok=verification.ok and not problems,
        entries=verification.entries,
        problems=[*verification.problems, *problems],
        notes=notes,
    )


def _unsigned_problem(entry: AuditEntry, policy: AccessPolicy) -> AuditProblem:
    return AuditProblem(
        entry.seq,
        "unsigned",
        f"entry {entry.seq} ({entry.action} of {entry.subject} by {entry.actor}) is not signed, "
        f"but the access policy {policy.source} pins its identity to signing keys",
    )


def _unpinned_key_problem(entry: AuditEntry, policy: AccessPolicy, key: str) -> AuditProblem:
    return AuditProblem(
        entry.seq,
        "bad signature",
        f"entry {entry.seq} ({entry.action} of {entry.subject} by {entry.actor}) is signed by "
        f"key {key_id_of(key)}, which the access policy {policy.source} does not name for it",
    )
