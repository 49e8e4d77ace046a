"""``aiops reproduce`` and ``aiops capsule export|import``.

``reproduce`` accepts what a person has at hand during an investigation: an alias
(``champion``), a model version (``v3`` or ``3``), a capsule id or a run id (or a unique prefix of
either), and resolves it to the model's capsule before re-running it in a fresh process.
"""

from __future__ import annotations

import argparse
import json
import re
import sys

from aiops_assets.core.bundle import BundleError, export_bundle, import_bundle
from aiops_assets.core.capsule import Capsule
from aiops_assets.core.ledger import Ledger, LedgerError
from aiops_assets.core.policy import AccessDenied, AccessPolicy, acting_identity, authorize
from aiops_assets.core.registry import ALIASES, MODEL_NAME
from aiops_assets.core.reproduce import ReproductionError, run_in_fresh_process
from aiops_assets.core.store import ArtifactStore
from aiops_assets.reference.settings import PipelineSettings
from aiops_assets.registry_cli import open_ledger

EXIT_MISMATCH = 1
EXIT_USAGE = 2
EXIT_DENIED = 3
_VERSION = re.compile(r"^v?(\d+)$")


class TargetError(LookupError):
    """The text names no capsule; the message says what was tried."""


def run_reproduce_command(args: argparse.Namespace, settings: PipelineSettings) -> int:
    ledger = open_ledger(settings)
    try:
        if args.command == "reproduce":
            return _reproduce(args, settings, ledger)
        if args.capsule_command == "export":
            return _export(args, settings, ledger)
        return _import(args, settings, ledger)
    finally:
        ledger.dispose()


def resolve_capsule(ledger: Ledger, target: str, *, model: str = MODEL_NAME) -> Capsule:
    """The model capsule ``target`` names, trying alias, version, capsule id, then run id."""
    text = target.strip()
    if text in ALIASES:
        version = ledger.get_alias(model, text)
        if version is None:
            raise TargetError(f"{model} has no {text} in {ledger.url}")
        return _capsule_of(ledger, version.capsule_ref, f"{model} {text} (v{version.version})")
    match = _VERSION.match(text)
    if match:
        version = ledger.get_version(model, int(match.group(1)))
        if version is None:
            raise TargetError(f"{model} has no version {match.group(1)} in {ledger.url}")
        return _capsule_of(ledger, version.capsule_ref, f"{model} v{version.version}")
    try:
        capsule = ledger.get_capsule(text) if len(text) >= 8 else None
        if capsule is not None:
            return _model_capsule(ledger, capsule)
        run = ledger.get_experiment_run(text) if len(text) >= 8 else None
    except LedgerError as error:
        raise TargetError(str(error)) from error
    if run is not None:
        return _capsule_of(ledger, run.capsule_id, f"run {run.run_id}")
    raise TargetError(
        f"{target!r} is not an alias ({', '.join(ALIASES)}), a version of {model}, a capsule id "
        f"or a training run id in {ledger.url}"
    )


def _capsule_of(ledger: Ledger, capsule_id: str | None, what: str) -> Capsule:
    capsule = ledger.get_capsule(capsule_id) if capsule_id else None
    if capsule is None:
        raise TargetError(
            f"{what} has no recorded capsule (it was trained before capsules were recorded, or "
            "its capsule is in another ledger)"
        )
    return _model_capsule(ledger, capsule)


def _model_capsule(ledger: Ledger, capsule: Capsule) -> Capsule:
    if capsule.kind == "model":
        return capsule
    raise TargetError(
        f"capsule {capsule.capsule_id[:12]} records a {capsule.kind} step, not a model; "
        "reproduce the model trained from it instead"
    )


def _reproduce(args: argparse.Namespace, settings: PipelineSettings, ledger: Ledger) -> int:
    try:
        capsule = resolve_capsule(ledger, args.target, model=args.model)
    except TargetError as error:
        print(f"aiops reproduce: {error}", file=sys.stderr)
        return EXIT_USAGE
    print(
        f"aiops reproduce: re-running capsule {capsule.capsule_id[:12]} "
        f"(run {capsule.run_id}) in a fresh process…",
        file=sys.stderr,
    )
    try:
        reproduction = run_in_fresh_process(capsule, settings.store_root)
    except ReproductionError as error:
        print(f"aiops reproduce: {error}", file=sys.stderr)
        return EXIT_USAGE
    if args.json:
        print(json.dumps(reproduction.to_dict(), sort_keys=True, default=str))
    else:
        print("\n".join(reproduction.lines()))
    return 0 if reproduction.ok else EXIT_MISMATCH


def _export(args: argparse.Namespace, settings: PipelineSettings, ledger: Ledger) -> int:
    try:
        capsule = resolve_capsule(ledger, args.target, model=args.model)
    except TargetError as error:
        print(f"aiops capsule export: {error}", file=sys.stderr)
        return EXIT_USAGE
    actor = acting_identity()
    try:
        # A bundle carries the raw telemetry and the model out of the deployment: a policy action.
        authorize(
            AccessPolicy.load(settings.access_policy or None),
            ledger,
            actor=actor,
            action="export",
            subject=f"capsule:{capsule.capsule_id[:12]}",
        )
    except AccessDenied as error:
        print(f"aiops capsule export: refused: {error}", file=sys.stderr)
        return EXIT_DENIED
    try:
        summary = export_bundle(
            ledger, ArtifactStore(settings.store_root), capsule.capsule_id, args.file
        )
    except BundleError as error:
        print(f"aiops capsule export: {error}", file=sys.stderr)
        return EXIT_USAGE
    report = {
        "file": str(args.file),
        "capsule_id": summary.capsule_id,
        "capsules": summary.capsules,
        "objects": summary.objects,
        "bytes": summary.bytes,
        "lock_file": summary.has_lock_file,
    }
    if args.json:
        print(json.dumps(report, sort_keys=True))
    else:
        print(
            f"wrote {args.file}: capsule {summary.capsule_id[:12]} and {len(summary.capsules) - 1} "
            f"parent(s), {summary.objects} objects ({summary.bytes / 1e6:.1f} MB)"
            + (", uv.lock" if summary.has_lock_file else ", no uv.lock found")
        )
    return 0


def _import(args: argparse.Namespace, settings: PipelineSettings, ledger: Ledger) -> int:
    try:
        summary = import_bundle(
            args.file,
            ledger,
            ArtifactStore(settings.store_root),
            lock_target=settings.home / "imported" / f"{args.file.name}.uv.lock",
        )
    except BundleError as error:
        print(f"aiops capsule import: {error}", file=sys.stderr)
        return EXIT_USAGE
    if args.json:
        print(
            json.dumps(
                {"capsule_id": summary.capsule_id, "objects": summary.objects}, sort_keys=True
            )
        )
    else:
        print(
            f"imported capsule {summary.capsule_id[:12]} ({summary.objects} objects) into "
            f"{settings.store_root}; verify with `aiops reproduce {summary.capsule_id[:12]}`"
        )
    return 0
