"""``aiops featureset``, ``aiops flags`` and ``aiops env``: the lifecycle, the flags and the
environment from a terminal.

Only the ledger and the artifact store are read or written, so none of these imports Dagster.
Status changes need the ``promote_feature_set`` action and flag changes ``change_flags`` in the
access policy; a refusal is audited like any other. Listing and showing never create a ledger.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from aiops_assets.cli._common import (
    EXIT_FAILED,
    CliError,
    Command,
    Group,
    authorized_actor,
    common_options,
    emit,
    ledger_of,
    load_settings,
    print_json,
    print_table,
)

if TYPE_CHECKING:
    from aiops_assets.core.features import FeatureSetSpec
    from aiops_assets.core.ledger import Ledger
    from aiops_assets.reference.settings import PipelineSettings


@contextlib.contextmanager
def _domain_errors() -> Iterator[None]:
    """The lifecycle's, the flags' and the policy's refusals as one line each: a wrong version or
    document is exit 2, a refused permission or environment exit 1."""
    from aiops_assets.core.experiments import QueryError
    from aiops_assets.core.flags import FlagError
    from aiops_assets.core.ledger import LedgerError
    from aiops_assets.core.lifecycle import LifecycleError
    from aiops_assets.core.policy import PolicyError

    try:
        yield
    except (LifecycleError, FlagError, LedgerError, QueryError, PolicyError) as error:
        raise CliError(str(error)) from error
    except PermissionError as error:  # AccessDenied, EnvironmentRefusal
        raise CliError(f"refused: {error}", EXIT_FAILED) from error


def _actor(settings: PipelineSettings, ledger: Ledger, action: str, subject: str) -> str:
    try:
        return authorized_actor(settings, ledger, action, subject)
    except CliError as error:
        # These commands have always answered a refusal with exit 1.
        raise CliError(error.message, EXIT_FAILED) from error


# --- featureset -------------------------------------------------------------------------------


@click.group(cls=Group)
def featureset() -> None:
    """Feature-set versions and their lifecycle."""


@featureset.command("list")
@common_options
def list_sets(home: Path | None, as_json: bool) -> int:
    """Every registered feature set and its status."""
    with ledger_of(load_settings(home), read_only=True) as ledger:
        records = ledger.list_feature_sets()
    emit(
        [{"version": r.version_id, "status": r.status, "name": r.name} for r in records],
        "\n".join(f"{r.status:13} {r.version_id}" for r in records) or "no feature sets",
        as_json=as_json,
    )
    return 0


@featureset.command("history")
@common_options
@click.argument("version", required=False)
def set_history(home: Path | None, as_json: bool, version: str | None) -> int:
    """Status changes, oldest first (of one feature-set VERSION if given)."""
    with ledger_of(load_settings(home), read_only=True) as ledger:
        changes = ledger.feature_set_history(version)
    emit(
        [change.__dict__ for change in changes],
        "\n".join(
            f"{c.at.isoformat()} {c.version_id} {c.from_status or '-'} -> {c.to_status} "
            f"by {c.actor}: {c.reason}"
            for c in changes
        )
        or "no status changes",
        as_json=as_json,
    )
    return 0


@featureset.command()
@common_options
@click.argument("spec", required=False, type=click.Path(path_type=Path, dir_okay=False))
@click.option(
    "--production",
    is_flag=True,
    help="bootstrap: the first set of its name, already serving, starts in production",
)
def register(home: Path | None, as_json: bool, spec: Path | None, production: bool) -> int:
    """Register a spec (JSON, FeatureSetSpec.to_dict; default: the reference) as experimental."""
    from aiops_assets.core.features import FeatureSetSpec
    from aiops_assets.core.lifecycle import register_feature_set
    from aiops_assets.core.policy import identify

    parsed = _read_spec(spec) if spec is not None else FeatureSetSpec()
    settings = load_settings(home)
    with ledger_of(settings) as ledger, _domain_errors():
        # Registering an experiment is harmless; declaring a set already in production is not.
        actor = (
            _actor(settings, ledger, "promote_feature_set", f"feature_set:{parsed.version_id}")
            if production
            else identify(
                ledger, action="register_feature_set", subject=f"feature_set:{parsed.version_id}"
            )
        )
        record = register_feature_set(
            ledger, parsed, actor=actor, status="production" if production else "experimental"
        )
    emit(record.__dict__, f"{record.version_id}: {record.status}", as_json=as_json)
    return 0


def _read_spec(path: Path) -> FeatureSetSpec:
    from aiops_assets.core.features import FeatureSetSpec

    try:
        return FeatureSetSpec.from_dict(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError, TypeError, KeyError) as error:
        raise CliError(f"{path} is not a feature-set spec: {error}") from error


@featureset.command()
@common_options
@click.argument("version")
@click.argument("to", type=click.Choice(["experimental", "candidate", "retired"]))
@click.option("--reason", required=True)
def status(home: Path | None, as_json: bool, version: str, to: str, reason: str) -> int:
    """Move a feature set (not to production)."""
    from aiops_assets.core.lifecycle import transition

    settings = load_settings(home)
    with ledger_of(settings) as ledger, _domain_errors():
        actor = _actor(settings, ledger, "promote_feature_set", f"feature_set:{version}")
        change = transition(ledger, version, to, actor=actor, reason=reason)
    emit(
        change.__dict__,
        f"{change.version_id}: {change.from_status} -> {change.to_status}",
        as_json=as_json,
    )
    return 0


def _record_spec(ledger: Ledger, version: str) -> FeatureSetSpec:
    from aiops_assets.core.lifecycle import LifecycleError, spec_of

    record = ledger.get_feature_set(version)
    if record is None:
        raise LifecycleError(
            f"feature set {version} is not registered; `aiops featureset register`"
        )
    return spec_of(record)


@featureset.command()
@common_options
@click.argument("version")
@click.option("--hypothesis", required=True)
@click.option("--criterion", required=True, help="declared now, e.g. 'delta.f1>=0.0'")
@click.option("--days", default="", help="A..B (ISO dates, B excluded); default all")
def ablate(
    home: Path | None, as_json: bool, version: str, hypothesis: str, criterion: str, days: str
) -> int:
    """Train on this set and on production's; record the comparison."""
    settings = load_settings(home)
    with ledger_of(settings) as ledger, _domain_errors():
        stored = _ablate(settings, ledger, version, hypothesis, criterion, days)
    met = {True: "met", False: "NOT met", None: "undecided"}[stored.criterion_met]
    emit(
        {"run_id": stored.run_id, "criterion_met": stored.criterion_met, "metrics": stored.metrics},
        f"ablation {stored.run_id}: {criterion} {met} "
        f"(delta.f1 {stored.metrics['delta.f1']:+.3f}, "
        f"delta.pr_auc {stored.metrics['delta.pr_auc']:+.3f})",
        as_json=as_json,
    )
    return 0


