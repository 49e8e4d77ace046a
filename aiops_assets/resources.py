"""Dagster resources that wrap ``core/``: artifact store, telemetry source, ledger, feature flags,
access policy and alert sink (the IO manager lives in :mod:`aiops_assets.io`).

A resource that can hold a secret (a ledger URL with its password, a webhook URL) takes it by
name, ``dg.EnvVar("...")``, so the UI's resource config shows the variable, never the value.
"""

import functools
import json
import logging
import os
from collections.abc import Sequence
from datetime import date, datetime
from pathlib import Path

import dagster as dg
import pandas as pd

from aiops_assets.core import telemetry
from aiops_assets.core.alert_queue import PendingAlerts, pending_path
from aiops_assets.core.alert_routing import build_sink
from aiops_assets.core.alertmanager import DEFAULT_TTL_SECONDS
from aiops_assets.core.alerts import Alert, AlertDeliveryError, AlertSink
from aiops_assets.core.environments import EnvironmentRefusal, get_environment
from aiops_assets.core.flags import FlagSet, current_flags, flags_as_of, pinned_version
from aiops_assets.core.ledger import AUDIT_KEY_ENV, WITNESS_ENV, FeatureSetRecord, Ledger
from aiops_assets.core.ledger.keys import AUDIT_KEY_COMMAND_ENV
from aiops_assets.core.policy import AccessPolicy
from aiops_assets.core.sources import SourceKind
from aiops_assets.core.store import ArtifactRef, ArtifactStore
from aiops_assets.io import asset_ref_name


class ArtifactStoreResource(dg.ConfigurableResource):
    """The content-addressed artifact store.

    Attributes:
        root: A local directory or an fsspec URL (``s3://bucket/prefix``); the same code runs on both.

    Example:
        >>> resources = {  # doctest: +SKIP
        ...     "artifact_store": ArtifactStoreResource(root="s3://bucket/aiops"),
        ...     "artifact_io_manager": ArtifactRefIOManager(root="s3://bucket/aiops"),
        ... }
    """

    root: str

    def get_store(self) -> ArtifactStore:
        return ArtifactStore(self.root)

    def current_ref(
        self, asset_key: dg.AssetKey, partition_key: str | None = None
    ) -> ArtifactRef | None:
        return self.get_store().get_ref(asset_ref_name(asset_key, partition_key))


class TelemetrySourceResource(dg.ConfigurableResource):
    """Where raw telemetry comes from.

    Attributes:
        kind: ``scenario`` (the seeded generator, the default), ``directory`` (CSV/Parquet files),
            ``nab`` (Numenta Anomaly Benchmark layout), ``prometheus`` (PromQL range queries) or
            ``sql`` (a table or query behind a SQLAlchemy URL).
        path: The directory for ``directory`` and ``nab``.
        url: The Prometheus base URL or the SQLAlchemy URL. A URL with a password goes by name,
            ``dg.EnvVar("AIOPS_SOURCE_URL")``, so the UI shows the variable, not the password.
        mapping: The YAML mapping of ``prometheus`` and ``sql`` sources: which label or column
            gives the service, each metric and the label (``core/telemetry/mapping.py``).
        max_attempts: Prometheus: attempts per query (connection errors, 408/429/5xx).
        backoff_seconds: Prometheus: the first wait between attempts; it doubles after each.
        scenario_start: First day of the generated scenario (ISO date).
        scenario_days: Length of the generated scenario in days.
        seed: Seed of the generated scenario.
        scenario_file: A scenario JSON (``Scenario.to_dict``) used instead of the reference
            scenario, so a team can rehearse an incident with its own scripted events; empty
            for the reference scenario.
    """

    kind: SourceKind = "scenario"
    path: str | None = None
    scenario_start: str = "2026-01-05"
    scenario_days: int = 14
    seed: int = 20260105
    scenario_file: str = ""
    url: str = ""
    mapping: str = ""
    max_attempts: int = 4
    backoff_seconds: float = 0.5

    def scenario(self) -> telemetry.Scenario:
        if self.scenario_file:
            return telemetry.Scenario.from_dict(json.loads(Path(self.scenario_file).read_text()))
        return telemetry.default_scenario(
            start=date.fromisoformat(self.scenario_start), days=self.scenario_days, seed=self.seed
        )

    def describe(self) -> str:
        if self.kind == "scenario" and self.scenario_file:
            return f"scenario({self.scenario_file})"
        if self.kind == "scenario":
            return f"scenario(seed={self.seed}, start={self.scenario_start}, days={self.scenario_days})"
        if self.kind in ("prometheus", "sql"):
            return f"{self.kind}({telemetry.redact_url(secret_value(self.url))}, {self.mapping})"
        return f"{self.kind}({self.path})"

    def load_window(self, start: datetime, end: datetime) -> pd.DataFrame:
        """Telemetry with ``start <= timestamp < end``, as a canonical telemetry frame."""
        if self.kind == "scenario":
            # The generator makes whole days; an hourly partition is cut from its day.
            first, stop = pd.Timestamp(start), pd.Timestamp(end)
            frame = telemetry.generate(self.scenario(), first.date(), stop.ceil("D").date())
            if first == first.normalize() and stop == stop.normalize():
                return frame
            stamps = frame[telemetry.TIMESTAMP]
            return frame[(stamps >= first) & (stamps < stop)].reset_index(drop=True)
        if self.kind in ("prometheus", "sql"):
            return self._load_mapped(start, end)
        if not self.path:
            raise ValueError(f"telemetry source kind {self.kind!r} needs a path")
        if self.kind == "directory":
            return telemetry.load_directory(self.path, start=start, end=end)
        return telemetry.load_nab(self.path, start=start, end=end)

    def _load_mapped(self, start: datetime, end: datetime) -> pd.DataFrame:
        """A Prometheus or SQL window; an unreachable source or bad mapping is one-line Failure."""
        url = secret_value(self.url)
        if not url or not self.mapping:
            raise dg.Failure(
                description=f"a {self.kind} telemetry source needs a url and a mapping file "
                "(AIOPS_SOURCE_URL, AIOPS_SOURCE_MAPPING)"
            )
        try:
            if self.kind == "prometheus":
                return telemetry.load_prometheus(
                    url,
                    telemetry.load_mapping(self.mapping, kind="prometheus"),
                    start=start,
                    end=end,
                    max_attempts=self.max_attempts,
                    backoff_seconds=self.backoff_seconds,
                )
            return telemetry.load_sql(
                url, telemetry.load_mapping(self.mapping, kind="sql"), start=start, end=end
            )
        except (telemetry.TelemetrySourceError, telemetry.MappingError) as error:
            raise dg.Failure(description=str(error)) from None


