"""The lab's pipeline: telemetry files in a directory, the reference definitions, the ``aiops`` CLI.

One trained history per base seed (five days ingested and trained on, the weekend served) is
copied per incident: artifact refs are content hashes, and the instance, the ledger and the store
are files under the home. The incident then serves its own days, each written as one CSV export
into the home's ``telemetry/`` directory just before it is ingested, with its planted changes
applied where they would land in a real deployment (see ``faults``).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any

import dagster as dg
import pandas as pd
import yaml

from aiops_assets.core import telemetry
from aiops_assets.reference.definitions import (
    PERFORMANCE_CHECK,
    TRAINING_ASSETS,
    build_definitions,
    ingest_selection,
    scoring_selection,
)
from aiops_assets.reference.settings import DEFAULT_QUALITY_SUITE, PipelineSettings
from aiops_assets.resources import close_ledgers
from aiops_assets.runner import materialize_selection, prepare_instance
from aiops_assets_tests.incident_lab import faults as lab_faults
from aiops_assets_tests.incident_lab.families import broken_feature_set
from aiops_assets_tests.incident_lab.spec import (
    DAYS,
    FIRST_INCIDENT_DAY,
    START,
    TRAINED_DAYS,
    Fault,
    IncidentSpec,
    Predicate,
    partition,
)

QUIET: dict[str, Any] = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}
SOURCE_DIR = "telemetry"
SPEC_FILE = "incident.json"
SERVED_FILE = "served.json"
HISTORY_FILE = "history.json"
FAILED_HISTORY_FILE = "history-failed.json"
ACTOR = "local:oncall"


class LabError(RuntimeError):
    """The lab could not build what it was asked to (a CLI step refused, a base seed whose own
    history already fails): the message says which."""


# --- telemetry -------------------------------------------------------------------------------


def base_scenario(base_seed: int, incident_rate_factor: float = 1.0) -> telemetry.Scenario:
    """The generated world of one base seed, with the half percent of samples every collector
    drops (inside the suite's completeness budget: harmless until something propagates NaN)."""
    gaps = tuple(
        telemetry.NullInjection(
            day=START + timedelta(days=offset),
            service=service,
            columns=("latency_p50_ms", "latency_p99_ms", "error_rate", "cpu_pct"),
            fraction=0.008,
        )
        for offset in range(DAYS)
        for service in telemetry.DEFAULT_SERVICES
    )
    return telemetry.Scenario(
        start=START,
        days=DAYS,
        services=telemetry.DEFAULT_SERVICES,
        seed=base_seed,
        incidents_per_service_day=0.35 * incident_rate_factor,
        events=gaps,
    )


def base_day(base_seed: int, day: int, incident_rate_factor: float = 1.0) -> pd.DataFrame:
    scenario = base_scenario(base_seed, incident_rate_factor)
    return telemetry.generate_day(scenario, START + timedelta(days=day))


@lru_cache(maxsize=64)
def _label_counts(base_seed: int, day: int) -> tuple[tuple[str, int], ...]:
    frame = base_day(base_seed, day)
    counts = frame.groupby(telemetry.SERVICE)[telemetry.LABEL].sum()
    return tuple((str(service), int(count)) for service, count in counts.items())


def label_counts(base_seed: int) -> Any:
    """Labeled anomalous rows per service of a day of ``base_seed``'s world."""
    return lambda day: dict(_label_counts(base_seed, day))


def write_day(home: Path, spec: IncidentSpec | None, base_seed: int, day: int) -> Path:
    """The day's export as the collectors deliver it, written atomically into the source dir."""
    faults = spec.faults if spec is not None else ()
    frame = base_day(base_seed, day, lab_faults.incident_rate_factor(faults, day))
    frame = lab_faults.apply_data_faults(frame, day, faults, spec.seed if spec else base_seed)
    directory = home / SOURCE_DIR
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / f"telemetry-{partition(day)}.csv"
    partial = target.with_suffix(".csv.partial")
    frame.to_csv(partial, index=False, date_format="%Y-%m-%dT%H:%M:%S")
    partial.replace(target)
    return target


# --- settings, environment and the CLI -------------------------------------------------------


def environment(home: Path, base_seed: int) -> dict[str, str]:
    """The variables an on-call engineer's shell would hold for this deployment."""
    return {
        "AIOPS_HOME": str(home),
        "AIOPS_START": START.isoformat(),
        "AIOPS_DAYS": str(DAYS),
        "AIOPS_SEED": str(base_seed),
        "AIOPS_SOURCE_KIND": "directory",
        "AIOPS_SOURCE_PATH": str(home / SOURCE_DIR),
        "AIOPS_QUALITY_SUITE": str(home / "suite.yaml"),
        "AIOPS_ACTOR": ACTOR,
    }


@contextlib.contextmanager
def pipeline_env(home: Path, base_seed: int) -> Iterator[PipelineSettings]:
    """The deployment's environment variables, set for the duration (and restored after)."""
    values = environment(home, base_seed)
    saved = {name: os.environ.get(name) for name in [*values, "DAGSTER_HOME"]}
    os.environ.update(values)
    os.environ.pop("DAGSTER_HOME", None)
    try:
        yield PipelineSettings.from_env(dict(os.environ))
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@dataclass(frozen=True)
class CliResult:
    code: int
    stdout: str
    stderr: str


def aiops(home: Path, base_seed: int, *args: str) -> CliResult:
    """``aiops ARGS --home HOME`` in this process, as the person on call would type it."""
    from aiops_assets.cli import main

    out, err = io.StringIO(), io.StringIO()
    with (
        pipeline_env(home, base_seed),
        contextlib.redirect_stdout(out),
        contextlib.redirect_stderr(err),
        warnings.catch_warnings(),
    ):
        warnings.simplefilter("ignore")
        code = main([*args, "--home", str(home)])
    return CliResult(code, out.getvalue(), err.getvalue())


def _require(result: CliResult, what: str) -> CliResult:
    if result.code != 0:
        last = (result.stderr.strip().splitlines() or ["no message"])[-1]
        raise LabError(f"{what} failed (exit {result.code}): {last}")
    return result


def write_suite(home: Path) -> None:
    """The default suite with completeness only warned about: this deployment's collectors drop
    samples under load, so the gate lets gappy days through and the diagnosis has to find what
    they did."""
    suite = yaml.safe_load(Path(DEFAULT_QUALITY_SUITE).read_text())
    for expectation in suite["expectations"]:
        if expectation["type"] == "expect_column_values_to_not_be_null" and "mostly" in (
            expectation.get("kwargs") or {}
        ):
            expectation["severity"] = "WARN"
    (home / "suite.yaml").write_text(yaml.safe_dump(suite, sort_keys=False))


# --- serving ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class DayOutcome:
    day: int
    accepted: bool  # the snapshot passed the quality gate and the day was scored
    performance_passed: bool | None  # None: not evaluated
    reasons: str = ""


def serve_day(
    definitions: dg.Definitions,
    instance: dg.DagsterInstance,
    day: int,
    snapshot_config: Mapping[str, Any] | None = None,
) -> DayOutcome:
    """Ingest one day with its snapshot run config, then score it with its checks."""
    run_config: dict[str, Any] = dict(QUIET)
    if snapshot_config:
        run_config["ops"] = {"telemetry_snapshot": {"config": dict(snapshot_config)}}
    key = partition(day)
    ingested = materialize_selection(
        definitions,
        instance,
        ingest_selection(),
        partition_key=key,
        run_config=run_config,
        raise_on_error=False,
    )
    materialized = {event.asset_key for event in ingested.get_asset_materialization_events()}
    if not {dg.AssetKey("telemetry_snapshot"), dg.AssetKey("features")} <= materialized:
        return DayOutcome(day, False, None, "quarantined or not featurized")
    scored = materialize_selection(
        definitions,
        instance,
        scoring_selection(),
        partition_key=key,
        run_config=QUIET,
        raise_on_error=False,
    )
    for evaluation in scored.get_asset_check_evaluations():
        if evaluation.asset_check_key == PERFORMANCE_CHECK:
            summary = evaluation.metadata.get("summary")
            text = str(getattr(summary, "value", summary or ""))
            return DayOutcome(day, True, bool(evaluation.passed), text[:400])
    return DayOutcome(day, True, None, "the performance check was not evaluated")


@contextlib.contextmanager
def opened(settings: PipelineSettings) -> Iterator[dg.DagsterInstance]:
    instance = prepare_instance(settings.dagster_home)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield instance
    finally:
        instance.dispose()
        close_ledgers()


def prepare_history(home: Path, base_seed: int) -> Path:
    """The days every incident of ``base_seed`` shares: five ingested, a model trained on
    them, then the weekend served. Kept (``history.json``) so a work dir builds it once."""
    if (home / HISTORY_FILE).is_file():
        return home
    if (home / FAILED_HISTORY_FILE).is_file():
        raise LabError(json.loads((home / FAILED_HISTORY_FILE).read_text())["error"])
    if home.exists():
        shutil.rmtree(home)
    home.mkdir(parents=True)
    write_suite(home)
    # The team adopted the feature-set lifecycle long ago: the set in service is registered.
    _require(
        aiops(home, base_seed, "featureset", "register", "--production"),
        "registering the production feature set",
    )
    outcomes = []
    with pipeline_env(home, base_seed) as settings, opened(settings) as instance:
        definitions = build_definitions(settings)
        for day in range(TRAINED_DAYS):
            write_day(home, None, base_seed, day)
            materialize_selection(
                definitions,
                instance,
                ingest_selection(),
                partition_key=partition(day),
                run_config=QUIET,
            )
        materialize_selection(
            definitions,
            instance,
            dg.AssetSelection.assets(*TRAINING_ASSETS),
            run_config={
                **QUIET,
                "ops": {"training_set": {"config": {"until": partition(TRAINED_DAYS - 1)}}},
            },
        )
        for day in range(TRAINED_DAYS, FIRST_INCIDENT_DAY):
            write_day(home, None, base_seed, day)
            outcomes.append(serve_day(definitions, instance, day))
    bad = [o for o in outcomes if o.performance_passed is not True]
    if bad:
        first_line = bad[0].reasons.strip().splitlines()[0] if bad[0].reasons.strip() else ""
        message = (
            f"base seed {base_seed}: the shared history itself does not pass on "
            f"{', '.join(partition(o.day) for o in bad)} ({first_line})"
        )
        (home / FAILED_HISTORY_FILE).write_text(json.dumps({"error": message}))
        raise LabError(message)
    (home / HISTORY_FILE).write_text(json.dumps({"base_seed": base_seed}))
    return home


@dataclass
class Served:
    """How serving an incident went: ``status`` is ``incident`` (the performance check failed on
    or after the cause landed), ``no_failure``, ``quarantined`` (the quality gate refused a day,
    so no model ever saw the fault) or ``early_failure`` (the check failed before the cause)."""

    spec: IncidentSpec
    status: str
    days: list[DayOutcome] = field(default_factory=list)

    @property
    def last_day(self) -> int:
        return self.days[-1].day if self.days else FIRST_INCIDENT_DAY - 1

    @property
    def failed_partition(self) -> str | None:
        failed = [o for o in self.days if o.performance_passed is False]
        return partition(failed[0].day) if failed else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "days": [o.__dict__ for o in self.days],
            "failed_partition": self.failed_partition,
        }


