"""Settings for the reference pipeline, read once from the environment.

Plain Python (no Dagster) so the CLI, tests and the code location agree on one source of truth:
the partition range and the scenario must match, or a partition would ask the generator for a day
it does not have.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Literal, cast, get_args

from aiops_assets.core.environments import ENV_VAR, Environment, get_environment
from aiops_assets.core.sources import SOURCE_KINDS, SourceKind
from aiops_assets.reference import clock as pipeline_clock

DEFAULT_START = date(2026, 1, 5)
DEFAULT_DAYS = 14
DEFAULT_SEED = 20260105
DEFAULT_UI_URL = "http://127.0.0.1:3000"
# core/ is plain Python, so naming its suite file here keeps settings free of Dagster too.
DEFAULT_QUALITY_SUITE = Path(__file__).parent.parent / "core" / "suites" / "telemetry.yaml"
ExecutorKind = Literal["in_process", "multiprocess", "celery"]
EXECUTOR_KINDS: tuple[ExecutorKind, ...] = get_args(ExecutorKind)
DEFAULT_CELERY_QUEUE = "dagster"
# Dagster's own default for an automation condition sensor.
DEFAULT_AUTOMATION_INTERVAL = 30


@dataclass(frozen=True)
class PipelineSettings:
    """Where the pipeline keeps its state and which days it covers.

    Attributes:
        start: First daily partition (a Monday, so weekly seasonality starts clean).
        days: Number of daily partitions.
        seed: Seed of the generated scenario; recorded with every snapshot.
        home: Project-local folder holding the Dagster instance and the artifact store.
        store_root: Artifact-store root: a local path or any fsspec URL (``s3://bucket/aiops``).
        source_kind: ``scenario`` (generated), ``directory`` (CSV/Parquet files), ``nab``,
            ``prometheus`` or ``sql`` (``AIOPS_SOURCE_KIND``).
        source_path: The folder for ``directory`` and ``nab`` sources.
        source_url: The Prometheus or SQLAlchemy URL of ``prometheus`` and ``sql`` sources
            (``AIOPS_SOURCE_URL``; passed to the resource by name, as it may hold a password).
        source_mapping: Their YAML mapping to the frame contract (``AIOPS_SOURCE_MAPPING``).
        quality_suite: The suite file that gates every snapshot (default: the telemetry suite).
        ledger_url: SQLAlchemy URL of the registry and audit ledger (default: SQLite in ``home``).
        alert_webhook: Where alerts are POSTed (Slack-compatible); empty writes them to
            ``home/alerts.jsonl`` instead, so a laptop run loses none.
        ui_url: Base URL of the Dagster UI, used for the run links in alerts.
        alertmanager_url: Alertmanager base URL(s), comma-separated for an HA cluster
            (``AIOPS_ALERTMANAGER_URL``); alerts then go there too, and recoveries resolve them.
        alert_service: The ``service`` label of those alerts (``AIOPS_ALERT_SERVICE``).
        alert_runbook_url: Their ``runbook_url`` annotation; may use ``{asset}``, ``{check}``,
            ``{partition}``, ``{kind}``, ``{alertname}`` (``AIOPS_ALERT_RUNBOOK_URL``).
        access_policy: The roles-to-actions YAML; empty uses the packaged default.
        executor: How the project's jobs run their steps: ``in_process`` (one process, the
            default), ``multiprocess`` (a process per step) or ``celery`` (steps sent to Celery
            workers through the broker in ``AIOPS_CELERY_BROKER``; see docs/deploy.md).
        celery_queue: The Celery queue the steps go to; workers must listen on it (``-q``).
        environment: ``dev`` (the default: everything directly in ``home``), ``staging``,
            ``prod`` or ``sandbox`` (``AIOPS_ENV``); the others keep their store, ledger,
            instance and outbox in ``home/<environment>`` and decide what may be served or
            promoted (``core.environments``). prod needs an alert webhook.
        partition: ``daily`` (the default) or ``hourly`` time partitions (``AIOPS_PARTITION``).
        lag: How long after a window ends its partition counts as closed (``AIOPS_LAG``).
        clock: ``AIOPS_NOW``: empty for a fixed clock at the end of ``days`` (the demo's),
            ``live`` for the real clock (open-ended partitions), or an ISO datetime.
        schedules: ``AIOPS_SCHEDULES=on`` starts the schedules, the automation sensor and the
            alert sensors with the code location; off (the default), each is switched on in the UI.
        label_source: Where the labels come from (``AIOPS_LABEL_SOURCE``): empty for the
            telemetry's label series, a CSV of incident windows (service, start, end), or a
            SQLAlchemy URL with ``label_table`` (``AIOPS_LABEL_TABLE``).
        label_delay: How long after a partition ends its labels are mature (``AIOPS_LABEL_DELAY``,
            e.g. ``2d``); until then the performance check reports a label-free estimate.
        rollback_on_estimate: ``AIOPS_ROLLBACK_ON_ESTIMATE=1`` lets a failed estimate roll back.
        automation_interval: Seconds between the automation sensor's evaluations
            (``AIOPS_AUTOMATION_INTERVAL``, default 30, Dagster's; the soak test shortens it).
    """

    start: date = DEFAULT_START
    days: int = DEFAULT_DAYS
    seed: int = DEFAULT_SEED
    home: Path = Path(".aiops")
    store_root: str = ""
    source_kind: SourceKind = "scenario"
    source_path: str = ""
    source_url: str = ""
    source_mapping: str = ""
    quality_suite: str = str(DEFAULT_QUALITY_SUITE)
    ledger_url: str = ""
    alert_webhook: str = ""
    ui_url: str = DEFAULT_UI_URL
    alertmanager_url: str = ""
    alert_service: str = "aiops"
    alert_runbook_url: str = ""
    access_policy: str = ""
    executor: ExecutorKind = "in_process"
    celery_queue: str = DEFAULT_CELERY_QUEUE
    environment: str = "dev"
    partition: str = "daily"
    lag: timedelta = pipeline_clock.DEFAULT_LAG
    clock: str = ""
    schedules: bool = False
    label_source: str = ""
    label_table: str = ""
    label_delay: timedelta = timedelta(0)
    rollback_on_estimate: bool = False
    automation_interval: int = DEFAULT_AUTOMATION_INTERVAL

    def __post_init__(self) -> None:
        if self.automation_interval < 1:
            raise ValueError(
                f"AIOPS_AUTOMATION_INTERVAL must be at least 1 second, got {self.automation_interval}"
            )
        if self.label_delay < timedelta(0):
            raise ValueError(f"AIOPS_LABEL_DELAY must not be negative, got {self.label_delay}")
        if "://" in self.label_source and not self.label_table:
            raise ValueError(
                "a SQL label source needs its table of incident windows (AIOPS_LABEL_TABLE)"
            )
        pipeline_clock.validate_granularity(self.partition)
        pipeline_clock.validate_lag(self.lag)
        if self.clock:
            pipeline_clock.parse_now(self.clock)
        deployment = get_environment(self.environment)
        if deployment.requires_webhook and not (self.alert_webhook or self.alertmanager_url):
            raise ValueError(
                f"the {deployment.name} environment sends alerts to a webhook: set "
                "AIOPS_ALERT_WEBHOOK or AIOPS_ALERTMANAGER_URL (a local outbox would page no one)"
            )
        if self.days < 1:
            raise ValueError(f"days must be at least 1, got {self.days}")
        if self.source_kind not in SOURCE_KINDS:
            raise ValueError(f"source kind must be one of {SOURCE_KINDS}, got {self.source_kind!r}")
        if self.executor not in EXECUTOR_KINDS:
            raise ValueError(f"executor must be one of {EXECUTOR_KINDS}, got {self.executor!r}")
        if not self.celery_queue:
            raise ValueError("the Celery queue name must not be empty (AIOPS_CELERY_QUEUE)")
        if self.source_kind in ("prometheus", "sql"):
            if not self.source_url or not self.source_mapping:
                raise ValueError(
                    f"a {self.source_kind!r} telemetry source needs a URL and a mapping file "
                    "(AIOPS_SOURCE_URL, AIOPS_SOURCE_MAPPING)"
                )
        elif self.source_kind != "scenario" and not self.source_path:
            raise ValueError(
                f"a {self.source_kind!r} telemetry source needs a path (AIOPS_SOURCE_PATH)"
            )
        if not self.store_root:
            object.__setattr__(self, "store_root", str((self.root / "store").absolute()))
        if not self.ledger_url:
            object.__setattr__(
                self, "ledger_url", f"sqlite:///{(self.root / 'ledger.db').absolute()}"
            )

    @property
    def deployment(self) -> Environment:
        """What this environment may do (serve experimental sets, promote, ...)."""
        return get_environment(self.environment)

    @property
    def root(self) -> Path:
        """Where this environment's state lives: ``home`` for dev, ``home/<env>`` otherwise."""
        return self.deployment.root(self.home)

    @property
    def audit_key_file(self) -> Path:
        """Where an older home kept its audit HMAC key, beside the ledger: read if it is there
        (with a warning from ``aiops audit verify``), never created. New keys live outside the
        home, in the key folder (``core/ledger/keys.py``)."""
        return (self.root / "audit.key").absolute()

    @property
    def audit_witness_file(self) -> Path:
        """Where each committed audit head is also published (``core/ledger/witness.py``):
        ``AIOPS_AUDIT_WITNESS``, else beside the ledger (move it where its writers cannot)."""
        override = os.environ.get("AIOPS_AUDIT_WITNESS", "")  # core.ledger.WITNESS_ENV
        return (
            Path(override).absolute()
            if override
            else (self.root / "audit-witness.jsonl").absolute()
        )

    @property
    def alert_outbox(self) -> Path:
        return (self.root / "alerts.jsonl").absolute()

    @property
    def end(self) -> date:
        """Exclusive end of the configured days (the generated scenario's, and the partitions'
        on the default fixed clock; see ``reference/clock.py``)."""
        return self.start + timedelta(days=self.days)

    @property
    def now(self) -> datetime | None:
        """The fixed clock's instant, or None for the live clock (``AIOPS_NOW=live``)."""
        if self.clock:
            return pipeline_clock.parse_now(self.clock)
        return pipeline_clock.default_now(self.start, self.days, self.lag)

    @property
    def dagster_home(self) -> Path:
        return (self.root / "dagster_home").absolute()

    def instance_home(self, *, home_given: bool) -> Path:
        """The Dagster instance a command uses: ``DAGSTER_HOME`` (as ``make dev`` sets it) unless
        the user named a home on the command line, else the home's own instance."""
        if os.environ.get("DAGSTER_HOME") and not home_given:
            return Path(os.environ["DAGSTER_HOME"])
        return self.dagster_home

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> PipelineSettings:
        """``AIOPS_START`` (ISO date), ``AIOPS_DAYS``, ``AIOPS_SEED``, ``AIOPS_HOME``,
        ``AIOPS_STORE_ROOT``, ``AIOPS_SOURCE_KIND``, ``AIOPS_SOURCE_PATH``,
        ``AIOPS_SOURCE_URL``, ``AIOPS_SOURCE_MAPPING``, ``AIOPS_QUALITY_SUITE``,
        ``AIOPS_LEDGER_URL``, ``AIOPS_ALERT_WEBHOOK``, ``AIOPS_ALERTMANAGER_URL``,
        ``AIOPS_ALERT_SERVICE``, ``AIOPS_ALERT_RUNBOOK_URL``, ``AIOPS_UI_URL``, ``AIOPS_ACCESS_POLICY``,
        ``AIOPS_EXECUTOR``, ``AIOPS_CELERY_QUEUE``, ``AIOPS_ENV``, ``AIOPS_PARTITION``,
        ``AIOPS_LAG``, ``AIOPS_NOW``, ``AIOPS_SCHEDULES``, ``AIOPS_LABEL_SOURCE``,
        ``AIOPS_LABEL_TABLE``, ``AIOPS_LABEL_DELAY``, ``AIOPS_ROLLBACK_ON_ESTIMATE`` and
        ``AIOPS_AUTOMATION_INTERVAL``."""
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
            source_url=env.get("AIOPS_SOURCE_URL", ""),
            source_mapping=env.get("AIOPS_SOURCE_MAPPING", ""),
            quality_suite=env.get("AIOPS_QUALITY_SUITE", str(DEFAULT_QUALITY_SUITE)),
            ledger_url=env.get("AIOPS_LEDGER_URL", ""),
            alert_webhook=env.get("AIOPS_ALERT_WEBHOOK", ""),
            ui_url=env.get("AIOPS_UI_URL", DEFAULT_UI_URL),
            alertmanager_url=env.get("AIOPS_ALERTMANAGER_URL", ""),
            alert_service=env.get("AIOPS_ALERT_SERVICE") or "aiops",
            alert_runbook_url=env.get("AIOPS_ALERT_RUNBOOK_URL", ""),
            access_policy=env.get("AIOPS_ACCESS_POLICY", ""),
            executor=cast(ExecutorKind, env.get("AIOPS_EXECUTOR") or "in_process"),
            celery_queue=env.get("AIOPS_CELERY_QUEUE") or DEFAULT_CELERY_QUEUE,
            environment=env.get(ENV_VAR) or "dev",
            partition=env.get("AIOPS_PARTITION") or "daily",
            lag=pipeline_clock.parse_duration(env["AIOPS_LAG"])
            if env.get("AIOPS_LAG")
            else pipeline_clock.DEFAULT_LAG,
            clock=env.get("AIOPS_NOW", ""),
            schedules=_switch(env.get("AIOPS_SCHEDULES", ""), "AIOPS_SCHEDULES"),
            label_source=env.get("AIOPS_LABEL_SOURCE", ""),
            label_table=env.get("AIOPS_LABEL_TABLE", ""),
            label_delay=_label_delay(env.get("AIOPS_LABEL_DELAY", "")),
            rollback_on_estimate=_switch(
                env.get("AIOPS_ROLLBACK_ON_ESTIMATE", ""), "AIOPS_ROLLBACK_ON_ESTIMATE"
            ),
            automation_interval=_seconds(
                env.get("AIOPS_AUTOMATION_INTERVAL", ""), DEFAULT_AUTOMATION_INTERVAL
            ),
        )

    def with_overrides(self, **changes: object) -> PipelineSettings:
        if "home" in changes or "environment" in changes:
            # Paths derived from the old home would otherwise keep pointing into it; paths the
            # user chose explicitly stay.
            derived = PipelineSettings(
                home=self.home,
                environment=self.environment,
                alert_webhook=self.alert_webhook,
                alertmanager_url=self.alertmanager_url,
            )
            for name in ("store_root", "ledger_url"):
                if getattr(self, name) == getattr(derived, name):
                    changes.setdefault(name, "")
        return replace(self, **changes)  # type: ignore[arg-type]


def _label_delay(value: str) -> timedelta:
    """``AIOPS_LABEL_DELAY``: a duration like the lag's (``2d``, ``12h``); empty is 0."""
    try:
        return pipeline_clock.parse_duration(value) if value.strip() else timedelta(0)
    except ValueError:
        raise ValueError(
            f"AIOPS_LABEL_DELAY must look like 2d, 12h, 1d6h or 0, got {value!r}"
        ) from None


def _seconds(value: str, default: int) -> int:
    """``AIOPS_AUTOMATION_INTERVAL``: whole seconds; empty is the default."""
    if not value.strip():
        return default
    try:
        return int(value)
    except ValueError:
        raise ValueError(
            f"AIOPS_AUTOMATION_INTERVAL must be whole seconds, got {value!r}"
        ) from None


def _switch(value: str, name: str) -> bool:
    """An on/off variable: on, true, 1, yes; off, false, 0, no or empty."""
    cleaned = value.strip().lower()
    if cleaned in ("on", "true", "1", "yes"):
        return True
    if cleaned in ("", "off", "false", "0", "no"):
        return False
    raise ValueError(f"{name} must be on or off, got {value!r}")
