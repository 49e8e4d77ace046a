"""One lab incident end to end: draw, serve (redrawing a fault that failed nothing), diagnose
with ``aiops incident --json``, and score our report and the correlation-ranker baseline.

Each incident home keeps ``incident.json`` (what was planted), ``served.json`` (what each day
did) and ``result.json`` (the scores), so ``diagnose_only`` re-ranks a stored home without
serving it again, with the same deploy stand-ins active.
"""

from __future__ import annotations

import contextlib
import json
import math
import shutil
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from aiops_assets_tests.incident_lab.families import draw_incident
from aiops_assets_tests.incident_lab.pipeline import (
    LabError,
    aiops,
    label_counts,
    load_served,
    load_spec,
    performance_and_drift,
    prepare_history,
    recorded_changes,
    redeploy,
    serve_incident,
)
from aiops_assets_tests.incident_lab.spec import (
    FIRST_INCIDENT_DAY,
    Fault,
    IncidentSpec,
    feature_matches,
    feature_rank,
    first_rank,
    matches_any,
    suspect_changes,
)

RESULT_FILE = "result.json"
MAX_ATTEMPTS = 5
Progress = Callable[[str], None]


def history_home(work: Path, base_seed: int) -> Path:
    return work / "histories" / f"base-{base_seed}"


def incident_home(work: Path, family: str, seed: int) -> Path:
    return work / "incidents" / f"{family}-{seed}"


def run_incident(
    family: str,
    seed: int,
    base_seed: int,
    work: Path,
    *,
    max_attempts: int = MAX_ATTEMPTS,
    progress: Progress | None = None,
    diagnose: bool = True,
) -> dict[str, Any]:
    """Serve incident ``seed`` of ``family`` until its performance check fails (a fault that
    fails nothing, is caught by the quality gate, or is preceded by a failure is redrawn, up to
    ``max_attempts`` times), then diagnose and score it, unless ``diagnose`` is False (status
    ``served``: held-out seeds stay unseen until ``diagnose_only`` ranks them). The result is
    also ``result.json``."""
    history = prepare_history(history_home(work, base_seed), base_seed)
    home = incident_home(work, family, seed)
    attempts: list[dict[str, Any]] = []
    for attempt in range(max_attempts):
        spec = draw_incident(family, seed, base_seed, attempt, label_counts(base_seed))
        with contextlib.ExitStack() as deploys:
            began = time.perf_counter()
            served = serve_incident(spec, home, history, deploys)
            attempts.append(
                {
                    "attempt": attempt,
                    "status": served.status,
                    "cause": served.spec.cause.words(),
                    "serve_seconds": round(time.perf_counter() - began, 2),
                    "days": [o.__dict__ for o in served.days],
                }
            )
            if progress is not None and served.status != "incident":
                progress(f"  {family}-{seed} attempt {attempt}: {served.status}, redrawing")
            if served.status == "incident" and not diagnose:
                return _write(home, {**_identity(spec), "status": "served", "attempts": attempts})
            if served.status == "incident":
                return evaluate(home, served.spec, served.to_dict(), attempts, deploys_active=True)
    shutil.rmtree(home, ignore_errors=True)
    home.mkdir(parents=True)
    identity = {"name": f"{family}-{seed}", "family": family, "seed": seed, "base_seed": base_seed}
    return _write(home, {**identity, "status": "no_incident", "attempts": attempts})


def _identity(spec: IncidentSpec) -> dict[str, Any]:
    return {
        "name": spec.name,
        "family": spec.family,
        "seed": spec.seed,
        "base_seed": spec.base_seed,
    }


def _write(home: Path, result: dict[str, Any]) -> dict[str, Any]:
    (home / RESULT_FILE).write_text(json.dumps(result, indent=1, default=str))
    return result


def diagnose_only(home: Path) -> dict[str, Any]:
    """Diagnose a stored incident home again (the deploys that had landed entered again)."""
    previous = _stored_result(home)
    if previous is not None and previous.get("status") == "no_incident":
        return previous
    spec, served = load_spec(home), load_served(home)
    attempts = list((previous or {}).get("attempts") or [])
    return evaluate(home, spec, served, attempts, deploys_active=False)


def _stored_result(home: Path) -> dict[str, Any] | None:
    path = home / RESULT_FILE
    return dict(json.loads(path.read_text())) if path.is_file() else None


