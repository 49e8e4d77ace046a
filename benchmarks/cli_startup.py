"""Start-up time of the `aiops` command: `--help` and two read-only commands, each in a fresh
process, the way a person pays for it at the prompt.

Run: .venv/bin/python benchmarks/cli_startup.py [--runs 5] [--python-path DIR ...]
Each --python-path is a checkout to measure (its `aiops_assets` is imported first); without one,
this checkout. Compare a checkout of an earlier commit with `--python-path /path/to/it`.
The targets on an idle 2-core machine: `--help` at most 1 s, a read-only command at most 2 s.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
LAUNCH = (
    "import sys; sys.path.insert(0, {path!r}); from aiops_assets.cli import main; sys.exit(main())"
)
MAKE_HOME = (
    "import sys; sys.path.insert(0, {path!r}); from pathlib import Path; "
    "from aiops_assets.core.ledger import Ledger; "
    "home = Path({home!r}); home.mkdir(parents=True, exist_ok=True); "
    "Ledger.from_env(f'sqlite:///{{home / \"ledger.db\"}}', "
    "default_key_file=home / 'audit.key').dispose()"
)


def _environment() -> dict[str, str]:
    return {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("DAGSTER_", "AIOPS_"))
    }


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _time(python: str, path: Path, argv: list[str], runs: int) -> tuple[list[float], list[float]]:
    """Wall and CPU seconds per run: on a busy machine the CPU time is what an idle one pays."""
    seconds, cpu = [], []
    for _ in range(runs):
        cpu_before = _cpu()
        started = time.perf_counter()
        completed = subprocess.run(
            [python, "-c", LAUNCH.format(path=str(path)), *argv],
            cwd=path,
            env=_environment(),
            capture_output=True,
            text=True,
        )
        seconds.append(time.perf_counter() - started)
        cpu.append(_cpu() - cpu_before)
        if completed.returncode != 0:
            raise SystemExit(f"{' '.join(argv)} failed in {path}: {completed.stderr[-500:]}")
    return seconds, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--python", default=sys.executable, help="the interpreter to run")
    parser.add_argument(
        "--python-path", action="append", type=Path, default=[], help="a checkout to measure"
    )
    args = parser.parse_args()
    checkouts = args.python_path or [REPO]
    print(f"aiops start-up, {args.runs} fresh processes each (seconds)")
    print(f"{'checkout':<28}{'command':<16}{'median':>8}{'min':>8}{'cpu median':>12}")
    for checkout in checkouts:
        with tempfile.TemporaryDirectory() as scratch:
            home = str(Path(scratch) / "home")
            subprocess.run(
                [args.python, "-c", MAKE_HOME.format(path=str(checkout), home=home)],
                cwd=checkout,
                env=_environment(),
                check=True,
            )
            commands = {
                "--help": ["--help"],
                # A command with the code-location options: they cost nothing until used.
                "backfill --help": ["backfill", "--help"],
                "registry list": ["registry", "list", "--home", home],
                "audit verify": ["audit", "verify", "--home", home],
            }
            # The airflow extra must cost `aiops` nothing: the CLI never imports Airflow.
            _no_airflow(args.python, checkout)
            for label, argv in commands.items():
                seconds, cpu = _time(args.python, checkout, argv, args.runs)
                print(
                    f"{str(checkout)[-27:]:<28}{label:<16}"
                    f"{statistics.median(seconds):>8.2f}{min(seconds):>8.2f}"
                    f"{statistics.median(cpu):>12.2f}"
                )


def _no_airflow(python: str, path: Path) -> None:
    probe = (
        LAUNCH.split("; from")[0]
        + "; import aiops_assets.cli, sys; print(sorted(m for m in sys.modules if m.split('.')[0] == 'airflow'))"
    )
    out = subprocess.run(
        [python, "-c", probe.format(path=str(path))],
        cwd=path,
        env=_environment(),
        capture_output=True,
        text=True,
        check=True,
    )
    if out.stdout.strip() != "[]":
        raise SystemExit(f"importing the CLI loads Airflow: {out.stdout.strip()[:200]}")


if __name__ == "__main__":
    main()