def enter_deploys(stack: contextlib.ExitStack, spec: IncidentSpec, day: int) -> None:
    """The deploys that land on ``day``, entered into ``stack`` (they stay until it closes)."""
    for fault in spec.faults:
        if fault.kind in lab_faults.DEPLOY_KINDS and fault.day == day:
            stack.enter_context(lab_faults.deploy(fault))


def serve_incident(
    spec: IncidentSpec, home: Path, history: Path, stack: contextlib.ExitStack
) -> Served:
    """Copy the history, then serve the incident's days until the performance check fails or
    ``spec.last_day`` passes. Deploys stay entered in ``stack`` for the diagnosis."""
    if home.exists():
        shutil.rmtree(home)
    shutil.copytree(history, home)
    (home / HISTORY_FILE).unlink()
    served = Served(spec, "no_failure")
    for day in range(FIRST_INCIDENT_DAY, spec.last_day + 1):
        served.spec = _ledger_actions(served.spec, home, day)
        enter_deploys(stack, served.spec, day)
        write_day(home, served.spec, spec.base_seed, day)
        with pipeline_env(home, spec.base_seed) as settings, opened(settings) as instance:
            outcome = serve_day(
                build_definitions(settings),
                instance,
                day,
                lab_faults.snapshot_config(served.spec.faults, day),
            )
        served.days.append(outcome)
        if not outcome.accepted:
            served.status = "quarantined"
            break
        if outcome.performance_passed is False:
            served.status = "early_failure" if day < spec.cause.day else "incident"
            break
    (home / SPEC_FILE).write_text(json.dumps(served.spec.to_dict(), indent=1))
    (home / SERVED_FILE).write_text(json.dumps(served.to_dict(), indent=1))
    return served


