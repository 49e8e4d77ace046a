"""``aiops nab verify-scorer`` and ``aiops nab evaluate``: the pipeline on real NAB telemetry.

Neither command needs Dagster. ``evaluate`` chooses among ``core.detectors`` by cross-validation
(``core.nab_cv``), so its headline is a score on files the choice never saw; ``--pipeline`` adds
the reference pipeline's own path (loader, snapshot, features, model, drift engine), and
``--through-dagster`` runs the in-sample choice through the NAB assets (``nab_location``).
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
    help="Score a declared grid of detectors (isolation forest, seasonal residual, EWMA, "
    "ensembles) and alarm rules on every file, choose among them by cross-validation (leave "
    "one category out: the choice for a category is made on the other categories' files), and "
    "print the cross-validated NAB score per profile, with the in-sample score beside it, per "
    "category and per detector family, beside the published detectors when scoreboard/ is "
    "there. PATH is a NAB-format folder (data/<category>/*.csv, labels/combined_windows.json)."
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
    "--pipeline",
    is_flag=True,
    help="also run the reference pipeline on every file (snapshot, features, isolation forest, "
    "drift checks) and print its score and drift verdicts (minutes on the whole corpus)",
)
@click.option(
    "--store",
    type=click.Path(path_type=Path, file_okay=False),
    help="with --pipeline: keep the snapshots in this artifact store (default: none)",
)
@click.option(
    "--through-dagster",
    is_flag=True,
    help="also run every file through the Dagster assets nab_series and nab_alarms (one "
    "partition per file, the in-sample choice per profile, a throwaway instance and store), "
    "score the stored alarms and print that score beside the core path's; exit 1 if they differ",
)
@json_option
@verbose_option
def evaluate(
    path: Path,
    files: tuple[str, ...],
    pipeline: bool,
    store: Path | None,
    through_dagster: bool,
    as_json: bool,
) -> int:
    from aiops_assets.core.nab import corpus_files, evaluate_pipeline
    from aiops_assets.core.nab_cv import evaluate as evaluate_corpus
    from aiops_assets.core.store import ArtifactStore
    from aiops_assets.core.telemetry import TelemetryFormatError, read_nab_windows

    if store is not None and not pipeline:
        raise CliError("--store keeps the reference pipeline's snapshots: add --pipeline")
    known = corpus_files(path)
    unknown = sorted(set(files) - set(known))
    if unknown:
        raise CliError(f"no such NAB file(s): {', '.join(unknown)}")
    if not known:
        raise CliError(f"{path / 'data'} holds no <category>/<file>.csv")
    try:  # before any file runs: a folder without labels fails in one line, not after minutes
        windows = read_nab_windows(path)
    except TelemetryFormatError as error:
        raise CliError(str(error)) from error
    unlabelled = sorted(set(files or known) - set(windows))
    if unlabelled:
        raise CliError(
            f"no entry in labels/combined_windows.json for {', '.join(unlabelled)} "
            "(use [] for a file without anomalies)"
        )
    started = time.monotonic()
    try:
        result = evaluate_corpus(path, files=list(files) or None, progress=make_progress())
        if pipeline:
            result["pipeline"] = evaluate_pipeline(
                path,
                files=list(files) or None,
                store=ArtifactStore(store) if store is not None else None,
                progress=make_progress(),
            )
        if through_dagster:
            result["dagster"] = _through_dagster(path, list(files) or known, result)
    except TelemetryFormatError as error:
        raise CliError(str(error)) from error
    result["seconds"] = time.monotonic() - started
    if as_json:
        print_json(result)
    else:
        click.echo(format_evaluation(result, width=output_width()))
    return EXIT_FAILED if "dagster" in result and not result["dagster"]["identical"] else 0


def _through_dagster(path: Path, files: list[str], result: Mapping[str, Any]) -> dict[str, Any]:
    """The in-sample choice run through the NAB assets, its score beside the core path's."""
    from aiops_assets.nab_location import (
        NabDagsterError,
        candidate_from_winner,
        evaluate_through_dagster,
    )

    chosen = {
        profile: candidate_from_winner(winner) for profile, winner in result["winner"].items()
    }
    try:
        dagster = evaluate_through_dagster(path, files, chosen, progress=make_progress())
    except NabDagsterError as error:
        raise CliError(str(error)) from error
    core = result["ours"]["in_sample"]
    dagster["core_in_sample"] = core
    dagster["identical"] = dagster["ours"] == core
    return dagster


_PROTOCOLS = {
    "leave_one_category_out": "cross-validated, leave one category out",
    "leave_one_file_out": "cross-validated, leave one file out within its category",
    "in_sample": "IN-SAMPLE (chosen on the files scored)",
}


