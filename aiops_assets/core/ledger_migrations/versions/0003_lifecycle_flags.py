"""Feature-set lifecycle (status and its history), versioned feature flags, staged rollouts.

Revision ID: 0003
Revises: 0002

Only new tables, as in 0002: older ledgers upgrade in place on open and their audit chain keeps
verifying.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision: str | None = "0002"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "feature_sets",
        sa.Column("version_id", sa.String(200), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("spec", sa.Text, nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("registered_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("registered_by", sa.String(200), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_feature_sets_name_status", "feature_sets", ["name", "status"])
    op.create_table(
        "feature_set_status_history",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("version_id", sa.String(200), nullable=False),
        sa.Column("from_status", sa.String(20), nullable=True),
        sa.Column("to_status", sa.String(20), nullable=False),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("evidence", sa.Text, nullable=False),
        sa.Column("run_id", sa.String(200), nullable=True),
        sa.ForeignKeyConstraint(
            ["version_id"], ["feature_sets.version_id"], name="fk_feature_set_status_version"
        ),
    )
    op.create_index(
        "ix_feature_set_status_history_version_id",
        "feature_set_status_history",
        ["version_id", "id"],
    )
    op.create_table(
        "flag_versions",
        sa.Column("version", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
    )

    op.create_table(
        "rollouts",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("model_name", sa.String(200), nullable=False),
        sa.Column("to_version", sa.Integer, nullable=False),
        sa.Column("from_version", sa.Integer, nullable=True),
        sa.Column("plan", sa.Text, nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["model_name", "to_version"],
            ["model_versions.model_name", "model_versions.version"],
            name="fk_rollouts_to_version",
        ),
    )
    op.create_index("ix_rollouts_model_name_id", "rollouts", ["model_name", "id"])
    op.create_table(
        "rollout_stages",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("rollout_id", sa.Integer, nullable=False),
        sa.Column("stage_index", sa.Integer, nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("services", sa.Text, nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("evidence", sa.Text, nullable=False),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["rollout_id"], ["rollouts.id"], name="fk_rollout_stages_rollout"),
        sa.UniqueConstraint("rollout_id", "stage_index", name="uq_rollout_stages_rollout_stage"),
    )


def downgrade() -> None:
    # Status history and flag versions are evidence for audits and incidents: never dropped.
    raise NotImplementedError(
        "the ledger's lifecycle, flag and rollout tables cannot be downgraded"
    )
