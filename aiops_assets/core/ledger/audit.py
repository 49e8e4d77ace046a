"""The audit chain: entry hashes, their HMAC, the audit key, appending, and verification.

Entries form a hash chain (each names the hash of its predecessor) and each hash carries an HMAC
made with a key that the database does not hold, so someone with write access to the database
alone cannot edit, delete, insert or reorder entries without verification naming the entry. A
single-row head (last seq and hash) is locked by every writer: appends serialize, and a truncated
tail is visible.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Row, insert, select, update

from aiops_assets.core.ledger.binding import REGISTRY_DETAIL
from aiops_assets.core.ledger.encoding import canonical_json, loads_json, parse_time, utc
from aiops_assets.core.ledger.keys import AUDIT_KEY_ENV as AUDIT_KEY_ENV
from aiops_assets.core.ledger.keys import AuditKey, UnknownKeyError
from aiops_assets.core.ledger.records import (
    AuditEntry,
    AuditProblem,
    AuditVerification,
    LedgerError,
)
from aiops_assets.core.ledger.schema import audit_head, audit_log
from aiops_assets.core.ledger.signatures import (
    Signer,
    is_critical,
    signature_problem,
    signer_at_append,
    split_signature,
    with_signature,
)

GENESIS_HASH = "0" * 64

# How many mis-numbered entries verify will try to place; beyond that they are reported as edits.
_REORDER_SEARCH_LIMIT = 64


# --- hashing and signing ----------------------------------------------------------------------


def entry_hash(
    *,
    seq: int,
    at: datetime | str,
    actor: str,
    action: str,
    subject: str,
    details: str,
    run_id: str | None,
    prev_hash: str,
) -> str:
    """The SHA-256 of an entry's content, over the stored texts of ``at`` and ``details``."""
    payload = canonical_json(
        {
            "seq": seq,
            "at": at if isinstance(at, str) else utc(at).isoformat(),
            "actor": actor,
            "action": action,
            "subject": subject,
            "details": details,
            "run_id": run_id,
            "prev_hash": prev_hash,
        }
    )
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def sign(key: bytes, digest: str) -> str:
    return hmac.new(key, digest.encode("ascii"), hashlib.sha256).hexdigest()


def signature_ok(key: bytes, digest: str, mac: str) -> bool:
    """Whether ``mac`` signs ``digest``; a tampered, non-ASCII digest simply does not verify."""
    try:
        expected = sign(key, digest)
    except UnicodeEncodeError:
        return False
    return hmac.compare_digest(expected.encode("ascii"), str(mac).encode("utf-8"))


# (digest, mac, key id or None) -> whether the key that id names signed it; raises
# UnknownKeyError when no available key has that id.
MacCheck = Callable[[str, str, str | None], bool]


def as_audit_key(key: bytes | AuditKey) -> AuditKey:
    """Keys are made and found in ``keys``; a bare secret (a test's, a caller's) works too."""
    return key if isinstance(key, AuditKey) else AuditKey(bytes(key), "the caller")


# --- appending --------------------------------------------------------------------------------


def lock_head(conn: Connection) -> tuple[int, str]:
    """Lock the audit head for the rest of the transaction (a row lock on PostgreSQL)."""
    row = conn.execute(
        select(audit_head.c.last_seq, audit_head.c.last_hash)
        .where(audit_head.c.id == 1)
        .with_for_update()
    ).one_or_none()
    if row is None:
        raise LedgerError("the audit head row is missing; the ledger database is damaged")
    return int(row.last_seq), str(row.last_hash)


