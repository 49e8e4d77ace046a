"""The `aiops` command as a user runs it: a fresh process, a clean environment."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def aiops_process(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    environment = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("DAGSTER_", "AIOPS_")) and key != "COLUMNS"
    } | (env or {})
    return subprocess.run(
        [sys.executable, "-m", "aiops_assets.cli", *args],
        cwd=cwd,
        env=environment,
        capture_output=True,
        text=True,
        timeout=300,
    )
