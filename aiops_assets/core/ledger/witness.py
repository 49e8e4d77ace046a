"""An anchored head: each new head of the chain published outside the ledger database.

The head row inside the database only proves the tail was not cut by someone who left the head
alone. Whoever can write the database can delete the last entries and wind the head back to the
new last one; the chain still links and every MAC still verifies. So every committed head (its
seq and hash) is also appended to a witness, a JSON-lines file opened append-only that can live
on another volume or host (``AIOPS_AUDIT_WITNESS``), and the pipeline records it on a Dagster
asset observation. ``verify`` then requires each witnessed head to be in the chain as witnessed:
a missing one is a truncation, a different hash a rewrite.

A witness only detects what happened after it started, and only while it is kept where the
attacker cannot write (docs/operations.md says how).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

WITNESS_ENV = "AIOPS_AUDIT_WITNESS"


@dataclass(frozen=True)
class WitnessedHead:
    seq: int
    hash: str
    at: str
    source: str  # where it was witnessed, for the report


def publish(path: Path, seq: int, digest: str, at: str) -> None:
    """Append one head; O_APPEND so concurrent writers interleave whole lines."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    line = json.dumps({"seq": seq, "hash": digest, "at": at}, sort_keys=True) + "\n"
    descriptor = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(descriptor, line.encode("utf-8"))
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def read_witness(path: Path) -> tuple[list[WitnessedHead], list[str]]:
    """The heads a witness file holds, and a note for each line that is not a head."""
    heads, unreadable = [], []
    with path.open(encoding="utf-8", errors="replace") as handle:
        for number, line in enumerate(handle, start=1):
            try:
                item = json.loads(line)
                heads.append(
                    WitnessedHead(int(item["seq"]), str(item["hash"]), str(item["at"]), path.name)
                )
            except (ValueError, KeyError, TypeError):
                unreadable.append(f"line {number} of the witness {path} is not a head")
    return heads, unreadable


@dataclass(frozen=True)
class WitnessFinding:
    seq: int
    kind: str  # "truncated" or "rewritten"
    message: str


def compare(chain: Mapping[int, str], heads: Sequence[WitnessedHead]) -> list[WitnessFinding]:
    """Every witnessed head the chain no longer holds as witnessed (the highest first)."""
    findings: dict[int, WitnessFinding] = {}
    last = max(chain, default=0)
    for head in sorted(heads, key=lambda h: -h.seq):
        if head.seq in findings:
            continue
        stored = chain.get(head.seq)
        if stored is None and head.seq > last:
            if any(f.kind == "truncated" for f in findings.values()):
                continue  # the highest witnessed head already says how much is gone
            findings[head.seq] = WitnessFinding(
                last + 1,
                "truncated",
                f"the {head.source} witnessed entry {head.seq} (hash {head.hash[:12]}, "
                f"{head.at}); the log ends at entry {last}",
            )
        elif stored is None:
            findings[head.seq] = WitnessFinding(
                head.seq,
                "deleted",
                f"the {head.source} witnessed entry {head.seq}; it is missing from the log",
            )
        elif stored != head.hash:
            findings[head.seq] = WitnessFinding(
                head.seq,
                "rewritten",
                f"entry {head.seq}'s hash {stored[:12]} is not the {head.hash[:12]} the "
                f"{head.source} witnessed at {head.at}",
            )
    return sorted(findings.values(), key=lambda f: f.seq)[:20]