def append_entry(
    conn: Connection,
    key: bytes | AuditKey,
    action: str,
    *,
    actor: str,
    subject: str,
    details: Mapping[str, Any] | None,
    run_id: str | None,
    at: datetime,
) -> AuditEntry:
    """Chain one entry onto the head inside the caller's transaction, and move the head."""
    last_seq, last_hash = lock_head(conn)
    seq = last_seq + 1
    details_text = canonical_json(dict(details or {}))

    def digest_of(text: str) -> str:
        return entry_hash(
            seq=seq,
            at=at,
            actor=actor,
            action=action,
            subject=subject,
            details=text,
            run_id=run_id,
            prev_hash=last_hash,
        )

    digest = digest_of(details_text)
    signer = _signer_for(conn, actor, action, subject, json.loads(details_text))
    if signer is not None:
        # Signed: the entry's hash without the signature, so the signature names its place.
        details_text = canonical_json(with_signature(json.loads(details_text), signer.sign(digest)))
        digest = digest_of(details_text)
    entry = AuditEntry(
        seq=seq,
        at=at,
        actor=actor,
        action=action,
        subject=subject,
        **_split_registry(json.loads(details_text)),
        run_id=run_id,
        prev_hash=last_hash,
        entry_hash=digest,
        mac=sign(as_audit_key(key).secret, digest),
    )
    _store_entry(conn, entry, details_text, as_audit_key(key).key_id)
    return entry


def _signer_for(
    conn: Connection, actor: str, action: str, subject: str, details: Any
) -> Signer | None:
    """Who signs a critical entry (``signatures.py``); None for every other entry."""
    if not isinstance(details, dict) or not is_critical(action, subject, details):
        return None
    return signer_at_append(conn.engine.url.render_as_string(hide_password=True), actor)


def _store_entry(conn: Connection, entry: AuditEntry, details_text: str, key_id: str) -> None:
    conn.execute(
        insert(audit_log).values(
            seq=entry.seq,
            at=utc(entry.at).isoformat(),
            actor=entry.actor,
            action=entry.action,
            subject=entry.subject,
            details=details_text,
            run_id=entry.run_id,
            prev_hash=entry.prev_hash,
            entry_hash=entry.entry_hash,
            mac=entry.mac,
            key_id=key_id,
        )
    )
    conn.execute(
        update(audit_head)
        .where(audit_head.c.id == 1)
        .values(last_seq=entry.seq, last_hash=entry.entry_hash)
    )


def _split_registry(details: Any) -> dict[str, Any]:
    """``details`` and ``registry`` of an entry from its stored details."""
    if not isinstance(details, dict):
        return {"details": details, "registry": {}}
    rest = dict(details)
    registry = rest.pop(REGISTRY_DETAIL, None)
    return {"details": rest, "registry": registry if isinstance(registry, dict) else {}}


def to_audit_entry(row: Row[Any]) -> AuditEntry:
    return AuditEntry(
        seq=int(row.seq),
        at=parse_time(row.at),
        actor=row.actor,
        action=row.action,
        subject=row.subject,
        **_split_registry(loads_json(row.details)),
        run_id=row.run_id,
        prev_hash=row.prev_hash,
        entry_hash=row.entry_hash,
        mac=row.mac,
    )


# --- verification -----------------------------------------------------------------------------


@dataclass(frozen=True)
class _Authenticity:
    content_ok: bool  # the content still hashes to the stored hash
    mac_ok: bool  # the stored hash carries a valid MAC
    unknown_key: str | None = None  # the key id it names, when no available key has that id

    @property
    def authentic(self) -> bool:
        return self.content_ok and self.mac_ok


class _Findings:
    """One problem per entry: the first, most specific finding wins."""

    def __init__(self) -> None:
        self._by_seq: dict[int, AuditProblem] = {}

    def report(self, seq: int, kind: str, message: str) -> None:
        self._by_seq.setdefault(seq, AuditProblem(seq, kind, message))

    def __contains__(self, seq: object) -> bool:
        return seq in self._by_seq

    def in_order(self) -> list[AuditProblem]:
        return [self._by_seq[seq] for seq in sorted(self._by_seq)]


def verify_chain(
    rows: Sequence[Row[Any]],
    head: Any,
    mac_ok: MacCheck,
) -> AuditVerification:
    """Judge every stored entry and the head; ``rows`` in seq order, ``head`` possibly None."""
    checks = [_authenticity(row, mac_ok) for row in rows]
    if _signed_with_another_key(rows, checks):
        return _another_key_verdict(rows)
    head_seq = int(head.last_seq) if head is not None else 0
    findings = _Findings()
    max_seq = max([head_seq, *(int(row.seq) for row in rows)])
    _ChainWalk(findings, head_seq=head_seq, max_seq=max_seq).run(rows, checks)
    _check_signatures(rows, findings)
    if head is not None:
        _compare_with_head(rows, checks, head, findings)
    missing_head = [] if head is not None else [_missing_head_problem()]
    found = missing_head + findings.in_order()
    return AuditVerification(ok=not found, entries=len(rows), problems=found)


