"""``aiops nab verify-scorer`` and ``aiops nab evaluate``: the pipeline on real NAB telemetry.

Neither command needs Dagster: both call the same ``core`` functions the assets call (loader,
canonical snapshot, feature set, detector, drift engine), so the numbers printed here are the
pipeline's, reproducible from a terminal in minutes.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

EXIT_FAILED = 1
EXIT_USAGE = 2
DEFAULT_TOLERANCE = 0.01
PROFILE_COLUMNS = ("standard", "reward_low_FP_rate", "reward_low_FN_rate")


def add_nab_commands(commands: argparse._SubParsersAction) -> None:
    nab = commands.add_parser(
        "nab", help="the Numenta Anomaly Benchmark: verify our scorer, evaluate the pipeline"
    )
    nab_commands = nab.add_subparsers(dest="nab_command", required=True)
    verify = nab_commands.add_parser(
        "verify-scorer",
        help="re-score NAB's published per-row outputs; exit 1 if any score differs too much",
        description=(
            "Score scoreboard/numenta_rows/* at the Numenta detector's published thresholds with "
            "our NAB scorer and print our score beside the published one, per file and profile."
        ),
    )
    verify.add_argument("path", type=Path, help="the NAB folder (data/, labels/, scoreboard/)")
    verify.add_argument(
        "--tolerance",
        type=float,
        default=DEFAULT_TOLERANCE,
        help=f"largest accepted difference (default {DEFAULT_TOLERANCE})",
    )
    verify.add_argument("--json", action="store_true", help="print JSON instead of a table")
    evaluate = nab_commands.add_parser(
        "evaluate",
        help="run the pipeline over every NAB file; our NAB score beside the published detectors",
        description=(
            "For every file: canonical snapshot, features, isolation-forest model learned on the "
            "probationary rows with a label-free alarm rule, drift checks; then NAB's scores per "
            "profile, normalized on exactly these files, beside every published detector's."
        ),
    )
    evaluate.add_argument("path", type=Path, help="the NAB folder (data/, labels/, scoreboard/)")
    evaluate.add_argument(
        "--file",
        dest="files",
        action="append",
        metavar="KEY",
        help="only this file, e.g. realKnownCause/nyc_taxi.csv (repeatable; default: all)",
    )
    evaluate.add_argument(
        "--store", type=Path, help="keep the snapshots in this artifact store (default: none)"
    )
    evaluate.add_argument("--json", action="store_true", help="print one JSON object")


def run_nab_command(args: argparse.Namespace) -> int:
    if not (args.path / "data").is_dir() or not (args.path / "labels").is_dir():
        print(f"aiops nab: {args.path} is not a NAB folder (no data/ or labels/)", file=sys.stderr)
        return EXIT_USAGE
    if args.nab_command == "verify-scorer":
        return _verify(args.path, tolerance=args.tolerance, as_json=args.json)
    if args.nab_command == "evaluate":
        return _evaluate(args.path, files=args.files, store_root=args.store, as_json=args.json)
    raise AssertionError(f"unhandled nab command {args.nab_command}")


def _verify(path: Path, *, tolerance: float, as_json: bool) -> int:
    from aiops_assets.core.nab import verify_scorer

    checks = verify_scorer(path)
    worst = max(check.difference for check in checks)
    failed = [
        check
        for check in checks
        if check.difference > tolerance
        or check.max_row_difference > tolerance
        or not check.counts_match
    ]
    if as_json:
        print(
            json.dumps(
                {
                    "checks": [check.to_dict() for check in checks],
                    "max_difference": worst,
                    "tolerance": tolerance,
                    "passed": not failed,
                },
                sort_keys=True,
            )
        )
    else:
        rows = [
            [
                check.file,
                check.profile,
                f"{check.ours.score:.6f}",
                f"{check.published_score:.6f}",
                f"{check.difference:.2e}",
                "yes" if check.counts_match else "NO",
            ]
            for check in checks
        ]
        print(_table(["file", "profile", "ours", "published", "difference", "counts"], rows))
        verdict = "PASS" if not failed else "FAIL"
        print(
            f"\n{verdict}: {len(checks)} scores, largest difference {worst:.2e} "
            f"(tolerance {tolerance})"
        )
    return EXIT_FAILED if failed else 0


def _evaluate(
    path: Path, *, files: Sequence[str] | None, store_root: Path | None, as_json: bool
) -> int:
    from aiops_assets.core.nab import corpus_files, evaluate
    from aiops_assets.core.store import ArtifactStore
    from aiops_assets.core.telemetry import TelemetryFormatError

    known = set(corpus_files(path))
    unknown = sorted(set(files or ()) - known)
    if unknown:
        print(f"aiops nab evaluate: no such NAB file(s): {', '.join(unknown)}", file=sys.stderr)
        return EXIT_USAGE
    store = ArtifactStore(store_root) if store_root is not None else None
    started = time.monotonic()
    try:
        result = evaluate(path, files=files, store=store)
    except TelemetryFormatError as error:
        print(f"aiops nab evaluate: {error}", file=sys.stderr)
        return EXIT_FAILED
    result["seconds"] = time.monotonic() - started
    if as_json:
        print(json.dumps(result, sort_keys=True))
    else:
        print(format_evaluation(result))
    return 0


def format_evaluation(result: Mapping[str, Any]) -> str:
    """The scoreboard (ours among the published detectors, best first) and the drift verdicts."""
    board = {"ours (aiops_assets)": result["ours"], **result["published"]}
    ranked = sorted(board.items(), key=lambda item: -item[1]["standard"])
    score_rows = [
        [name, *(f"{scores[profile]:.2f}" for profile in PROFILE_COLUMNS)]
        for name, scores in ranked
    ]
    scoreboard = result["scoreboard"]
    lines = [
        f"NAB scores on {scoreboard['files']} files ({scoreboard['windows']} windows), "
        "normalized on these files (null detector 0, perfect 100):",
        _table(["detector", *PROFILE_COLUMNS], score_rows),
    ]
    if scoreboard["incomplete"]:
        lines.append(
            "left out (no published result for every file): "
            + ", ".join(sorted(scoreboard["incomplete"]))
        )
    drift = result["drift"]
    drift_rows = [
        [
            key,
            str(summary["partitions"]),
            str(summary["alarms"]),
            str(summary["windows"]),
            ", ".join(_hours(lead) for lead in summary["lead_time_hours"]) or "-",
        ]
        for key, summary in drift["per_file"].items()
    ]
    lines += [
        "",
        "Drift checks per file (ERROR verdicts; lead time = hours from the first alarm after the "
        "previous window to the window's start, negative inside it):",
        _table(["file", "partitions", "alarms", "windows", "lead time (h)"], drift_rows),
        f"windows alarmed before they start: {drift['windows_alarmed_before_start']} of "
        f"{drift['windows']}; inside: {drift['windows_alarmed_inside']}; never: "
        f"{drift['windows_without_alarm']}",
        f"alarms on the {drift['negative_control_files']} files without windows: "
        f"{drift['negative_control_alarms']} in {drift['negative_control_partitions']} partitions",
    ]
    if "seconds" in result:
        lines.append(f"\n{result['seconds']:.0f} s")
    return "\n".join(lines)


def _hours(lead: float | None) -> str:
    return "none" if lead is None or math.isnan(lead) else f"{lead:+.0f}"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *rows, strict=True)]
    return "\n".join(
        "  ".join(str(cell).ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in [header, *rows]
    )
