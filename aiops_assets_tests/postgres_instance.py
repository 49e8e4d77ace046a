"""A Dagster instance on the real local PostgreSQL, built from the documented deployment file.

The instance is configured by ``docker/dagster.postgres.yaml`` itself, copied into a temporary
``DAGSTER_HOME`` with its ``DAGSTER_PG_*`` variables pointing at a throwaway database: a test that
passes here proves the file users deploy works, not a look-alike written for the test.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import sqlalchemy as sa
import yaml

from aiops_assets_tests.postgres import throwaway_database

POSTGRES_INSTANCE_YAML = Path(__file__).parents[1] / "docker" / "dagster.postgres.yaml"
DOCUMENTED_PORT = 5432


@dataclass(frozen=True)
class PostgresInstanceHome:
    """A ``DAGSTER_HOME`` holding the PostgreSQL variant, and the variables it reads.

    ``environ`` must be in the environment of every process that opens the instance (the
    workers of a concurrency test too), exactly as the deployment sets them in each container.
    """

    dagster_home: Path
    environ: dict[str, str]
    database_url: sa.URL

    def open(self) -> dg.DagsterInstance:
        missing = {name for name, value in self.environ.items() if os.environ.get(name) != value}
        if missing:
            raise RuntimeError(f"set {sorted(missing)} before opening the PostgreSQL instance")
        return dg.DagsterInstance.from_config(str(self.dagster_home))


def instance_environment(url: sa.URL) -> dict[str, str]:
    """The ``DAGSTER_PG_*`` variables that make the documented file point at ``url``."""
    if url.database is None:
        raise ValueError(f"{url!r} names no database")
    return {
        "DAGSTER_PG_USERNAME": url.username or "",
        "DAGSTER_PG_PASSWORD": url.password or "",
        "DAGSTER_PG_HOST": url.host or "127.0.0.1",
        "DAGSTER_PG_DB": url.database,
    }


def write_instance_home(dagster_home: Path, url: sa.URL) -> PostgresInstanceHome:
    """Copy the documented file into ``dagster_home``; only a non-default test port is patched."""
    dagster_home.mkdir(parents=True, exist_ok=True)
    target = dagster_home / "dagster.yaml"
    port = url.port or DOCUMENTED_PORT
    if port == DOCUMENTED_PORT:
        shutil.copyfile(POSTGRES_INSTANCE_YAML, target)
    else:
        config = yaml.safe_load(POSTGRES_INSTANCE_YAML.read_text())
        config["storage"]["postgres"]["postgres_db"]["port"] = port
        target.write_text(yaml.safe_dump(config))
    return PostgresInstanceHome(dagster_home, instance_environment(url), url)


@contextmanager
def environment(variables: dict[str, str]) -> Iterator[None]:
    """Set variables for the duration of the block, restoring what was there before."""
    previous = {name: os.environ.get(name) for name in variables}
    os.environ.update(variables)
    try:
        yield
    finally:
        for name, value in previous.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@contextmanager
def postgres_instance_home(dagster_home: Path, prefix: str) -> Iterator[PostgresInstanceHome]:
    """A throwaway database configured as the instance's storage, with its variables set.

    Fails in CI and skips elsewhere when the server is absent (``throwaway_database``).
    """
    with throwaway_database(prefix) as url:
        home = write_instance_home(dagster_home, url)
        with environment(home.environ):
            yield home
