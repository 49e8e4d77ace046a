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
import tempfile
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiops_assets_tests.loopback_server import missing, running

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
    missing(
        f"Alertmanager not found at {BINARY}: apt-get install -y prometheus-alertmanager "
        "(.ci/services does it in CI)"
    )
    raise AssertionError("unreachable")


@contextmanager
def local_alertmanager() -> Iterator[Alertmanager]:
    binary = binary_or_skip()
    with tempfile.TemporaryDirectory(prefix="aiops-alertmanager-") as folder:
        root = Path(folder)
        (root / "alertmanager.yml").write_text(CONFIG)
        log = root / "alertmanager.log"

        def command(port: int) -> list[str]:
            return [
                binary,
                f"--config.file={root / 'alertmanager.yml'}",
                f"--storage.path={root / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--cluster.listen-address=",
            ]

        with running("Alertmanager", command, log, start_seconds=START_SECONDS) as url:
            yield Alertmanager(url=url, log=log)