def stored_result(home: Path) -> dict[str, Any] | None:
    """The result a run left in ``home``, if any (a work dir resumes from them)."""
    return _stored_result(home)


def evaluate(
    home: Path,
    spec: IncidentSpec,
    served: Mapping[str, Any],
    attempts: Sequence[Mapping[str, Any]],
    *,
    deploys_active: bool,
) -> dict[str, Any]:
    """Diagnose and score a served incident. Unless ``deploys_active`` (the serving process
    still holds them), the deploys that had landed are entered again for the diagnosis."""
    last_day = max([int(d["day"]) for d in served.get("days") or ()] or [FIRST_INCIDENT_DAY])
    with contextlib.ExitStack() as deploys:
        if not deploys_active:
            redeploy(deploys, spec, last_day)
        diagnosis = diagnose(home, spec.base_seed)
        changes = _safely(lambda: recorded_changes(home, spec.base_seed))
        performance, drift = performance_and_drift(home, spec.base_seed)
    decoys = tuple(d for d in spec.decoys if d.day <= last_day)
    report = diagnosis.get("report")
    result: dict[str, Any] = {
        **_identity(spec),
        "status": "incident",
        "cause": spec.cause.words(),
        "decoys": [d.words() for d in decoys],
        "cause_fault": spec.cause.to_dict(),
        "decoy_faults": [d.to_dict() for d in decoys],
        "failed_partition": served.get("failed_partition"),
        "attempts": list(attempts),
        "diagnosis": {k: v for k, v in diagnosis.items() if k != "report"},
        "ours": score_report(report, spec.cause, decoys),
        "truth_recorded": _truth_recorded(changes, suspect_changes(report), spec.cause),
        "baseline": score_baseline(performance, drift, report, spec.cause, decoys),
        "rankers_input": rankers_input(spec.name, performance, drift, report),
    }
    return _write(home, result)


def _safely(read: Callable[[], Any]) -> Any:
    try:
        return read()
    except Exception as error:  # the change log is being rewritten: say so, keep scoring
        return {"error": f"{type(error).__name__}: {error}"}


def diagnose(home: Path, base_seed: int) -> dict[str, Any]:
    """``aiops incident --json --home HOME``, timed, then once more (a repeated query: the
    stored answer), then with another ``--top`` (a new question: only the replays are cached).

    The first query ignores the replay cache (``--no-cache``: the failed check's own diagnosis
    filled it while serving, and an earlier ``--diagnose-only`` too) and refills it, so it pays
    for its replays and the second shows what a cached one costs."""
    began = time.perf_counter()
    first = aiops(home, base_seed, "incident", "--json", "--no-cache")
    seconds = time.perf_counter() - began
    began = time.perf_counter()
    aiops(home, base_seed, "incident", "--json")
    repeat = time.perf_counter() - began
    # Another question about the same history: its answer is not stored, its replays are.
    began = time.perf_counter()
    aiops(home, base_seed, "incident", "--json", "--top", "9")
    replays_cached = time.perf_counter() - began
    error = None
    report = None
    if first.code != 0:
        error = (first.stderr.strip().splitlines() or ["no message"])[-1]
    elif first.stdout.strip():
        report = json.loads(first.stdout.strip().splitlines()[-1])
    else:
        error = (first.stderr.strip().splitlines() or ["no incident"])[-1]
    return {
        "seconds": round(seconds, 3),
        "repeat_seconds": round(repeat, 3),
        "replays_cached_seconds": round(replays_cached, 3),
        "error": error,
        "report": report,
    }


def _change_words(change: Mapping[str, Any]) -> str:
    where = f"[{change.get('partition')}]" if change.get("partition") else ""
    service = (change.get("details") or {}).get("service")
    who = f" service={service}" if service else ""
    return f"{change.get('kind')} {change.get('subject')}{where}{who}: {change.get('summary', '')}"[
        :200
    ]


def score_report(
    report: Mapping[str, Any] | None, cause: Fault, decoys: Sequence[Fault]
) -> dict[str, Any]:
    """Where our report ranks the truth, and whether a decoy is its first suspect."""
    changes = suspect_changes(report)
    rank = first_rank(changes, cause.predicates)
    decoy_predicates = [p for d in decoys for p in d.predicates]
    top = changes[0] if changes else None
    decoy_first = bool(
        top is not None
        and matches_any(top, decoy_predicates)
        and not matches_any(top, cause.predicates)
    )
    matched = changes[rank - 1] if rank is not None else None
    return {
        "rank": rank,
        "suspects": len(changes),
        "top": None if top is None else _change_words(top),
        "decoy_first": decoy_first,
        "service_checked": None
        if matched is None
        else all(p.service_checked(matched) for p in cause.predicates if p.matches(matched)),
        "verdict": (report or {}).get("verdict"),
    }