def format_evaluation(result: Mapping[str, Any], *, width: int | None = None) -> str:
    """The headline, the scoreboard, the per-category and per-family tables, the choices."""
    board = result["scoreboard"]
    headline = result["headline"]
    lines = [
        f"NAB on {board['files']} files in {board['categories']} categories "
        f"({board['windows']} windows), normalized on these files (null 0, perfect 100); "
        f"{result['grid']['candidates']} candidates. Headline: {_PROTOCOLS[headline]}.",
        format_table(["detector", *PROFILE_COLUMNS], _score_rows(result), width=width),
    ]
    if board["incomplete"]:
        lines.append(
            "left out (no published result for every file): "
            + ", ".join(sorted(board["incomplete"]))
        )
    lines += [
        "",
        "Per category and profile (a category without windows: raw score, 0 is silent):",
        format_table(
            [
                "category",
                "files",
                "windows",
                "profile",
                "cross-val",
                "leave-file-out",
                "in-sample",
                "windowedGaussian",
                "best published",
            ],
            _category_rows(result),
            width=width,
        ),
        "",
        "Per detector family (each chosen by the same protocol among its own candidates):",
        format_table(
            ["family", "profile", "cross-val", "leave-file-out", "in-sample"],
            _family_rows(result),
            width=width,
        ),
        "",
        "Chosen (standard profile): in-sample "
        + result["choices"]["in_sample"]["standard"]
        + "; per held-out category:",
        *(
            f"  {category}: {choice['standard']}"
            for category, choice in result["choices"]["leave_one_category_out"].items()
        ),
    ]
    if "pipeline" in result:
        lines += ["", "Reference pipeline:", _format_pipeline(result["pipeline"], width)]
    if "dagster" in result:
        lines += ["", _format_dagster(result["dagster"])]
    if "seconds" in result:
        lines.append(f"\n{result['seconds']:.0f} s")
    return "\n".join(lines)


def _format_dagster(dagster: Mapping[str, Any]) -> str:
    """The Dagster path's score beside the core path's, per profile, and whether they agree."""
    scores = ", ".join(
        f"{name} {dagster['ours'][name]:.2f} (core {dagster['core_in_sample'][name]:.2f})"
        for name in PROFILE_COLUMNS
        if name in dagster["ours"]
    )
    verdict = "identical to" if dagster["identical"] else "DIFFERENT from"
    return (
        f"Through the Dagster assets (nab_series -> nab_alarms, {len(dagster['files'])} "
        f"partitions, in-sample choice, {dagster['seconds']:.0f} s):\n  {scores}\n  "
        f"{verdict} the core path's in-sample score"
    )


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _score_rows(result: Mapping[str, Any]) -> list[list[str]]:
    ours = result["ours"]
    rows = [
        (f"ours, {_PROTOCOLS[protocol]}", scores)
        for protocol, scores in ours.items()
        if scores is not None
    ]
    board = [*rows, *result["published"].items()]
    ranked = sorted(board, key=lambda item: -item[1]["standard"])
    return [
        [name, *(f"{scores[profile]:.2f}" for profile in PROFILE_COLUMNS)]
        for name, scores in ranked
    ]


def _category_rows(result: Mapping[str, Any]) -> list[list[str]]:
    rows = []
    for category, summary in result["per_category"].items():
        for profile in PROFILE_COLUMNS:
            published = summary["published"]
            best = max(published.items(), key=lambda item: item[1][profile], default=None)
            rows.append(
                [
                    category,
                    str(summary["files"]),
                    str(summary["windows"]),
                    profile,
                    *(
                        _fmt(summary[protocol] and summary[protocol][profile])
                        for protocol in _PROTOCOLS
                    ),
                    _fmt(published["windowedGaussian"][profile])
                    if "windowedGaussian" in published
                    else "-",
                    f"{best[0]} {best[1][profile]:.2f}" if best else "-",
                ]
            )
    return rows


def _family_rows(result: Mapping[str, Any]) -> list[list[str]]:
    return [
        [
            family,
            profile,
            *(_fmt(summary[protocol] and summary[protocol][profile]) for protocol in _PROTOCOLS),
        ]
        for family, summary in result["per_family"].items()
        for profile in PROFILE_COLUMNS
    ]


def _format_pipeline(pipeline: Mapping[str, Any], width: int | None) -> str:
    """The reference pipeline's own score (its settings were chosen in-sample) and drift table."""
    drift = pipeline["drift"]
    scores = ", ".join(f"{name} {pipeline['ours'][name]:.2f}" for name in PROFILE_COLUMNS)
    return "\n".join(
        [
            f"score (settings chosen on this subset while it was built: in-sample): {scores}",
            "Drift checks per file (ERROR verdicts; lead time = hours from the first alarm after "
            "the previous window to the window's start, negative inside it):",
            format_table(
                ["file", "partitions", "alarms", "windows", "lead time (h)"],
                _drift_rows(drift),
                width=width,
            ),
            f"windows alarmed before they start: {drift['windows_alarmed_before_start']} of "
            f"{drift['windows']}; inside: {drift['windows_alarmed_inside']}; never: "
            f"{drift['windows_without_alarm']}",
            f"alarms on the {drift['negative_control_files']} files without windows: "
            f"{drift['negative_control_alarms']} in {drift['negative_control_partitions']} "
            "partitions",
        ]
    )


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
