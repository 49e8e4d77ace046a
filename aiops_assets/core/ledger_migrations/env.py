"""Alembic environment for the ledger: online only, on the connection ``Ledger`` passes in.

``Ledger`` opens the connection inside a write transaction (``BEGIN IMMEDIATE`` on SQLite), so
two processes opening a fresh database at once migrate it one after the other instead of both
creating the tables.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection, text

from aiops_assets.core.ledger import VERSION_TABLE, metadata

# Any constant works; it only has to be the same in every process migrating this database.
_POSTGRES_MIGRATION_LOCK = 0x6A10_1ED6


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        version_table=VERSION_TABLE,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        if connection.dialect.name == "postgresql":
            connection.execute(
                text("SELECT pg_advisory_xact_lock(:key)"), {"key": _POSTGRES_MIGRATION_LOCK}
            )
        context.run_migrations()


def run_migrations() -> None:
    if context.is_offline_mode():
        raise RuntimeError(
            "the ledger migrates online only: open it with aiops_assets.core.ledger.Ledger"
        )
    connection = context.config.attributes.get("connection")
    if connection is None:
        raise RuntimeError(
            "the ledger's migrations run through aiops_assets.core.ledger.Ledger, which passes "
            "its connection in; there is no alembic.ini"
        )
    _run(connection)


# Alembic runs this file with its context established. Any other import (a check that imports
# every module under core/, say) must not fail, so it only defines the functions above.
if hasattr(context, "config"):
    run_migrations()
