"""``aiops audit verify``: recompute the audit chain and name every broken entry.

Read-only: in a folder without a home it says so instead of creating an empty ledger (and a
fresh key) that would "verify" zero entries.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from aiops_assets.cli._common import Group, common_options, emit, ledger_of, load_settings

if TYPE_CHECKING:
    from aiops_assets.core.ledger import AuditVerification, Ledger, WitnessedHead
    from aiops_assets.reference.settings import PipelineSettings


@click.group(cls=Group)
def audit() -> None:
    """The tamper-evident audit log."""


@audit.command()
@common_options
def verify(home: Path | None, as_json: bool) -> int:
    """Check the hash chain, the HMAC of every entry and every registry row against the chain;
    exit 1 naming each broken entry and each unexplained row."""
    settings = load_settings(home)
    with ledger_of(settings, read_only=True) as ledger:
        verification = ledger.verify_audit(_observed_heads(settings, home_given=home is not None))
        verification = _with_signers(settings, ledger, verification)
    payload = {
        "ok": verification.ok,
        "entries": verification.entries,
        "problems": [
            {
                "seq": problem.seq,
                "kind": problem.kind,
                "message": problem.message,
                "table": problem.table,
                "key": problem.key,
            }
            for problem in verification.problems
        ],
    }
    payload["notes"] = verification.notes
    lines = [verification.summary(), *(f"note: {note}" for note in verification.notes)]
    emit(payload, "\n".join(lines), as_json=as_json)
    return 0 if verification.ok else 1


@audit.command("rotate-key")
@common_options
def rotate_key(home: Path | None, as_json: bool) -> int:
    """Sign from now on with a new audit key in the key folder (outside the home); the old key
    stays there, so the entries it signed keep verifying. An older home's audit.key is copied
    into the folder first: delete it from the home afterwards."""
    from aiops_assets.cli._common import CliError, authorized_actor
    from aiops_assets.core.ledger import LedgerError

    settings = load_settings(home)
    with ledger_of(settings, read_only=True) as ledger:
        actor = authorized_actor(settings, ledger, "rotate_key", "audit key")
        try:
            old_id, new_id = ledger.rotate_key(actor=actor)
        except LedgerError as error:
            raise CliError(str(error)) from error
    legacy = settings.audit_key_file
    text = f"audit key rotated: {old_id} -> {new_id}"
    if legacy.is_file():
        text += f"; the old key is now in the key folder too: delete {legacy}"
    emit({"from_key_id": old_id, "to_key_id": new_id}, text, as_json=as_json)
    return 0


def _with_signers(
    settings: PipelineSettings, ledger: Ledger, verification: AuditVerification
) -> AuditVerification:
    """Each critical entry's signer judged against the access policy's keys (``core/policy``)."""
    from aiops_assets.cli._common import CliError
    from aiops_assets.core.policy import AccessPolicy, PolicyError, verify_signers

    try:
        policy = AccessPolicy.load(settings.access_policy or None)
    except PolicyError as error:
        raise CliError(str(error)) from error
    return verify_signers(policy, ledger.audit_entries(), verification)


def _observed_heads(settings: PipelineSettings, *, home_given: bool) -> list[WitnessedHead]:
    """The heads runs recorded in the Dagster instance; none when there is no instance yet."""
    import dagster as dg

    from aiops_assets.audit_head import observed_heads

    dagster_home = settings.instance_home(home_given=home_given)
    if not (dagster_home / "dagster.yaml").is_file() and not (dagster_home / "storage").is_dir():
        return []
    with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
        return observed_heads(instance)
