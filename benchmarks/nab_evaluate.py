"""Wall and CPU time of ``aiops nab evaluate`` over the whole NAB folder, with its table.

Run: .venv/bin/python benchmarks/nab_evaluate.py [PATH] (default ../shared/data/nab)
Prints the scoreboard and drift table, then one row of timings. The budget is 10 minutes on 2
cores; docs/real-data.md quotes the numbers.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from aiops_assets.cli.nab import format_evaluation
from aiops_assets.core.nab import evaluate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("path", nargs="?", type=Path, default=Path("../shared/data/nab"))
    args = parser.parse_args()
    wall, cpu = time.perf_counter(), time.process_time()
    result = evaluate(args.path)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    print(format_evaluation(result))
    print()
    print(f"{'files':>6}  {'rows':>8}  {'wall s':>7}  {'cpu s':>7}")
    rows = sum(file["rows"] for file in result["files"].values())
    print(f"{len(result['files']):>6}  {rows:>8}  {wall:>7.1f}  {cpu:>7.1f}")


if __name__ == "__main__":
    main()