@functools.lru_cache(maxsize=8)
def _open_ledger(
    url: str, key_file: str | None, key_from_env: str | None, key_command: str | None = None
) -> Ledger:
    # One engine (and one migration check) per process and URL: opening a ledger per asset or
    # per sensor tick would spend most of a short run in Alembic. The key and the key command
    # are part of the cache key: a changed key must not reuse the old ledger.
    environ = {**os.environ, AUDIT_KEY_ENV: key_from_env or ""}
    if key_command is not None:
        environ[AUDIT_KEY_COMMAND_ENV] = key_command
    ledger = Ledger.from_env(
        url, environ=environ, default_key_file=Path(key_file) if key_file else None
    )
    _OPENED.append(ledger)
    return ledger


def close_ledgers() -> None:
    """Dispose of every ledger this process opened (before a SQLite file is moved aside)."""
    for ledger in list(_OPENED):
        ledger.dispose()
    _OPENED.clear()
    _open_ledger.cache_clear()


_OPENED: list[Ledger] = []


def secret_value(value: str) -> str:
    """The value of a field that may hold ``dg.EnvVar``: Dagster resolves it for a run or a
    tick, but a resource used directly (a script, a notebook) still holds the variable's name."""
    return (value.get_value() or "") if isinstance(value, dg.EnvVar) else value


class LedgerResource(dg.ConfigurableResource):
    """The model registry and tamper-evident audit log (``core/ledger.py``).

    Attributes:
        url: A SQLAlchemy URL: SQLite by default, PostgreSQL (``postgresql+psycopg2://...``) in a
            cluster. A URL with a password goes by name, ``dg.EnvVar("AIOPS_LEDGER_URL")``, so
            the UI shows the variable and not the password.
        audit_key: The audit HMAC key, by name: ``dg.EnvVar("AIOPS_AUDIT_KEY")`` (the UI shows
            the variable, never the key); empty reads ``AIOPS_AUDIT_KEY``, then the output of
            ``AIOPS_AUDIT_KEY_COMMAND``, then the key folder outside the home
            (``core/ledger/keys.py``), which gets a new key only for a new ledger.
        key_file: An older home's key file beside the ledger (``audit.key``): read if present,
            never created; ``aiops audit rotate-key`` moves such a ledger to the key folder.
        witness_file: Where every committed audit head is also appended
            (``core/ledger/witness.py``); empty reads ``AIOPS_AUDIT_WITNESS``, and with neither
            the head is not anchored outside the database.

    Example:
        >>> ledger = LedgerResource(url="sqlite:///.aiops/ledger.db")  # doctest: +SKIP
        >>> ledger.get_ledger().get_alias("anomaly_detector", "champion")  # doctest: +SKIP
    """

    url: str
    key_file: str = ""
    audit_key: str = ""
    witness_file: str = ""

    def get_ledger(self) -> Ledger:
        ledger = _open_ledger(
            secret_value(self.url),
            self.key_file or None,
            secret_value(self.audit_key) or os.environ.get(AUDIT_KEY_ENV),
            os.environ.get(AUDIT_KEY_COMMAND_ENV),
        )
        witness = self.witness_file or os.environ.get(WITNESS_ENV, "")
        if witness:
            ledger.anchor_to(Path(witness))
        return ledger


