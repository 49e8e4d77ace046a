"""Alembic migrations of the ledger schema, run by ``Ledger`` itself (there is no alembic.ini)."""
