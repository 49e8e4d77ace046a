"""Wall time and peak memory of `aiops demo` end to end, in a fresh process and a fresh home.

Run: .venv/bin/python benchmarks/bench_demo.py [--days 14] [--repeat 2]
The budget is 3 minutes on 2 cores. The first run creates the instance; later runs re-materialize
over it (the store then de-duplicates every object).
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=14)
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    environment = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("DAGSTER_", "AIOPS_"))
    }
    print(f"aiops demo --days {args.days}")
    print(f"{'run':<6}{'instance':<10}{'wall s':>8}{'peak RSS MiB':>14}")
    with tempfile.TemporaryDirectory() as home:
        for attempt in range(1, args.repeat + 1):
            before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
            started = time.perf_counter()
            subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "aiops_assets.cli",
                    "demo",
                    "--json",
                    "--days",
                    str(args.days),
                    "--home",
                    str(Path(home)),
                ],
                env=environment,
                check=True,
                capture_output=True,
            )
            wall = time.perf_counter() - started
            peak = max(before, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss) / 1024
            print(f"{attempt:<6}{'new' if attempt == 1 else 'reused':<10}{wall:>8.1f}{peak:>14.0f}")


if __name__ == "__main__":
    main()