def _truth_recorded(
    changes: Any, suspects: Sequence[Mapping[str, Any]], cause: Fault
) -> dict[str, Any]:
    """Where the planted cause was recorded: the pipeline's change log, and the report (label
    health, for one, is judged by the diagnosis, not recorded as a change)."""
    in_report = [c for c in suspects if matches_any(c, cause.predicates)]
    if isinstance(changes, dict):  # the change log could not be read
        return {"checked": False, "recorded": bool(in_report), **changes}
    found = [c for c in changes if matches_any(c, cause.predicates)]
    return {
        "checked": True,
        "recorded": bool(found or in_report),
        "in_change_log": bool(found),
        "in_report": bool(in_report),
        "matches": [_change_words(c) for c in (found or in_report)[:3]],
    }


def report_metric(report: Mapping[str, Any] | None, performance: Sequence[Any]) -> str:
    """The metric the report explains; without a report, F1 if the failing day has one."""
    if report and report.get("metric"):
        return str(report["metric"])
    failed = [p for p in performance if not p.passed]
    if failed and "f1" not in failed[0].metrics:
        return "false_alarm_rate"
    return "f1"


def score_baseline(
    performance: Sequence[Any],
    drift: Sequence[Any],
    report: Mapping[str, Any] | None,
    cause: Fault,
    decoys: Sequence[Fault],
) -> dict[str, Any]:
    """NannyML's CorrelationRanker idea in-process: it ranks drift features, so the truth's rank
    is that of the first feature the cause touches (none touched: it cannot rank the cause)."""
    from aiops_assets.core.incidents import correlation_ranker_baseline

    ranking = correlation_ranker_baseline(
        performance, drift, metric=report_metric(report, performance)
    )
    return score_ranking([feature for feature, _ in ranking], cause, decoys)


def score_ranking(ranking: Sequence[str], cause: Fault, decoys: Sequence[Fault]) -> dict[str, Any]:
    top = ranking[0] if ranking else None
    decoy_globs = [g for d in decoys for g in d.features]
    return {
        "rank": feature_rank(ranking, cause.features) if cause.features else None,
        "rankable": bool(cause.features),
        "ranked": len(ranking),
        "top": top,
        "decoy_first": bool(
            top is not None
            and feature_matches(top, decoy_globs)
            and not feature_matches(top, cause.features)
        ),
    }


def rankers_input(
    name: str,
    performance: Sequence[Any],
    drift: Sequence[Any],
    report: Mapping[str, Any] | None,
) -> dict[str, Any]:
    """The per-partition performance and drift effects, in the shape benchmarks/peers/
    run_ranker.py reads. A false-alarm incident is given as 1 - false-alarm rate, so NannyML's
    F1-shaped simulation sees the drop it would otherwise not see."""
    metric = report_metric(report, performance)
    points = sorted(
        (p for p in performance if _finite(p.metrics.get(metric)) is not None),
        key=lambda p: p.partition,
    )
    values = [float(p.metrics[metric]) for p in points]
    if metric == "false_alarm_rate":
        values = [1.0 - value for value in values]
    partitions = [p.partition for p in points]
    effects: dict[str, dict[str, float]] = {}
    for point in drift:
        effects.setdefault(point.feature, {})[point.partition] = abs(float(point.effect))
    return {
        "name": name,
        "metric": metric,
        "partitions": partitions,
        "f1": values,
        "passed": [bool(p.passed) for p in points],
        "drift": {
            feature: [by_partition.get(part, 0.0) for part in partitions]
            for feature, by_partition in sorted(effects.items())
        },
    }


def _finite(value: Any) -> float | None:
    if isinstance(value, int | float) and math.isfinite(float(value)):
        return float(value)
    return None


__all__ = [
    "LabError",
    "diagnose",
    "diagnose_only",
    "evaluate",
    "history_home",
    "incident_home",
    "run_incident",
    "score_baseline",
    "score_ranking",
    "score_report",
    "stored_result",
]
