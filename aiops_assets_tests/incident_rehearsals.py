"""Incidents rehearsed through the real pipeline, each with one planted cause.

Unlike the scripted histories in ``core/incident_scenarios.py``, nothing here is written by hand
but the cause: the days are generated, snapshotted, quality-gated, featurized, scored and checked
by the reference definitions in a real Dagster instance; the change log, drift and performance
history the incident engine reads are what the pipeline recorded. Shared by
``test_incident_rehearsals.py`` and ``benchmarks/incident_vs_baseline.py``.

Timeline (nine daily partitions from Monday 2026-01-05): days 1-5 are ingested and the model is
trained on them; the weekend (days 6-7) is served unchanged, so its seasonal drift is always in
the history; the cause lands on Monday 2026-01-12 (day 8) and stays for day 9.

Two causes cannot be produced by changing our inputs alone, so the rehearsal changes the code the
way a deploy would, for the days after the change only:

- *library upgrade*: pandas reports a new version and its ``Timedelta.total_seconds`` reports
  milliseconds, a stand-in for a unit or resolution change in a dependency (pandas 3's default
  datetime resolution is the real-world kind); our preprocessing code is unchanged.
- *feature-set code change*: a new ``features`` code version whose rate-of-change features are
  per hour instead of per minute, as a refactor might do.
"""

from __future__ import annotations

import contextlib
import json
import shutil
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any
from unittest import mock

import dagster as dg
import pandas as pd
import yaml
from pandas.core.window.rolling import Rolling

from aiops_assets.changelog import collect_changes, drift_history, performance_history
from aiops_assets.core import features as core_features
from aiops_assets.core import telemetry
from aiops_assets.core.incidents import (
    Change,
    DriftPoint,
    IncidentReport,
    PerformancePoint,
    build_incident_report,
)
from aiops_assets.core.ledger import Ledger
from aiops_assets.core.registry import MODEL_NAME
from aiops_assets.metadata import package_versions
from aiops_assets.reference.assets.features import FEATURE_LIBRARIES
from aiops_assets.reference.definitions import (
    FEATURES_DRIFT_CHECK,
    PERFORMANCE_CHECK,
    SCORES_DRIFT_CHECK,
    TRAINING_ASSETS,
    build_definitions,
    ingest_selection,
    scoring_selection,
)
from aiops_assets.reference.settings import DEFAULT_QUALITY_SUITE, PipelineSettings
from aiops_assets.resources import TelemetrySourceResource, close_ledgers
from aiops_assets.runner import materialize_selection, prepare_instance
from aiops_assets_tests.incident_scenarios import Scenario

START = date(2026, 1, 5)
DAYS = 9
TRAINED_DAYS = 5
CAUSE_DAY = 7  # 2026-01-12, the Monday after the served weekend
PARTITIONS = [(START + timedelta(days=offset)).isoformat() for offset in range(DAYS)]
CAUSE_PARTITION = PARTITIONS[CAUSE_DAY]
_QUIET: dict[str, Any] = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}

Patch = Callable[[], contextlib.AbstractContextManager[Any]]


@dataclass(frozen=True)
class Rehearsal:
    """One planted cause and what the report must say about it.

    ``cause`` is ``(kind, subject)`` of the change that must rank first; None for a rehearsal in
    which no incident may be reported at all.
    """

    name: str
    cause: tuple[str, str] | None
    events: tuple[Mapping[str, Any], ...] = ()
    snapshot_config: Mapping[str, Any] | None = None
    patch: Patch | None = None
    rebuild_definitions: bool = False


@dataclass
class RehearsalOutcome:
    rehearsal: Rehearsal
    changes: list[Change]
    performance: list[PerformancePoint]
    drift: list[DriftPoint]
    report: IncidentReport | None
    failed_checks: list[Any] = field(default_factory=list)
    drifted_partitions: list[str] = field(default_factory=list)


def _null_events() -> tuple[Mapping[str, Any], ...]:
    return tuple(
        {
            "kind": "null_injection",
            "day": day,
            "service": service,
            "columns": ["latency_p50_ms", "latency_p99_ms", "error_rate", "cpu_pct"],
            "fraction": 0.85,
        }
        for day in PARTITIONS[CAUSE_DAY:]
        for service in telemetry.DEFAULT_SERVICES
    )


def _sparse_gaps() -> tuple[Mapping[str, Any], ...]:
    """Half a percent of samples missing every day: normal for real collectors, well inside the
    quality suite's 1% completeness budget, and harmless until something propagates NaN."""
    return tuple(
        {
            "kind": "null_injection",
            "day": day,
            "service": service,
            "columns": ["latency_p50_ms", "latency_p99_ms", "error_rate", "cpu_pct"],
            "fraction": 0.008,
        }
        for day in PARTITIONS
        for service in telemetry.DEFAULT_SERVICES
    )


