"""A real Alertmanager (Debian's ``prometheus-alertmanager``) on a free loopback port, for tests.

Each instance gets a throwaway storage folder, a minimal configuration (one receiver that sends
nowhere), no cluster gossip, and its own process group, killed when the test is done. Without
the binary a test fails in CI (``.ci/services`` installs it) and is skipped elsewhere, with the
reason printed.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

BINARY = os.environ.get("AIOPS_TEST_ALERTMANAGER", "/usr/bin/prometheus-alertmanager")
CONFIG = """\
route:
  receiver: nowhere
  group_wait: 1h
receivers:
  - name: nowhere
"""
START_SECONDS = 20.0


@dataclass(frozen=True)
class Alertmanager:
    url: str
    log: Path

    def alerts(self, **labels: str) -> list[dict[str, Any]]:
        """The active alerts whose labels include ``labels`` (``GET /api/v2/alerts``)."""
        query = urllib.parse.urlencode(
            [("filter", f'{name}="{value}"') for name, value in sorted(labels.items())]
        )
        with urllib.request.urlopen(f"{self.url}/api/v2/alerts?{query}", timeout=5) as reply:
            data: list[dict[str, Any]] = json.loads(reply.read())
        return data


def binary_or_skip() -> str:
    """The Alertmanager binary; missing, fail in CI and skip elsewhere (saying why)."""
    found = shutil.which(BINARY) or shutil.which("prometheus-alertmanager")
    if found:
        return found
    reason = (
        f"Alertmanager not found at {BINARY}: apt-get install -y prometheus-alertmanager "
        "(.ci/services does it in CI)"
    )
    if os.environ.get("CI") == "true":
        pytest.fail(reason)
    print(reason)
    pytest.skip(reason)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/-/ready", timeout=1) as reply:
            return int(reply.status) == 200
    except OSError:
        return False


@contextmanager
def local_alertmanager() -> Iterator[Alertmanager]:
    binary = binary_or_skip()
    with tempfile.TemporaryDirectory(prefix="aiops-alertmanager-") as folder:
        root = Path(folder)
        (root / "alertmanager.yml").write_text(CONFIG)
        port = _free_port()
        url = f"http://127.0.0.1:{port}"
        log = root / "alertmanager.log"
        with log.open("wb") as output:
            process = subprocess.Popen(
                [
                    binary,
                    f"--config.file={root / 'alertmanager.yml'}",
                    f"--storage.path={root / 'data'}",
                    f"--web.listen-address=127.0.0.1:{port}",
                    "--cluster.listen-address=",
                ],
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            deadline = time.monotonic() + START_SECONDS
            while not _ready(url):
                if process.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"Alertmanager did not start on {url}: {log.read_text()[-2000:]}")
                time.sleep(0.1)
            yield Alertmanager(url=url, log=log)
        finally:
            _stop(process)


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)
