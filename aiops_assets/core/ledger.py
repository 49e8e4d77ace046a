"""The model registry and its tamper-evident audit log, in one SQL database.

Which bytes are the champion, who moved an alias and why, and which checks a version passed are
facts an operator must be able to trust months later, from Airflow, a notebook or the CLI as much
as from Dagster; so they live in a plain SQLAlchemy database (SQLite by default, PostgreSQL in a
cluster) rather than in Dagster's event log, and this module may not import Dagster.

Every registry change is written in the same transaction as an audit entry. Entries form a hash
chain (each names the hash of its predecessor) and each hash carries an HMAC made with a key that
the database does not hold, so someone with write access to the database alone cannot edit,
delete, insert or reorder entries without ``verify_audit`` naming the entry. A single-row head
(last seq and hash) is locked by every writer: appends serialize, and a truncated tail is visible.
What the chain cannot detect without an external anchor is a tail truncation that also rewinds
the head to an earlier, authentic entry; export ``audit_entries`` elsewhere when that matters.

Run capsules (``core.capsule``) and the experiment log live here too: a registered version names
its capsule, and a capsule that could be found only in a file next to the model would be lost
with the file. Capsules are keyed by their content hash, so storing one is idempotent and a
stored body that no longer hashes to its key is refused on read.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Column,
    Connection,
    DateTime,
    ForeignKeyConstraint,
    Index,
    Integer,
    MetaData,
    Row,
    String,
    Table,
    Text,
    UniqueConstraint,
    create_engine,
    event,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.engine import Engine, make_url

from aiops_assets.core.capsule import Capsule, CapsuleError
from aiops_assets.core.experiments import ExperimentRun

AUDIT_KEY_ENV = "AIOPS_AUDIT_KEY"
VERSION_TABLE = "aiops_ledger_version"
MIGRATIONS_DIR = Path(__file__).with_name("ledger_migrations")
GENESIS_HASH = "0" * 64
ALIAS_KINDS = ("assign", "promote", "rollback")
PROBLEM_KINDS = ("edited", "deleted", "inserted", "reordered", "truncated")

# Prefix look-ups (capsule ids, run ids) need this many characters to be worth trusting.
MIN_PREFIX = 8
# How many matches an ambiguous prefix error names.
_AMBIGUOUS_SHOWN = 5

# Execution option that makes the SQLite "begin" hook take the write lock up front.
_WRITE_OPTION = "aiops_ledger_write"
_SQLITE_BUSY_TIMEOUT_S = 30
# How many mis-numbered entries verify will try to place; beyond that they are reported as edits.
_REORDER_SEARCH_LIMIT = 64


class LedgerError(Exception):
    """A registry request that cannot be honoured (unknown version or alias, missing key)."""


class StaleChampionError(LedgerError):
    """A promotion was decided against a champion that another writer has since replaced."""


@dataclass(frozen=True)
class ModelVersion:
    model_name: str
    version: int
    sha256: str
    metrics: dict[str, float]
    training_set_version: str
    feature_set_version: str
    capsule_ref: str | None
    run_id: str | None
    created_at: datetime
    created_by: str
    tags: dict[str, str]


@dataclass(frozen=True)
class AliasChange:
    model_name: str
    alias: str
    from_version: int | None
    to_version: int
    actor: str
    at: datetime
    reason: str
    run_id: str | None
    kind: str


@dataclass(frozen=True)
class VersionCheck:
    model_name: str
    version: int
    check_name: str
    partition: str | None
    passed: bool
    severity: str
    metrics: dict[str, Any]
    run_id: str | None
    at: datetime


@dataclass(frozen=True)
class PromotionRecord:
    model_name: str
    candidate_version: int
    champion_version: int | None
    promoted: bool
    reason: str
    evidence: dict[str, Any]
    actor: str
    run_id: str | None
    at: datetime


@dataclass(frozen=True)
class AuditEntry:
    seq: int
    at: datetime
    actor: str
    action: str
    subject: str
    details: dict[str, Any]
    run_id: str | None
    prev_hash: str
    entry_hash: str
    mac: str


@dataclass(frozen=True)
class AuditProblem:
    seq: int
    kind: str
    message: str


@dataclass(frozen=True)
class AuditVerification:
    ok: bool
    entries: int
    problems: list[AuditProblem] = field(default_factory=list)

    def summary(self) -> str:
        """One line for a terminal or an alert: either intact, or every problem with its seq."""
        if self.ok:
            return f"audit log verified: {self.entries} entries, chain intact"
        shown = "; ".join(
            f"{problem.kind} at seq {problem.seq}: {problem.message}"
            for problem in self.problems[:20]
        )
        more = f"; and {len(self.problems) - 20} more" if len(self.problems) > 20 else ""
        return (
            f"audit log FAILED verification: {self.entries} entries, "
            f"{len(self.problems)} problem(s): {shown}{more}"
        )


@dataclass(frozen=True)
class FeatureSetRecord:
    version_id: str
    name: str
    spec: dict[str, Any]
    status: str
    registered_at: datetime
    registered_by: str
    updated_at: datetime


@dataclass(frozen=True)
class FeatureSetStatusChange:
    version_id: str
    from_status: str | None
    to_status: str
    actor: str
    at: datetime
    reason: str
    evidence: dict[str, Any]
    run_id: str | None


@dataclass(frozen=True)
class FlagVersion:
    version: int
    sha256: str
    body: str
    actor: str
    at: datetime
    reason: str


@dataclass(frozen=True)
class RolloutStage:
    index: int
    name: str
    services: tuple[str, ...]
    status: str
    evidence: dict[str, Any]
    actor: str
    at: datetime


@dataclass(frozen=True)
class Rollout:
    rollout_id: int
    model_name: str
    to_version: int
    from_version: int | None
    plan: dict[str, Any]
    status: str
    actor: str
    started_at: datetime
    updated_at: datetime
    stages: tuple[RolloutStage, ...]


# --- schema ---------------------------------------------------------------------------------
# JSON is stored as TEXT: portable across SQLite and PostgreSQL, and byte-exact for hashing.

metadata = MetaData()

model_versions = Table(
    "model_versions",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("model_name", String(200), nullable=False),
    Column("version", Integer, nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("metrics", Text, nullable=False),
    Column("training_set_version", String(200), nullable=False),
    Column("feature_set_version", String(200), nullable=False),
    Column("capsule_ref", String(500), nullable=True),
    Column("run_id", String(200), nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("created_by", String(200), nullable=False),
    Column("tags", Text, nullable=False),
    UniqueConstraint("model_name", "version", name="uq_model_versions_model_version"),
    UniqueConstraint("model_name", "sha256", name="uq_model_versions_model_sha256"),
)

model_aliases = Table(
    "model_aliases",
    metadata,
    Column("model_name", String(200), primary_key=True),
    Column("alias", String(100), primary_key=True),
    Column("version", Integer, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("updated_by", String(200), nullable=False),
    ForeignKeyConstraint(
        ["model_name", "version"],
        ["model_versions.model_name", "model_versions.version"],
        name="fk_model_aliases_version",
    ),
)

alias_history = Table(
    "alias_history",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("model_name", String(200), nullable=False),
    Column("alias", String(100), nullable=False),
    Column("from_version", Integer, nullable=True),
    Column("to_version", Integer, nullable=False),
    Column("actor", String(200), nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("reason", Text, nullable=False),
    Column("run_id", String(200), nullable=True),
    Column("kind", String(20), nullable=False),
    ForeignKeyConstraint(
        ["model_name", "to_version"],
        ["model_versions.model_name", "model_versions.version"],
        name="fk_alias_history_to_version",
    ),
    Index("ix_alias_history_model_alias_id", "model_name", "alias", "id"),
)

version_checks = Table(
    "version_checks",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("model_name", String(200), nullable=False),
    Column("version", Integer, nullable=False),
    Column("check_name", String(200), nullable=False),
    Column("partition_key", String(200), nullable=True),
    Column("passed", Boolean, nullable=False),
    Column("severity", String(20), nullable=False),
    Column("metrics", Text, nullable=False),
    Column("run_id", String(200), nullable=True),
    Column("at", DateTime(timezone=True), nullable=False),
    ForeignKeyConstraint(
        ["model_name", "version"],
        ["model_versions.model_name", "model_versions.version"],
        name="fk_version_checks_version",
    ),
    Index("ix_version_checks_model_version", "model_name", "version", "id"),
)

promotions = Table(
    "promotions",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("model_name", String(200), nullable=False),
    Column("candidate_version", Integer, nullable=False),
    Column("champion_version", Integer, nullable=True),
    Column("promoted", Boolean, nullable=False),
    Column("reason", Text, nullable=False),
    Column("evidence", Text, nullable=False),
    Column("actor", String(200), nullable=False),
    Column("run_id", String(200), nullable=True),
    Column("at", DateTime(timezone=True), nullable=False),
    ForeignKeyConstraint(
        ["model_name", "candidate_version"],
        ["model_versions.model_name", "model_versions.version"],
        name="fk_promotions_candidate_version",
    ),
    Index("ix_promotions_model_id", "model_name", "id"),
)

audit_log = Table(
    "audit_log",
    metadata,
    Column("seq", Integer, primary_key=True, autoincrement=False),
    # The ISO text that was hashed, not a DateTime: verification must see exactly those bytes.
    Column("at", String(40), nullable=False),
    Column("actor", String(200), nullable=False),
    Column("action", String(100), nullable=False),
    Column("subject", String(500), nullable=False),
    Column("details", Text, nullable=False),
    Column("run_id", String(200), nullable=True),
    Column("prev_hash", String(64), nullable=False),
    Column("entry_hash", String(64), nullable=False),
    Column("mac", String(64), nullable=False),
)

capsules = Table(
    "capsules",
    metadata,
    Column("capsule_id", String(64), primary_key=True),
    Column("kind", String(50), nullable=False),
    Column("asset", String(200), nullable=False),
    Column("run_id", String(200), nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    # The canonical JSON the id was computed over: reading it back re-derives the same id.
    Column("body", Text, nullable=False),
    Index("ix_capsules_run_id", "run_id"),
)

experiment_runs = Table(
    "experiment_runs",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("run_id", String(200), nullable=False),
    Column("model_name", String(200), nullable=False),
    Column("model_version", Integer, nullable=True),
    # No foreign key: a run may be logged before (or without) its capsule being recorded.
    Column("capsule_id", String(64), nullable=True),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("config", Text, nullable=False),
    Column("metrics", Text, nullable=False),
    Column("tags", Text, nullable=False),
    Column("dataset_version", String(200), nullable=False),
    Column("feature_set_version", String(200), nullable=False),
    Column("hypothesis", Text, nullable=False),
    Column("success_criterion", Text, nullable=False),
    Column("criterion_met", Boolean, nullable=True),
    UniqueConstraint("run_id", name="uq_experiment_runs_run_id"),
    Index("ix_experiment_runs_at", "at"),
    Index("ix_experiment_runs_model_name_at", "model_name", "at"),
    Index("ix_experiment_runs_dataset_version", "dataset_version"),
    Index("ix_experiment_runs_feature_set_version", "feature_set_version"),
)

audit_head = Table(
    "audit_head",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("last_seq", Integer, nullable=False),
    Column("last_hash", String(64), nullable=False),
    CheckConstraint("id = 1", name="ck_audit_head_single_row"),
)

# Feature-set lifecycle and feature flags (migration 0003). A feature set's current status is
# a column for cheap reads; every change of it is a history row written in the same transaction
# as its audit entry, so the column can always be re-derived from the history.
feature_sets = Table(
    "feature_sets",
    metadata,
    Column("version_id", String(200), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("spec", Text, nullable=False),
    Column("status", String(20), nullable=False),
    Column("registered_at", DateTime(timezone=True), nullable=False),
    Column("registered_by", String(200), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Index("ix_feature_sets_name_status", "name", "status"),
)

feature_set_status_history = Table(
    "feature_set_status_history",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("version_id", String(200), nullable=False),
    Column("from_status", String(20), nullable=True),
    Column("to_status", String(20), nullable=False),
    Column("actor", String(200), nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("reason", Text, nullable=False),
    Column("evidence", Text, nullable=False),
    Column("run_id", String(200), nullable=True),
    ForeignKeyConstraint(
        ["version_id"], ["feature_sets.version_id"], name="fk_feature_set_status_version"
    ),
    Index("ix_feature_set_status_history_version_id", "version_id", "id"),
)

flag_versions = Table(
    "flag_versions",
    metadata,
    Column("version", Integer, primary_key=True, autoincrement=False),
    Column("sha256", String(64), nullable=False),
    # The YAML text exactly as applied: what was in force can be shown byte for byte.
    Column("body", Text, nullable=False),
    Column("actor", String(200), nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("reason", Text, nullable=False),
)

# Staged rollouts of a model version (migration 0003): one row per rollout, one per stage as it
# is reached; each stage's services and verdict are kept, so which service served what is
# recoverable for every moment of a rollout.
rollouts = Table(
    "rollouts",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("model_name", String(200), nullable=False),
    Column("to_version", Integer, nullable=False),
    Column("from_version", Integer, nullable=True),
    Column("plan", Text, nullable=False),
    Column("status", String(20), nullable=False),
    Column("actor", String(200), nullable=False),
    Column("started_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    ForeignKeyConstraint(
        ["model_name", "to_version"],
        ["model_versions.model_name", "model_versions.version"],
        name="fk_rollouts_to_version",
    ),
    Index("ix_rollouts_model_name_id", "model_name", "id"),
)

rollout_stages = Table(
    "rollout_stages",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("rollout_id", Integer, nullable=False),
    Column("stage_index", Integer, nullable=False),
    Column("name", String(100), nullable=False),
    Column("services", Text, nullable=False),
    Column("status", String(20), nullable=False),
    Column("evidence", Text, nullable=False),
    Column("actor", String(200), nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
    ForeignKeyConstraint(["rollout_id"], ["rollouts.id"], name="fk_rollout_stages_rollout"),
    UniqueConstraint("rollout_id", "stage_index", name="uq_rollout_stages_rollout_stage"),
)


# --- canonical encoding -----------------------------------------------------------------------


def _json_default(value: Any) -> Any:
    # Evidence often carries numpy scalars, dates or paths; encode them deterministically.
    item = getattr(value, "item", None)
    if callable(item):
        return item()
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, set | frozenset):
        return sorted(value, key=str)
    return str(value)


def canonical_json(value: Any) -> str:
    """JSON that is byte-identical for equal content, so its hash is reproducible anywhere."""
    return json.dumps(
        value,
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
        default=_json_default,
    )


def _loads(text: str | None) -> Any:
    if not text:
        return {}
    try:
        return json.loads(text)
    except ValueError:
        # A tampered row must still be readable so that it can be shown and reported.
        return {"_unparseable": text}


def _utc(moment: datetime) -> datetime:
    """Aware UTC: SQLite hands back naive datetimes, and hashes need one spelling of a time."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def entry_hash(
    *,
    seq: int,
    at: datetime | str,
    actor: str,
    action: str,
    subject: str,
    details: str,
    run_id: str | None,
    prev_hash: str,
) -> str:
    """The SHA-256 of an entry's content, over the stored texts of ``at`` and ``details``."""
    payload = canonical_json(
        {
            "seq": seq,
            "at": at if isinstance(at, str) else _utc(at).isoformat(),
            "actor": actor,
            "action": action,
            "subject": subject,
            "details": details,
            "run_id": run_id,
            "prev_hash": prev_hash,
        }
    )
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def _float_metrics(metrics: Mapping[str, Any]) -> dict[str, float]:
    return {str(name): float(value) for name, value in metrics.items()}


