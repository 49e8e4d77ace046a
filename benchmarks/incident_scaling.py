"""How the incident query scales with the history behind it, on SQLite.

Run: .venv/bin/python benchmarks/incident_scaling.py [--sizes 100,1000,10000] [--quick]
     [--versions V] [--repeats 3]

For each size N a fresh temporary DAGSTER_HOME (default SQLite storage, the project's
dagster.yaml settings) and a SQLite ledger next to it get a synthetic history:

- N asset materializations over the reference assets: every day ``telemetry_snapshot``,
  ``features`` and ``anomaly_scores`` for that day's partition, and once a week a training
  (``drift_baseline``, ``training_set``, ``candidate_model``, ``champion_model``,
  ``score_baseline``, unpartitioned). So the history grows in time (10,000 materializations
  are about 7 years of days), as a deployment's does. Each carries a
  ``dagster/data_version`` tag, ``dagster/code_version`` (bumped every 90 days), and
  ``features`` a ``config_hash``, ``feature_set_version`` and column schema.
- ``anomaly_scores`` check evaluations per scored day: ``performance`` (f1, false-alarm rate,
  model version) and the two ``drift`` checks (``score/<feature>``, ``drifted``,
  ``policy_sha256``), as the real checks record them.
- V model versions in the ledger (default N/10, at least 10: 1,000 at N=10,000), each assigned
  ``challenger`` then promoted to ``champion``: 2V alias changes, spread over the history.
- An incident in the last four days: the ``features`` config (and with it the feature set and
  one column) changed on the first failing day, one feature's drift jumps, f1 drops. The
  planted cause counts as ranked first when the top suspect is that materialization's config,
  feature-set or data change (one record, three changes with the same touched column). Decoys
  in the lookback: the daily data refreshes, a snapshot code deploy, a drift-policy change, and
  (when the weekly training falls in the window) the training assets' data changes.
  ``--cause rematerialization`` (default): the first failing day's features are built with the
  old config, then rebuilt with the new one (as ``aiops_assets_tests/test_changelog.py`` plants
  it). ``--cause new-partition``: the new config is simply first used for the new day's
  partition. ``collect_changes`` compares config hash, feature-set version and column schema
  only with the previous materialization of the *same partition*, so in that case it reports
  no config or feature-set change at all and the report ranks undifferentiated data changes.

Events are written with their historical timestamps through ``instance.report_dagster_event``
(the call ``report_runless_asset_event`` makes, plus the ``timestamp`` argument, which the
public call does not expose); the ledger gets them through its ``clock``.

What is timed (the incident query, as ``aiops incident`` runs it, but windowed): with
``since`` = 4 days before the first failing evaluation (the engine's lookback is 3 days),
``collect_changes`` + ``performance_history`` + ``drift_history`` + ``build_incident_report``.
Each call is timed with ``time.perf_counter``; the table shows the median of ``--repeats`` runs
per call and of the totals. Building the Definitions is not part of it (printed separately).
"""

from __future__ import annotations

import argparse
import bisect
import hashlib
import itertools
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import dagster as dg
import numpy as np
from dagster._core.events import DagsterEvent, DagsterEventType, StepMaterializationData
from dagster._core.instance.utils import RUNLESS_JOB_NAME, RUNLESS_RUN_ID

from aiops_assets.changelog import collect_changes, drift_history, performance_history
from aiops_assets.core.incidents import build_incident_report
from aiops_assets.core.ledger import Ledger
from aiops_assets.reference.definitions import (
    FEATURES_DRIFT_CHECK,
    PERFORMANCE_CHECK,
    SCORES_DRIFT_CHECK,
    build_definitions,
)
from aiops_assets.reference.settings import PipelineSettings

DEFAULT_SIZES = (100, 1_000, 10_000)
QUICK_SIZES = (100, 1_000)
TARGET_N, TARGET_VERSIONS, TARGET_SECONDS = 10_000, 1_000, 1.0
END = date(2026, 1, 1)  # the day after the last partition
MODEL = "anomaly_detector"
DAILY = ("telemetry_snapshot", "features", "anomaly_scores")
TRAINING = ("drift_baseline", "training_set", "candidate_model", "champion_model", "score_baseline")
FAILING_DAYS = 4
CAUSES = ("rematerialization", "new-partition")
# The planted cause is the features materialization of the first failing day: its config,
# feature-set or data change (one record, the same touched columns).
PLANTED_KINDS = ("config", "feature_set", "data")
SINCE_BEFORE_FIRST_BAD = timedelta(days=4)
HISTORY_BEFORE_FIRST_BAD = timedelta(days=30)
FEATURES = (
    "checkout.cpu_pct__mean_1h",
    "checkout.latency_p99__mean_1h",
    "payments.error_rate__sum_1h",
    "payments.mem_pct__mean_1h",
    "search.latency_p99__rolling_std_6h",
)
# The planted cause: features' config changes the window of one aggregate.
RENAMED_FROM, RENAMED_TO = "checkout.cpu_pct__mean_1h", "checkout.cpu_pct__mean_6h"
DAGSTER_YAML = "telemetry:\n  enabled: false\n"


