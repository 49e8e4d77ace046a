"""Where the Airflow provider keeps its state: the same variables, and so the same home, store,
ledger and audit key, as the Dagster code location (``reference/settings.py``).

A team running both orchestrators on one home therefore shares one registry and one audit chain;
the tests point each at its own throwaway home instead.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path

import pandas as pd

from aiops_assets.core import telemetry
from aiops_assets.core.environments import ENV_VAR, get_environment
from aiops_assets.core.ledger import Ledger
from aiops_assets.core.quality import QualitySuite, Severity, load_suite
from aiops_assets.core.sources import SOURCE_KINDS
from aiops_assets.core.store import ArtifactStore

DEFAULT_START = date(2026, 1, 5)
DEFAULT_DAYS = 14
DEFAULT_SEED = 20260105
DEFAULT_QUALITY_SUITE = Path(__file__).parent.parent / "core" / "suites" / "telemetry.yaml"
# Prometheus and SQL sources are read by URL through a mapping file, as the Dagster resource does.
MAPPED_KINDS = ("prometheus", "sql")


class ConfigError(ValueError):
    """A setting the provider cannot work with (the message names the variable)."""


@dataclass(frozen=True)
class ProviderConfig:
    """The pipeline's settings, read from ``AIOPS_*`` variables by :meth:`from_env`."""

    home: Path = Path(".aiops")
    start: date = DEFAULT_START
    days: int = DEFAULT_DAYS
    seed: int = DEFAULT_SEED
    store_root: str = ""
    ledger_url: str = ""
    source_kind: str = "scenario"
    source_path: str = ""
    source_url: str = ""
    source_mapping: str = ""
    quality_suite: str = str(DEFAULT_QUALITY_SUITE)
    environment: str = "dev"
    # Where alerts go (core/alert_routing.py): a webhook, Alertmanager(s), else the outbox file.
    alert_webhook: str = ""
    alertmanager_url: str = ""
    alert_service: str = "aiops"
    alert_runbook_url: str = ""
    # Seconds between two retraining runs the drift loop requests (the sensor's default).
    retrain_cooldown_seconds: float = 6 * 3600
    extra: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.source_kind not in SOURCE_KINDS:
            raise ConfigError(
                f"AIOPS_SOURCE_KIND={self.source_kind!r}: the Airflow provider reads "
                f"{', '.join(SOURCE_KINDS)}"
            )
        if self.source_kind in MAPPED_KINDS and not (self.source_url and self.source_mapping):
            raise ConfigError(
                f"AIOPS_SOURCE_KIND={self.source_kind} needs AIOPS_SOURCE_URL and "
                "AIOPS_SOURCE_MAPPING (the mapping file, core/telemetry/mapping.py)"
            )
        if self.days < 1:
            raise ConfigError(f"AIOPS_DAYS must be at least 1, got {self.days}")
        if get_environment(self.environment).requires_webhook and not (
            self.alert_webhook or self.alertmanager_url
        ):
            raise ConfigError(
                f"the {self.environment} environment sends alerts to a webhook: set "
                "AIOPS_ALERT_WEBHOOK or AIOPS_ALERTMANAGER_URL (a local outbox would page no one)"
            )

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ProviderConfig:
        """``AIOPS_HOME``, ``AIOPS_START``, ``AIOPS_DAYS``, ``AIOPS_SEED``, ``AIOPS_STORE_ROOT``,
        ``AIOPS_LEDGER_URL``, ``AIOPS_SOURCE_KIND``, ``AIOPS_SOURCE_PATH``, ``AIOPS_SOURCE_URL``,
        ``AIOPS_SOURCE_MAPPING``, ``AIOPS_QUALITY_SUITE``, ``AIOPS_ENV``,
        ``AIOPS_ALERT_WEBHOOK``, ``AIOPS_ALERTMANAGER_URL``, ``AIOPS_ALERT_SERVICE``,
        ``AIOPS_ALERT_RUNBOOK_URL`` and ``AIOPS_RETRAIN_COOLDOWN`` (seconds)."""
        env = dict(os.environ if environ is None else environ)
        try:
            return cls(
                home=Path(env.get("AIOPS_HOME", ".aiops")),
                start=date.fromisoformat(env["AIOPS_START"])
                if env.get("AIOPS_START")
                else DEFAULT_START,
                days=int(env.get("AIOPS_DAYS", DEFAULT_DAYS)),
                seed=int(env.get("AIOPS_SEED", DEFAULT_SEED)),
                store_root=env.get("AIOPS_STORE_ROOT", ""),
                ledger_url=env.get("AIOPS_LEDGER_URL", ""),
                source_kind=env.get("AIOPS_SOURCE_KIND", "scenario"),
                source_path=env.get("AIOPS_SOURCE_PATH", ""),
                source_url=env.get("AIOPS_SOURCE_URL", ""),
                source_mapping=env.get("AIOPS_SOURCE_MAPPING", ""),
                quality_suite=env.get("AIOPS_QUALITY_SUITE", str(DEFAULT_QUALITY_SUITE)),
                environment=env.get(ENV_VAR) or "dev",
                alert_webhook=env.get("AIOPS_ALERT_WEBHOOK", ""),
                alertmanager_url=env.get("AIOPS_ALERTMANAGER_URL", ""),
                alert_service=env.get("AIOPS_ALERT_SERVICE", "aiops"),
                alert_runbook_url=env.get("AIOPS_ALERT_RUNBOOK_URL", ""),
                retrain_cooldown_seconds=float(env.get("AIOPS_RETRAIN_COOLDOWN", 6 * 3600)),
            )
        except ValueError as error:
            raise ConfigError(f"an AIOPS_* setting is malformed: {error}") from error

    @property
    def root(self) -> Path:
        """This environment's state: ``home`` for dev, ``home/<env>`` otherwise (as Dagster's)."""
        return get_environment(self.environment).root(self.home)

    @property
    def alert_outbox(self) -> Path:
        """The alerts journal (every alert delivered, or the sink itself without a URL), where
        the Dagster side keeps it: one home, one journal."""
        return (self.root / "alerts.jsonl").absolute()

    @property
    def end(self) -> date:
        return self.start + timedelta(days=self.days)

    def day_keys(self) -> list[str]:
        """The daily partitions the pipeline covers, as ``YYYY-MM-DD``."""
        return [(self.start + timedelta(days=offset)).isoformat() for offset in range(self.days)]

    def store(self) -> ArtifactStore:
        return ArtifactStore(self.store_root or str((self.root / "store").absolute()))

    def ledger(self) -> Ledger:
        """The registry and audit chain, keyed and anchored as the Dagster resource does.

        One per URL and process: opening a ledger runs its migration check, and every task
        asks for it.
        """
        url = self.ledger_url or f"sqlite:///{(self.root / 'ledger.db').absolute()}"
        ledger = _LEDGERS.get(url)
        if ledger is None:
            ledger = Ledger.from_env(url, default_key_file=(self.root / "audit.key").absolute())
            _LEDGERS[url] = ledger
        witness = os.environ.get("AIOPS_AUDIT_WITNESS", "") or str(
            (self.root / "audit-witness.jsonl").absolute()
        )
        ledger.anchor_to(Path(witness))
        return ledger

    def suite(self) -> QualitySuite:
        return load_suite(self.quality_suite, default_severity=Severity.ERROR)

    def describe_source(self) -> str:
        if self.source_kind == "scenario":
            return f"scenario(seed={self.seed}, start={self.start.isoformat()}, days={self.days})"
        if self.source_kind in MAPPED_KINDS:  # the Dagster resource's wording, password hidden
            url = telemetry.redact_url(self.source_url)
            return f"{self.source_kind}({url}, {self.source_mapping})"
        return f"{self.source_kind}({self.source_path})"

    def load_window(self, start: datetime, end: datetime) -> pd.DataFrame:
        """Telemetry with ``start <= timestamp < end``, canonical (what the Dagster resource reads).

        An unreachable source or a bad mapping raises ``TelemetrySourceError``/``MappingError``
        with a one-line message (the snapshot step fails with it)."""
        if self.source_kind == "scenario":
            scenario = telemetry.default_scenario(start=self.start, days=self.days, seed=self.seed)
            return telemetry.generate(
                scenario, pd.Timestamp(start).date(), pd.Timestamp(end).date()
            )
        if self.source_kind == "prometheus":
            return telemetry.load_prometheus(
                self.source_url,
                telemetry.load_mapping(self.source_mapping, kind="prometheus"),
                start=start,
                end=end,
            )
        if self.source_kind == "sql":
            return telemetry.load_sql(
                self.source_url,
                telemetry.load_mapping(self.source_mapping, kind="sql"),
                start=start,
                end=end,
            )
        if not self.source_path:
            raise ConfigError(f"AIOPS_SOURCE_KIND={self.source_kind} needs AIOPS_SOURCE_PATH")
        if self.source_kind == "directory":
            return telemetry.load_directory(self.source_path, start=start, end=end)
        return telemetry.load_nab(self.source_path, start=start, end=end)


_LEDGERS: dict[str, Ledger] = {}


def close_ledgers() -> None:
    """Dispose of the ledgers this process opened (a test's throwaway home goes away)."""
    for ledger in _LEDGERS.values():
        ledger.dispose()
    _LEDGERS.clear()
