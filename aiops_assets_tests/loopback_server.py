"""A real server binary on a free loopback port for one test, in its own process group.

Prometheus and Alertmanager are started the same way: a free port, a log file, wait for
``/-/ready`` (both answer it), and at the end the whole process group is ended. A binary that is
missing fails the test in CI (``.ci/services`` installs it) and skips it elsewhere, saying why.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

import pytest


def missing(reason: str) -> None:
    """Fail in CI, skip elsewhere, printing ``reason`` either way."""
    if os.environ.get("CI") == "true":
        pytest.fail(reason)
    print(reason)
    pytest.skip(reason)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _ready(url: str, path: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}{path}", timeout=1) as reply:
            return int(reply.status) == 200
    except OSError:
        return False


@contextmanager
def running(
    name: str,
    command: Callable[[int], Sequence[str]],
    log: Path,
    *,
    start_seconds: float,
    ready_path: str = "/-/ready",
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
) -> Iterator[str]:
    """The base URL of ``command(port)`` once it answers ``ready_path``; stopped on exit."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with log.open("wb") as output:
        process = subprocess.Popen(
            list(command(port)),
            stdout=output,
            stderr=subprocess.STDOUT,
            cwd=cwd,
            env=None if env is None else dict(env),
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + start_seconds
        while not _ready(url, ready_path):
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"{name} did not start on {url}: {log.read_text()[-2000:]}")
            time.sleep(0.1)
        yield url
    finally:
        _stop(process)


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)