def report_at(instance: dg.DagsterInstance, event: Any, at: datetime) -> None:
    """``report_runless_asset_event`` with a timestamp: the history must span its real days."""
    if isinstance(event, dg.AssetMaterialization):
        kind, data = DagsterEventType.ASSET_MATERIALIZATION, StepMaterializationData(event)
    else:
        kind, data = DagsterEventType.ASSET_CHECK_EVALUATION, event
    instance.report_dagster_event(
        DagsterEvent(
            event_type_value=kind.value, event_specific_data=data, job_name=RUNLESS_JOB_NAME
        ),
        run_id=RUNLESS_RUN_ID,
        timestamp=at.timestamp(),
    )


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass
class History:
    n: int
    days: int
    first_bad_day: int
    materializations: int = 0
    evaluations: int = 0
    versions: int = 0
    alias_changes: int = 0
    first_bad_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    build_seconds: float = 0.0


def _day_start(day: int, days: int) -> datetime:
    return datetime.combine(END - timedelta(days=days - day), datetime.min.time(), tzinfo=UTC)


def plan_days(n: int) -> int:
    """The number of days whose pipeline produces exactly ``n`` materializations (or just over)."""
    count, day = 0, 0
    while count < n:
        count += len(DAILY) + (len(TRAINING) if day % 7 == 6 else 0)
        day += 1
    return max(day, FAILING_DAYS + 10)


