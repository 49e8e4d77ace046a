"""``aiops audit verify``: recompute the audit chain and name every broken entry.

Read-only: in a folder without a home it says so instead of creating an empty ledger (and a
fresh key) that would "verify" zero entries.
"""

from __future__ import annotations

from pathlib import Path

import click

from aiops_assets.cli._common import Group, common_options, emit, ledger_of, load_settings


@click.group(cls=Group)
def audit() -> None:
    """The tamper-evident audit log."""


@audit.command()
@common_options
def verify(home: Path | None, as_json: bool) -> int:
    """Check the hash chain and HMAC of every entry; exit 1 naming each broken entry."""
    with ledger_of(load_settings(home), read_only=True) as ledger:
        verification = ledger.verify_audit()
    payload = {
        "ok": verification.ok,
        "entries": verification.entries,
        "problems": [
            {"seq": problem.seq, "kind": problem.kind, "message": problem.message}
            for problem in verification.problems
        ],
    }
    emit(payload, verification.summary(), as_json=as_json)
    return 0 if verification.ok else 1
