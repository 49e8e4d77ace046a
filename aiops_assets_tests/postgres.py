"""The real local PostgreSQL for tests: a throwaway database, or a clear failure in CI.

Locally a missing server skips the test with the reason printed; in CI (where the machine runs
PostgreSQL and .ci/run starts it) it fails, so a broken service can never pass as green.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import sqlalchemy as sa

SERVER_URL = os.environ.get(
    "AIOPS_TEST_POSTGRES_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/test"
)


def server_or_fail() -> sa.Engine:
    engine = sa.create_engine(SERVER_URL, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as connection:
            connection.execute(sa.text("SELECT 1"))
    except sa.exc.OperationalError as error:
        engine.dispose()
        message = f"PostgreSQL at {SERVER_URL} is not reachable: {error.orig}"
        if os.environ.get("CI"):
            pytest.fail(message + " (required in CI: .ci/run starts it)")
        print(message)
        pytest.skip(message)
    return engine


@contextmanager
def throwaway_database(prefix: str) -> Iterator[sa.URL]:
    """A new database on the test server, dropped afterwards whatever happened."""
    admin = server_or_fail()
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    with admin.connect() as connection:
        connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield sa.make_url(SERVER_URL).set(database=name)
    finally:
        with admin.connect() as connection:
            connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