# --- ledger faults: through the CLI ----------------------------------------------------------


def _ledger_actions(spec: IncidentSpec, home: Path, day: int) -> IncidentSpec:
    """Run the ledger faults landing on ``day`` before its data arrives; a promotion's truth
    learns the version it promoted."""
    cause = spec.cause
    if cause.day != day:
        return spec
    if cause.kind == "feature_set_change":
        _route_feature_set(spec, home)
    elif cause.kind == "bad_promotion":
        return spec.with_cause(_promote_bad_model(spec, home))
    return spec


def _route_feature_set(spec: IncidentSpec, home: Path) -> None:
    params = spec.cause.params
    broken = broken_feature_set(str(params["variant"]))
    spec_file = home / "broken-feature-set.json"
    spec_file.write_text(json.dumps(broken.to_dict()))
    _require(
        aiops(home, spec.base_seed, "featureset", "register", str(spec_file)),
        "registering the new feature set",
    )
    from aiops_assets.core.features import FeatureSetSpec

    production = FeatureSetSpec().version_id
    services = list(params["services"])
    everyone = len(services) == len(telemetry.DEFAULT_SERVICES)
    document = {
        "version": 1,
        "flags": {
            "features": {
                "kind": "feature_set",
                "target": "telemetry_core",
                "default": broken.version_id if everyone else production,
                "rules": [] if everyone else [{"value": broken.version_id, "services": services}],
            },
            "detector": {
                "kind": "model",
                "target": "anomaly_detector",
                "default": "champion",
                "rules": [],
            },
        },
    }
    flags_file = home / "flags.yaml"
    flags_file.write_text(yaml.safe_dump(document, sort_keys=False))
    reason = f"roll {broken.version_id} out to {', '.join(services)}"
    _require(
        aiops(home, spec.base_seed, "flags", "set", str(flags_file), "--reason", reason),
        "applying the new flags",
    )