def build_history(
    instance: dg.DagsterInstance,
    ledger_clock: list[datetime],
    ledger: Ledger,
    n: int,
    versions: int,
    cause: str = "rematerialization",
) -> History:
    rng = np.random.default_rng(n)
    days = plan_days(n)
    first_bad = days - FAILING_DAYS
    history = History(n=n, days=days, first_bad_day=first_bad)
    started = time.perf_counter()

    # The ledger first: version i is registered and promoted at an even spot in the history,
    # the last one a week before the incident, so the champion does not change across it.
    span_end = _day_start(first_bad - 7, days)
    span_start = _day_start(0, days)
    step = (span_end - span_start) / max(versions, 1)
    promoted_at: list[datetime] = []
    for index in range(versions):
        moment = span_start + step * index + timedelta(hours=3)
        ledger_clock[0] = moment
        version = ledger.register_model_version(
            MODEL,
            _sha(f"model-{index}"),
            metrics={"f1": 0.9},
            training_set_version=f"ts-{index}",
            feature_set_version="fs-1",
            actor="bench",
            run_id=f"train-{index}",
        )
        ledger.set_alias(
            MODEL, "challenger", version.version, actor="bench", reason="trained", run_id=None
        )
        ledger_clock[0] = moment + timedelta(minutes=5)
        ledger.set_alias(
            MODEL, "champion", version.version, actor="gate", reason="gate", kind="promote"
        )
        promoted_at.append(ledger_clock[0])
        history.alias_changes += 2
    history.versions = versions

    def champion_at(moment: datetime) -> int:
        return max(1, bisect.bisect_right(promoted_at, moment))

    old_columns = [*FEATURES]
    new_columns = [RENAMED_TO if c == RENAMED_FROM else c for c in FEATURES]
    written = 0
    for day in range(days):
        partition = (END - timedelta(days=days - day)).isoformat()
        start = _day_start(day + 1, days)  # a day is ingested just after it ends
        failing = day >= first_bad
        columns = new_columns if failing else old_columns
        # The snapshot's code is deployed every 90 days, and once more 2 days before the drop.
        hotfix = day >= first_bad - 2
        snapshot_code = "snapshot-hotfix" if hotfix else f"snapshot-{day // 90}"
        code = {
            "telemetry_snapshot": snapshot_code,
            "features": f"features-{day // 90}",
            "anomaly_scores": f"scores-{day // 90}",
        }
        # (asset, uses the new features config); with --cause rematerialization the first
        # failing day's features are built with the old config, then rebuilt with the new one.
        emissions = [(asset, failing) for asset in DAILY]
        if day == first_bad and cause == "rematerialization":
            emissions.insert(1, ("features", False))
        for offset, (asset, new_config) in enumerate(emissions):
            if written >= n:
                break
            metadata: dict[str, Any] = {
                "dagster/row_count": dg.MetadataValue.int(1440 + int(rng.integers(-5, 5))),
                "null_fraction": dg.MetadataValue.float(float(rng.uniform(0, 0.01))),
            }
            if asset == "features":
                metadata["config_hash"] = dg.MetadataValue.text(
                    _sha("cfg-2" if new_config else "cfg-1")
                )
                metadata["feature_set_version"] = dg.MetadataValue.text(
                    "fs-2" if new_config else "fs-1"
                )
                metadata["dagster/column_schema"] = dg.TableSchema(
                    columns=[
                        dg.TableColumn(name, "float")
                        for name in (new_columns if new_config else old_columns)
                    ]
                )
            version_of = f"{asset}-{partition}-{'new' if new_config else 'old'}"
            report_at(
                instance,
                dg.AssetMaterialization(
                    asset_key=asset,
                    partition=partition,
                    metadata=metadata,
                    tags={
                        "dagster/data_version": _sha(version_of)[:16],
                        "dagster/code_version": code[asset],
                    },
                ),
                start + timedelta(minutes=30 + 10 * offset),
            )
            written += 1
        if written >= n:
            history.materializations = written
            break
        # The day's checks, as the scoring job records them.
        evaluated = start + timedelta(hours=2)
        feature_scores = {name: float(rng.uniform(0.02, 0.12)) for name in columns}
        if failing:
            feature_scores[RENAMED_TO] = 2.5 + float(rng.uniform(0, 0.3))
        drifted = ", ".join(name for name, score in feature_scores.items() if score > 0.5)
        policy = _sha("policy-2" if days - day <= FAILING_DAYS + 1 else "policy-1")
        for check_key, scores in (
            (FEATURES_DRIFT_CHECK, feature_scores),
            (SCORES_DRIFT_CHECK, {"score": float(rng.uniform(0.02, 0.12)) + 1.0 * failing}),
        ):
            report_at(
                instance,
                dg.AssetCheckEvaluation(
                    asset_key=check_key.asset_key,
                    check_name=check_key.name,
                    passed=not any(score > 0.5 for score in scores.values()),
                    partition=partition,
                    metadata={
                        **{
                            f"score/{name}": dg.MetadataValue.float(s) for name, s in scores.items()
                        },
                        "drifted": dg.MetadataValue.text(
                            drifted if check_key == FEATURES_DRIFT_CHECK else ""
                        ),
                        "policy_sha256": dg.MetadataValue.text(policy),
                    },
                ),
                evaluated - timedelta(minutes=30),
            )
        f1 = float(rng.uniform(0.40, 0.48) if failing else rng.uniform(0.88, 0.93))
        report_at(
            instance,
            dg.AssetCheckEvaluation(
                asset_key=PERFORMANCE_CHECK.asset_key,
                check_name=PERFORMANCE_CHECK.name,
                passed=not failing,
                partition=partition,
                metadata={
                    "f1": dg.MetadataValue.float(f1),
                    "false_alarm_rate": dg.MetadataValue.float(float(rng.uniform(0.01, 0.02))),
                    "model_version": dg.MetadataValue.int(champion_at(evaluated)),
                },
            ),
            evaluated,
        )
        history.evaluations += 3
        if day == first_bad:
            history.first_bad_at = evaluated
        if day % 7 == 6:
            for offset, asset in enumerate(TRAINING):
                if written >= n:
                    break
                report_at(
                    instance,
                    dg.AssetMaterialization(
                        asset_key=asset,
                        metadata={"seed": dg.MetadataValue.int(day)},
                        tags={
                            "dagster/data_version": _sha(f"{asset}-{day}")[:16],
                            "dagster/code_version": f"{asset}-{day // 90}",
                        },
                    ),
                    start + timedelta(hours=3, minutes=offset),
                )
                written += 1
        history.materializations = written
    history.build_seconds = time.perf_counter() - started
    return history


@dataclass
class Measurement:
    seconds: dict[str, float]
    total: float
    changes: int
    performance_points: int
    drift_points: int
    top: str
    planted_first: bool
    breakdown: dict[str, float] = field(default_factory=dict)


CALLS = ("collect_changes", "performance_history", "drift_history", "build_incident_report")


