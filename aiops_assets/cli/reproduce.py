"""``aiops reproduce TARGET`` and ``aiops capsule export|import``.

``reproduce`` accepts what a person has at hand during an investigation: an alias
(``champion``), a model version (``v3`` or ``3``), a capsule id or a run id (or a unique prefix of
either), and resolves it to the model's capsule before re-running it in a fresh process.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from aiops_assets.cli._common import (
    MODEL_NAME_DEFAULT,
    CliError,
    Command,
    F,
    Group,
    authorized_actor,
    common_options,
    emit,
    ledger_of,
    load_settings,
    make_progress,
)

if TYPE_CHECKING:
    from aiops_assets.core.capsule import Capsule
    from aiops_assets.core.ledger import Ledger

EXIT_MISMATCH = 1
_VERSION = re.compile(r"^v?(\d+)$")
TARGET_HELP = "champion | challenger | v3 | 3 | a capsule id | a run id (or a prefix)"


class TargetError(LookupError):
    """The text names no capsule; the message says what was tried."""


def _model_option(command: F) -> F:
    return click.option(
        "--model", default=MODEL_NAME_DEFAULT, help="model name for aliases/versions"
    )(command)


@click.command(
    cls=Command,
    help="Re-execute the training recorded in a capsule (same feature snapshots from the store, "
    "same config and seeds) in a fresh process; compare the training-set and model hashes and "
    "the metrics; list every environment difference. Exits 1 on a mismatch.",
)
@common_options
@click.argument("target")
@_model_option
def reproduce(home: Path | None, as_json: bool, target: str, model: str) -> int:
    from aiops_assets.core.reproduce import ReproductionError, run_in_fresh_process

    settings = load_settings(home)
    with ledger_of(settings, read_only=True) as ledger:
        capsule = _resolve(ledger, target, model)
    progress = make_progress()
    progress.begin(1)
    progress.step(
        f"re-running capsule {capsule.capsule_id[:12]} (run {capsule.run_id}) in a fresh process"
    )
    try:
        reproduction = run_in_fresh_process(capsule, settings.store_root)
    except ReproductionError as error:
        raise CliError(str(error)) from error
    finally:
        progress.end()
    if as_json:
        emit(reproduction.to_dict(), "", as_json=True)
    else:
        click.echo("\n".join(reproduction.lines()))
    return 0 if reproduction.ok else EXIT_MISMATCH


def _resolve(ledger: Ledger, target: str, model: str) -> Capsule:
    try:
        return resolve_capsule(ledger, target, model=model)
    except TargetError as error:
        raise CliError(str(error)) from error


def resolve_capsule(ledger: Ledger, target: str, *, model: str = MODEL_NAME_DEFAULT) -> Capsule:
    """The model capsule ``target`` names, trying alias, version, capsule id, then run id."""
    from aiops_assets.core.ledger import LedgerError
    from aiops_assets.core.registry import ALIASES

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
            return _model_capsule(capsule)
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
    return _model_capsule(capsule)


def _model_capsule(capsule: Capsule) -> Capsule:
    if capsule.kind == "model":
        return capsule
    raise TargetError(
        f"capsule {capsule.capsule_id[:12]} records a {capsule.kind} step, not a model; "
        "reproduce the model trained from it instead"
    )


@click.group(cls=Group)
def capsule() -> None:
    """Export or import a portable capsule bundle."""


@capsule.command()
@common_options
@click.argument("target")
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False))
@_model_option
def export(home: Path | None, as_json: bool, target: str, file: Path, model: str) -> int:
    """The capsule, its data and model, and uv.lock in one .tar.gz (TARGET as for reproduce)."""
    from aiops_assets.core.bundle import BundleError, export_bundle
    from aiops_assets.core.store import ArtifactStore

    settings = load_settings(home)
    with ledger_of(settings, read_only=True) as ledger:
        chosen = _resolve(ledger, target, model)
        subject = f"capsule:{chosen.capsule_id[:12]}"
        # A bundle carries the raw telemetry and the model out of the deployment: a policy action.
        actor = authorized_actor(settings, ledger, "export", subject)
        try:
            summary = export_bundle(
                ledger, ArtifactStore(settings.store_root), chosen.capsule_id, file
            )
        except BundleError as error:
            raise CliError(str(error)) from error
        report = {
            "file": str(file),
            "sha256": _file_sha256(file),
            "capsule_id": summary.capsule_id,
            "capsules": summary.capsules,
            "objects": summary.objects,
            "bytes": summary.bytes,
            "lock_file": summary.has_lock_file,
        }
        # What left the deployment, and the exact file, so a bundle found elsewhere is traceable.
        ledger.audit("export", actor=actor, subject=subject, details=_audited(report, file))
    emit(
        report,
        f"wrote {file}: capsule {summary.capsule_id[:12]} and {len(summary.capsules) - 1} "
        f"parent(s), {summary.objects} objects ({summary.bytes / 1e6:.1f} MB)"
        + (", uv.lock" if summary.has_lock_file else ", no uv.lock found"),
        as_json=as_json,
    )
    return 0


@capsule.command("import")
@common_options
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False))
def import_(home: Path | None, as_json: bool, file: Path) -> int:
    """Load a bundle written by `aiops capsule export` into this store."""
    from aiops_assets.core.bundle import BundleError, import_bundle
    from aiops_assets.core.store import ArtifactStore

    settings = load_settings(home)
    if not file.is_file():
        raise CliError(f"no bundle at {file}")
    digest = _file_sha256(file)
    with ledger_of(settings) as ledger:
        # A bundle brings capsules and objects a later run may load: a policy action too.
        actor = authorized_actor(settings, ledger, "import", f"bundle:{digest[:12]}")
        try:
            summary = import_bundle(
                file,
                ledger,
                ArtifactStore(settings.store_root),
                lock_target=settings.home / "imported" / f"{file.name}.uv.lock",
            )
        except BundleError as error:
            raise CliError(str(error)) from error
        details = {"capsule_id": summary.capsule_id, "objects": summary.objects, "sha256": digest}
        ledger.audit(
            "import",
            actor=actor,
            subject=f"capsule:{summary.capsule_id[:12]}",
            details=_audited(details, file),
        )
    emit(
        {"capsule_id": summary.capsule_id, "objects": summary.objects},
        f"imported capsule {summary.capsule_id[:12]} ({summary.objects} objects) into "
        f"{settings.store_root}; verify with `aiops reproduce {summary.capsule_id[:12]}`",
        as_json=as_json,
    )
    return 0


def _file_sha256(path: Path) -> str:
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def _audited(details: dict[str, Any], file: Path) -> dict[str, Any]:
    """The entry's details: the bundle's absolute path, not the one relative to a shell."""
    return {**details, "file": str(file.absolute())}