def _promote_bad_model(spec: IncidentSpec, home: Path) -> Fault:
    """Train a candidate with the drawn alert budget on the same training window, then force it
    into service with ``aiops registry promote``."""
    params = spec.cause.params
    with pipeline_env(home, spec.base_seed) as settings, opened(settings) as instance:
        result = materialize_selection(
            build_definitions(settings),
            instance,
            dg.AssetSelection.assets("training_set", "candidate_model"),
            run_config={
                **QUIET,
                "ops": {
                    "training_set": {"config": {"until": partition(TRAINED_DAYS - 1)}},
                    "candidate_model": {
                        "config": {
                            "alert_quantile": float(params["alert_quantile"]),
                            "seed": int(params["seed"]),
                        }
                    },
                },
            },
            raise_on_error=False,
        )
    if not result.success:
        raise LabError(f"training the candidate of {spec.name} failed: {_failure(result)}")
    [event] = [
        e
        for e in result.get_asset_materialization_events()
        if e.asset_key == dg.AssetKey("candidate_model")
    ]
    version = int(event.materialization.metadata["model_version"].value)  # type: ignore[arg-type]
    _require(
        aiops(
            home,
            spec.base_seed,
            "registry",
            "promote",
            str(version),
            "--reason",
            "the new candidate pages on more incidents",
        ),
        "promoting the new candidate",
    )
    truth = (Predicate("alias", "anomaly_detector:champion", details={"to_version": version}),)
    return Fault(spec.cause.kind, spec.cause.day, {**params, "version": version}, truth)


def _failure(result: dg.ExecuteInProcessResult) -> str:
    for event in result.get_step_failure_events():
        error = event.step_failure_data.error
        if error is not None:
            return error.message.strip().splitlines()[-1]
    return "no step failed, yet the run did not succeed"


# --- reading back ----------------------------------------------------------------------------


def load_spec(home: Path) -> IncidentSpec:
    return IncidentSpec.from_dict(json.loads((home / SPEC_FILE).read_text()))


def load_served(home: Path) -> dict[str, Any]:
    return dict(json.loads((home / SERVED_FILE).read_text()))


def redeploy(stack: contextlib.ExitStack, spec: IncidentSpec, last_day: int) -> None:
    """Enter again every deploy that landed up to ``last_day``, in order, for a later diagnosis."""
    for day in range(FIRST_INCIDENT_DAY, last_day + 1):
        enter_deploys(stack, spec, day)


def recorded_changes(home: Path, base_seed: int) -> list[dict[str, Any]]:
    """Every change the pipeline's change log records for the home, as the report prints them."""
    from aiops_assets.changelog import collect_changes
    from aiops_assets.core.ledger import Ledger

    with pipeline_env(home, base_seed) as settings, opened(settings) as instance:
        ledger = Ledger.from_env(settings.ledger_url, default_key_file=settings.audit_key_file)
        try:
            changes = collect_changes(instance, ledger, build_definitions(settings))
        finally:
            ledger.dispose()
    return [
        {
            "kind": c.kind,
            "subject": c.subject,
            "partition": c.partition,
            "summary": c.summary,
            "details": dict(c.details or {}),
        }
        for c in changes
    ]


def performance_and_drift(home: Path, base_seed: int) -> tuple[list[Any], list[Any]]:
    """The performance and drift evaluations the pipeline recorded (the rankers' input)."""
    from aiops_assets.changelog import drift_history, performance_history
    from aiops_assets.reference.definitions import FEATURES_DRIFT_CHECK, SCORES_DRIFT_CHECK

    with pipeline_env(home, base_seed) as settings, opened(settings) as instance:
        performance = list(performance_history(instance))
        drift = list(drift_history(instance, [FEATURES_DRIFT_CHECK, SCORES_DRIFT_CHECK]))
    return performance, drift