def _ablate(
    settings: PipelineSettings,
    ledger: Ledger,
    version: str,
    hypothesis: str,
    criterion: str,
    days: str,
) -> Any:
    from aiops_assets.core.lifecycle import (
        LifecycleError,
        production_feature_set,
        run_ablation,
        spec_of,
    )
    from aiops_assets.core.policy import identify
    from aiops_assets.reference.sandbox import ReadOnlyStore

    candidate = _record_spec(ledger, version)
    production = production_feature_set(ledger, candidate.name)
    if production is None:
        raise LifecycleError(
            f"{candidate.name} has no production feature set to compare with; register the one "
            "in service with `aiops featureset register --production`"
        )
    store = ReadOnlyStore(settings.store_root)
    chosen = store.snapshot_days(days)
    run = run_ablation(
        store.window_telemetry(chosen),
        candidate,
        spec_of(production),
        chosen,
        hypothesis=hypothesis,
        success_criterion=criterion,
    )
    actor = identify(ledger, action="record_experiment", subject=f"feature_set:{version}")
    return ledger.record_experiment_run(run, actor=actor)


@featureset.command()
@common_options
@click.argument("version")
@click.option("--ablation", default="", help="the ablation's run id (or a prefix)")
@click.option("--window", required=True, help="reference window A..B of ordinary days")
def promote(home: Path | None, as_json: bool, version: str, ablation: str, window: str) -> int:
    """Promote a candidate to production if every criterion holds."""
    settings = load_settings(home)
    with _domain_errors():
        # An environment that cannot promote says so before any ledger is touched.
        settings.deployment.require_promotion(f"feature set {version}")
    with ledger_of(settings) as ledger, _domain_errors():
        decision = _promote(settings, ledger, version, ablation, window)
    lines = [f"{version}: {decision.reason}"] + [
        f"  {'pass' if c.passed else 'FAIL'} {c.name}: {c.detail}" for c in decision.criteria
    ]
    emit(
        {"promoted": decision.promoted, "reason": decision.reason, **decision.evidence()},
        "\n".join(lines),
        as_json=as_json,
    )
    return 0 if decision.promoted else EXIT_FAILED