def _authenticity(row: Row[Any], mac_ok: MacCheck) -> _Authenticity:
    recomputed = _row_hash(row, int(row.seq))
    content_ok = recomputed is not None and recomputed == row.entry_hash
    key_id = getattr(row, "key_id", None)  # None: written before entries named their key
    try:
        return _Authenticity(content_ok, mac_ok(str(row.entry_hash), str(row.mac), key_id))
    except UnknownKeyError as error:
        return _Authenticity(content_ok, mac_ok=False, unknown_key=error.key_id)


def _row_hash(row: Row[Any], seq: int) -> str | None:
    try:
        return entry_hash(
            seq=seq,
            at=row.at,
            actor=row.actor,
            action=row.action,
            subject=row.subject,
            details=row.details,
            run_id=row.run_id,
            prev_hash=row.prev_hash,
        )
    except (TypeError, ValueError, AttributeError):
        # A value rewritten into something that is not even the right type is an edit too.
        return None


def _check_signatures(rows: Sequence[Row[Any]], findings: _Findings) -> None:
    """A signature that no longer signs its entry (``signatures.py``), where the chain alone saw
    nothing: an edit by someone who holds the audit key, or a signature copied from elsewhere.
    Whether the signer was entitled is the access policy's question (``policy.verify_signers``).
    """
    for row in rows:
        seq = int(row.seq)
        rest, signature = split_signature(loads_json(row.details))
        if signature is None or seq in findings:
            continue
        try:
            digest = entry_hash(
                seq=seq,
                at=row.at,
                actor=row.actor,
                action=row.action,
                subject=row.subject,
                details=canonical_json(rest),
                run_id=row.run_id,
                prev_hash=row.prev_hash,
            )
        except (TypeError, ValueError, AttributeError):
            continue  # not even the right types: the chain walk reported the edit
        problem = signature_problem(signature, digest)
        if problem is not None:
            findings.report(seq, "bad signature", f"entry {seq}: {problem}")


def _signed_with_another_key(rows: Sequence[Row[Any]], checks: Sequence[_Authenticity]) -> bool:
    """A wrong key (or every MAC rewritten) makes each entry fail alike: say so once."""
    return (
        bool(rows)
        and not any(check.mac_ok for check in checks)
        and all(check.content_ok for check in checks)
        and _chain_intact(rows)
    )


def _another_key_verdict(rows: Sequence[Row[Any]]) -> AuditVerification:
    problem = AuditProblem(
        int(rows[0].seq),
        "edited",
        f"none of the {len(rows)} entries' MACs verifies although the hash chain is "
        "intact: the audit key differs from the one that wrote the log, or every "
        "MAC was rewritten",
    )
    return AuditVerification(ok=False, entries=len(rows), problems=[problem])


def _missing_head_problem() -> AuditProblem:
    return AuditProblem(0, "edited", "the audit head row is missing")


def _chain_intact(rows: Sequence[Row[Any]]) -> bool:
    previous = GENESIS_HASH
    for expected_seq, row in enumerate(rows, start=1):
        if int(row.seq) != expected_seq or row.prev_hash != previous:
            return False
        previous = row.entry_hash
    return True


def _missing(first: int, last: int) -> str:
    return f"entry {first} is" if first == last else f"entries {first}-{last} are"