def time_query(
    instance: dg.DagsterInstance,
    ledger: Ledger,
    definitions: dg.Definitions,
    history: History,
    repeats: int,
) -> Measurement:
    since = history.first_bad_at - SINCE_BEFORE_FIRST_BAD
    # The evaluations the correlation needs: the same 30 days `aiops incident` reads.
    history_since = history.first_bad_at - HISTORY_BEFORE_FIRST_BAD
    runs: list[dict[str, float]] = []
    result: dict[str, Any] = {}

    def timed(name: str, call: Callable[[], Any], times: dict[str, float]) -> Any:
        began = time.perf_counter()
        value = call()
        times[name] = time.perf_counter() - began
        return value

    for _ in range(repeats):
        times: dict[str, float] = {}
        changes = timed(
            "collect_changes",
            lambda: collect_changes(instance, ledger, definitions, model_name=MODEL, since=since),
            times,
        )
        performance = timed(
            "performance_history",
            lambda: performance_history(instance, since=history_since),
            times,
        )
        drift = timed(
            "drift_history",
            lambda: drift_history(
                instance, [FEATURES_DRIFT_CHECK, SCORES_DRIFT_CHECK], since=history_since
            ),
            times,
        )
        report = timed(
            "build_incident_report",
            partial(build_incident_report, MODEL, changes, performance, drift),
            times,
        )
        runs.append(times)
        result = {"changes": changes, "performance": performance, "drift": drift, "report": report}
    medians = {name: statistics.median(run[name] for run in runs) for name in CALLS}
    total = statistics.median(sum(run.values()) for run in runs)
    report = result["report"]
    top = "no incident found"
    planted = False
    if report is not None and report.suspects:
        change = report.suspects[0].change
        top = f"{change.kind} {change.subject}[{change.partition}]"
        first_bad = (END - timedelta(days=FAILING_DAYS)).isoformat()
        planted = (
            change.kind in PLANTED_KINDS
            and change.subject == "features"
            and change.partition == first_bad
        )
    return Measurement(
        seconds=medians,
        total=total,
        changes=len(result["changes"]),
        performance_points=len(result["performance"]),
        drift_points=len(result["drift"]),
        top=top,
        planted_first=planted,
    )


def collect_breakdown(
    instance: dg.DagsterInstance, ledger: Ledger, definitions: dg.Definitions, since: datetime
) -> dict[str, float]:
    """Where ``collect_changes`` spends its time, one run: its steps replayed one by one.

    Uses the change log's private reader (this is a profile, not an API): per ancestor asset the
    windowed materialization read, per check the policy-hash walk, and the ledger's alias
    history.
    """
    from aiops_assets import changelog
    from aiops_assets.changelog.changes import _alias_changes
    from aiops_assets.changelog.collect import _ChangeReader

    parts: dict[str, float] = {}
    began = time.perf_counter()
    distances = changelog.upstream_distances(definitions, changelog.MODEL_ASSET)
    graph = definitions.resolve_asset_graph()
    parts["graph + distances"] = time.perf_counter() - began
    reader = _ChangeReader(instance, ledger, graph, distances, since, None)
    for asset_key in distances:
        began = time.perf_counter()
        reader.asset_changes(asset_key)
        parts[f"asset_changes {asset_key.to_user_string()}"] = time.perf_counter() - began
    for check_key in graph.asset_check_keys:
        if check_key.asset_key in distances:
            began = time.perf_counter()
            reader.policy_changes(check_key)
            parts[f"policy_changes {check_key.to_user_string()}"] = time.perf_counter() - began
    began = time.perf_counter()
    _alias_changes(ledger, MODEL, since, None)
    parts["alias_changes (ledger.alias_history)"] = time.perf_counter() - began
    return parts


def run_size(n: int, versions: int, repeats: int, cause: str) -> tuple[History, Measurement]:
    with tempfile.TemporaryDirectory(prefix="incident-scaling-") as folder:
        root = Path(folder)
        home = root / "dagster_home"
        home.mkdir()
        (home / "dagster.yaml").write_text(DAGSTER_YAML)
        clock = [datetime(2000, 1, 1, tzinfo=UTC)]
        ledger = Ledger(
            f"sqlite:///{root / 'ledger.db'}", audit_key=b"bench-key" * 4, clock=lambda: clock[0]
        )
        settings = PipelineSettings(
            home=root / "aiops", ledger_url=f"sqlite:///{root / 'ledger.db'}"
        )
        try:
            with dg.DagsterInstance.from_config(str(home)) as instance:
                history = build_history(instance, clock, ledger, n, versions, cause)
                began = time.perf_counter()
                definitions = build_definitions(settings)
                definitions.resolve_asset_graph()
                history_defs = time.perf_counter() - began
                measurement = time_query(instance, ledger, definitions, history, repeats)
                measurement.seconds["build_definitions (not in total)"] = history_defs
                measurement.breakdown = collect_breakdown(
                    instance, ledger, definitions, history.first_bad_at - SINCE_BEFORE_FIRST_BAD
                )
        finally:
            ledger.dispose()
    return history, measurement


