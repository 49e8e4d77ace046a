"""The sandbox: try a feature set on production's data from a notebook, without touching production.

A data scientist wants the real snapshots, the real feature code and the real checks, and no way
to change what production serves. ``Sandbox.open(home)`` reads the home's artifact store through a
read-only view (every read verified against its hash) and writes only into its own namespace,
``home/sandbox/`` (store, ledger, audit key): the sandbox environment of ``core.environments``,
which cannot promote anything. Models trained here are registered in the sandbox ledger with
``origin=sandbox``, a tag prod refuses to serve. What proves itself here goes to production by
the lifecycle (docs/experimentation.md): register, ablate and promote in staging or prod.

No Dagster import: this runs in a plain Python kernel.

Example:
    >>> from aiops_assets.reference.sandbox import Sandbox  # doctest: +SKIP
    >>> sandbox = Sandbox.open(".aiops")  # doctest: +SKIP
    >>> sandbox.days()  # doctest: +SKIP
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pandas as pd

from aiops_assets.core.environments import ORIGIN_TAG, SANDBOX_ORIGIN, get_environment
from aiops_assets.core.experiments import ExperimentRun, parse_time_range
from aiops_assets.core.features import FeatureSetSpec
from aiops_assets.core.ledger import FeatureSetRecord, Ledger, ModelVersion
from aiops_assets.core.lifecycle import (
    FeatureSetAssessment,
    LifecycleError,
    assess_feature_set,
    compute_window,
    register_feature_set,
    run_ablation,
)
from aiops_assets.core.model_codec import put_detector
from aiops_assets.core.models import (
    HOLDOUT,
    SPLIT,
    TRAIN,
    AnomalyDetector,
    DetectorConfig,
    TrainingSetConfig,
    build_training_set,
    evaluate_detector,
    train_detector,
)
from aiops_assets.core.registry import artifact_tags
from aiops_assets.core.store import ArtifactRef, ArtifactStore
from aiops_assets.reference.settings import PipelineSettings

SNAPSHOT_ASSET = "telemetry_snapshot"
FEATURES_ASSET = "features"
SANDBOX_ACTOR = "sandbox"
_SHA256 = re.compile(r"[0-9a-f]{64}")


class SandboxError(ValueError):
    """A request the sandbox cannot serve (an unknown day or version); says what exists."""


class ReadOnlyStore:
    """The production store, readable and verified, with no method that writes."""

    def __init__(self, root: str) -> None:
        self._store = ArtifactStore(root)
        self.root = str(root)

    def get_frame(self, ref: ArtifactRef | str) -> pd.DataFrame:
        return self._store.get_frame(ref)

    def get_ref(self, name: str) -> ArtifactRef | None:
        return self._store.get_ref(name)

    def partitions(self, asset: str) -> list[str]:
        """The partitions of ``asset`` that have a current artifact, oldest first."""
        folder = self._store.root / "refs" / "assets" / asset
        if not folder.exists():
            return []
        return sorted(path.name.removesuffix(".json") for path in folder.iterdir())

    def snapshot_days(self, time_range: str = "") -> list[str]:
        """Days with a telemetry snapshot, within ``time_range`` (``A..B``) when given."""
        days = self.partitions(SNAPSHOT_ASSET)
        if time_range:
            since, until = parse_time_range(time_range)
            days = [
                day
                for day in days
                if (since is None or pd.Timestamp(day, tz="UTC") >= since)
                and (until is None or pd.Timestamp(day, tz="UTC") < until)
            ]
        if not days:
            raise LifecycleError(f"no telemetry snapshots {time_range} in {self.root}")
        return days

    def window_telemetry(self, days: Sequence[str]) -> pd.DataFrame:
        """The snapshots from the one before ``days[0]`` to ``days[-1]``: a window and the
        history its first day's features read."""
        available = self.partitions(SNAPSHOT_ASSET)
        first = available.index(days[0])
        wanted = available[max(first - 1, 0) : available.index(days[-1]) + 1]
        frames = []
        for day in wanted:
            ref = self.get_ref(f"assets/{SNAPSHOT_ASSET}/{day}")
            if ref is not None:
                frames.append(self.get_frame(ref))
        return pd.concat(frames, ignore_index=True)


@dataclass(frozen=True)
class SandboxEvaluation:
    """A model trained on a feature set in the sandbox, and how it did on the holdout days."""

    feature_set_version: str
    days: tuple[str, ...]
    metrics: dict[str, float]
    model: AnomalyDetector
    model_version: ModelVersion