def nan_propagating(method: Callable[..., Any]) -> Callable[..., Any]:
    """A rolling statistic that returns NaN for any window holding a NaN (the stand-in for a
    pandas upgrade that changes missing-value handling; shared with the incident lab)."""

    def strict(self: Any, *args: Any, **kwargs: Any) -> Any:
        result = method(self, *args, **kwargs)
        poisoned = (
            self.obj.isna()
            .astype("float64")
            .rolling(self.window, closed=self.closed, min_periods=1)
            .max()
        )
        return result.mask(poisoned > 0)

    return strict


def _library_upgrade() -> contextlib.AbstractContextManager[Any]:
    """The next pandas minor: rolling mean and std return NaN for any window holding a NaN."""
    rolling = Rolling
    stack = contextlib.ExitStack()
    installed = package_versions(FEATURE_LIBRARIES)
    major, minor, *_ = installed["pandas"].split(".")
    upgraded = {**installed, "pandas": f"{major}.{int(minor) + 1}.0"}
    stack.enter_context(
        mock.patch(
            "aiops_assets.reference.assets.features.package_versions", lambda names: upgraded
        )
    )
    for name in ("mean", "std"):
        stack.enter_context(
            mock.patch.object(rolling, name, nan_propagating(getattr(rolling, name)))
        )
    return stack


def _feature_code_change() -> contextlib.AbstractContextManager[Any]:
    """features-3: z-scores and rates of change clipped to +-3, "so outliers stop dominating"."""
    original = core_features._service_features

    def clipped(group: pd.DataFrame, metrics: list[str], spec: Any) -> pd.DataFrame:
        frame = original(group, metrics, spec)
        standardized = [c for c in frame.columns if "__z_" in c or c.endswith("__dz")]
        frame[standardized] = frame[standardized].clip(-3.0, 3.0)
        return frame

    stack = contextlib.ExitStack()
    stack.enter_context(
        mock.patch("aiops_assets.reference.assets.features.FEATURES_CODE_VERSION", "features-3")
    )
    stack.enter_context(mock.patch.object(core_features, "_service_features", clipped))
    return stack


REHEARSALS: tuple[Rehearsal, ...] = (
    Rehearsal(
        "config change on one service",
        ("config", "telemetry_snapshot"),
        # checkout's exporter profile is switched to the one for collectors that report seconds,
        # per-instance rates and fractions; checkout's collector reports like every other, so
        # its numbers are now off by those factors (the quality gate's ranges still pass).
        snapshot_config={
            "unit_scale": {
                "checkout": {
                    "request_rate": 10.0,
                    "error_rate": 10.0,
                    "latency_p50_ms": 1000.0,
                    "latency_p99_ms": 1000.0,
                    "cpu_pct": 0.01,
                    "memory_pct": 0.01,
                }
            }
        },
    ),
    Rehearsal(
        "upstream null injection",
        ("data", "telemetry_snapshot"),
        events=_null_events(),
    ),
    Rehearsal("library upgrade", ("environment", "features"), patch=_library_upgrade),
    Rehearsal(
        "feature-set code change",
        ("code", "features"),
        patch=_feature_code_change,
        rebuild_definitions=True,
    ),
    Rehearsal("seasonal drift, no regression", None),
)


def rehearsal(name: str) -> Rehearsal:
    [found] = [item for item in REHEARSALS if item.name == name]
    return found


def _suite(home: Path) -> str:
    """The default suite with completeness only warned about: this deployment's collectors drop
    samples under load, so the gate lets gappy days through and the incident report has to
    find what they did."""
    suite = yaml.safe_load(Path(DEFAULT_QUALITY_SUITE).read_text())
    for expectation in suite["expectations"]:
        if expectation["type"] == "expect_column_values_to_not_be_null" and "mostly" in (
            expectation.get("kwargs") or {}
        ):
            expectation["severity"] = "WARN"
    path = home / "suite.yaml"
    path.write_text(yaml.safe_dump(suite, sort_keys=False))
    return str(path)


def _definitions(settings: PipelineSettings, scenario_file: Path) -> dg.Definitions:
    built = build_definitions(settings)
    resources = dict(built.resources or {})
    resources["telemetry_source"] = TelemetrySourceResource(
        kind="scenario", scenario_file=str(scenario_file)
    )
    return dg.Definitions(assets=built.assets, asset_checks=built.asset_checks, resources=resources)


@contextlib.contextmanager
def _applied(patch: Patch | None) -> Iterator[None]:
    if patch is None:
        yield
        return
    with patch():
        yield


def _scenario_file(home: Path, events: tuple[Mapping[str, Any], ...]) -> Path:
    scenario = telemetry.Scenario(
        start=START,
        days=DAYS,
        services=telemetry.DEFAULT_SERVICES,
        seed=20260105,
        events=tuple(telemetry._event_from_dict(event) for event in (*_sparse_gaps(), *events)),
    )
    path = home / "scenario.json"
    path.write_text(json.dumps(scenario.to_dict()))
    return path


def _settings(home: Path) -> PipelineSettings:
    return PipelineSettings(start=START, days=DAYS, home=home, quality_suite=_suite(home))


