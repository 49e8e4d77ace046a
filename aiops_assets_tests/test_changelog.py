"""The change log read back from a real (short) demo history plus one re-featurized day."""

from __future__ import annotations

import copy
import io
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import dagster as dg
import pytest

from aiops_assets.changelog import (
    collect_changes,
    drift_history,
    performance_history,
    upstream_distances,
)
from aiops_assets.core.capsule import Capsule
from aiops_assets.core.incidents import CHANGE_KINDS, Change
from aiops_assets.core.ledger import Ledger
from aiops_assets.reference.definitions import (
    FEATURES_DRIFT_CHECK,
    SCORES_DRIFT_CHECK,
    SCORES_KEY,
    build_definitions,
)
from aiops_assets.reference.demo import run_demo
from aiops_assets.reference.settings import PipelineSettings
from aiops_assets.resources import close_ledgers
from aiops_assets.runner import materialize_selection

# A demo, then a changed feature day: the demo is the slow part.
pytestmark = pytest.mark.slow

CHANGED_DAY = "2026-01-08"
SHORTER_WINDOWS = {"ops": {"features": {"config": {"windows": ["1h", "12h"]}}}}


@dataclass
class History:
    instance: dg.DagsterInstance
    ledger: Ledger
    definitions: dg.Definitions
    changed_at: datetime  # just before the re-featurization
    refeaturized_at: datetime  # just after it; later events belong to single tests
    scored_partitions: list[str]


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> Iterator[History]:
    """One demo, then features[2026-01-08] again with shorter windows: a config change that is
    also a feature-set change and a data change. Built once: the demo is the slow part."""
    settings = PipelineSettings(
        start=date(2026, 1, 5), days=6, home=tmp_path_factory.mktemp("changelog") / "aiops"
    )
    with dg.DagsterInstance.ephemeral() as instance:
        result = run_demo(settings, instance=instance, progress=io.StringIO())
        definitions = build_definitions(settings)
        changed_at = datetime.now(UTC)
        run = materialize_selection(
            definitions,
            instance,
            ["features"],
            partition_key=CHANGED_DAY,
            run_config=SHORTER_WINDOWS,
            raise_on_error=False,
        )
        assert run.get_asset_materialization_events(), "features were not re-materialized"
        refeaturized_at = datetime.now(UTC)
        ledger = Ledger.from_env(settings.ledger_url, default_key_file=settings.audit_key_file)
        scored = sorted(
            label[len("anomaly_scores[") : -1]
            for label in result.data_versions
            if label.startswith("anomaly_scores[")
        )
        try:
            yield History(instance, ledger, definitions, changed_at, refeaturized_at, scored)
        finally:
            ledger.dispose()
            close_ledgers()


def test_upstream_distances_follow_the_full_graph(history: History) -> None:
    distances = upstream_distances(history.definitions, SCORES_KEY)
    assert distances[SCORES_KEY] == 0
    assert distances[dg.AssetKey("features")] == 1
    assert distances[dg.AssetKey("champion_model")] == 1
    assert distances[dg.AssetKey("telemetry_snapshot")] == 2
    assert dg.AssetKey("drift_baseline") not in distances  # feeds a check, not the model


def test_a_refeaturized_day_shows_config_feature_set_and_data_changes(history: History) -> None:
    changes = collect_changes(
        history.instance, history.ledger, history.definitions, until=history.refeaturized_at
    )
    assert [change.at for change in changes] == sorted(change.at for change in changes)
    assert {change.kind for change in changes} <= set(CHANGE_KINDS)
    assert all(change.at.tzinfo is not None for change in changes)

    on_day = [
        change
        for change in changes
        if change.subject == "features" and change.partition == CHANGED_DAY
    ]
    by_kind: dict[str, list[Change]] = {}
    for change in on_day:
        by_kind.setdefault(change.kind, []).append(change)

    (config,) = by_kind["config"]
    assert config.before != config.after
    assert config.lineage_distance is not None and config.lineage_distance > 0
    assert config.details["config"] == {"windows": ["1h", "12h"]}
    assert config.run_id is not None

    (feature_set,) = by_kind["feature_set"]
    assert feature_set.lineage_distance == 1
    assert feature_set.before != feature_set.after
    assert any("12h" in name for name in feature_set.features)
    assert any("24h" in name for name in feature_set.features)

    data = by_kind["data"]
    assert len(data) == 2  # the day's first features, then the re-featurized ones
    first, second = sorted(data, key=lambda change: change.at)
    assert first.before is None and first.details["distribution"]["rows"] > 0
    assert second.before == first.after and second.after != first.after
    assert "12h" in " ".join(second.details["columns_added"])
    assert second.features

    # Nothing else about the pipeline changed code or policy in the demo.
    assert not [change for change in changes if change.kind in ("code", "policy")]