class Sandbox:
    """Production's data, read-only; the sandbox's own store and ledger for everything written."""

    def __init__(
        self,
        production_store_root: str,
        settings: PipelineSettings,
        *,
        audit_key: bytes | None = None,
    ) -> None:
        if settings.environment != "sandbox":
            raise SandboxError(
                f"a sandbox writes only in the sandbox environment, not in {settings.environment}"
            )
        self.environment = get_environment("sandbox")
        self.settings = settings
        self.production = ReadOnlyStore(production_store_root)
        self.store = ArtifactStore(settings.store_root)
        self.ledger = (
            Ledger(settings.ledger_url, audit_key=audit_key)
            if audit_key is not None
            else Ledger.from_env(settings.ledger_url, default_key_file=settings.audit_key_file)
        )

    @classmethod
    def open(cls, home: str | Path = ".aiops", *, production_store_root: str = "") -> Sandbox:
        """A sandbox over the dev home ``home``: reads ``home/store``, writes ``home/sandbox/``.

        ``production_store_root`` points at another store to read (say, a staging bucket).
        """
        home_path = Path(home)
        production = production_store_root or PipelineSettings(home=home_path).store_root
        return cls(production, PipelineSettings(home=home_path, environment="sandbox"))

    def close(self) -> None:
        self.ledger.dispose()

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Sandbox(reads {self.production.root!r}, writes {self.settings.root!s})"

    # --- reading production ---------------------------------------------------------------

    def days(self) -> list[str]:
        """Days that have a telemetry snapshot in the production store."""
        return self.production.partitions(SNAPSHOT_ASSET)

    def snapshot(self, day_or_sha256: str) -> pd.DataFrame:
        """A snapshot by day (its current version) or by version (its sha256), hash-verified."""
        if _SHA256.fullmatch(day_or_sha256):
            return self.production.get_frame(day_or_sha256)
        ref = self.production.get_ref(f"assets/{SNAPSHOT_ASSET}/{day_or_sha256}")
        if ref is None:
            raise SandboxError(
                f"no snapshot of {day_or_sha256} in {self.production.root}; days with one: "
                f"{', '.join(self.days()) or 'none (run the pipeline first)'}"
            )
        return self.production.get_frame(ref)

    def stored_features(self, day: str) -> pd.DataFrame:
        """The features the pipeline stored for ``day`` (computed by the production spec)."""
        ref = self.production.get_ref(f"assets/{FEATURES_ASSET}/{day}")
        if ref is None:
            raise SandboxError(f"no stored features of {day} in {self.production.root}")
        return self.production.get_frame(ref)

    def telemetry(self, days: Sequence[str]) -> pd.DataFrame:
        """The snapshots of ``days`` plus the day before the first, when there is one: the
        history the features of the first day need, as the pipeline reads it."""
        ordered = sorted(days)
        before = (date.fromisoformat(ordered[0]) - timedelta(days=1)).isoformat()
        wanted = ([before] if before in self.days() else []) + ordered
        return pd.concat([self.snapshot(day) for day in wanted], ignore_index=True)

    # --- experimenting --------------------------------------------------------------------

    def features(self, spec: FeatureSetSpec, days: Sequence[str]) -> pd.DataFrame:
        """``spec``'s features over ``days``, point-in-time correct, computed in memory."""
        return compute_window(self.telemetry(days), spec, days)

    def register(self, spec: FeatureSetSpec) -> FeatureSetRecord:
        """Record the spec in the sandbox ledger as experimental (idempotent)."""
        return register_feature_set(self.ledger, spec, actor=SANDBOX_ACTOR)

    def assess(
        self,
        spec: FeatureSetSpec,
        reference_days: Sequence[str],
        *,
        baseline: FeatureSetSpec | None = None,
    ) -> FeatureSetAssessment:
        """Quality, leakage and drift stability, as a promotion would judge them."""
        self.register(spec)
        return assess_feature_set(
            self.telemetry(reference_days), spec, reference_days, baseline=baseline
        )

    def evaluate(
        self,
        spec: FeatureSetSpec,
        days: Sequence[str],
        *,
        training: TrainingSetConfig | None = None,
        detector: DetectorConfig | None = None,
    ) -> SandboxEvaluation:
        """Train the reference detector on ``spec`` and score it on the last days (the holdout).

        The model goes into the sandbox store and ledger, tagged ``origin=sandbox``.
        """
        self.register(spec)
        training_set = build_training_set(
            self.features(spec, days), training or TrainingSetConfig()
        )
        model = train_detector(
            training_set[training_set[SPLIT] == TRAIN], detector or DetectorConfig()
        )
        metrics = evaluate_detector(model, training_set[training_set[SPLIT] == HOLDOUT])
        ref = put_detector(self.store, model)
        version = self.ledger.register_model_version(
            "anomaly_detector",
            ref.sha256,
            metrics=metrics,
            training_set_version=f"sandbox:{','.join(sorted(days))}",
            feature_set_version=spec.version_id,
            actor=SANDBOX_ACTOR,
            tags={ORIGIN_TAG: SANDBOX_ORIGIN, **artifact_tags(ref)},
        )
        return SandboxEvaluation(
            feature_set_version=spec.version_id,
            days=tuple(sorted(days)),
            metrics=metrics,
            model=model,
            model_version=version,
        )

    def ablate(
        self,
        candidate: FeatureSetSpec,
        baseline: FeatureSetSpec,
        days: Sequence[str],
        *,
        hypothesis: str,
        success_criterion: str,
        **options: Any,
    ) -> ExperimentRun:
        """Candidate against baseline on the same days; recorded in the sandbox's experiment
        ledger (a rehearsal: the run that counts for promotion is recorded in staging or prod)."""
        self.register(candidate)
        run = run_ablation(
            self.telemetry(days),
            candidate,
            baseline,
            days,
            hypothesis=hypothesis,
            success_criterion=success_criterion,
            **options,
        )
        return self.ledger.record_experiment_run(run, actor=SANDBOX_ACTOR)

    def promote(self, what: str) -> None:
        """Always refused: a sandbox proves ideas, production promotes them with evidence."""
        self.environment.require_promotion(what)


__all__ = ["ReadOnlyStore", "Sandbox", "SandboxError", "SandboxEvaluation"]
