"""A throwaway Airflow home with a SQLite metadata database, set before Airflow is imported.

Airflow reads its configuration once, at import, so the variables are set when this conftest is
loaded; the database is created afresh for each test module. The DAGs folder is the package's example
folder, so ``dag.test()`` finds the very DAG file a user copies.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest

import aiops_assets.airflow

EXAMPLE_DAGS = Path(aiops_assets.airflow.__file__).parent / "example_dags"
_HOME = Path(tempfile.mkdtemp(prefix="aiops-airflow-home-"))
os.environ["AIRFLOW_HOME"] = str(_HOME)
os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = f"sqlite:///{_HOME / 'airflow.db'}"
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(EXAMPLE_DAGS)
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
# Asset-scheduled DAGs are queued only when not paused; new DAGs are paused by default.
os.environ["AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION"] = "False"

START = date(2026, 1, 5)
DAYS = 7


@pytest.fixture(scope="module")
def airflow_db() -> Path:
    """A fresh metadata database per test module: the loop remembers its requests as asset
    events there (as a scheduler would), so one module's requests must not be another's past."""
    from airflow.utils import db

    db.resetdb()
    return _HOME


@pytest.fixture
def aiops_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, airflow_db: Path) -> Iterator[Path]:
    """The provider's home for one test: the DAGs read ``AIOPS_*`` when their tasks run."""
    home = tmp_path / "aiops"
    monkeypatch.setenv("AIOPS_HOME", str(home))
    monkeypatch.setenv("AIOPS_START", START.isoformat())
    monkeypatch.setenv("AIOPS_DAYS", str(DAYS))
    monkeypatch.delenv("AIOPS_STORE_ROOT", raising=False)
    monkeypatch.delenv("AIOPS_LEDGER_URL", raising=False)
    monkeypatch.delenv("AIOPS_AUDIT_WITNESS", raising=False)
    yield home
    from aiops_assets.airflow.config import close_ledgers

    close_ledgers()
