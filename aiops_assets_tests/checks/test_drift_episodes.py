"""Drift episodes end to end: the check's episode metadata, one page per episode from the alert
sensor, one recovery when it ends, and a new baseline that absorbs the shift."""

from typing import Any

import dagster as dg
import numpy as np
import pandas as pd

from aiops_assets.baselines import store_profile
from aiops_assets.checks.drift import build_drift_checks
from aiops_assets.core.drift import build_profile, calibrate
from aiops_assets.resources import AlertSinkResource, ArtifactStoreResource
from aiops_assets.sensors import build_alert_on_check_failure_sensor
from aiops_assets_tests.sensors.webhook import Webhook, local_webhook

PARTITIONS = dg.DailyPartitionsDefinition(start_date="2026-03-01", end_date="2026-03-16")
# Days whose p99 sits 3 standard deviations higher: two short shifts, then one that stays.
SHIFTED = {"2026-03-06", "2026-03-07", "2026-03-10", "2026-03-11", "2026-03-12"}
STAYS_FROM = "2026-03-12"
CHECK = dg.AssetCheckKey(dg.AssetKey("p99"), "drift")


def day_frame(day: str) -> pd.DataFrame:
    rng = np.random.default_rng(int(day.replace("-", "")))
    shifted = day in SHIFTED or day >= STAYS_FROM
    return pd.DataFrame({"p99_ms": rng.normal(260.0 if shifted else 200.0, 20.0, 480)})


@dg.asset(partitions_def=PARTITIONS, io_manager_key="artifact_io_manager")
def p99(context: dg.AssetExecutionContext, artifact_store: ArtifactStoreResource) -> Any:
    return artifact_store.get_store().put_frame(day_frame(context.partition_key))


class ReferenceDays(dg.Config):
    days: list[str]


@dg.asset
def p99_baseline(config: ReferenceDays, artifact_store: ArtifactStoreResource) -> Any:
    """A host's own baseline: the days it is told, each a calibration chunk."""
    frames = [day_frame(day) for day in config.days]
    profile = calibrate(build_profile(pd.concat(frames), numeric=["p99_ms"]), frames)
    return store_profile(artifact_store.get_store(), profile)


CHECKS = build_drift_checks(p99, p99_baseline)


def _baseline(instance: dg.DagsterInstance, resources: dict[str, object], days: list[str]) -> None:
    dg.materialize(
        [p99, p99_baseline],
        instance=instance,
        resources=resources,
        selection=[p99_baseline.key],
        run_config={"ops": {"p99_baseline": {"config": {"days": days}}}},
    )


def _days(
    instance: dg.DagsterInstance, resources: dict[str, object], days: list[str]
) -> dict[str, dict[str, Any]]:
    found = {}
    for day in days:
        result = dg.materialize(
            [p99, p99_baseline, *CHECKS],
            instance=instance,
            resources=resources,
            partition_key=day,
            selection=dg.AssetSelection.assets(p99),
        )
        (evaluation,) = result.get_asset_check_evaluations()
        found[day] = {name: value.value for name, value in evaluation.metadata.items()}
    return found


def _tick(instance: dg.DagsterInstance, hook: Webhook, cursor: str | None) -> str:
    sensor = build_alert_on_check_failure_sensor(check_keys=[CHECK])
    context = dg.build_sensor_context(
        instance=instance,
        cursor=cursor,
        resources={"alert_sink": AlertSinkResource(webhook_url=hook.url)},
    )
    data = sensor.evaluate_tick(context)
    assert data.cursor is not None
    return data.cursor


def keys_between(first: str, last: str) -> list[str]:
    return [key for key in PARTITIONS.get_partition_keys() if first <= key <= last]


def test_consecutive_errors_are_one_episode_paged_once_and_recovered_once(
    resources: dict[str, object], instance: dg.DagsterInstance
) -> None:
    _baseline(instance, resources, ["2026-03-01", "2026-03-02", "2026-03-03"])
    with local_webhook() as hook:
        cursor = _tick(instance, hook, None)
        seen = _days(instance, resources, keys_between("2026-03-04", "2026-03-09"))
        cursor = _tick(instance, hook, cursor)

        assert [seen[day]["verdict"] for day in sorted(seen)] == [
            "ok", "ok", "error", "error", "ok", "ok"
        ]  # fmt: skip
        started, continued = seen["2026-03-06"], seen["2026-03-07"]
        assert started["episode_status"] == "started" and started["episode_length"] == 1
        episode = str(started["episode_id"])
        assert episode.startswith("2026-03-06@")
        assert continued["episode_status"] == "continues" and continued["episode_id"] == episode
        assert continued["episode_length"] == 2 and continued["episode_start"] == "2026-03-06"
        assert seen["2026-03-08"]["episode_status"] == "quiet", "one quiet day is bridged"
        assert seen["2026-03-09"]["episode_status"] == "ended"
        assert seen["2026-03-09"]["episode_ended"] == episode
        assert f"`{episode}`" in str(continued["summary"])
        # Two ERROR partitions, one page; the end of the episode, one recovery.
        assert [(a["kind"], a["partition"]) for a in hook.received] == [
            ("check_failed", "2026-03-06"),
            ("check_recovered", "2026-03-09"),
        ]
        assert episode in hook.received[0]["summary"]

        seen = _days(instance, resources, keys_between("2026-03-10", "2026-03-13"))
        cursor = _tick(instance, hook, cursor)
        assert all(seen[day]["verdict"] == "error" for day in seen)
        assert {seen[day]["episode_id"] for day in seen} == {"2026-03-10@" + episode[11:]}
        assert [a["kind"] for a in hook.received] == [
            "check_failed", "check_recovered", "check_failed"
        ], "four more ERROR days: one more page"  # fmt: skip

        # Re-baselining on days that hold the new level absorbs the shift: the episode ends
        # (a recovery), and the level the baseline now holds is no longer drift.
        _baseline(instance, resources, ["2026-03-11", "2026-03-12", "2026-03-13"])
        seen = _days(instance, resources, ["2026-03-14", "2026-03-15"])
        _tick(instance, hook, cursor)
        assert seen["2026-03-14"]["verdict"] == "ok", seen["2026-03-14"]["summary"]
        assert seen["2026-03-14"]["episode_status"] == "ended"
        assert seen["2026-03-14"]["episode_ended"] == "2026-03-10@" + episode[11:]
        assert seen["2026-03-15"]["episode_status"] == "none"
        assert [a["kind"] for a in hook.received][-1] == "check_recovered"
        assert len(hook.received) == 4