class _ChainWalk:
    """Walks the entries in seq order, judging each against its predecessor and the head."""

    def __init__(self, findings: _Findings, *, head_seq: int, max_seq: int) -> None:
        self._findings = findings
        self._head_seq = head_seq
        self._max_seq = max_seq
        self._reorder_searches = 0
        self._previous_seq = 0
        self._previous_hash = GENESIS_HASH
        self._previous_flagged = False

    def run(self, rows: Sequence[Row[Any]], checks: Sequence[_Authenticity]) -> None:
        for row, check in zip(rows, checks, strict=True):
            self._step(row, check)

    def _step(self, row: Row[Any], check: _Authenticity) -> None:
        seq = int(row.seq)
        gap = seq != self._previous_seq + 1
        if gap:
            missing = _missing(self._previous_seq + 1, seq - 1)
            self._findings.report(
                self._previous_seq + 1, "deleted", f"{missing} missing from the log"
            )
        self._judge(row, seq, check, linked=row.prev_hash == self._previous_hash, gap=gap)
        self._previous_flagged = seq in self._findings
        self._previous_seq = seq
        self._previous_hash = row.entry_hash

    def _judge(
        self, row: Row[Any], seq: int, check: _Authenticity, *, linked: bool, gap: bool
    ) -> None:
        if seq > self._head_seq and not check.authentic:
            self._findings.report(
                seq, "inserted", f"entry {seq} lies beyond the head and does not authenticate"
            )
        elif not check.content_ok and check.mac_ok:
            self._judge_changed_content(row, seq)
        elif not check.mac_ok:
            self._judge_bad_mac(seq, check, continues_chain=linked or gap)
        elif not linked and not gap and not self._previous_flagged:
            self._findings.report(
                seq,
                "reordered",
                f"entry {seq} is authentic but follows a different entry than "
                f"seq {self._previous_seq}",
            )

    def _judge_changed_content(self, row: Row[Any], seq: int) -> None:
        """A signed hash over other content: the entry moved (if a seq fits) or was edited."""
        original = self._written_as(row, seq)
        if original is not None:
            self._findings.report(
                seq, "reordered", f"entry stored as seq {seq} was written as seq {original}"
            )
        else:
            self._findings.report(
                seq, "edited", f"entry {seq}'s content no longer matches its hash"
            )

    def _judge_bad_mac(self, seq: int, check: _Authenticity, *, continues_chain: bool) -> None:
        if continues_chain and check.unknown_key is not None:
            self._findings.report(
                seq,
                "unknown key",
                f"entry {seq} is signed with unknown key {check.unknown_key} (not in the key "
                "folder nor in AIOPS_AUDIT_OLD_KEYS): it cannot be verified",
            )
        elif continues_chain:
            what = "content and hash" if not check.content_ok else "hash or MAC"
            self._findings.report(
                seq, "edited", f"entry {seq}'s MAC does not verify ({what} rewritten)"
            )
        else:
            self._findings.report(
                seq,
                "inserted",
                f"entry {seq} does not authenticate and does not continue the chain",
            )

    def _written_as(self, row: Row[Any], seq: int) -> int | None:
        """The seq this entry was hashed under, searched for a bounded number of entries."""
        if self._reorder_searches >= _REORDER_SEARCH_LIMIT:
            return None
        self._reorder_searches += 1
        return next(
            (
                candidate
                for candidate in range(1, self._max_seq + 1)
                if candidate != seq and _row_hash(row, candidate) == row.entry_hash
            ),
            None,
        )


def _compare_with_head(
    rows: Sequence[Row[Any]],
    checks: Sequence[_Authenticity],
    head: Any,
    findings: _Findings,
) -> None:
    """The head must name the last stored entry: fewer rows is a truncation, more an edit."""
    head_seq, head_hash = int(head.last_seq), str(head.last_hash)
    last_seq = int(rows[-1].seq) if rows else 0
    if head_seq > last_seq:
        missing = _missing(last_seq + 1, head_seq)
        findings.report(
            last_seq + 1, "truncated", f"the head records {head_seq} entries; {missing} missing"
        )
    elif head_seq == last_seq and rows and head_hash != rows[-1].entry_hash:
        findings.report(
            last_seq, "edited", f"entry {last_seq}'s hash differs from the one the head recorded"
        )
    elif any(
        check.authentic and int(row.seq) > head_seq for check, row in zip(checks, rows, strict=True)
    ):
        # Rows past the head that do authenticate mean the head itself was wound back.
        findings.report(
            head_seq + 1,
            "edited",
            f"the head records {head_seq} entries but authentic entries run to {last_seq}",
        )
