"""A real Prometheus (Debian's ``prometheus``) on a free loopback port, its TSDB backfilled.

The history is written as OpenMetrics (:func:`aiops_assets.core.telemetry.to_openmetrics`) and
turned into TSDB blocks by ``promtool tsdb create-blocks-from openmetrics``; the server then runs
on that folder with no scrape targets (nothing but the backfill in it), a retention long enough
that the old blocks are not deleted at start, and its own process group, killed afterwards.
Without the binaries a test fails in CI (``.ci/services`` installs them) and is skipped
elsewhere, with the reason printed.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pandas as pd
import pytest

from aiops_assets.core.telemetry import to_openmetrics
from aiops_assets_tests.loopback_server import missing, running

CONFIG = "global:\n  scrape_interval: 1h\n"
START_SECONDS = 30.0
# Backfilled blocks are as old as the scenario (2026-01): keep them whatever today's date is.
RETENTION = "100y"


def binaries_or_skip() -> tuple[str, str]:
    """``prometheus`` and ``promtool``; missing, fail in CI and skip elsewhere (saying why)."""
    server, tool = shutil.which("prometheus"), shutil.which("promtool")
    if server and tool:
        return server, tool
    missing("prometheus/promtool not found: apt-get install -y prometheus (.ci/services does it)")
    raise AssertionError("unreachable")


def backfill(tool: str, frame: pd.DataFrame, storage: Path) -> None:
    """``frame`` into TSDB blocks under ``storage``, through OpenMetrics and ``promtool``."""
    exposition = storage.parent / "backfill.om"
    exposition.write_text(to_openmetrics(frame), encoding="utf-8")
    done = subprocess.run(
        [tool, "tsdb", "create-blocks-from", "openmetrics", str(exposition), str(storage)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.fail(f"promtool could not backfill: {done.stderr[-2000:]}")


@contextmanager
def backfilled_prometheus(frame: pd.DataFrame) -> Iterator[str]:
    """The base URL of a Prometheus server holding exactly ``frame`` (as ``aiops_*`` gauges)."""
    server, tool = binaries_or_skip()
    with tempfile.TemporaryDirectory(prefix="aiops-prometheus-") as folder:
        root = Path(folder)
        storage = root / "tsdb"
        backfill(tool, frame, storage)
        (root / "prometheus.yml").write_text(CONFIG)

        def command(port: int) -> list[str]:
            return [
                server,
                f"--config.file={root / 'prometheus.yml'}",
                f"--storage.tsdb.path={storage}",
                f"--storage.tsdb.retention.time={RETENTION}",
                f"--web.listen-address=127.0.0.1:{port}",
            ]

        with running(
            "Prometheus", command, root / "prometheus.log", start_seconds=START_SECONDS
        ) as url:
            yield url
