"""Our incident engine against a NannyML-style correlation ranker on scenarios with a known cause.

Run: .venv/bin/python benchmarks/incident_vs_baseline.py [--quick] [--skip-peers] [--rehearsals]

With ``--rehearsals`` the four failing rehearsals of aiops_assets_tests/incident_rehearsals.py
(causes planted in real runs of the reference pipeline, about three minutes) are ranked too.

The five scripted scenarios of aiops_assets_tests/incident_scenarios.py (shared with
aiops_assets_tests/core/test_incidents.py), each a ten-day history in which one change caused the
drop and realistic decoys (daily data refreshes, unrelated upgrades, changes after the drop)
share the window:

1. config: a collector's sampling interval on one service (two checkout features drift)
2. null injection: an upstream data change nulls a payments feature
3. library upgrade: pandas changes rolling().std() (the features are in the capsule details)
4. feature set: an aggregate's span changes on one search feature
5. promotion: the failing version went into service; no feature drifts at all

Each history goes through:

- ours: ``build_incident_report``; the rank of the true cause among the ranked suspects.
- baseline: ``correlation_ranker_baseline`` (NannyML's CorrelationRanker idea, in-process, on the
  same drift effects): it ranks features, not changes, so the cause's rank is the best rank of any
  feature the cause touches; a change that touches none cannot be ranked at all.
- NannyML 0.13's real ``CorrelationRanker`` (unless ``--skip-peers``/``--quick``, or
  benchmarks/peers/.venv is missing): in the peers' own environment through
  benchmarks/peers/run_ranker.py, on simulated raw data whose per-partition Wasserstein drift
  equals the scenario's drift effect and whose F1 equals the scenario's F1 (see that script).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiops_assets.core.incidents import (
    Change,
    build_incident_report,
    correlation_ranker_baseline,
)
from aiops_assets_tests.incident_scenarios import (
    SCENARIOS,
    Scenario,
)

HERE = Path(__file__).resolve().parent
PEERS = HERE / "peers"
PEER_PYTHON = PEERS / ".venv" / "bin" / "python"
RANKER_SCRIPT = PEERS / "run_ranker.py"


def cause_features(change: Change) -> tuple[str, ...]:
    """The features a change touches: its own, and for capsules those named in details."""
    extra = change.details.get("features", ()) if isinstance(change.details, dict) else ()
    if isinstance(extra, str):
        extra = (extra,)
    return tuple(dict.fromkeys([*change.features, *(str(f) for f in extra)]))


@dataclass(frozen=True)
class FeatureRank:
    """The best rank of any of the cause's features in a feature ranking (1 = first)."""

    rank: int | None  # None: the cause has no features, or none of them was ranked
    feature: str | None
    correlation: float | None
    ranked: int  # how many features the ranking had
    top: tuple[str, float] | None  # the ranking's first feature, which it blames

    def cell(self, cause: Change) -> str:
        if not cause_features(cause):
            blamed = "" if self.top is None else f" (blames {self.top[0]}, r={self.top[1]:.2f})"
            return "cannot rank: no features" + blamed
        if self.rank is None:
            return "cause's features not ranked"
        return f"{self.rank} of {self.ranked} ({self.feature}, r={self.correlation:.2f})"


def feature_rank(ranking: Sequence[tuple[str, float]], cause: Change) -> FeatureRank:
    features = set(cause_features(cause))
    top = ranking[0] if ranking else None
    for index, (feature, r) in enumerate(ranking, start=1):
        # A cause naming a raw column (``cpu_pct``) touches every feature computed from it.
        if feature in features or any(feature.startswith(f"{c}__") for c in features):
            return FeatureRank(index, feature, r, len(ranking), top)
    return FeatureRank(None, None, None, len(ranking), top)


@dataclass(frozen=True)
class Outcome:
    scenario: Scenario
    our_rank: int | None
    our_top: str
    suspects: int
    baseline: FeatureRank
    baseline_top: tuple[str, float] | None
    nannyml: FeatureRank | None


def our_rank(scenario: Scenario) -> tuple[int | None, str, int]:
    report = build_incident_report(
        "anomaly_detector", scenario.changes, scenario.performance, scenario.drift
    )
    if report is None:
        return None, "no incident found", 0
    for index, suspect in enumerate(report.suspects, start=1):
        if suspect.change == scenario.cause:
            top = report.suspects[0].change
            return index, f"{top.kind}: {top.summary}", len(report.suspects)
    top_text = report.suspects[0].change.summary if report.suspects else "no suspects"
    return None, top_text, len(report.suspects)


def run_nannyml(scenarios: Sequence[Scenario]) -> list[list[tuple[str, float]]]:
    """NannyML's CorrelationRanker on each scenario, in the peers' environment."""
    payload = []
    for scenario in scenarios:
        # Partitions without an F1 (too few labeled anomalies to judge it) carry no signal.
        points = sorted(
            (p for p in scenario.performance if "f1" in p.metrics), key=lambda p: p.partition
        )
        partitions = [p.partition for p in points]
        effects: dict[str, dict[str, float]] = {}
        for point in scenario.drift:
            effects.setdefault(point.feature, {})[point.partition] = abs(point.effect)
        payload.append(
            {
                "name": scenario.name,
                "partitions": partitions,
                "f1": [p.metrics["f1"] for p in points],
                "passed": [p.passed for p in points],
                "drift": {
                    feature: [by_partition.get(part, 0.0) for part in partitions]
                    for feature, by_partition in sorted(effects.items())
                },
            }
        )
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "scenarios.json"
        path.write_text(json.dumps(payload))
        completed = subprocess.run(
            [str(PEER_PYTHON), str(RANKER_SCRIPT), str(path)],
            check=True,
            capture_output=True,
            text=True,
        )
    result = json.loads(completed.stdout.strip().splitlines()[-1])
    return [[(str(f), float(r)) for f, r in item["ranking"]] for item in result["scenarios"]]


