"""``aiops featureset``, ``aiops flags`` and ``aiops env``: the lifecycle, the flags and the
environment from a terminal.

Only the ledger and the artifact store are read or written, so none of these imports Dagster.
Status changes need the ``promote_feature_set`` action and flag changes ``change_flags`` in the
access policy; a refusal is audited like any other.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aiops_assets.reference.settings import PipelineSettings

if TYPE_CHECKING:
    from aiops_assets.core.features import FeatureSetSpec
    from aiops_assets.core.ledger import Ledger

EXIT_USAGE = 2
EXIT_REFUSED = 1


def add_experiment_commands(commands: argparse._SubParsersAction) -> None:
    featureset = commands.add_parser("featureset", help="feature-set versions and their lifecycle")
    fs_commands = featureset.add_subparsers(dest="featureset_command", required=True)
    listing = fs_commands.add_parser("list", help="every registered feature set and its status")
    _common(listing)
    history = fs_commands.add_parser("history", help="status changes, oldest first")
    _common(history)
    history.add_argument("version", nargs="?", help="one feature-set version")
    register = fs_commands.add_parser(
        "register", help="register a spec (JSON, FeatureSetSpec.to_dict) as experimental"
    )
    _common(register)
    register.add_argument("spec", nargs="?", help="the spec JSON file (default: the reference)")
    register.add_argument(
        "--production",
        action="store_true",
        help="bootstrap: the first set of its name, already serving, starts in production",
    )
    status = fs_commands.add_parser("status", help="move a feature set (not to production)")
    _common(status)
    status.add_argument("version")
    status.add_argument("to", choices=("experimental", "candidate", "retired"))
    status.add_argument("--reason", required=True)
    ablate = fs_commands.add_parser(
        "ablate", help="train on this set and on production's; record the comparison"
    )
    _common(ablate)
    ablate.add_argument("version")
    ablate.add_argument("--hypothesis", required=True)
    ablate.add_argument("--criterion", required=True, help="declared now, e.g. 'delta.f1>=0.0'")
    ablate.add_argument("--days", default="", help="A..B (ISO dates, B excluded); default all")
    promote = fs_commands.add_parser(
        "promote", help="promote a candidate to production if every criterion holds"
    )
    _common(promote)
    promote.add_argument("version")
    promote.add_argument("--ablation", default="", help="the ablation's run id (or a prefix)")
    promote.add_argument("--window", required=True, help="reference window A..B of ordinary days")

    flags = commands.add_parser("flags", help="which versions serve which services")
    flag_commands = flags.add_subparsers(dest="flags_command", required=True)
    show = flag_commands.add_parser("show", help="the flags in force (and a service's values)")
    _common(show)
    show.add_argument("--service", action="append", default=[], help="resolve for this service")
    set_flags = flag_commands.add_parser("set", help="apply a new flag document (audited)")
    _common(set_flags)
    set_flags.add_argument("file", type=Path)
    set_flags.add_argument("--reason", required=True, help="shown in the change log")
    flag_history_parser = flag_commands.add_parser("history", help="every version in force")
    _common(flag_history_parser)

    env = commands.add_parser("env", help="the environment AIOPS_ENV selects, and what it allows")
    _common(env)


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--home", type=Path, default=None, help="project home (AIOPS_HOME)")
    parser.add_argument("--json", action="store_true", help="machine-readable output")


def run_experiment_command(args: argparse.Namespace, settings: PipelineSettings) -> int:
    if args.command == "env":
        return _env(settings, as_json=args.json)
    # Imported here, not at the top: `aiops --help` builds this parser and should answer at once.
    from aiops_assets.core.experiments import QueryError
    from aiops_assets.core.flags import FlagError
    from aiops_assets.core.ledger import LedgerError
    from aiops_assets.core.lifecycle import LifecycleError
    from aiops_assets.core.policy import PolicyError
    from aiops_assets.registry_cli import open_ledger

    ledger = open_ledger(settings)
    try:
        if args.command == "flags":
            return _flags(args, settings, ledger)
        return _featureset(args, settings, ledger)
    except (LifecycleError, FlagError, LedgerError, QueryError, PolicyError) as error:
        print(f"aiops {args.command}: {error}", file=sys.stderr)
        return EXIT_USAGE
    except PermissionError as error:  # AccessDenied, EnvironmentRefusal
        print(f"aiops {args.command}: refused: {error}", file=sys.stderr)
        return EXIT_REFUSED
    finally:
        ledger.dispose()


def _print(payload: Any, text: str, *, as_json: bool) -> None:
    print(json.dumps(payload, sort_keys=True, default=str) if as_json else text)


def _env(settings: PipelineSettings, *, as_json: bool) -> int:
    deployment = settings.deployment
    payload = {
        "environment": deployment.name,
        "root": str(settings.root.absolute()),
        "store_root": settings.store_root,
        "ledger_url": settings.ledger_url,
        "dagster_home": str(settings.dagster_home),
        "alerts": settings.alert_webhook or str(settings.alert_outbox),
        "allow_experimental_feature_sets": deployment.allow_experimental_feature_sets,
        "allow_sandbox_models": deployment.allow_sandbox_models,
        "can_promote": deployment.can_promote,
    }
    _print(payload, "\n".join(f"{k:34} {v}" for k, v in payload.items()), as_json=as_json)
    return 0


def _authorize(settings: PipelineSettings, ledger: Ledger, action: str, subject: str) -> str:
    from aiops_assets.core.policy import AccessPolicy, acting_identity, authorize

    actor = acting_identity()
    authorize(
        AccessPolicy.load(settings.access_policy or None),
        ledger,
        actor=actor,
        action=action,
        subject=subject,
    )
    return actor


# --- featureset -------------------------------------------------------------------------------


def _featureset(args: argparse.Namespace, settings: PipelineSettings, ledger: Ledger) -> int:
    from aiops_assets.core.features import FeatureSetSpec
    from aiops_assets.core.lifecycle import register_feature_set, transition
    from aiops_assets.core.policy import acting_identity

    command = args.featureset_command
    if command == "list":
        records = ledger.list_feature_sets()
        _print(
            [{"version": r.version_id, "status": r.status, "name": r.name} for r in records],
            "\n".join(f"{r.status:13} {r.version_id}" for r in records) or "no feature sets",
            as_json=args.json,
        )
        return 0
    if command == "history":
        changes = ledger.feature_set_history(args.version)
        _print(
            [change.__dict__ for change in changes],
            "\n".join(
                f"{c.at.isoformat()} {c.version_id} {c.from_status or '-'} -> {c.to_status} "
                f"by {c.actor}: {c.reason}"
                for c in changes
            )
            or "no status changes",
            as_json=args.json,
        )
        return 0
    if command == "register":
        spec = (
            FeatureSetSpec.from_dict(json.loads(Path(args.spec).read_text(encoding="utf-8")))
            if args.spec
            else FeatureSetSpec()
        )
        # Registering an experiment is harmless; declaring a set already in production is not.
        actor = (
            _authorize(settings, ledger, "promote_feature_set", f"feature_set:{spec.version_id}")
            if args.production
            else acting_identity()
        )
        record = register_feature_set(
            ledger, spec, actor=actor, status="production" if args.production else "experimental"
        )
        _print(record.__dict__, f"{record.version_id}: {record.status}", as_json=args.json)
        return 0
    if command == "status":
        actor = _authorize(settings, ledger, "promote_feature_set", f"feature_set:{args.version}")
        change = transition(ledger, args.version, args.to, actor=actor, reason=args.reason)
        _print(
            change.__dict__,
            f"{change.version_id}: {change.from_status} -> {change.to_status}",
            as_json=args.json,
        )
        return 0
    if command == "ablate":
        return _ablate(args, settings, ledger)
    return _promote(args, settings, ledger)


def _record_spec(ledger: Ledger, version: str) -> FeatureSetSpec:
    from aiops_assets.core.lifecycle import LifecycleError, spec_of

    record = ledger.get_feature_set(version)
    if record is None:
        raise LifecycleError(
            f"feature set {version} is not registered; `aiops featureset register`"
        )
    return spec_of(record)


def _ablate(args: argparse.Namespace, settings: PipelineSettings, ledger: Ledger) -> int:
    from aiops_assets.core.lifecycle import (
        LifecycleError,
        production_feature_set,
        run_ablation,
        spec_of,
    )
    from aiops_assets.core.policy import acting_identity
    from aiops_assets.reference.sandbox import ReadOnlyStore

    candidate = _record_spec(ledger, args.version)
    production = production_feature_set(ledger, candidate.name)
    if production is None:
        raise LifecycleError(
            f"{candidate.name} has no production feature set to compare with; register the one "
            "in service with `aiops featureset register --production`"
        )
    store = ReadOnlyStore(settings.store_root)
    days = store.snapshot_days(args.days)
    run = run_ablation(
        store.window_telemetry(days),
        candidate,
        spec_of(production),
        days,
        hypothesis=args.hypothesis,
        success_criterion=args.criterion,
    )
    stored = ledger.record_experiment_run(run, actor=acting_identity())
    met = {True: "met", False: "NOT met", None: "undecided"}[stored.criterion_met]
    _print(
        {"run_id": stored.run_id, "criterion_met": stored.criterion_met, "metrics": stored.metrics},
        f"ablation {stored.run_id}: {args.criterion} {met} "
        f"(delta.f1 {stored.metrics['delta.f1']:+.3f}, "
        f"delta.pr_auc {stored.metrics['delta.pr_auc']:+.3f})",
        as_json=args.json,
    )
    return 0


def _promote(args: argparse.Namespace, settings: PipelineSettings, ledger: Ledger) -> int:
    from aiops_assets.core.lifecycle import (
        assess_feature_set,
        production_feature_set,
        promote_feature_set,
        spec_of,
    )
    from aiops_assets.reference.sandbox import ReadOnlyStore

    settings.deployment.require_promotion(f"feature set {args.version}")
    actor = _authorize(settings, ledger, "promote_feature_set", f"feature_set:{args.version}")
    candidate = _record_spec(ledger, args.version)
    production = production_feature_set(ledger, candidate.name)
    store = ReadOnlyStore(settings.store_root)
    days = store.snapshot_days(args.window)
    assessment = assess_feature_set(
        store.window_telemetry(days),
        candidate,
        days,
        baseline=None if production is None else spec_of(production),
    )
    decision = promote_feature_set(
        ledger,
        args.version,
        assessment=assessment,
        ablation_run_id=args.ablation or None,
        actor=actor,
        environment=settings.deployment,
    )
    lines = [f"{args.version}: {decision.reason}"] + [
        f"  {'pass' if c.passed else 'FAIL'} {c.name}: {c.detail}" for c in decision.criteria
    ]
    _print(
        {"promoted": decision.promoted, "reason": decision.reason, **decision.evidence()},
        "\n".join(lines),
        as_json=args.json,
    )
    return 0 if decision.promoted else EXIT_REFUSED


# --- flags ------------------------------------------------------------------------------------


def _flags(args: argparse.Namespace, settings: PipelineSettings, ledger: Ledger) -> int:
    from aiops_assets.core.flags import apply_flags, current_flags, flag_history

    command = args.flags_command
    if command == "show":
        flags = current_flags(ledger)
        resolved = {
            service: {name: flag.value_for(service) for name, flag in flags.flags.items()}
            for service in args.service
        }
        text = [f"# {flags.source} (sha256 {flags.sha256[:12]})", flags.text.rstrip()]
        text += [f"{service}: {values}" for service, values in resolved.items()]
        _print(
            {"source": flags.source, "sha256": flags.sha256, "services": resolved},
            "\n".join(text),
            as_json=args.json,
        )
        return 0
    if command == "history":
        history = flag_history(ledger)
        _print(
            [
                {"version": v.version, "at": v.at, "actor": v.actor, "reason": v.reason}
                for v, _ in history
            ],
            "\n".join(
                f"v{v.version} {v.at.isoformat()} by {v.actor}: {v.reason}" for v, _ in history
            )
            or "no flag changes recorded (the packaged default is in force)",
            as_json=args.json,
        )
        return 0
    actor = _authorize(settings, ledger, "change_flags", "flags")
    text = args.file.read_text(encoding="utf-8")
    version, lines = apply_flags(
        ledger,
        text,
        actor=actor,
        reason=args.reason,
        environment=settings.deployment,
        source=str(args.file),
    )
    _print(
        {"version": version.version, "sha256": version.sha256, "changes": lines},
        "\n".join([f"flags v{version.version} in force"] + [f"  {line}" for line in lines])
        if lines
        else f"flags v{version.version} already in force: nothing changed",
        as_json=args.json,
    )
    return 0


__all__ = ["add_experiment_commands", "run_experiment_command"]
