"""The model registry and its tamper-evident audit log, in one SQL database.

Which bytes are the champion, who moved an alias and why, and which checks a version passed are
facts an operator must be able to trust months later, from Airflow, a notebook or the CLI as much
as from Dagster; so they live in a plain SQLAlchemy database (SQLite by default, PostgreSQL in a
cluster) rather than in Dagster's event log, and this package may not import Dagster.

Every registry change is written in the same transaction as an audit entry. Entries form a hash
chain (each names the hash of its predecessor) and each hash carries an HMAC made with a key that
the database does not hold, so someone with write access to the database alone cannot edit,
delete, insert or reorder entries without ``verify_audit`` naming the entry. A single-row head
(last seq and hash) is locked by every writer: appends serialize, and a truncated tail is visible.
What the chain cannot detect without an external anchor is a tail truncation that also rewinds
the head to an earlier, authentic entry; export ``audit_entries`` elsewhere when that matters.

Run capsules (``core.capsule``) and the experiment log live here too: a registered version names
its capsule, and a capsule that could be found only in a file next to the model would be lost
with the file.

Modules: ``records`` (what the ledger hands out, and its errors), ``schema`` (tables, engine,
migrations), ``encoding`` (canonical JSON and times), ``audit`` (the hash chain, its HMAC and
key, verification), ``base`` (the engine and audit append every part shares), one part per
domain (``versions``, ``promotion``, ``reproducibility``, ``features``, ``flags``, ``rollout``,
``audit_trail``) and ``ledger``, which joins the parts into :class:`Ledger`.
"""

from __future__ import annotations

from aiops_assets.core.ledger.audit import AUDIT_KEY_ENV, GENESIS_HASH, entry_hash
from aiops_assets.core.ledger.encoding import canonical_json
from aiops_assets.core.ledger.ledger import Ledger
from aiops_assets.core.ledger.records import (
    ALIAS_KINDS,
    PROBLEM_KINDS,
    AliasChange,
    AuditEntry,
    AuditProblem,
    AuditVerification,
    FeatureSetRecord,
    FeatureSetStatusChange,
    FlagVersion,
    LedgerError,
    ModelVersion,
    PromotionRecord,
    Rollout,
    RolloutStage,
    StaleChampionError,
    VersionCheck,
)
from aiops_assets.core.ledger.reproducibility import MIN_PREFIX
from aiops_assets.core.ledger.schema import (
    HEAD_REVISION,
    MIGRATIONS_DIR,
    VERSION_TABLE,
    alias_history,
    audit_head,
    audit_log,
    capsules,
    experiment_runs,
    feature_set_status_history,
    feature_sets,
    flag_versions,
    metadata,
    model_aliases,
    model_versions,
    promotions,
    rollout_stages,
    rollouts,
    version_checks,
)
from aiops_assets.core.ledger.witness import WITNESS_ENV, WitnessedHead

__all__ = [
    "ALIAS_KINDS",
    "AUDIT_KEY_ENV",
    "GENESIS_HASH",
    "HEAD_REVISION",
    "MIGRATIONS_DIR",
    "MIN_PREFIX",
    "PROBLEM_KINDS",
    "VERSION_TABLE",
    "WITNESS_ENV",
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
    "StaleChampionError",
    "VersionCheck",
    "WitnessedHead",
    "alias_history",
    "audit_head",
    "audit_log",
    "canonical_json",
    "capsules",
    "entry_hash",
    "experiment_runs",
    "feature_set_status_history",
    "feature_sets",
    "flag_versions",
    "metadata",
    "model_aliases",
    "model_versions",
    "promotions",
    "rollout_stages",
    "rollouts",
    "version_checks",
]
