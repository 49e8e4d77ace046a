"""Settings for the reference pipeline, read once from the environment.

Plain Python (no Dagster) so the CLI, tests and the code location agree on one source of truth:
the partition range and the scenario must match, or a partition would ask the generator for a day
it does not have.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from datetime import date, timedelta
from pathlib import Path
from typing import Literal, cast, get_args

DEFAULT_START = date(2026, 1, 5)
DEFAULT_DAYS = 14
DEFAULT_SEED = 20260105
# core/ is plain Python, so naming its suite file here keeps settings free of Dagster too.
DEFAULT_QUALITY_SUITE = Path(__file__).parent / "core" / "suites" / "telemetry.yaml"
SourceKind = Literal["scenario", "directory", "nab"]
SOURCE_KINDS: tuple[SourceKind, ...] = get_args(SourceKind)


@dataclass(frozen=True)
class PipelineSettings:
    """Where the pipeline keeps its state and which days it covers.

    Attributes:
        start: First daily partition (a Monday, so weekly seasonality starts clean).
        days: Number of daily partitions.
        seed: Seed of the generated scenario; recorded with every snapshot.
        home: Project-local folder holding the Dagster instance and the artifact store.
        store_root: Artifact-store root: a local path or any fsspec URL (``s3://bucket/aiops``).
        source_kind: ``scenario`` (generated), ``directory`` (CSV/Parquet files) or ``nab``.
        source_path: The folder for ``directory`` and ``nab`` sources.
        quality_suite: The suite file that gates every snapshot (default: the telemetry suite).
    """

    start: date = DEFAULT_START
    days: int = DEFAULT_DAYS
    seed: int = DEFAULT_SEED
    home: Path = Path(".aiops")
    store_root: str = ""
    source_kind: SourceKind = "scenario"
    source_path: str = ""
    quality_suite: str = str(DEFAULT_QUALITY_SUITE)

    def __post_init__(self) -> None:
        if self.days < 1:
            raise ValueError(f"days must be at least 1, got {self.days}")
        if self.source_kind not in SOURCE_KINDS:
            raise ValueError(f"source kind must be one of {SOURCE_KINDS}, got {self.source_kind!r}")
        if self.source_kind != "scenario" and not self.source_path:
            raise ValueError(
                f"a {self.source_kind!r} telemetry source needs a path (AIOPS_SOURCE_PATH)"
            )
        if not self.store_root:
            object.__setattr__(self, "store_root", str((self.home / "store").absolute()))

    @property
    def end(self) -> date:
        """Exclusive end of the partition range."""
        return self.start + timedelta(days=self.days)

    @property
    def dagster_home(self) -> Path:
        return (self.home / "dagster_home").absolute()

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> PipelineSettings:
        """``AIOPS_START`` (ISO date), ``AIOPS_DAYS``, ``AIOPS_SEED``, ``AIOPS_HOME``,
        ``AIOPS_STORE_ROOT``, ``AIOPS_SOURCE_KIND``, ``AIOPS_SOURCE_PATH`` and ``AIOPS_QUALITY_SUITE``."""
        env = dict(os.environ if environ is None else environ)
        home = Path(env.get("AIOPS_HOME", ".aiops"))
        return cls(
            start=date.fromisoformat(env["AIOPS_START"])
            if env.get("AIOPS_START")
            else DEFAULT_START,
            days=int(env.get("AIOPS_DAYS", DEFAULT_DAYS)),
            seed=int(env.get("AIOPS_SEED", DEFAULT_SEED)),
            home=home,
            store_root=env.get("AIOPS_STORE_ROOT", ""),
            source_kind=cast(SourceKind, env.get("AIOPS_SOURCE_KIND", "scenario")),
            source_path=env.get("AIOPS_SOURCE_PATH", ""),
            quality_suite=env.get("AIOPS_QUALITY_SUITE", str(DEFAULT_QUALITY_SUITE)),
        )

    def with_overrides(self, **changes: object) -> PipelineSettings:
        if "home" in changes and "store_root" not in changes:
            changes["store_root"] = ""
        return replace(self, **changes)  # type: ignore[arg-type]