class PromotionGateResource(dg.ConfigurableResource):
    """The checks the promotion gate requires to have passed on every partition a model learned from.

    A run executes only the part of the asset graph it selected, so the champion cannot discover
    the data gates upstream of it at run time; ``build_definitions`` fills this from the whole
    graph (every blocking check upstream of ``champion_model``). A host project may list more.

    Attributes:
        blocking_checks: Check keys as ``asset:check`` strings (``a/b:check`` for a prefixed key).
    """

    blocking_checks: list[str] = []  # noqa: RUF012 - a pydantic field: copied per instance

    def check_keys(self) -> list[dg.AssetCheckKey]:
        return [dg.AssetCheckKey.from_user_string(text) for text in self.blocking_checks]


class AccessPolicyResource(dg.ConfigurableResource):
    """Which identity may promote, roll back, export or change a threshold.

    The champion asset, the registry commands and the audit job ask it before they act; a
    refusal is itself an audit entry. Every lifecycle needs it (``access_policy``).

    Attributes:
        path: The policy YAML; empty uses ``AIOPS_ACCESS_POLICY`` or the packaged default.

    Example:
        >>> resources = {"access_policy": AccessPolicyResource(path="policy.yaml")}  # doctest: +SKIP
    """

    path: str = ""

    def get_policy(self) -> AccessPolicy:
        return AccessPolicy.load(self.path or None)


class AlertSinkResource(dg.ConfigurableResource):
    """Where alerts go: a Slack-compatible webhook, Alertmanager, both, or a JSON-lines outbox.

    With one or more Alertmanager URLs every alert goes to each of them and to the webhook (a
    :class:`~aiops_assets.core.alerts.FanOutSink`, each sink with its own retries: one that is
    down keeps the alert from no other, and the alert sensor retries only the sinks still owed
    it). The outbox then journals every alert once it reached all of them.

    Attributes:
        webhook_url: ``http(s)://`` URL; empty writes to ``outbox_path``. A webhook URL is a
            credential (whoever has it can post): pass it as ``dg.EnvVar``.
        alertmanager_urls: Comma-separated Alertmanager base URLs (``http://am-1:9093,
            http://am-2:9093``: every instance of an HA cluster, as Prometheus does); empty sends
            none there. May hold ``user:password@``: pass it as ``dg.EnvVar`` then.
        outbox_path: The JSON-lines file alerts go to when no webhook is configured, and the
            journal of every alert delivered when one is.
        ui_url: Base URL of the Dagster UI, for the run link in each alert.
        max_attempts: Delivery attempts per alert and sink before it is queued for the next tick.
        backoff_seconds: The first wait between attempts; it doubles after each.
        service: Alertmanager's ``service`` label (the team's routing key) for every alert.
        runbook_url: Alertmanager's ``runbook_url`` annotation; may use ``{asset}``,
            ``{check}``, ``{partition}``, ``{kind}`` and ``{alertname}``.
        alertmanager_ttl_seconds: How long a firing alert stays firing in Alertmanager when no
            recovery comes (the sensor alerts once and does not re-post).

    Example:
        >>> AlertSinkResource(  # doctest: +SKIP
        ...     webhook_url=dg.EnvVar("SLACK_WEBHOOK_URL"), outbox_path=".aiops/alerts.jsonl"
        ... )
    """

    webhook_url: str = ""
    outbox_path: str = ".aiops/alerts.jsonl"
    ui_url: str = "http://127.0.0.1:3000"
    max_attempts: int = 4
    backoff_seconds: float = 0.5
    alertmanager_urls: str = ""
    service: str = "aiops"
    runbook_url: str = ""
    alertmanager_ttl_seconds: float = DEFAULT_TTL_SECONDS

    def get_sink(self) -> AlertSink:
        # The one assembly both orchestrators use (core/alert_routing.py).
        return build_sink(
            secret_value(self.webhook_url),
            secret_value(self.alertmanager_urls),
            self.outbox_path,
            service=self.service,
            runbook_url=self.runbook_url,
            ttl_seconds=self.alertmanager_ttl_seconds,
            max_attempts=self.max_attempts,
            backoff_seconds=self.backoff_seconds,
        )

    def run_url(self, run_id: str | None) -> str | None:
        return f"{self.ui_url.rstrip('/')}/runs/{run_id}" if run_id else None

    def notify(
        self,
        log: logging.Logger | dg.DagsterLogManager,
        *,
        kind: str,
        severity: str,
        summary: str,
        asset: str,
        run_id: str,
    ) -> bool:
        """Send one alert linking its run; a sink that is down is logged on ``log``, never
        raised: the change the alert reports is already recorded."""
        alert = Alert(
            kind=kind,
            severity=severity,
            summary=summary,
            asset=asset,
            run_id=run_id,
            run_url=self.run_url(run_id),
        )
        try:
            self.get_sink().send(alert)
        except AlertDeliveryError as error:
            self._queue(log, alert, error)
            return False
        return True

    @property
    def pending_path(self) -> Path:
        """The queue of alerts still owed a sink (``redeliver_alerts`` retries it)."""
        return pending_path(self.outbox_path)

    def _queue(
        self,
        log: logging.Logger | dg.DagsterLogManager,
        alert: Alert,
        error: AlertDeliveryError,
    ) -> None:
        try:
            PendingAlerts(self.pending_path).add_failed(alert, error)
        except OSError as queue_error:
            log.warning(f"alert not delivered and not queued ({queue_error}): {error}")
            return
        log.warning(f"alert not delivered, queued for redelivery in {self.pending_path}: {error}")


