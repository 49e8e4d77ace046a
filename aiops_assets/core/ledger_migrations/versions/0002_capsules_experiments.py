"""Run capsules and the experiment log.

Revision ID: 0002
Revises: 0001

Only new tables: ledgers created at 0001 upgrade in place on open, and their audit chain (which
these tables do not touch) keeps verifying.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision: str | None = "0001"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "capsules",
        sa.Column("capsule_id", sa.String(64), primary_key=True),
        sa.Column("kind", sa.String(50), nullable=False),
        sa.Column("asset", sa.String(200), nullable=False),
        sa.Column("run_id", sa.String(200), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("body", sa.Text, nullable=False),
    )
    op.create_index("ix_capsules_run_id", "capsules", ["run_id"])
    op.create_table(
        "experiment_runs",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("run_id", sa.String(200), nullable=False),
        sa.Column("model_name", sa.String(200), nullable=False),
        sa.Column("model_version", sa.Integer, nullable=True),
        sa.Column("capsule_id", sa.String(64), nullable=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("config", sa.Text, nullable=False),
        sa.Column("metrics", sa.Text, nullable=False),
        sa.Column("tags", sa.Text, nullable=False),
        sa.Column("dataset_version", sa.String(200), nullable=False),
        sa.Column("feature_set_version", sa.String(200), nullable=False),
        sa.Column("hypothesis", sa.Text, nullable=False),
        sa.Column("success_criterion", sa.Text, nullable=False),
        sa.Column("criterion_met", sa.Boolean, nullable=True),
        sa.UniqueConstraint("run_id", name="uq_experiment_runs_run_id"),
    )
    op.create_index("ix_experiment_runs_at", "experiment_runs", ["at"])
    op.create_index("ix_experiment_runs_model_name_at", "experiment_runs", ["model_name", "at"])
    op.create_index("ix_experiment_runs_dataset_version", "experiment_runs", ["dataset_version"])
    op.create_index(
        "ix_experiment_runs_feature_set_version", "experiment_runs", ["feature_set_version"]
    )


def downgrade() -> None:
    # Capsules and experiment records are evidence, as the audit log is: never dropped.
    raise NotImplementedError("the ledger's capsule and experiment tables cannot be downgraded")