def rehearsed_scenarios() -> list[Scenario]:
    """The rehearsals with a planted cause, run through the real pipeline (about half a minute
    each on a quiet machine), as histories the rankers can read."""
    from aiops_assets_tests.incident_rehearsals import (
        REHEARSALS,
        as_scenario,
        prepare_history,
        run_rehearsal,
    )

    scenarios = []
    with tempfile.TemporaryDirectory() as folder:
        print("serving the shared days before the causes...", file=sys.stderr, flush=True)
        history = prepare_history(Path(folder) / "history")
        for number, item in enumerate(REHEARSALS):
            if item.cause is None:
                continue
            print(f"rehearsing {item.name} through the pipeline...", file=sys.stderr, flush=True)
            outcome = run_rehearsal(item, Path(folder) / str(number), history)
            scenarios.append(as_scenario(outcome))
    return scenarios


def evaluate(*, peers: bool, rehearsals: bool = False) -> tuple[list[Outcome], str | None]:
    scenarios = [build() for build in SCENARIOS]
    if rehearsals:
        scenarios += rehearsed_scenarios()
    nannyml: list[list[tuple[str, float]]] | None = None
    skipped: str | None = None
    if not peers:
        skipped = "NannyML CorrelationRanker not run: --skip-peers/--quick"
    elif not PEER_PYTHON.exists():
        skipped = (
            "NannyML CorrelationRanker not run: benchmarks/peers/.venv is missing (create it "
            "with the two commands in benchmarks/peers/requirements.txt)"
        )
    else:
        try:
            nannyml = run_nannyml(scenarios)
        except (subprocess.CalledProcessError, OSError, ValueError) as error:
            detail = getattr(error, "stderr", "") or str(error)
            skipped = f"NannyML CorrelationRanker failed: {detail.strip().splitlines()[-1]}"
    outcomes = []
    for index, scenario in enumerate(scenarios):
        rank, top, count = our_rank(scenario)
        ranking = correlation_ranker_baseline(scenario.performance, scenario.drift)
        outcomes.append(
            Outcome(
                scenario=scenario,
                our_rank=rank,
                our_top=top,
                suspects=count,
                baseline=feature_rank(ranking, scenario.cause),
                baseline_top=ranking[0] if ranking else None,
                nannyml=None if nannyml is None else feature_rank(nannyml[index], scenario.cause),
            )
        )
    return outcomes, skipped


def print_table(outcomes: Sequence[Outcome], skipped: str | None) -> None:
    with_nannyml = all(outcome.nannyml is not None for outcome in outcomes)
    header = "| # | scenario | true cause | our rank | baseline rank of the cause's features |"
    header += " baseline's top feature |"
    if with_nannyml:
        header += " NannyML CorrelationRanker rank |"
    print(header)
    print("|" + "---|" * (header.count("|") - 1))
    for number, outcome in enumerate(outcomes, start=1):
        cause = outcome.scenario.cause
        ours = (
            "not ranked"
            if outcome.our_rank is None
            else f"{outcome.our_rank} of {outcome.suspects}"
        )
        top = outcome.baseline_top
        row = (
            f"| {number} | {outcome.scenario.name} | {cause.kind} {cause.subject}: {cause.summary} "
            f"| {ours} | {outcome.baseline.cell(cause)} | "
            f"{'-' if top is None else f'{top[0]} (r={top[1]:.2f})'} |"
        )
        if with_nannyml and outcome.nannyml is not None:
            row += f" {outcome.nannyml.cell(cause)} |"
        print(row)
    total = len(outcomes)
    ours_first = sum(outcome.our_rank == 1 for outcome in outcomes)
    baseline_first = sum(outcome.baseline.rank == 1 for outcome in outcomes)
    summary = (
        f"\nsummary: cause ranked first in {ours_first}/{total} scenarios by our engine, "
        f"{baseline_first}/{total} by the correlation-ranker baseline"
    )
    if with_nannyml:
        nannyml_first = sum(
            outcome.nannyml is not None and outcome.nannyml.rank == 1 for outcome in outcomes
        )
        summary += f", {nannyml_first}/{total} by NannyML's CorrelationRanker"
    print(summary)
    if skipped:
        print(skipped)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="ours and the baseline only")
    parser.add_argument("--skip-peers", action="store_true", help="do not run NannyML")
    parser.add_argument("--json", action="store_true", help="also print one JSON summary line")
    parser.add_argument(
        "--rehearsals",
        action="store_true",
        help="also rank the causes planted in real pipeline runs (several minutes)",
    )
    args = parser.parse_args(argv)
    outcomes, skipped = evaluate(
        peers=not (args.quick or args.skip_peers), rehearsals=args.rehearsals
    )
    print_table(outcomes, skipped)
    if args.json:
        data: dict[str, Any] = {
            "scenarios": [
                {
                    "name": o.scenario.name,
                    "our_rank": o.our_rank,
                    "baseline_rank": o.baseline.rank,
                    "nannyml_rank": None if o.nannyml is None else o.nannyml.rank,
                }
                for o in outcomes
            ],
            "nannyml_skipped": skipped,
        }
        print(json.dumps(data))


if __name__ == "__main__":
    main()