def test_since_keeps_the_baseline_before_the_window(history: History) -> None:
    changes = collect_changes(
        history.instance,
        history.ledger,
        history.definitions,
        since=history.changed_at,
        until=history.refeaturized_at,
    )
    assert {(change.kind, change.subject, change.partition) for change in changes} == {
        ("data", "features", CHANGED_DAY),
        ("feature_set", "features", CHANGED_DAY),
        ("config", "features", CHANGED_DAY),
    }
    data = next(change for change in changes if change.kind == "data")
    assert data.before is not None  # compared with the demo's materialization, not "new data"
    assert not collect_changes(
        history.instance,
        history.ledger,
        history.definitions,
        until=datetime(2000, 1, 1, tzinfo=UTC),
    )
    later = datetime.now(UTC) + timedelta(days=1)
    assert not collect_changes(history.instance, history.ledger, history.definitions, since=later)


def test_alias_changes_come_from_the_ledger(history: History) -> None:
    changes = collect_changes(history.instance, history.ledger, history.definitions)
    aliases = [change for change in changes if change.kind == "alias"]
    promote = [
        change
        for change in aliases
        if change.subject == "anomaly_detector:champion" and change.details["kind"] == "promote"
    ]
    assert promote and promote[0].after == 1 and promote[0].before is None
    assert promote[0].details["to_version"] == 1
    assert all(change.lineage_distance == 0 for change in aliases)


def test_performance_history_has_one_point_per_scored_partition(history: History) -> None:
    points = performance_history(history.instance)
    assert [point.partition for point in points] == history.scored_partitions
    for point in points:
        assert point.model_version == 1
        assert "false_alarm_rate" in point.metrics
        # F1 is judged only on days with enough labeled anomalies (five, by default).
        assert ("f1" in point.metrics) == (point.metrics["labeled_anomalies"] >= 5)
        assert point.at.tzinfo is not None
    assert any("f1" in point.metrics for point in points)


def test_drift_history_names_features(history: History) -> None:
    points = drift_history(history.instance, [FEATURES_DRIFT_CHECK, SCORES_DRIFT_CHECK])
    assert points
    features = {point.feature for point in points}
    assert "cpu_pct__mean_1h" in features and "score" in features
    assert any(point.drifted for point in points)
    assert {point.partition for point in points} <= set(history.scored_partitions)
    # One point per feature per partition: the latest evaluation only.
    for check_key in (FEATURES_DRIFT_CHECK, SCORES_DRIFT_CHECK):
        keys = [
            (point.partition, point.feature)
            for point in drift_history(history.instance, [check_key])
        ]
        assert keys and len(keys) == len(set(keys))


def test_environment_and_policy_changes(history: History) -> None:
    """A training set rebuilt under another Python, and a drift check under another policy,
    reported the way an external tool would: after the fact, without a run."""
    since = datetime.now(UTC)
    training_set = dg.AssetKey("training_set")
    latest = history.instance.fetch_materializations(training_set, limit=1).records[0]
    assert latest.asset_materialization is not None
    capsule_id = str(latest.asset_materialization.metadata["capsule_id"].value)
    capsule = history.ledger.get_capsule(capsule_id)
    assert capsule is not None
    body = copy.deepcopy(capsule.body)
    body["environment"]["python"] = "3.99.0"
    moved = history.ledger.record_capsule(Capsule(body))
    history.instance.report_runless_asset_event(
        dg.AssetMaterialization(asset_key=training_set, metadata={"capsule_id": moved})
    )
    previous = drift_history(history.instance, [SCORES_DRIFT_CHECK])
    partition = previous[-1].partition
    history.instance.report_runless_asset_event(
        dg.AssetCheckEvaluation(
            asset_key=SCORES_KEY,
            check_name=SCORES_DRIFT_CHECK.name,
            passed=True,
            partition=partition,
            metadata={"policy_sha256": "f" * 64, "drifted": "", "score/score": 0.01},
        )
    )

    changes = collect_changes(history.instance, history.ledger, history.definitions, since=since)
    by_kind = {change.kind: change for change in changes}
    assert set(by_kind) == {"environment", "policy"}, [change.summary for change in changes]
    environment = by_kind["environment"]
    assert environment.subject == "training_set" and environment.lineage_distance == 2
    assert any(line.startswith("python ") for line in environment.details["lines"])
    assert (environment.before, environment.after) == (capsule_id, moved)
    policy = by_kind["policy"]
    assert policy.subject == SCORES_DRIFT_CHECK.to_user_string()
    assert policy.after == "f" * 64 and policy.before != policy.after
    assert policy.lineage_distance == 0 and policy.partition == partition


def test_a_config_change_shows_on_a_day_that_never_had_the_old_config(history: History) -> None:
    # The next day computed with the default windows again: that day's own previous
    # materialization had the same config, yet the asset's config did change (back), and a
    # config first used for a new day must be caught the same way.
    before = datetime.now(UTC)
    next_day = "2026-01-09"
    materialize_selection(
        history.definitions,
        history.instance,
        ["features"],
        partition_key=next_day,
        raise_on_error=False,
    )
    changes = collect_changes(history.instance, history.ledger, history.definitions, since=before)
    kinds = {(c.kind, c.subject, c.partition) for c in changes}
    assert ("config", "features", next_day) in kinds, kinds
    assert ("feature_set", "features", next_day) in kinds, kinds
