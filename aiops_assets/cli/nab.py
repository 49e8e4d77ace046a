"""``aiops nab verify-scorer`` and ``aiops nab evaluate``: the pipeline on real NAB telemetry.

Neither command needs Dagster: both call the same ``core`` functions the assets call (loader,
canonical snapshot, feature set, detector, drift engine), so the numbers printed here are the
pipeline's, reproducible from a terminal in minutes (with a line, or a bar, per file meanwhile).
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import click

from aiops_assets.cli._common import (
    EXIT_FAILED,
    CliError,
    Group,
    format_table,
    json_option,
    make_progress,
    output_width,
    print_json,
    print_table,
    verbose_option,
)

DEFAULT_TOLERANCE = 0.01
PROFILE_COLUMNS = ("standard", "reward_low_FP_rate", "reward_low_FN_rate")


def _nab_folder(ctx: click.Context, param: click.Parameter, value: Path) -> Path:
    if not (value / "data").is_dir() or not (value / "labels").is_dir():
        raise CliError(f"{value} is not a NAB folder (no data/ or labels/)")
    return value


def _path_argument(command: Any) -> Any:
    return click.argument("path", type=click.Path(path_type=Path), callback=_nab_folder)(command)


@click.group(cls=Group)
def nab() -> None:
    """The Numenta Anomaly Benchmark: verify our scorer, evaluate the pipeline."""


@nab.command(
    "verify-scorer",
    help="Score scoreboard/numenta_rows/* at the Numenta detector's published thresholds with "
    "our NAB scorer and print our score beside the published one, per file and profile; exit 1 "
    "if any score differs too much. PATH is the NAB folder (data/, labels/, scoreboard/).",
)
@_path_argument
@click.option(
    "--tolerance",
    type=float,
    default=DEFAULT_TOLERANCE,
    help=f"largest accepted difference (default {DEFAULT_TOLERANCE})",
)
@json_option
@verbose_option
def verify_scorer(path: Path, tolerance: float, as_json: bool) -> int:
    from aiops_assets.core.nab import verify_scorer as score_published_rows

    checks = score_published_rows(path)
    worst = max(check.difference for check in checks)
    failed = [
        check
        for check in checks
        if check.difference > tolerance
        or check.max_row_difference > tolerance
        or not check.counts_match
    ]
    if as_json:
        print_json(
            {
                "checks": [check.to_dict() for check in checks],
                "max_difference": worst,
                "tolerance": tolerance,
                "passed": not failed,
            }
        )
        return EXIT_FAILED if failed else 0
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
    print_table(["file", "profile", "ours", "published", "difference", "counts"], rows)
    verdict = "PASS" if not failed else "FAIL"
    click.echo(
        f"\n{verdict}: {len(checks)} scores, largest difference {worst:.2e} (tolerance {tolerance})"
    )
    return EXIT_FAILED if failed else 0


@nab.command(
    help="For every file: canonical snapshot, features, isolation-forest model learned on the "
    "probationary rows with a label-free alarm rule, drift checks; then NAB's scores per "
    "profile, normalized on exactly these files, beside every published detector's. PATH is "
    "the NAB folder (data/, labels/, scoreboard/)."
)
@_path_argument
@click.option(
    "--file",
    "files",
    multiple=True,
    metavar="KEY",
    help="only this file, e.g. realKnownCause/nyc_taxi.csv (repeatable; default: all)",
)
@click.option(
    "--store",
    type=click.Path(path_type=Path, file_okay=False),
    help="keep the snapshots in this artifact store (default: none)",
)
@json_option
@verbose_option
def evaluate(path: Path, files: tuple[str, ...], store: Path | None, as_json: bool) -> int:
    from aiops_assets.core.nab import corpus_files
    from aiops_assets.core.nab import evaluate as evaluate_corpus
    from aiops_assets.core.store import ArtifactStore
    from aiops_assets.core.telemetry import TelemetryFormatError

    unknown = sorted(set(files) - set(corpus_files(path)))
    if unknown:
        raise CliError(f"no such NAB file(s): {', '.join(unknown)}")
    started = time.monotonic()
    try:
        result = evaluate_corpus(
            path,
            files=list(files) or None,
            store=ArtifactStore(store) if store is not None else None,
            progress=make_progress(),
        )
    except TelemetryFormatError as error:
        raise CliError(str(error), EXIT_FAILED) from error
    result["seconds"] = time.monotonic() - started
    if as_json:
        print_json(result)
    else:
        click.echo(format_evaluation(result, width=output_width()))
    return 0


def format_evaluation(result: Mapping[str, Any], *, width: int | None = None) -> str:
    """The scoreboard (ours among the published detectors, best first) and the drift verdicts."""
    scoreboard = result["scoreboard"]
    lines = [
        f"NAB scores on {scoreboard['files']} files ({scoreboard['windows']} windows), "
        "normalized on these files (null detector 0, perfect 100):",
        format_table(["detector", *PROFILE_COLUMNS], _score_rows(result), width=width),
    ]
    if scoreboard["incomplete"]:
        lines.append(
            "left out (no published result for every file): "
            + ", ".join(sorted(scoreboard["incomplete"]))
        )
    drift = result["drift"]
    lines += [
        "",
        "Drift checks per file (ERROR verdicts; lead time = hours from the first alarm after the "
        "previous window to the window's start, negative inside it):",
        format_table(
            ["file", "partitions", "alarms", "windows", "lead time (h)"],
            _drift_rows(drift),
            width=width,
        ),
        f"windows alarmed before they start: {drift['windows_alarmed_before_start']} of "
        f"{drift['windows']}; inside: {drift['windows_alarmed_inside']}; never: "
        f"{drift['windows_without_alarm']}",
        f"alarms on the {drift['negative_control_files']} files without windows: "
        f"{drift['negative_control_alarms']} in {drift['negative_control_partitions']} partitions",
    ]
    if "seconds" in result:
        lines.append(f"\n{result['seconds']:.0f} s")
    return "\n".join(lines)


def _score_rows(result: Mapping[str, Any]) -> list[list[str]]:
    board = {"ours (aiops_assets)": result["ours"], **result["published"]}
    ranked = sorted(board.items(), key=lambda item: -item[1]["standard"])
    return [
        [name, *(f"{scores[profile]:.2f}" for profile in PROFILE_COLUMNS)]
        for name, scores in ranked
    ]


def _drift_rows(drift: Mapping[str, Any]) -> list[list[str]]:
    return [
        [
            key,
            str(summary["partitions"]),
            str(summary["alarms"]),
            str(summary["windows"]),
            ", ".join(_hours(lead) for lead in summary["lead_time_hours"]) or "-",
        ]
        for key, summary in drift["per_file"].items()
    ]


def _hours(lead: float | None) -> str:
    return "none" if lead is None or math.isnan(lead) else f"{lead:+.0f}"


__all__ = ["format_evaluation", "nab"]