def _serve(
    definitions: dg.Definitions,
    instance: dg.DagsterInstance,
    partition: str,
    *,
    ingest_definitions: dg.Definitions | None = None,
    run_config: Mapping[str, Any] | None = None,
) -> list[Any]:
    """Ingest one day, score it with its checks; return its failed check evaluations."""
    materialize_selection(
        ingest_definitions or definitions,
        instance,
        ingest_selection(),
        partition_key=partition,
        run_config={**_QUIET, **(run_config or {})},
        raise_on_error=False,
    )
    scored = materialize_selection(
        definitions,
        instance,
        scoring_selection(),
        partition_key=partition,
        run_config=_QUIET,
        raise_on_error=False,
    )
    return [e for e in scored.get_asset_check_evaluations() if not e.passed]


def prepare_history(home: Path) -> Path:
    """The days every rehearsal shares: five ingested and trained on, then the weekend served.

    Built once and copied per rehearsal (artifact refs are content hashes, the instance and the
    ledger are files under ``home``), so each rehearsal only pays for its own two days.
    """
    home.mkdir(parents=True, exist_ok=True)
    settings = _settings(home)
    definitions = _definitions(settings, _scenario_file(home, ()))
    instance = prepare_instance(settings.dagster_home)
    try:
        for partition in PARTITIONS[:TRAINED_DAYS]:
            materialize_selection(
                definitions,
                instance,
                ingest_selection(),
                partition_key=partition,
                run_config=_QUIET,
            )
        materialize_selection(
            definitions,
            instance,
            dg.AssetSelection.assets(*TRAINING_ASSETS),
            run_config={
                **_QUIET,
                "ops": {"training_set": {"config": {"until": PARTITIONS[TRAINED_DAYS - 1]}}},
            },
        )
        for partition in PARTITIONS[TRAINED_DAYS:CAUSE_DAY]:
            _serve(definitions, instance, partition)
    finally:
        instance.dispose()
        close_ledgers()
    return home


def run_rehearsal(item: Rehearsal, home: Path, history: Path | None = None) -> RehearsalOutcome:
    """Serve the days from ``CAUSE_PARTITION`` on with ``item``'s cause planted, on a copy of
    ``history`` (built here when not given), then read everything back as the incident command
    would."""
    if history is None:
        history = prepare_history(home.with_name(home.name + "-history"))
    shutil.copytree(history, home)
    settings = _settings(home)
    scenario_file = _scenario_file(home, item.events)
    definitions = _definitions(settings, scenario_file)
    instance = prepare_instance(settings.dagster_home)
    failed: list[Any] = []
    try:
        for partition in PARTITIONS[CAUSE_DAY:]:
            run_config: dict[str, Any] = {}
            if item.snapshot_config is not None:
                run_config["ops"] = {"telemetry_snapshot": {"config": dict(item.snapshot_config)}}
            with _applied(item.patch):
                ingest_definitions = (
                    _definitions(settings, scenario_file) if item.rebuild_definitions else None
                )
                failures = _serve(
                    definitions,
                    instance,
                    partition,
                    ingest_definitions=ingest_definitions,
                    run_config=run_config,
                )
            failed += [e for e in failures if e.check_name == PERFORMANCE_CHECK.name]
        ledger = Ledger.from_env(settings.ledger_url, default_key_file=settings.audit_key_file)
        try:
            changes = collect_changes(instance, ledger, definitions)
        finally:
            ledger.dispose()
        performance = performance_history(instance)
        drift = drift_history(instance, [FEATURES_DRIFT_CHECK, SCORES_DRIFT_CHECK])
    finally:
        instance.dispose()
        close_ledgers()
    metric = "f1"
    if failed and "f1" not in {str(name) for name in failed[0].metadata}:
        metric = "false_alarm_rate"
    report = build_incident_report(MODEL_NAME, changes, performance, drift, metric=metric)
    drifted = sorted({p.partition for p in drift if p.drifted})
    return RehearsalOutcome(item, changes, performance, drift, report, failed, drifted)


def planted_cause(outcome: RehearsalOutcome) -> Change:
    """The recorded change that is the rehearsal's cause: its kind and subject, in the partition
    where the cause landed (a cause that stays also recurs on later days)."""
    assert outcome.rehearsal.cause is not None, f"{outcome.rehearsal.name} plants no cause"
    kind, subject = outcome.rehearsal.cause
    matching = [
        change
        for change in outcome.changes
        if (change.kind, change.subject) == (kind, subject) and change.partition == CAUSE_PARTITION
    ]
    if not matching:
        raise AssertionError(
            f"{outcome.rehearsal.name}: the change log recorded no {kind} change of {subject} "
            f"in {CAUSE_PARTITION}; it recorded {[(c.kind, c.subject, c.partition) for c in outcome.changes]}"
        )
    return matching[0]


def as_scenario(outcome: RehearsalOutcome) -> Scenario:
    """The rehearsal's recorded history in the shape of a scripted scenario, for the benchmark."""
    return Scenario(
        f"pipeline: {outcome.rehearsal.name}",
        planted_cause(outcome),
        outcome.changes,
        outcome.performance,
        outcome.drift,
    )
