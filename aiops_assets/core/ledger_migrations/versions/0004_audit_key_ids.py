"""Each audit entry names the id of the key that signed it, so keys can be rotated.

Revision ID: 0004
Revises: 0003

One nullable column: entries written before it have no key id and verify with the ledger's
unlabelled key (the one it always had), so older ledgers upgrade in place and keep verifying.
The id is not part of the entry's hash: rewriting it only makes the entry name a key that does
not sign it, which verification reports.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision: str | None = "0003"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    # A plain ADD COLUMN on both SQLite and PostgreSQL: no table rebuild, the rows stay as hashed.
    op.add_column("audit_log", sa.Column("key_id", sa.String(64), nullable=True))


def downgrade() -> None:
    # Without the ids, entries signed by a rotated-out key could no longer be told apart.
    raise NotImplementedError("the audit log's key ids cannot be downgraded")
