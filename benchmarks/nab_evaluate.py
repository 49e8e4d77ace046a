"""Wall and CPU time of ``aiops nab evaluate`` over the whole NAB folder, with its tables.

Run: .venv/bin/python benchmarks/nab_evaluate.py [PATH] (default ../shared/data/nab)
Prints the cross-validated scoreboard (leave one category out, the headline; leave one file
out; in-sample, labelled), the per-category and per-family tables and the choices, then one row
of timings. The budget is 120 s wall on 2 cores; docs/real-data.md quotes the numbers.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from aiops_assets.cli.nab import format_evaluation
from aiops_assets.core.nab_cv import evaluate

BUDGET_SECONDS = 120.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("path", nargs="?", type=Path, default=Path("../shared/data/nab"))
    args = parser.parse_args()
    wall, cpu = time.perf_counter(), time.process_time()
    result = evaluate(args.path)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    print(format_evaluation(result))
    print()
    print(f"{'files':>6}  {'rows':>8}  {'candidates':>10}  {'wall s':>7}  {'cpu s':>7}  budget")
    rows = sum(file["rows"] for file in result["files"].values())
    verdict = "within" if wall <= BUDGET_SECONDS else "OVER"
    print(
        f"{len(result['files']):>6}  {rows:>8}  {result['grid']['candidates']:>10}  "
        f"{wall:>7.1f}  {cpu:>7.1f}  {verdict} {BUDGET_SECONDS:.0f} s"
    )


if __name__ == "__main__":
    main()
