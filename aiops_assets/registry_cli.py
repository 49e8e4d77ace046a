"""``aiops registry ...`` and ``aiops audit verify``: the registry from a terminal.

Reading (list, history, verify) goes straight to the ledger. Changing the champion (promote,
rollback) goes through the ``champion_model`` asset in the project's Dagster instance, exactly as
the sensors do, so the change is a materialization the UI shows and ``anomaly_scores`` picks up,
and it is checked against the access policy twice: here, for a clear refusal before anything
runs, and in the asset, which is the check that cannot be bypassed.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from aiops_assets.core.ledger import Ledger
from aiops_assets.core.policy import (
    ACTOR_TAG,
    AccessDenied,
    AccessPolicy,
    acting_identity,
    authorize,
)
from aiops_assets.core.registry import CHAMPION, MODEL_NAME
from aiops_assets.reference.settings import PipelineSettings

EXIT_DENIED = 3


def open_ledger(settings: PipelineSettings) -> Ledger:
    return Ledger.from_env(settings.ledger_url, default_key_file=settings.audit_key_file)


def run_registry_command(args: argparse.Namespace, settings: PipelineSettings) -> int:
    ledger = open_ledger(settings)
    try:
        if args.command == "audit":
            return _verify(ledger, as_json=args.json)
        command = args.registry_command
        if command == "list":
            return _list(ledger, args.model, as_json=args.json)
        if command == "history":
            return _history(ledger, args.model, args.alias, as_json=args.json)
        return _change_champion(args, settings, ledger)
    finally:
        ledger.dispose()


def _verify(ledger: Ledger, *, as_json: bool) -> int:
    verification = ledger.verify_audit()
    if as_json:
        print(
            json.dumps(
                {
                    "ok": verification.ok,
                    "entries": verification.entries,
                    "problems": [
                        {"seq": problem.seq, "kind": problem.kind, "message": problem.message}
                        for problem in verification.problems
                    ],
                },
                sort_keys=True,
            )
        )
    else:
        print(verification.summary())
    return 0 if verification.ok else 1


def _list(ledger: Ledger, model: str, *, as_json: bool) -> int:
    versions = ledger.list_versions(model)
    aliases: dict[int, list[str]] = {}
    for alias, number in ledger.aliases(model).items():
        aliases.setdefault(number, []).append(alias)
    rows: list[dict[str, Any]] = [
        {
            "version": version.version,
            "sha256": version.sha256,
            "aliases": sorted(aliases.get(version.version, [])),
            "pr_auc": version.metrics.get("pr_auc"),
            "f1": version.metrics.get("f1"),
            "created_at": version.created_at.isoformat(),
            "created_by": version.created_by,
            "trained_until": version.tags.get("trained_until", ""),
            "checks": _check_summary(ledger, model, version.version),
        }
        for version in versions
    ]
    if as_json:
        print(json.dumps(rows, sort_keys=True))
        return 0
    if not rows:
        print(f"no versions of {model} in {ledger.url}")
        return 0
    _table(
        ["version", "sha256", "aliases", "pr_auc", "f1", "checks", "trained_until", "created_by"],
        [
            [
                f"v{row['version']}",
                row["sha256"][:12],
                ",".join(row["aliases"]) or "-",
                _number(row["pr_auc"]),
                _number(row["f1"]),
                row["checks"],
                row["trained_until"] or "-",
                row["created_by"],
            ]
            for row in rows
        ],
    )
    return 0


def _check_summary(ledger: Ledger, model: str, version: int) -> str:
    checks = ledger.version_checks(model, version)
    failed = sum(1 for check in checks if not check.passed)
    return f"{len(checks) - failed} ok / {failed} failed" if checks else "none"


def _history(ledger: Ledger, model: str, alias: str | None, *, as_json: bool) -> int:
    changes = ledger.alias_history(model, alias)
    rows: list[dict[str, Any]] = [
        {
            "at": change.at.isoformat(),
            "alias": change.alias,
            "from": change.from_version,
            "to": change.to_version,
            "kind": change.kind,
            "actor": change.actor,
            "reason": change.reason,
            "run_id": change.run_id,
        }
        for change in changes
    ]
    if as_json:
        print(json.dumps(rows, sort_keys=True))
        return 0
    if not rows:
        print(f"no alias changes for {model} in {ledger.url}")
        return 0
    _table(
        ["at", "alias", "from", "to", "kind", "actor", "run", "reason"],
        [
            [
                row["at"][:19],
                row["alias"],
                f"v{row['from']}" if row["from"] else "-",
                f"v{row['to']}",
                row["kind"],
                row["actor"],
                (row["run_id"] or "-")[:8],
                row["reason"],
            ]
            for row in rows
        ],
    )
    return 0


def authorized_actor(
    settings: PipelineSettings, ledger: Ledger, action: str, command: str
) -> str | None:
    """Who is acting, if the access policy lets them ``action`` the champion; otherwise the
    refusal is printed as ``aiops <command>: refused: ...`` and None returned."""
    actor = acting_identity()
    policy = AccessPolicy.load(settings.access_policy or None)
    try:
        authorize(policy, ledger, actor=actor, action=action, subject=f"{MODEL_NAME}:{CHAMPION}")
    except AccessDenied as error:
        print(f"aiops {command}: refused: {error}", file=sys.stderr)
        return None
    return actor


def materialize_champion(
    settings: PipelineSettings,
    *,
    home_given: bool,
    assets: Sequence[str],
    config: dict[str, Any],
    actor: str,
    command: str,
) -> Any:
    """One run of ``champion_model`` (and ``assets``' other members) with ``config``, in the
    project's instance, exactly as the sensors and the launchpad change the champion; the run,
    or None after printing each failed step as ``aiops <command>: ...``."""
    # Dagster is imported only for a change: listing and verifying stay fast.
    import dagster as dg

    from aiops_assets.reference.definitions import build_definitions
    from aiops_assets.runner import materialize_selection, prepare_instance

    dagster_home = settings.instance_home(home_given=home_given)
    run = materialize_selection(
        build_definitions(settings),
        prepare_instance(Path(dagster_home)),
        dg.AssetSelection.assets(*assets),
        run_config={"ops": {"champion_model": {"config": config}}},
        tags={ACTOR_TAG: actor, "aiops/source": "cli"},
        raise_on_error=False,
    )
    if run.success:
        return run
    for event in run.get_step_failure_events():
        failure = event.step_failure_data.error
        message = failure.message.strip() if failure else "step failed"
        print(f"aiops {command}: {message}", file=sys.stderr)
    return None


def _change_champion(args: argparse.Namespace, settings: PipelineSettings, ledger: Ledger) -> int:
    from aiops_assets.reference.definitions import ROLLBACK_ASSETS

    action = args.registry_command
    actor = authorized_actor(settings, ledger, action, f"registry {action}")
    if actor is None:
        return EXIT_DENIED
    config: dict[str, Any] = {"action": action, "reason": args.reason}
    version = args.version if action == "promote" else args.to
    if version:
        config["version"] = version
    run = materialize_champion(
        settings,
        home_given=args.home is not None,
        assets=ROLLBACK_ASSETS,
        config=config,
        actor=actor,
        command=f"registry {action}",
    )
    if run is None:
        return 1
    champion = ledger.get_alias(MODEL_NAME, CHAMPION)
    assert champion is not None  # the run just set it
    print(
        f"{MODEL_NAME} champion is now v{champion.version} ({champion.sha256[:12]}); "
        f"run {run.run_id} in {settings.instance_home(home_given=args.home is not None)}"
    )
    return 0


def _number(value: Any) -> str:
    return "-" if value is None else f"{float(value):.3f}"


def _table(header: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *rows, strict=True)]
    for row in [header, *rows]:
        print("  ".join(str(cell).ljust(width) for cell, width in zip(row, widths, strict=True)))
