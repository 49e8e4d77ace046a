"""The ledger's tables, the engine that opens them, and the hook into its Alembic migrations.

JSON is stored as TEXT: portable across SQLite and PostgreSQL, and byte-exact for hashing.
"""

from __future__ import annotations

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
    String,
    Table,
    Text,
    UniqueConstraint,
    create_engine,
    event,
    inspect,
    text,
)
from sqlalchemy.engine import Engine, make_url

VERSION_TABLE = "aiops_ledger_version"
# The migrations stay beside the package (core/ledger_migrations), one folder above this module.
MIGRATIONS_DIR = Path(__file__).parent.with_name("ledger_migrations")
# The newest migration's revision. Opening a ledger already at it skips Alembic, whose import and
# script scan cost a read-only command most of its start-up; a test holds this equal to the head
# of MIGRATIONS_DIR, so a new migration without a bump here fails CI.
HEAD_REVISION = "0004"

# Execution option that makes the SQLite "begin" hook take the write lock up front.
WRITE_OPTION = "aiops_ledger_write"
_SQLITE_BUSY_TIMEOUT_S = 30

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
    # The id of the key that signed the entry (keys.key_id_of); None before migration 0004.
    Column("key_id", String(64), nullable=True),
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


def current_revision(conn: Connection) -> str | None:
    """The schema revision recorded on ``conn``, or None for a database never migrated."""
    if not inspect(conn).has_table(VERSION_TABLE):
        return None
    return conn.execute(text(f"SELECT version_num FROM {VERSION_TABLE}")).scalar()


def upgrade(conn: Connection, revision: str = "head") -> None:
    """Bring the schema on ``conn`` to ``revision``; imported late, Alembic is slow to load."""
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["connection"] = conn
    command.upgrade(config, revision)


def open_engine(url: str) -> Engine:
    """An engine for ``url``; on SQLite, with foreign keys on and write transactions IMMEDIATE."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        try:
            return create_engine(parsed, pool_pre_ping=True)
        except ModuleNotFoundError as error:  # the driver is an extra: say which one
            extra = (
                " pip install 'aiops-assets[postgres]'" if "postgres" in parsed.drivername else ""
            )
            raise ModuleNotFoundError(
                f"the ledger URL {parsed.drivername}://... needs {error.name}, which is not "
                f"installed:{extra or ' install that driver'}",
                name=error.name,
            ) from error
    database = parsed.database or ""
    if database and database != ":memory:" and not database.startswith("file:"):
        Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(parsed, connect_args={"timeout": _SQLITE_BUSY_TIMEOUT_S})

    # The pysqlite recipe from the SQLAlchemy docs: let SQLAlchemy, not the driver, emit BEGIN,
    # so that a write transaction can ask for IMMEDIATE (the write lock up front).
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        # Text that is not UTF-8 (written around the ledger) is read, not raised on: its bad
        # bytes read as \xNN, so verify reports the entry or row as edited, by name.
        dbapi_connection.text_factory = _lenient_text
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute(f"PRAGMA busy_timeout={_SQLITE_BUSY_TIMEOUT_S * 1000}")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        immediate = conn.get_execution_options().get(WRITE_OPTION, False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine


def _lenient_text(raw: bytes) -> str:
    return raw.decode("utf-8", "backslashreplace")