# --- the ledger -------------------------------------------------------------------------------


class Ledger:
    """The registry and audit log behind one SQLAlchemy URL; safe to share across threads."""

    def __init__(
        self,
        url: str,
        *,
        audit_key: bytes,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        if isinstance(audit_key, str):
            audit_key = audit_key.encode("utf-8")
        if not audit_key:
            raise LedgerError(
                f"the audit key is empty; set {AUDIT_KEY_ENV} to a long random secret"
            )
        self._key = bytes(audit_key)
        self._clock = clock or (lambda: datetime.now(UTC))
        parsed = make_url(url)
        self._url = parsed.render_as_string(hide_password=True)
        self._engine = _create_engine(url)
        try:
            self._migrate()
        except Exception:
            self._engine.dispose()
            raise

    @classmethod
    def from_env(
        cls,
        url: str,
        *,
        environ: Mapping[str, str] | None = None,
        default_key_file: Path | None = None,
    ) -> Ledger:
        """A ledger keyed from ``AIOPS_AUDIT_KEY``, else from a local key file made on first use.

        The environment wins so that a shared deployment can inject its secret; the key file
        keeps a laptop demo working without setup, and is created private (0600).
        """
        env = os.environ if environ is None else environ
        from_env = env.get(AUDIT_KEY_ENV, "")
        if from_env:
            return cls(url, audit_key=from_env.encode("utf-8"))
        if default_key_file is not None:
            return cls(url, audit_key=_read_or_create_key(Path(default_key_file)))
        raise LedgerError(
            f"no audit key: set the environment variable {AUDIT_KEY_ENV} to a long random "
            "secret (for example the output of `python -c 'import secrets; "
            "print(secrets.token_hex(32))'`) or configure a key file"
        )

    @property
    def url(self) -> str:
        return self._url

    def dispose(self) -> None:
        self._engine.dispose()

    def __repr__(self) -> str:
        return f"Ledger({self._url!r})"

    # --- plumbing ---------------------------------------------------------------------------

    def _migrate(self) -> None:
        from alembic import command
        from alembic.config import Config

        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS_DIR))
        with self._write() as conn:
            config.attributes["connection"] = conn
            command.upgrade(config, "head")

    @contextmanager
    def _write(self) -> Iterator[Connection]:
        # SQLite: "BEGIN IMMEDIATE" takes the write lock before the first read, so two writers
        # cannot both read the same audit head and then collide on commit.
        with self._engine.connect() as conn:
            conn.execution_options(**{_WRITE_OPTION: True})
            with conn.begin():
                yield conn

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        with self._engine.connect() as conn, conn.begin():
            yield conn

    def _now(self) -> datetime:
        return _utc(self._clock())

    def _lock_head(self, conn: Connection) -> tuple[int, str]:
        """Lock the audit head for the rest of the transaction (a row lock on PostgreSQL)."""
        row = conn.execute(
            select(audit_head.c.last_seq, audit_head.c.last_hash)
            .where(audit_head.c.id == 1)
            .with_for_update()
        ).one_or_none()
        if row is None:
            raise LedgerError("the audit head row is missing; the ledger database is damaged")
        return int(row.last_seq), str(row.last_hash)

    def _append(
        self,
        conn: Connection,
        action: str,
        *,
        actor: str,
        subject: str,
        details: Mapping[str, Any] | None,
        run_id: str | None,
        at: datetime,
    ) -> AuditEntry:
        last_seq, last_hash = self._lock_head(conn)
        seq = last_seq + 1
        details_text = canonical_json(dict(details or {}))
        digest = entry_hash(
            seq=seq,
            at=at,
            actor=actor,
            action=action,
            subject=subject,
            details=details_text,
            run_id=run_id,
            prev_hash=last_hash,
        )
        mac = self._mac(digest)
        conn.execute(
            insert(audit_log).values(
                seq=seq,
                at=_utc(at).isoformat(),
                actor=actor,
                action=action,
                subject=subject,
                details=details_text,
                run_id=run_id,
                prev_hash=last_hash,
                entry_hash=digest,
                mac=mac,
            )
        )
        conn.execute(
            update(audit_head).where(audit_head.c.id == 1).values(last_seq=seq, last_hash=digest)
        )
        return AuditEntry(
            seq=seq,
            at=at,
            actor=actor,
            action=action,
            subject=subject,
            details=json.loads(details_text),
            run_id=run_id,
            prev_hash=last_hash,
            entry_hash=digest,
            mac=mac,
        )

    def _mac(self, digest: str) -> str:
        return hmac.new(self._key, digest.encode("ascii"), hashlib.sha256).hexdigest()

    def _mac_ok(self, digest: str, mac: str) -> bool:
        try:
            expected = self._mac(digest)
        except UnicodeEncodeError:
            return False
        return hmac.compare_digest(expected.encode("ascii"), str(mac).encode("utf-8"))

    # --- versions ---------------------------------------------------------------------------

    def register_model_version(
        self,
        model_name: str,
        sha256: str,
        *,
        metrics: Mapping[str, float],
        training_set_version: str,
        feature_set_version: str,
        actor: str,
        capsule_ref: str | None = None,
        run_id: str | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> ModelVersion:
        """The version for these bytes: registering the same bytes again returns the first one.

        Retried runs and re-materializations must not mint new version numbers for a model
        that already exists, or the registry would stop meaning "distinct models".
        """
        with self._write() as conn:
            # The head lock serializes registrations on PostgreSQL too, so numbers never clash.
            self._lock_head(conn)
            existing = _version_row(conn, model_name, sha256=sha256)
            if existing is not None:
                return _to_version(existing)
            latest = conn.execute(
                select(func.max(model_versions.c.version)).where(
                    model_versions.c.model_name == model_name
                )
            ).scalar()
            now = self._now()
            clean_metrics = _float_metrics(metrics)
            clean_tags = {str(k): str(v) for k, v in (tags or {}).items()}
            version = ModelVersion(
                model_name=model_name,
                version=int(latest or 0) + 1,
                sha256=sha256,
                metrics=clean_metrics,
                training_set_version=training_set_version,
                feature_set_version=feature_set_version,
                capsule_ref=capsule_ref,
                run_id=run_id,
                created_at=now,
                created_by=actor,
                tags=clean_tags,
            )
            conn.execute(
                insert(model_versions).values(
                    model_name=model_name,
                    version=version.version,
                    sha256=sha256,
                    metrics=canonical_json(clean_metrics),
                    training_set_version=training_set_version,
                    feature_set_version=feature_set_version,
                    capsule_ref=capsule_ref,
                    run_id=run_id,
                    created_at=now,
                    created_by=actor,
                    tags=canonical_json(clean_tags),
                )
            )
            self._append(
                conn,
                "register_version",
                actor=actor,
                subject=f"{model_name}:v{version.version}",
                details={
                    "version": version.version,
                    "sha256": sha256,
                    "metrics": clean_metrics,
                    "training_set_version": training_set_version,
                    "feature_set_version": feature_set_version,
                    "capsule_ref": capsule_ref,
                    "tags": clean_tags,
                },
                run_id=run_id,
                at=now,
            )
            return version

    def get_version(self, model_name: str, version: int) -> ModelVersion | None:
        with self._read() as conn:
            row = _version_row(conn, model_name, version=version)
        return None if row is None else _to_version(row)

    def find_version(self, model_name: str, sha256: str) -> ModelVersion | None:
        with self._read() as conn:
            row = _version_row(conn, model_name, sha256=sha256)
        return None if row is None else _to_version(row)

    def list_models(self) -> list[str]:
        with self._read() as conn:
            names = conn.execute(
                select(model_versions.c.model_name).distinct().order_by(model_versions.c.model_name)
            ).scalars()
            return [str(name) for name in names]

    def list_versions(self, model_name: str) -> list[ModelVersion]:
        with self._read() as conn:
            rows = conn.execute(
                select(model_versions)
                .where(model_versions.c.model_name == model_name)
                .order_by(model_versions.c.version)
            ).all()
        return [_to_version(row) for row in rows]

    # --- aliases ----------------------------------------------------------------------------

    def set_alias(
        self,
        model_name: str,
        alias: str,
        version: int,
        *,
        actor: str,
        reason: str,
        kind: str = "assign",
        run_id: str | None = None,
    ) -> AliasChange:
        """Point an alias at a version; the old pointer survives in the history, never deleted."""
        with self._write() as conn:
            self._lock_head(conn)
            return self._move_alias(
                conn,
                model_name,
                alias,
                version,
                actor=actor,
                reason=reason,
                kind=kind,
                run_id=run_id,
                at=self._now(),
            )

    def _move_alias(
        self,
        conn: Connection,
        model_name: str,
        alias: str,
        version: int,
        *,
        actor: str,
        reason: str,
        kind: str,
        run_id: str | None,
        at: datetime,
    ) -> AliasChange:
        if kind not in ALIAS_KINDS:
            raise LedgerError(f"alias change kind {kind!r} is not one of {', '.join(ALIAS_KINDS)}")
        if _version_row(conn, model_name, version=version) is None:
            raise LedgerError(
                f"cannot point {model_name}:{alias} at v{version}: no such version is registered"
            )
        current = conn.execute(
            select(model_aliases.c.version).where(
                model_aliases.c.model_name == model_name, model_aliases.c.alias == alias
            )
        ).scalar()
        if current is None:
            conn.execute(
                insert(model_aliases).values(
                    model_name=model_name,
                    alias=alias,
                    version=version,
                    updated_at=at,
                    updated_by=actor,
                )
            )
        else:
            conn.execute(
                update(model_aliases)
                .where(model_aliases.c.model_name == model_name, model_aliases.c.alias == alias)
                .values(version=version, updated_at=at, updated_by=actor)
            )
        from_version = None if current is None else int(current)
        conn.execute(
            insert(alias_history).values(
                model_name=model_name,
                alias=alias,
                from_version=from_version,
                to_version=version,
                actor=actor,
                at=at,
                reason=reason,
                run_id=run_id,
                kind=kind,
            )
        )
        self._append(
            conn,
            "set_alias",
            actor=actor,
            subject=f"{model_name}:{alias}",
            details={
                "from_version": from_version,
                "to_version": version,
                "kind": kind,
                "reason": reason,
            },
            run_id=run_id,
            at=at,
        )
        return AliasChange(
            model_name=model_name,
            alias=alias,
            from_version=from_version,
            to_version=version,
            actor=actor,
            at=at,
            reason=reason,
            run_id=run_id,
            kind=kind,
        )

    def get_alias(self, model_name: str, alias: str) -> ModelVersion | None:
        with self._read() as conn:
            row = conn.execute(
                select(model_versions)
                .join(
                    model_aliases,
                    (model_aliases.c.model_name == model_versions.c.model_name)
                    & (model_aliases.c.version == model_versions.c.version),
                )
                .where(model_aliases.c.model_name == model_name, model_aliases.c.alias == alias)
            ).one_or_none()
        return None if row is None else _to_version(row)

    def aliases(self, model_name: str) -> dict[str, int]:
        with self._read() as conn:
            rows = conn.execute(
                select(model_aliases.c.alias, model_aliases.c.version)
                .where(model_aliases.c.model_name == model_name)
                .order_by(model_aliases.c.alias)
            ).all()
        return {str(row.alias): int(row.version) for row in rows}

    def alias_history(self, model_name: str, alias: str | None = None) -> list[AliasChange]:
        query = select(alias_history).where(alias_history.c.model_name == model_name)
        if alias is not None:
            query = query.where(alias_history.c.alias == alias)
        with self._read() as conn:
            rows = conn.execute(query.order_by(alias_history.c.id)).all()
        return [_to_alias_change(row) for row in rows]

    # --- checks -----------------------------------------------------------------------------

    def record_check(
        self,
        model_name: str,
        version: int,
        check_name: str,
        *,
        passed: bool,
        partition: str | None = None,
        severity: str = "ERROR",
        metrics: Mapping[str, Any] | None = None,
        run_id: str | None = None,
    ) -> VersionCheck:
        """Append a check result; earlier results stay, the latest per partition is in force."""
        with self._write() as conn:
            if _version_row(conn, model_name, version=version) is None:
                raise LedgerError(
                    f"cannot record {check_name!r} for {model_name} v{version}: "
                    "no such version is registered"
                )
            now = self._now()
            metrics_text = canonical_json(dict(metrics or {}))
            conn.execute(
                insert(version_checks).values(
                    model_name=model_name,
                    version=version,
                    check_name=check_name,
                    partition_key=partition,
                    passed=bool(passed),
                    severity=severity,
                    metrics=metrics_text,
                    run_id=run_id,
                    at=now,
                )
            )
        return VersionCheck(
            model_name=model_name,
            version=version,
            check_name=check_name,
            partition=partition,
            passed=bool(passed),
            severity=severity,
            metrics=json.loads(metrics_text),
            run_id=run_id,
            at=now,
        )

    def version_checks(self, model_name: str, version: int) -> list[VersionCheck]:
        with self._read() as conn:
            return _checks(conn, model_name, version)

    def last_known_good(self, model_name: str, *, alias: str = "champion") -> ModelVersion | None:
        """The most recent earlier holder of ``alias`` whose checks, as they stand, all pass.

        A version never checked is not "good", only unknown; rolling back to it would trade a
        known failure for a guess.
        """
        with self._read() as conn:
            current = conn.execute(
                select(model_aliases.c.version).where(
                    model_aliases.c.model_name == model_name, model_aliases.c.alias == alias
                )
            ).scalar()
            holders = conn.execute(
                select(alias_history.c.to_version)
                .where(alias_history.c.model_name == model_name, alias_history.c.alias == alias)
                .order_by(alias_history.c.id.desc())
            ).scalars()
            seen: set[int] = set()
            for holder in holders:
                version = int(holder)
                if version == current or version in seen:
                    continue
                seen.add(version)
                latest: dict[tuple[str, str | None], bool] = {}
                for check in _checks(conn, model_name, version):
                    latest[(check.check_name, check.partition)] = check.passed
                if latest and all(latest.values()):
                    row = _version_row(conn, model_name, version=version)
                    if row is not None:
                        return _to_version(row)
        return None

    # --- promotions -------------------------------------------------------------------------

    def record_promotion(
        self,
        model_name: str,
        candidate_version: int,
        *,
        champion_version: int | None,
        promoted: bool,
        reason: str,
        evidence: Mapping[str, Any],
        actor: str,
        run_id: str | None = None,
    ) -> PromotionRecord:
        """Record a gate decision; a promotion moves ``champion`` in the same transaction.

        One transaction means there is never a champion without the decision that made it, nor
        a recorded promotion whose champion did not move. A promotion decided against a champion
        that has moved since raises :class:`StaleChampionError` and records nothing: otherwise
        two gates deciding at once would replace a champion neither of them compared against.
        """
        with self._write() as conn:
            self._lock_head(conn)
            if _version_row(conn, model_name, version=candidate_version) is None:
                raise LedgerError(
                    f"cannot record a promotion of {model_name} v{candidate_version}: "
                    "no such version is registered"
                )
            current = conn.execute(
                select(model_aliases.c.version).where(
                    model_aliases.c.model_name == model_name, model_aliases.c.alias == "champion"
                )
            ).scalar()
            if promoted and current != champion_version:
                raise StaleChampionError(
                    f"{model_name} v{candidate_version} was judged against "
                    f"{_version_label(champion_version)}, but the champion is now "
                    f"{_version_label(current)}: decide again against the current champion"
                )
            now = self._now()
            evidence_text = canonical_json(dict(evidence))
            conn.execute(
                insert(promotions).values(
                    model_name=model_name,
                    candidate_version=candidate_version,
                    champion_version=champion_version,
                    promoted=bool(promoted),
                    reason=reason,
                    evidence=evidence_text,
                    actor=actor,
                    run_id=run_id,
                    at=now,
                )
            )
            self._append(
                conn,
                "promotion_decision",
                actor=actor,
                subject=f"{model_name}:v{candidate_version}",
                details={
                    "candidate_version": candidate_version,
                    "champion_version": champion_version,
                    "promoted": bool(promoted),
                    "reason": reason,
                    "evidence": json.loads(evidence_text),
                },
                run_id=run_id,
                at=now,
            )
            if promoted:
                self._move_alias(
                    conn,
                    model_name,
                    "champion",
                    candidate_version,
                    actor=actor,
                    reason=reason,
                    kind="promote",
                    run_id=run_id,
                    at=now,
                )
        return PromotionRecord(
            model_name=model_name,
            candidate_version=candidate_version,
            champion_version=champion_version,
            promoted=bool(promoted),
            reason=reason,
            evidence=json.loads(evidence_text),
            actor=actor,
            run_id=run_id,
            at=now,
        )

    def promotions(self, model_name: str) -> list[PromotionRecord]:
        with self._read() as conn:
            rows = conn.execute(
                select(promotions)
                .where(promotions.c.model_name == model_name)
                .order_by(promotions.c.id)
            ).all()
        return [
            PromotionRecord(
                model_name=row.model_name,
                candidate_version=int(row.candidate_version),
                champion_version=(
                    None if row.champion_version is None else int(row.champion_version)
                ),
                promoted=bool(row.promoted),
                reason=row.reason,
                evidence=_loads(row.evidence),
                actor=row.actor,
                run_id=row.run_id,
                at=_utc(row.at),
            )
            for row in rows
        ]

    # --- capsules ---------------------------------------------------------------------------

    def record_capsule(self, capsule: Capsule, *, actor: str = "system") -> str:
        """Store a capsule under its content id; recording the same capsule again is a no-op.

        Retries and re-materializations re-record identical capsules; only the first write is
        news, so only it is audited.
        """
        capsule_id = capsule.capsule_id
        body_text = canonical_json(capsule.body)
        created = capsule.created_at
        with self._write() as conn:
            self._lock_head(conn)
            exists = conn.execute(
                select(capsules.c.capsule_id).where(capsules.c.capsule_id == capsule_id)
            ).scalar()
            if exists is not None:
                return capsule_id
            now = self._now()
            conn.execute(
                insert(capsules).values(
                    capsule_id=capsule_id,
                    kind=capsule.kind,
                    asset=capsule.asset,
                    run_id=capsule.run_id,
                    created_at=_utc(created) if created is not None else now,
                    body=body_text,
                )
            )
            self._append(
                conn,
                "record_capsule",
                actor=actor,
                subject=f"capsule:{capsule_id[:12]}",
                details={
                    "capsule_id": capsule_id,
                    "kind": capsule.kind,
                    "asset": capsule.asset,
                    "parent": capsule.parent,
                    "config_hash": capsule.config_hash,
                },
                run_id=capsule.run_id,
                at=now,
            )
        return capsule_id

    def get_capsule(self, capsule_id_or_prefix: str) -> Capsule | None:
        """The capsule with this id, or with this unique prefix of at least 8 characters.

        Prefixes are what people paste from logs and reports; an ambiguous one is an error
        rather than a guess, since the wrong capsule would re-run the wrong step.
        """
        wanted = capsule_id_or_prefix.strip().lower()
        with self._read() as conn:
            row = _unique_by_prefix(conn, capsules, capsules.c.capsule_id, wanted, "capsule")
        return None if row is None else _to_capsule(row)

    def capsules_for_run(self, run_id: str) -> list[Capsule]:
        with self._read() as conn:
            rows = conn.execute(
                select(capsules)
                .where(capsules.c.run_id == run_id)
                .order_by(capsules.c.created_at, capsules.c.capsule_id)
            ).all()
        return [_to_capsule(row) for row in rows]

    # --- experiment runs --------------------------------------------------------------------

    def record_experiment_run(self, run: ExperimentRun, *, actor: str = "system") -> ExperimentRun:
        """Insert or update the run's row (one per run id); returns the run as stored.

        A run's metrics arrive after its config, and a retried run writes again: updating in
        place keeps one row per run. The audit entry marks the run's first appearance only.
        """
        stored = _normalized_run(run)
        values = {
            "model_name": stored.model_name,
            "model_version": stored.model_version,
            "capsule_id": stored.capsule_id,
            "at": stored.at,
            "config": canonical_json(stored.config),
            "metrics": canonical_json(stored.metrics),
            "tags": canonical_json(stored.tags),
            "dataset_version": stored.dataset_version,
            "feature_set_version": stored.feature_set_version,
            "hypothesis": stored.hypothesis,
            "success_criterion": stored.success_criterion,
            "criterion_met": stored.criterion_met,
        }
        with self._write() as conn:
            self._lock_head(conn)
            existing = conn.execute(
                select(experiment_runs.c.id).where(experiment_runs.c.run_id == stored.run_id)
            ).scalar()
            if existing is not None:
                conn.execute(
                    update(experiment_runs).where(experiment_runs.c.id == existing).values(**values)
                )
                return stored
            conn.execute(insert(experiment_runs).values(run_id=stored.run_id, **values))
            self._append(
                conn,
                "record_experiment_run",
                actor=actor,
                subject=f"experiment:{stored.run_id}",
                details={
                    "model_name": stored.model_name,
                    "model_version": stored.model_version,
                    "capsule_id": stored.capsule_id,
                    "dataset_version": stored.dataset_version,
                    "feature_set_version": stored.feature_set_version,
                    "hypothesis": stored.hypothesis,
                    "success_criterion": stored.success_criterion,
                },
                run_id=stored.run_id,
                at=self._now(),
            )
        return stored

    def get_experiment_run(self, run_id_or_prefix: str) -> ExperimentRun | None:
        """The run with this id, or with this unique prefix of at least 8 characters."""
        wanted = run_id_or_prefix.strip()
        with self._read() as conn:
            row = _unique_by_prefix(
                conn, experiment_runs, experiment_runs.c.run_id, wanted, "experiment run"
            )
        return None if row is None else _to_experiment_run(row)

    def list_experiment_runs(
        self,
        *,
        model_name: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        dataset_version: str | None = None,
        feature_set_version: str | None = None,
    ) -> list[ExperimentRun]:
        """Runs oldest first, within ``since <= at < until`` (half-open, so windows tile)."""
        query = select(experiment_runs)
        if model_name is not None:
            query = query.where(experiment_runs.c.model_name == model_name)
        if since is not None:
            query = query.where(experiment_runs.c.at >= _utc(since))
        if until is not None:
            query = query.where(experiment_runs.c.at < _utc(until))
        if dataset_version is not None:
            query = query.where(experiment_runs.c.dataset_version == dataset_version)
        if feature_set_version is not None:
            query = query.where(experiment_runs.c.feature_set_version == feature_set_version)
        with self._read() as conn:
            rows = conn.execute(query.order_by(experiment_runs.c.at, experiment_runs.c.id)).all()
        return [_to_experiment_run(row) for row in rows]

    # --- feature-set lifecycle --------------------------------------------------------------

    def register_feature_set(
        self,
        version_id: str,
        *,
        name: str,
        spec: Mapping[str, Any],
        actor: str,
        status: str = "experimental",
        reason: str = "registered",
        run_id: str | None = None,
    ) -> FeatureSetRecord:
        """The record for this version; registering it again returns the first record as is.

        The version id is derived from the spec's hash, so a second registration is the same
        feature set seen again (a re-run, another notebook), not news.
        """
        spec_text = canonical_json(dict(spec))
        with self._write() as conn:
            self._lock_head(conn)
            existing = conn.execute(
                select(feature_sets).where(feature_sets.c.version_id == version_id)
            ).one_or_none()
            if existing is not None:
                return _to_feature_set(existing)
            now = self._now()
            conn.execute(
                insert(feature_sets).values(
                    version_id=version_id,
                    name=name,
                    spec=spec_text,
                    status=status,
                    registered_at=now,
                    registered_by=actor,
                    updated_at=now,
                )
            )
            conn.execute(
                insert(feature_set_status_history).values(
                    version_id=version_id,
                    from_status=None,
                    to_status=status,
                    actor=actor,
                    at=now,
                    reason=reason,
                    evidence=canonical_json({}),
                    run_id=run_id,
                )
            )
            self._append(
                conn,
                "register_feature_set",
                actor=actor,
                subject=f"feature_set:{version_id}",
                details={"name": name, "status": status, "spec": json.loads(spec_text)},
                run_id=run_id,
                at=now,
            )
            row = conn.execute(
                select(feature_sets).where(feature_sets.c.version_id == version_id)
            ).one()
            return _to_feature_set(row)

    def set_feature_set_status(
        self,
        version_id: str,
        status: str,
        *,
        expected_from: str,
        actor: str,
        reason: str,
        evidence: Mapping[str, Any] | None = None,
        run_id: str | None = None,
    ) -> FeatureSetStatusChange:
        """Move a feature set to ``status`` if it still has ``expected_from``.

        The caller decided on the transition from a status it read earlier; checking that status
        again under the write lock keeps two concurrent decisions from both applying.
        """
        evidence_text = canonical_json(dict(evidence or {}))
        with self._write() as conn:
            self._lock_head(conn)
            current = conn.execute(
                select(feature_sets.c.status).where(feature_sets.c.version_id == version_id)
            ).scalar()
            if current is None:
                raise LedgerError(f"feature set {version_id} is not registered")
            if current != expected_from:
                raise LedgerError(
                    f"feature set {version_id} is {current}, not {expected_from}: its status "
                    "changed since it was read"
                )
            now = self._now()
            conn.execute(
                update(feature_sets)
                .where(feature_sets.c.version_id == version_id)
                .values(status=status, updated_at=now)
            )
            conn.execute(
                insert(feature_set_status_history).values(
                    version_id=version_id,
                    from_status=current,
                    to_status=status,
                    actor=actor,
                    at=now,
                    reason=reason,
                    evidence=evidence_text,
                    run_id=run_id,
                )
            )
            self._append(
                conn,
                "feature_set_status",
                actor=actor,
                subject=f"feature_set:{version_id}",
                details={
                    "from_status": current,
                    "to_status": status,
                    "reason": reason,
                    "evidence": json.loads(evidence_text),
                },
                run_id=run_id,
                at=now,
            )
        return FeatureSetStatusChange(
            version_id=version_id,
            from_status=str(current),
            to_status=status,
            actor=actor,
            at=now,
            reason=reason,
            evidence=json.loads(evidence_text),
            run_id=run_id,
        )

    def get_feature_set(self, version_id: str) -> FeatureSetRecord | None:
        with self._read() as conn:
            row = conn.execute(
                select(feature_sets).where(feature_sets.c.version_id == version_id)
            ).one_or_none()
        return None if row is None else _to_feature_set(row)

    def list_feature_sets(
        self, *, name: str | None = None, status: str | None = None
    ) -> list[FeatureSetRecord]:
        """Oldest registration first."""
        query = select(feature_sets)
        if name is not None:
            query = query.where(feature_sets.c.name == name)
        if status is not None:
            query = query.where(feature_sets.c.status == status)
        with self._read() as conn:
            rows = conn.execute(
                query.order_by(feature_sets.c.registered_at, feature_sets.c.version_id)
            ).all()
        return [_to_feature_set(row) for row in rows]

    def feature_set_history(self, version_id: str | None = None) -> list[FeatureSetStatusChange]:
        """Status changes oldest first, of one feature set or of all."""
        query = select(feature_set_status_history)
        if version_id is not None:
            query = query.where(feature_set_status_history.c.version_id == version_id)
        with self._read() as conn:
            rows = conn.execute(query.order_by(feature_set_status_history.c.id)).all()
        return [
            FeatureSetStatusChange(
                version_id=row.version_id,
                from_status=row.from_status,
                to_status=row.to_status,
                actor=row.actor,
                at=_utc(row.at),
                reason=row.reason,
                evidence=_loads(row.evidence),
                run_id=row.run_id,
            )
            for row in rows
        ]

    # --- feature flags ----------------------------------------------------------------------

    def record_flags(self, body: str, *, actor: str, reason: str) -> FlagVersion:
        """Make ``body`` the flags in force; the same text as the latest version is a no-op.

        The audit entry carries the previous version's hash, so the chain alone shows which flag
        document replaced which.
        """
        digest = hashlib.sha256(body.encode("utf-8")).hexdigest()
        with self._write() as conn:
            self._lock_head(conn)
            latest = conn.execute(
                select(flag_versions).order_by(flag_versions.c.version.desc()).limit(1)
            ).one_or_none()
            if latest is not None and latest.sha256 == digest:
                return _to_flag_version(latest)
            now = self._now()
            version = 1 if latest is None else int(latest.version) + 1
            conn.execute(
                insert(flag_versions).values(
                    version=version,
                    sha256=digest,
                    body=body,
                    actor=actor,
                    at=now,
                    reason=reason,
                )
            )
            self._append(
                conn,
                "flags_change",
                actor=actor,
                subject="flags",
                details={
                    "version": version,
                    "sha256": digest,
                    "previous_sha256": None if latest is None else latest.sha256,
                    "reason": reason,
                },
                run_id=None,
                at=now,
            )
        return FlagVersion(
            version=version, sha256=digest, body=body, actor=actor, at=now, reason=reason
        )

    def flag_versions(self) -> list[FlagVersion]:
        """Every flag document ever in force, oldest first."""
        with self._read() as conn:
            rows = conn.execute(select(flag_versions).order_by(flag_versions.c.version)).all()
        return [_to_flag_version(row) for row in rows]

    def latest_flags(self) -> FlagVersion | None:
        with self._read() as conn:
            row = conn.execute(
                select(flag_versions).order_by(flag_versions.c.version.desc()).limit(1)
            ).one_or_none()
        return None if row is None else _to_flag_version(row)

    # --- staged rollouts --------------------------------------------------------------------

    def start_rollout(
        self,
        model_name: str,
        to_version: int,
        *,
        from_version: int | None,
        plan: Mapping[str, Any],
        stage_name: str,
        services: Sequence[str],
        actor: str,
        reason: str,
    ) -> Rollout:
        """Open a rollout with its first (canary) stage active, in one audited transaction."""
        with self._write() as conn:
            self._lock_head(conn)
            if _version_row(conn, model_name, version=to_version) is None:
                raise LedgerError(f"cannot roll out {model_name} v{to_version}: not registered")
            running = conn.execute(
                select(rollouts.c.id).where(
                    rollouts.c.model_name == model_name, rollouts.c.status == "running"
                )
            ).scalar()
            if running is not None:
                raise LedgerError(
                    f"{model_name} already has rollout {running} running; finish or halt it first"
                )
            now = self._now()
            inserted = conn.execute(
                insert(rollouts).values(
                    model_name=model_name,
                    to_version=to_version,
                    from_version=from_version,
                    plan=canonical_json(dict(plan)),
                    status="running",
                    actor=actor,
                    started_at=now,
                    updated_at=now,
                )
            ).inserted_primary_key
            assert inserted is not None
            rollout_id = int(inserted[0])
            self._append(
                conn,
                "rollout_start",
                actor=actor,
                subject=f"{model_name}:rollout:{rollout_id}",
                details={
                    "to_version": to_version,
                    "from_version": from_version,
                    "plan": dict(plan),
                    "reason": reason,
                },
                run_id=None,
                at=now,
            )
            self._add_stage(conn, int(rollout_id), model_name, 0, stage_name, services, actor, now)
            return self._rollout(conn, int(rollout_id))

    def update_rollout(
        self,
        rollout_id: int,
        *,
        stage_index: int,
        stage_status: str,
        evidence: Mapping[str, Any],
        actor: str,
        rollout_status: str = "running",
        next_stage: tuple[str, Sequence[str]] | None = None,
        promote_reason: str | None = None,
    ) -> Rollout:
        """Close the active stage with its verdict; open the next one, finish or halt.

        ``promote_reason`` moves ``champion`` to the rolled-out version in the same
        transaction: the alias and the rollout never disagree about what was promoted.
        """
        with self._write() as conn:
            self._lock_head(conn)
            rollout = self._rollout(conn, rollout_id)
            if rollout.status != "running":
                raise LedgerError(f"rollout {rollout_id} is {rollout.status}, not running")
            active = rollout.stages[-1]
            if active.index != stage_index or active.status != "active":
                raise LedgerError(
                    f"rollout {rollout_id}'s active stage is {active.index} ({active.status}), "
                    f"not {stage_index}"
                )
            now = self._now()
            conn.execute(
                update(rollout_stages)
                .where(
                    rollout_stages.c.rollout_id == rollout_id,
                    rollout_stages.c.stage_index == stage_index,
                )
                .values(
                    status=stage_status,
                    evidence=canonical_json(dict(evidence)),
                    actor=actor,
                    at=now,
                )
            )
            conn.execute(
                update(rollouts)
                .where(rollouts.c.id == rollout_id)
                .values(status=rollout_status, updated_at=now)
            )
            self._append(
                conn,
                "rollout_stage",
                actor=actor,
                subject=f"{rollout.model_name}:rollout:{rollout_id}",
                details={
                    "stage": stage_index,
                    "name": active.name,
                    "services": list(active.services),
                    "status": stage_status,
                    "rollout_status": rollout_status,
                    "evidence": json.loads(canonical_json(dict(evidence))),
                },
                run_id=None,
                at=now,
            )
            if next_stage is not None:
                name, services = next_stage
                self._add_stage(
                    conn,
                    rollout_id,
                    rollout.model_name,
                    stage_index + 1,
                    name,
                    services,
                    actor,
                    now,
                )
            if promote_reason is not None:
                self._move_alias(
                    conn,
                    rollout.model_name,
                    "champion",
                    rollout.to_version,
                    actor=actor,
                    reason=promote_reason,
                    kind="promote",
                    run_id=None,
                    at=now,
                )
            return self._rollout(conn, rollout_id)

    def get_rollout(self, rollout_id: int) -> Rollout | None:
        with self._read() as conn:
            exists = conn.execute(select(rollouts.c.id).where(rollouts.c.id == rollout_id)).scalar()
            return None if exists is None else self._rollout(conn, rollout_id)

    def rollouts(self, model_name: str) -> list[Rollout]:
        with self._read() as conn:
            ids = conn.execute(
                select(rollouts.c.id)
                .where(rollouts.c.model_name == model_name)
                .order_by(rollouts.c.id)
            ).scalars()
            return [self._rollout(conn, int(rollout_id)) for rollout_id in ids]

    def _add_stage(
        self,
        conn: Connection,
        rollout_id: int,
        model_name: str,
        index: int,
        name: str,
        services: Sequence[str],
        actor: str,
        at: datetime,
    ) -> None:
        conn.execute(
            insert(rollout_stages).values(
                rollout_id=rollout_id,
                stage_index=index,
                name=name,
                services=canonical_json(sorted(services)),
                status="active",
                evidence=canonical_json({}),
                actor=actor,
                at=at,
            )
        )
        self._append(
            conn,
            "rollout_stage",
            actor=actor,
            subject=f"{model_name}:rollout:{rollout_id}",
            details={
                "stage": index,
                "name": name,
                "services": sorted(services),
                "status": "active",
            },
            run_id=None,
            at=at,
        )

    def _rollout(self, conn: Connection, rollout_id: int) -> Rollout:
        row = conn.execute(select(rollouts).where(rollouts.c.id == rollout_id)).one_or_none()
        if row is None:
            raise LedgerError(f"no rollout {rollout_id}")
        stages = conn.execute(
            select(rollout_stages)
            .where(rollout_stages.c.rollout_id == rollout_id)
            .order_by(rollout_stages.c.stage_index)
        ).all()
        return Rollout(
            rollout_id=int(row.id),
            model_name=row.model_name,
            to_version=int(row.to_version),
            from_version=None if row.from_version is None else int(row.from_version),
            plan=_loads(row.plan),
            status=row.status,
            actor=row.actor,
            started_at=_utc(row.started_at),
            updated_at=_utc(row.updated_at),
            stages=tuple(
                RolloutStage(
                    index=int(stage.stage_index),
                    name=stage.name,
                    services=tuple(json.loads(stage.services)),
                    status=stage.status,
                    evidence=_loads(stage.evidence),
                    actor=stage.actor,
                    at=_utc(stage.at),
                )
                for stage in stages
            ),
        )

    # --- audit ------------------------------------------------------------------------------

    def audit(
        self,
        action: str,
        *,
        actor: str,
        subject: str,
        details: Mapping[str, Any] | None = None,
        run_id: str | None = None,
    ) -> AuditEntry:
        """Append an entry that is not part of a registry change (a refused request, say)."""
        with self._write() as conn:
            return self._append(
                conn,
                action,
                actor=actor,
                subject=subject,
                details=details,
                run_id=run_id,
                at=self._now(),
            )

    def audit_entries(self, since_seq: int = 0) -> list[AuditEntry]:
        with self._read() as conn:
            rows = conn.execute(
                select(audit_log).where(audit_log.c.seq > since_seq).order_by(audit_log.c.seq)
            ).all()
        return [
            AuditEntry(
                seq=int(row.seq),
                at=_parse_time(row.at),
                actor=row.actor,
                action=row.action,
                subject=row.subject,
                details=_loads(row.details),
                run_id=row.run_id,
                prev_hash=row.prev_hash,
                entry_hash=row.entry_hash,
                mac=row.mac,
            )
            for row in rows
        ]

    def verify_audit(self) -> AuditVerification:
        """Re-derive every hash and MAC and walk the chain, naming each entry that was touched.

        Kinds: ``edited`` (content or MAC no longer matches), ``deleted`` (a gap in seq),
        ``inserted`` (an entry that does not authenticate and does not continue the chain, or
        lies past the head), ``reordered`` (an authentic entry stored under another seq, or
        authentic neighbours that do not link), ``truncated`` (the head names entries beyond
        the last stored one).
        """
        with self._read() as conn:
            rows = conn.execute(select(audit_log).order_by(audit_log.c.seq)).all()
            head = conn.execute(
                select(audit_head.c.last_seq, audit_head.c.last_hash).where(audit_head.c.id == 1)
            ).one_or_none()
        return _verify(rows, head, self._mac_ok)


# --- helpers ----------------------------------------------------------------------------------


def _create_engine(url: str) -> Engine:
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return create_engine(parsed, pool_pre_ping=True)
    database = parsed.database or ""
    if database and database != ":memory:" and not database.startswith("file:"):
        Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(parsed, connect_args={"timeout": _SQLITE_BUSY_TIMEOUT_S})

    # The pysqlite recipe from the SQLAlchemy docs: let SQLAlchemy, not the driver, emit BEGIN,
    # so that a write transaction can ask for IMMEDIATE (the write lock up front).
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute(f"PRAGMA busy_timeout={_SQLITE_BUSY_TIMEOUT_S * 1000}")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        immediate = conn.get_execution_options().get(_WRITE_OPTION, False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine


def _read_or_create_key(path: Path) -> bytes:
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        # Write a private temporary file, then link it into place: two processes starting at
        # once end up sharing one key instead of one overwriting the other's.
        temporary = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
                handle.write(secrets.token_hex(32) + "\n")
            with suppress(FileExistsError):
                os.link(temporary, path)
        finally:
            temporary.unlink(missing_ok=True)
    key = path.read_bytes().strip()
    if not key:
        raise LedgerError(
            f"the audit key file {path} is empty; delete it to have a new key made, or set "
            f"{AUDIT_KEY_ENV}"
        )
    return key


def _version_label(version: int | None) -> str:
    return "no champion" if version is None else f"v{version}"


def _parse_time(text: str) -> datetime:
    try:
        return _utc(datetime.fromisoformat(text))
    except (TypeError, ValueError):
        # Only a tampered entry has an unreadable time; verify_audit names it.
        return datetime.min.replace(tzinfo=UTC)


def _version_row(
    conn: Connection,
    model_name: str,
    *,
    version: int | None = None,
    sha256: str | None = None,
) -> Row[Any] | None:
    query = select(model_versions).where(model_versions.c.model_name == model_name)
    if version is not None:
        query = query.where(model_versions.c.version == version)
    if sha256 is not None:
        query = query.where(model_versions.c.sha256 == sha256)
    return conn.execute(query).one_or_none()


def _to_version(row: Row[Any]) -> ModelVersion:
    return ModelVersion(
        model_name=row.model_name,
        version=int(row.version),
        sha256=row.sha256,
        metrics=_float_metrics(_loads(row.metrics)),
        training_set_version=row.training_set_version,
        feature_set_version=row.feature_set_version,
        capsule_ref=row.capsule_ref,
        run_id=row.run_id,
        created_at=_utc(row.created_at),
        created_by=row.created_by,
        tags={str(k): str(v) for k, v in _loads(row.tags).items()},
    )


def _to_alias_change(row: Row[Any]) -> AliasChange:
    return AliasChange(
        model_name=row.model_name,
        alias=row.alias,
        from_version=None if row.from_version is None else int(row.from_version),
        to_version=int(row.to_version),
        actor=row.actor,
        at=_utc(row.at),
        reason=row.reason,
        run_id=row.run_id,
        kind=row.kind,
    )


def _checks(conn: Connection, model_name: str, version: int) -> list[VersionCheck]:
    rows = conn.execute(
        select(version_checks)
        .where(version_checks.c.model_name == model_name, version_checks.c.version == version)
        .order_by(version_checks.c.id)
    ).all()
    return [
        VersionCheck(
            model_name=row.model_name,
            version=int(row.version),
            check_name=row.check_name,
            partition=row.partition_key,
            passed=bool(row.passed),
            severity=row.severity,
            metrics=_loads(row.metrics),
            run_id=row.run_id,
            at=_utc(row.at),
        )
        for row in rows
    ]


def _unique_by_prefix(
    conn: Connection, table: Table, column: Any, wanted: str, what: str
) -> Row[Any] | None:
    """The row whose key is ``wanted``, else the one row whose key starts with it (8+ chars)."""
    if not wanted:
        return None
    row = conn.execute(select(table).where(column == wanted)).one_or_none()
    if row is not None or len(wanted) < MIN_PREFIX:
        return row
    rows = conn.execute(
        select(table)
        .where(column.startswith(wanted, autoescape=True))
        .order_by(column)
        .limit(_AMBIGUOUS_SHOWN + 1)
    ).all()
    if len(rows) > 1:
        keys = [str(getattr(match, column.key)) for match in rows[:_AMBIGUOUS_SHOWN]]
        more = ", ..." if len(rows) > _AMBIGUOUS_SHOWN else ""
        raise LedgerError(
            f"{what} prefix {wanted!r} is ambiguous: it matches {', '.join(keys)}{more}; "
            "give more characters"
        )
    return rows[0] if rows else None


def _to_capsule(row: Row[Any]) -> Capsule:
    try:
        capsule = Capsule.from_json(row.body)
    except CapsuleError as error:
        raise LedgerError(
            f"capsule {row.capsule_id} in the ledger is unreadable: {error}"
        ) from error
    if capsule.capsule_id != row.capsule_id:
        # Someone edited the stored body; handing it out would re-run something else.
        raise LedgerError(f"capsule {row.capsule_id} in the ledger does not match its content")
    return capsule


def _normalized_run(run: ExperimentRun) -> ExperimentRun:
    """The run as a read returns it: UTC time, float metrics, string tags, JSON-plain config."""
    return replace(
        run,
        at=_utc(run.at),
        config=json.loads(canonical_json(dict(run.config))),
        metrics=_float_metrics(run.metrics),
        tags={str(k): str(v) for k, v in run.tags.items()},
        model_version=None if run.model_version is None else int(run.model_version),
        criterion_met=None if run.criterion_met is None else bool(run.criterion_met),
    )


def _to_experiment_run(row: Row[Any]) -> ExperimentRun:
    return ExperimentRun(
        run_id=row.run_id,
        model_name=row.model_name,
        model_version=None if row.model_version is None else int(row.model_version),
        capsule_id=row.capsule_id,
        at=_utc(row.at),
        config=_loads(row.config),
        metrics=_float_metrics(_loads(row.metrics)),
        tags={str(k): str(v) for k, v in _loads(row.tags).items()},
        dataset_version=row.dataset_version,
        feature_set_version=row.feature_set_version,
        hypothesis=row.hypothesis,
        success_criterion=row.success_criterion,
        criterion_met=None if row.criterion_met is None else bool(row.criterion_met),
    )


def _to_feature_set(row: Row[Any]) -> FeatureSetRecord:
    return FeatureSetRecord(
        version_id=row.version_id,
        name=row.name,
        spec=_loads(row.spec),
        status=row.status,
        registered_at=_utc(row.registered_at),
        registered_by=row.registered_by,
        updated_at=_utc(row.updated_at),
    )


def _to_flag_version(row: Row[Any]) -> FlagVersion:
    return FlagVersion(
        version=int(row.version),
        sha256=row.sha256,
        body=row.body,
        actor=row.actor,
        at=_utc(row.at),
        reason=row.reason,
    )


def _row_hash(row: Row[Any], seq: int) -> str | None:
    try:
        return entry_hash(
            seq=seq,
            at=row.at,
            actor=row.actor,
            action=row.action,
            subject=row.subject,
            details=row.details,
            run_id=row.run_id,
            prev_hash=row.prev_hash,
        )
    except (TypeError, ValueError, AttributeError):
        # A value rewritten into something that is not even the right type is an edit too.
        return None


def _verify(
    rows: Sequence[Row[Any]],
    head: Any,
    mac_ok: Callable[[str, str], bool],
) -> AuditVerification:
    problems: dict[int, AuditProblem] = {}
    extra: list[AuditProblem] = []

    def report(seq: int, kind: str, message: str) -> None:
        # One problem per entry: the first, most specific finding wins.
        problems.setdefault(seq, AuditProblem(seq, kind, message))

    head_seq = int(head.last_seq) if head is not None else 0
    head_hash = str(head.last_hash) if head is not None else GENESIS_HASH
    if head is None:
        extra.append(AuditProblem(0, "edited", "the audit head row is missing"))
    max_seq = max([head_seq, *(int(row.seq) for row in rows)])

    authentic: list[bool] = []  # content matches its hash and the hash carries a valid MAC
    mac_valid: list[bool] = []
    content_valid: list[bool] = []
    for row in rows:
        seq = int(row.seq)
        recomputed = _row_hash(row, seq)
        content_ok = recomputed is not None and recomputed == row.entry_hash
        valid_mac = mac_ok(str(row.entry_hash), str(row.mac))
        content_valid.append(content_ok)
        mac_valid.append(valid_mac)
        authentic.append(content_ok and valid_mac)

    # A wrong key (or every MAC rewritten) makes each entry fail alike: say so once.
    if rows and not any(mac_valid) and all(content_valid) and _chain_intact(rows):
        return AuditVerification(
            ok=False,
            entries=len(rows),
            problems=[
                AuditProblem(
                    int(rows[0].seq),
                    "edited",
                    f"none of the {len(rows)} entries' MACs verifies although the hash chain is "
                    "intact: the audit key differs from the one that wrote the log, or every "
                    "MAC was rewritten",
                )
            ],
        )

    reorder_searches = 0
    previous_seq = 0
    previous_hash = GENESIS_HASH
    previous_flagged = False
    for index, row in enumerate(rows):
        seq = int(row.seq)
        gap = seq != previous_seq + 1
        if gap:
            missing = (
                f"entry {previous_seq + 1} is"
                if seq == previous_seq + 2
                else f"entries {previous_seq + 1}-{seq - 1} are"
            )
            report(previous_seq + 1, "deleted", f"{missing} missing from the log")
        linked = row.prev_hash == previous_hash
        content_ok, valid_mac = content_valid[index], mac_valid[index]
        if seq > head_seq and not authentic[index]:
            report(seq, "inserted", f"entry {seq} lies beyond the head and does not authenticate")
        elif not content_ok and valid_mac:
            original = None
            if reorder_searches < _REORDER_SEARCH_LIMIT:
                reorder_searches += 1
                original = next(
                    (
                        candidate
                        for candidate in range(1, max_seq + 1)
                        if candidate != seq and _row_hash(row, candidate) == row.entry_hash
                    ),
                    None,
                )
            if original is not None:
                report(
                    seq,
                    "reordered",
                    f"entry stored as seq {seq} was written as seq {original}",
                )
            else:
                report(seq, "edited", f"entry {seq}'s content no longer matches its hash")
        elif not valid_mac:
            if linked or gap:
                what = "content and hash" if not content_ok else "hash or MAC"
                report(seq, "edited", f"entry {seq}'s MAC does not verify ({what} rewritten)")
            else:
                report(
                    seq,
                    "inserted",
                    f"entry {seq} does not authenticate and does not continue the chain",
                )
        elif not linked and not gap and not previous_flagged:
            report(
                seq,
                "reordered",
                f"entry {seq} is authentic but follows a different entry than seq {previous_seq}",
            )
        previous_flagged = seq in problems
        previous_seq = seq
        previous_hash = row.entry_hash

    last_seq = int(rows[-1].seq) if rows else 0
    if head is not None and head_seq > last_seq:
        missing = (
            f"entry {head_seq} is"
            if head_seq == last_seq + 1
            else f"entries {last_seq + 1}-{head_seq} are"
        )
        report(last_seq + 1, "truncated", f"the head records {head_seq} entries; {missing} missing")
    elif head is not None and head_seq == last_seq and rows and head_hash != rows[-1].entry_hash:
        report(
            last_seq, "edited", f"entry {last_seq}'s hash differs from the one the head recorded"
        )
    elif head is not None and any(
        ok and int(row.seq) > head_seq for ok, row in zip(authentic, rows, strict=True)
    ):
        # Rows past the head that do authenticate mean the head itself was wound back.
        report(
            head_seq + 1,
            "edited",
            f"the head records {head_seq} entries but authentic entries run to {last_seq}",
        )

    found = extra + [problems[seq] for seq in sorted(problems)]
    return AuditVerification(ok=not found, entries=len(rows), problems=found)


def _chain_intact(rows: Sequence[Row[Any]]) -> bool:
    previous = GENESIS_HASH
    for expected_seq, row in enumerate(rows, start=1):
        if int(row.seq) != expected_seq or row.prev_hash != previous:
            return False
        previous = row.entry_hash
    return True


__all__ = [
    "AUDIT_KEY_ENV",
    "AliasChange",
    "AuditEntry",
    "AuditProblem",
    "AuditVerification",
    "FeatureSetRecord",
    "FeatureSetStatusChange",
    "FlagVersion",
    "Ledger",
    "LedgerError",
    "ModelVersion",
    "PromotionRecord",
    "Rollout",
    "RolloutStage",
    "VersionCheck",
    "canonical_json",
    "entry_hash",
    "metadata",
]