def _promote(
    settings: PipelineSettings, ledger: Ledger, version: str, ablation: str, window: str
) -> Any:
    from aiops_assets.core.lifecycle import (
        assess_feature_set,
        production_feature_set,
        promote_feature_set,
        spec_of,
    )
    from aiops_assets.reference.sandbox import ReadOnlyStore

    actor = _actor(settings, ledger, "promote_feature_set", f"feature_set:{version}")
    candidate = _record_spec(ledger, version)
    production = production_feature_set(ledger, candidate.name)
    store = ReadOnlyStore(settings.store_root)
    days = store.snapshot_days(window)
    assessment = assess_feature_set(
        store.window_telemetry(days),
        candidate,
        days,
        baseline=None if production is None else spec_of(production),
    )
    return promote_feature_set(
        ledger,
        version,
        assessment=assessment,
        ablation_run_id=ablation or None,
        actor=actor,
        environment=settings.deployment,
    )


# --- flags ------------------------------------------------------------------------------------


@click.group(cls=Group)
def flags() -> None:
    """Which versions serve which services."""


@flags.command()
@common_options
@click.option("--service", "services", multiple=True, help="resolve for this service (repeatable)")
def show(home: Path | None, as_json: bool, services: tuple[str, ...]) -> int:
    """The flags in force (and a service's values)."""
    from aiops_assets.core.flags import current_flags

    with ledger_of(load_settings(home), read_only=True) as ledger, _domain_errors():
        current = current_flags(ledger)
    resolved = {
        service: {name: flag.value_for(service) for name, flag in current.flags.items()}
        for service in services
    }
    if as_json:
        print_json({"source": current.source, "sha256": current.sha256, "services": resolved})
        return 0
    click.echo(f"# {current.source} (sha256 {current.sha256[:12]})")
    click.echo(current.text.rstrip())
    if resolved:
        click.echo()
        print_table(
            ["service", "flag", "value"],
            [
                [service, name, str(value)]
                for service, values in resolved.items()
                for name, value in values.items()
            ],
        )
    return 0


@flags.command("set")
@common_options
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False, exists=True))
@click.option("--reason", required=True, help="shown in the change log")
def set_flags(home: Path | None, as_json: bool, file: Path, reason: str) -> int:
    """Apply a new flag document (audited)."""
    from aiops_assets.core.flags import apply_flags

    settings = load_settings(home)
    text = file.read_text(encoding="utf-8")
    with ledger_of(settings) as ledger, _domain_errors():
        actor = _actor(settings, ledger, "change_flags", "flags")
        version, lines = apply_flags(
            ledger,
            text,
            actor=actor,
            reason=reason,
            environment=settings.deployment,
            source=str(file),
        )
    emit(
        {"version": version.version, "sha256": version.sha256, "changes": lines},
        "\n".join([f"flags v{version.version} in force"] + [f"  {line}" for line in lines])
        if lines
        else f"flags v{version.version} already in force: nothing changed",
        as_json=as_json,
    )
    return 0


@flags.command("history")
@common_options
def flag_history(home: Path | None, as_json: bool) -> int:
    """Every version in force."""
    from aiops_assets.core.flags import flag_history as versions_in_force

    with ledger_of(load_settings(home), read_only=True) as ledger, _domain_errors():
        history = versions_in_force(ledger)
    emit(
        [
            {"version": v.version, "at": v.at, "actor": v.actor, "reason": v.reason}
            for v, _ in history
        ],
        "\n".join(f"v{v.version} {v.at.isoformat()} by {v.actor}: {v.reason}" for v, _ in history)
        or "no flag changes recorded (the packaged default is in force)",
        as_json=as_json,
    )
    return 0


# --- env --------------------------------------------------------------------------------------


@click.command(cls=Command)
@common_options
def env(home: Path | None, as_json: bool) -> int:
    """The environment AIOPS_ENV selects, its paths, and what it allows."""
    settings = load_settings(home)
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
    emit(payload, "\n".join(f"{k:34} {v}" for k, v in payload.items()), as_json=as_json)
    return 0