def print_table(rows: Sequence[tuple[History, Measurement]]) -> None:
    print(
        "| N | materializations | check evals | model versions | alias changes | days | "
        "query s (median) | changes returned | top suspect | planted cause first |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for history, m in rows:
        print(
            f"| {history.n:,} | {history.materializations:,} | {history.evaluations:,} | "
            f"{history.versions:,} | {history.alias_changes:,} | {history.days:,} | "
            f"{m.total:.3f} | {m.changes} | {m.top} | {'yes' if m.planted_first else 'NO'} |"
        )
    print("\nPer call, median seconds:")
    print(f"| N | {' | '.join(CALLS)} | build_definitions (not in total) |")
    print(f"|---|{'---|' * (len(CALLS) + 1)}")
    for history, m in rows:
        cells = " | ".join(f"{m.seconds[name]:.3f}" for name in CALLS)
        defs = m.seconds["build_definitions (not in total)"]
        print(f"| {history.n:,} | {cells} | {defs:.3f} |")
    print("\nInside collect_changes (one run each; the steps taking >= 5 ms at the largest size):")
    last = rows[-1][1].breakdown
    steps = [
        name for name, seconds in sorted(last.items(), key=lambda i: -i[1]) if seconds >= 0.005
    ]
    print(f"| step | {' | '.join(f'N={h.n:,}' for h, _ in rows)} |")
    print("|---|" + "---|" * len(rows))
    for name in steps:
        cells = " | ".join(f"{m.breakdown.get(name, 0.0):.3f}" for _, m in rows)
        print(f"| {name} | {cells} |")
    print("\nReturned sizes: performance points / drift points")
    for history, m in rows:
        print(f"  N={history.n:,}: {m.performance_points:,} / {m.drift_points:,}")
    print("\nGrowth between consecutive sizes (sub-linear means time ratio < size ratio):")
    for (h0, m0), (h1, m1) in itertools.pairwise(rows):
        size = h1.materializations / h0.materializations
        parts = ", ".join(
            f"{name} x{m1.seconds[name] / max(m0.seconds[name], 1e-9):.1f}" for name in CALLS
        )
        print(
            f"  {h0.n:,} -> {h1.n:,}: materializations x{size:.1f}, total query "
            f"x{m1.total / max(m0.total, 1e-9):.1f} ({parts})"
        )
    for history, m in rows:
        dominant = max(CALLS, key=lambda name: m.seconds[name])
        print(
            f"  N={history.n:,}: dominant call {dominant} "
            f"({m.seconds[dominant]:.3f} s of {m.total:.3f} s)"
        )
        if history.n == TARGET_N:
            verdict = "MET" if m.total < TARGET_SECONDS else "MISSED"
            print(
                f"  target (< {TARGET_SECONDS:.0f} s at {TARGET_N:,} materializations and "
                f"{TARGET_VERSIONS:,} versions on SQLite): {verdict} with {m.total:.3f} s and "
                f"{history.versions:,} versions"
            )


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument(
        "--sizes",
        default=",".join(str(size) for size in DEFAULT_SIZES),
        help="comma-separated materialization counts (default 100,1000,10000)",
    )
    parser.add_argument("--quick", action="store_true", help="sizes 100,1000 only")
    parser.add_argument(
        "--versions",
        type=int,
        default=None,
        help="model versions per history (default N/10, at least 10)",
    )
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per size (median)")
    parser.add_argument(
        "--cause",
        choices=CAUSES,
        default="rematerialization",
        help=(
            "how the features config change lands: 'rematerialization' (the first failing "
            "day's features rebuilt with the new config) or 'new-partition' (the new config "
            "first used for a new day's partition)"
        ),
    )
    args = parser.parse_args(argv)
    sizes = QUICK_SIZES if args.quick else tuple(int(s) for s in args.sizes.split(",") if s)
    rows = []
    for n in sizes:
        versions = args.versions if args.versions is not None else max(10, n // 10)
        history, measurement = run_size(n, versions, args.repeats, args.cause)
        print(
            f"N={n:,}: history of {history.materializations:,} materializations, "
            f"{history.evaluations:,} check evaluations, {history.versions:,} versions written "
            f"in {history.build_seconds:.1f} s; query {measurement.total:.3f} s ("
            + ", ".join(f"{name} {measurement.seconds[name]:.3f}" for name in CALLS)
            + ")",
            file=sys.stderr,
            flush=True,
        )
        rows.append((history, measurement))
    print_table(rows)


if __name__ == "__main__":
    main()
