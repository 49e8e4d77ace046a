"""``aiops drift ack|acks``: say that a drift episode is known, so it stops paging.

``ack`` reads the drift check's latest result for the partition from the project's Dagster
instance (the episode, the baseline and the drifted features are there), records the
acknowledgement where the check reads it (the artifact store, ``core/drift/acknowledgements``)
and the act in the ledger's audit log. Muting an alarm is a change of a check's policy, so it
needs the access policy's ``change_threshold`` permission, like every other write command.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from aiops_assets.cli._common import (
    CliError,
    Group,
    authorized_actor,
    common_options,
    dagster_output,
    emit,
    ledger_of,
    load_settings,
    print_json,
    require_home,
)

ACK_ACTION = "acknowledge_drift"


@click.group(cls=Group)
def drift() -> None:
    """Drift episodes: acknowledge a known shift so it stops paging."""


def _check_key(text: str) -> Any:
    import dagster as dg

    asset, _, name = text.partition(":")
    if not asset or not name or "/" in name:
        raise CliError(f"not a check: {text!r} (expected <asset>:<check>, e.g. features:drift)")
    return dg.AssetCheckKey(dg.AssetKey(asset.split("/")), name)


@drift.command()
@common_options
@click.argument("check")
@click.option("--partition", required=True, help="a partition of the episode (e.g. 2026-01-08)")
@click.option("--reason", required=True, help="why the shift is known; recorded in the audit log")
def ack(home: Path | None, as_json: bool, check: str, partition: str, reason: str) -> int:
    """Acknowledge the drift episode CHECK (e.g. features:drift) is in at --partition.

    The episode stops paging, and so does a later episode of the same check against the same
    baseline whose drifted features this one already had. A new baseline ends both.
    """
    import dagster as dg

    from aiops_assets.checks.drift import latest_evaluation_metadata
    from aiops_assets.core.drift.acknowledgements import Acknowledgement, record_acknowledgement
    from aiops_assets.core.store import ArtifactStore

    if not reason.strip():
        raise CliError("--reason must say why (it is recorded in the audit log)")
    key = _check_key(check)
    settings = load_settings(home)
    require_home(settings)
    dagster_home = settings.instance_home(home_given=home is not None)
    with dagster_output(), dg.DagsterInstance.from_config(str(dagster_home)) as instance:
        metadata = latest_evaluation_metadata(instance, key, partition)
    if not metadata:
        raise CliError(f"no result of {key.to_user_string()} for partition {partition}")
    values = {name: getattr(value, "value", value) for name, value in metadata.items()}
    episode_id = str(values.get("episode_id") or "")
    if not episode_id:
        raise CliError(
            f"{key.to_user_string()}[{partition}] is in no drift episode "
            f"(verdict {values.get('verdict', 'unknown')}): nothing to acknowledge"
        )
    verdicts = dict(values.get("feature_verdicts") or {})
    with ledger_of(settings) as ledger:
        actor = authorized_actor(settings, ledger, "change_threshold", key.to_user_string())
        acknowledgement = Acknowledgement(
            check=key.to_user_string(),
            partition=partition,
            episode_id=episode_id,
            baseline_sha256=str(values.get("baseline_sha256", "")),
            features=tuple(sorted(name for name, v in verdicts.items() if v == "error")),
            reason=reason.strip(),
            actor=actor,
            at=datetime.now(UTC).isoformat(timespec="seconds"),
        )
        record_acknowledgement(ArtifactStore(settings.store_root), acknowledgement)
        entry = ledger.audit(
            ACK_ACTION,
            actor=actor,
            subject=key.to_user_string(),
            details=acknowledgement.to_dict(),
        )
    emit(
        {**acknowledgement.to_dict(), "audit_seq": entry.seq},
        f"acknowledged drift episode {episode_id} of {key.to_user_string()} "
        f"({', '.join(acknowledgement.features) or 'no feature at ERROR'}); audit entry {entry.seq}",
        as_json=as_json,
    )
    return 0


@drift.command()
@common_options
@click.argument("check")
def acks(home: Path | None, as_json: bool, check: str) -> int:
    """The acknowledgements recorded for CHECK, oldest first."""
    from aiops_assets.core.drift.acknowledgements import acknowledgements
    from aiops_assets.core.store import ArtifactStore

    key = _check_key(check)
    settings = load_settings(home)
    require_home(settings)
    rows = [
        item.to_dict()
        for item in acknowledgements(ArtifactStore(settings.store_root), key.to_user_string())
    ]
    if as_json:
        print_json(rows)
    elif not rows:
        click.echo(f"no acknowledgements for {key.to_user_string()}")
    for row in [] if as_json else rows:
        click.echo(
            f"{row['at']} {row['actor']}: episode {row['episode_id']} at {row['partition']} "
            f"({', '.join(row['features'])}): {row['reason']}"
        )
    return 0
