"""A real MLflow tracking server (``mlflow server``, SQLite backend) on a free loopback port.

The full ``mlflow`` package (the server) is deliberately not in our lock: it would pin pyarrow
below the version the project uses. Our ``mlflow`` extra is the client (``mlflow-skinny``), and
the server runs from a virtual environment of its own, made once with uv and reused across runs
(``.ci/services`` makes it in CI, so a CI test never installs anything). Each server gets a
throwaway folder for its database and artifacts and its own process group, ended afterwards.
In CI a server that cannot start fails the test; elsewhere the test is skipped, saying why.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from aiops_assets_tests.loopback_server import missing, running

VENV = Path(os.environ.get("AIOPS_TEST_MLFLOW_VENV", "/tmp/aiops-mlflow-venv"))
# The same spec as .ci/services installs.
SERVER_SPEC = "mlflow>=3.1,<4"
START_SECONDS = 180.0
INSTALL_SECONDS = 900.0
# No telemetry or version pings from a test server or client: the machine is offline by design.
QUIET_ENV = {"MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true"}
# Nor its job runner: seven huey worker processes the registry does not need.
SERVER_ENV = QUIET_ENV | {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}


@dataclass(frozen=True)
class MlflowServer:
    url: str
    log: Path


def server_binary() -> Path:
    """``mlflow`` in the server venv, made now if it is missing (never in CI, where
    ``.ci/services`` made it); without uv or the package, fail in CI and skip elsewhere."""
    binary = VENV / "bin" / "mlflow"
    if binary.is_file():
        return binary
    if os.environ.get("CI") == "true":
        missing(f"no MLflow server venv at {VENV}: .ci/services prepares it ({SERVER_SPEC})")
    uv = shutil.which("uv")
    if uv is None:
        missing(f"no MLflow server venv at {VENV} and no uv to make one")
    VENV.parent.mkdir(parents=True, exist_ok=True)
    with open(f"{VENV}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another test worker may be making it right now
        if not binary.is_file():
            _make_venv(str(uv))
    if not binary.is_file():
        missing(f"the MLflow server venv at {VENV} has no mlflow after installing {SERVER_SPEC}")
    return binary


def _make_venv(uv: str) -> None:
    python = f"{sys.version_info.major}.{sys.version_info.minor}"
    environment = os.environ | {"UV_PYTHON_DOWNLOADS": "never"}
    for command in (
        [uv, "venv", "--clear", "-q", "-p", python, str(VENV)],
        [uv, "pip", "install", "-q", "-p", str(VENV / "bin" / "python"), SERVER_SPEC],
    ):
        done = subprocess.run(
            command,
            capture_output=True,
            text=True,
            env=environment,
            timeout=INSTALL_SECONDS,
            check=False,
        )
        if done.returncode != 0:
            missing(f"could not make the MLflow server venv ({' '.join(command)}): {done.stderr}")


@contextmanager
def local_mlflow() -> Iterator[MlflowServer]:
    """A fresh tracking server with an empty SQLite registry; stopped on exit."""
    binary = server_binary()
    with tempfile.TemporaryDirectory(prefix="aiops-mlflow-") as folder:
        root = Path(folder)
        log = root / "mlflow.log"

        def command(port: int) -> list[str]:
            return [
                str(binary),
                "server",
                "--backend-store-uri",
                f"sqlite:///{root / 'mlflow.db'}",
                "--artifacts-destination",
                str(root / "artifacts"),
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--workers",
                "1",
            ]

        with running(
            "MLflow",
            command,
            log,
            start_seconds=START_SECONDS,
            ready_path="/health",
            cwd=root,
            env=os.environ | SERVER_ENV,
        ) as url:
            yield MlflowServer(url=url, log=log)