class FeatureFlagsResource(dg.ConfigurableResource):
    """Which feature-set version and which model version serve each service (``core/flags.py``).

    The flags in force are the latest version recorded in the ledger (every change there is
    audited and reaches the change log); until the first change, the packaged default file.
    Reads are checked against the environment too, so a prod run refuses an experimental
    feature set even if the ledger was edited around ``aiops flags set``.

    Attributes:
        ledger_url: The ledger that holds the flag versions (the registry's ledger); like
            :class:`LedgerResource`'s ``url``, a URL with a password goes as ``dg.EnvVar``.
        key_file: The audit key file when ``AIOPS_AUDIT_KEY`` is not set.
        default_path: The flags used before any change is recorded; empty for the packaged file.
        environment: ``dev``, ``staging``, ``prod`` or ``sandbox`` (``AIOPS_ENV``).
        as_of_version: -1 for the flags in force; N for flag version N as it was (0: the default
            file, before any version), so an incident replay can revert a flag change.
    """

    ledger_url: str
    key_file: str = ""
    default_path: str = ""
    environment: str = "dev"
    as_of_version: int = -1

    def _ledger(self) -> Ledger:
        return _open_ledger(
            secret_value(self.ledger_url), self.key_file or None, os.environ.get(AUDIT_KEY_ENV)
        )

    def get_flags(self) -> FlagSet:
        if self.as_of_version >= 0:
            return flags_as_of(
                self._ledger(), self.as_of_version, default_path=self.default_path or None
            )
        return current_flags(self._ledger(), default_path=self.default_path or None)

    def feature_set_for(self, service: str, name: str = "telemetry_core") -> str:
        """The feature-set version ``service`` uses, refused if this environment may not serve it."""
        return self.feature_sets_for([service], name)[service]

    def feature_sets_for(
        self, services: Sequence[str], name: str = "telemetry_core"
    ) -> dict[str, str]:
        """:meth:`feature_set_for` for many services: the flags read once, each version checked
        once against the environment."""
        flags, ledger = self.get_flags(), self._ledger()
        chosen = {service: flags.resolve("feature_set", name, service) for service in services}
        deployment = get_environment(self.environment)
        for value in sorted(set(chosen.values())):
            record = ledger.get_feature_set(value)
            if record is not None:
                deployment.require_feature_set(record)
            elif not deployment.allow_experimental_feature_sets:
                raise EnvironmentRefusal(
                    f"the {deployment.name} environment refuses feature set {value}: it is not "
                    "registered in the ledger, so it has no lifecycle status"
                )
        return chosen

    def registered_feature_sets(self, name: str) -> list[FeatureSetRecord]:
        """Every registered version of the feature set ``name``, whatever its status."""
        return self._ledger().list_feature_sets(name=name)

    def model_for(self, service: str, model_name: str = "anomaly_detector") -> str:
        """The model version (``v7``) or alias (``champion``) that serves ``service``."""
        return self.models_for([service], model_name)[service]

    def models_for(
        self, services: Sequence[str], model_name: str = "anomaly_detector"
    ) -> dict[str, str]:
        """:meth:`model_for` for many services: the flags read once, each pinned version
        checked once against the environment."""
        flags, ledger = self.get_flags(), self._ledger()
        chosen = {
            service: flags.resolve("model", model_name, service, fallback="champion")
            for service in services
        }
        for value in sorted(set(chosen.values())):
            number = pinned_version(value)
            version = None if number is None else ledger.get_version(model_name, number)
            if version is not None:
                get_environment(self.environment).require_model(version)
        return chosen
