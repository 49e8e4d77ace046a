"""The late-data automation against a tick that misses a partition's own materialization.

The soak found it (seed 796051): the automation sensor re-ran a day nothing had touched. The
scheduled job's run builds snapshot, features and scores together with no asset selection, so
Dagster's eager condition takes the snapshot's (and the features') update for new data and
latches "a dependency was updated" on the partitions the same run builds; only a tick that then
sees the partition's own materialization clears it. A tick that read the event log's high-water
mark past that materialization without seeing it (a tick racing the run's writes, or one cut
short by a daemon SIGKILL) leaves the latch set, and once the run has ended the sensor requests
the partition again. Here the race is made deterministic: one tick, taken while the run is
between features and scores, reads a high-water mark that runs ahead of what it sees.

The graph is the reference one in miniature (a day's features read the day before's snapshot
too); the conditions are the product's.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

import dagster as dg

from aiops_assets.reference.automation import late_data_condition
from aiops_assets.reference.settings import PipelineSettings

DAYS = dg.DailyPartitionsDefinition(start_date="2026-01-05")
START = datetime(2026, 1, 5, tzinfo=UTC)
# While scores are being computed, inside the scheduled run.
DURING_SCORES: dict[str, Callable[[], None]] = {}


def _graph(condition: dg.AutomationCondition) -> dg.Definitions:
    @dg.asset(partitions_def=DAYS)
    def telemetry_snapshot() -> int:
        return 1

    @dg.asset(
        partitions_def=DAYS,
        automation_condition=condition,
        deps=[
            dg.AssetDep(
                telemetry_snapshot,
                partition_mapping=dg.TimeWindowPartitionMapping(start_offset=-1),
            )
        ],
    )
    def features() -> int:
        return 1

    @dg.asset
    def champion_model() -> int:
        return 1

    @dg.asset(partitions_def=DAYS, automation_condition=condition, deps=[features, champion_model])
    def anomaly_scores() -> int:
        DURING_SCORES.get("tick", lambda: None)()
        return 1

    @dg.asset(partitions_def=DAYS, automation_condition=condition, deps=[anomaly_scores])
    def monitoring_report() -> int:
        return 1

    daily = dg.define_asset_job(
        "daily_telemetry_job",
        selection=[telemetry_snapshot, features, anomaly_scores],
    )
    return dg.Definitions(
        assets=[telemetry_snapshot, features, champion_model, anomaly_scores, monitoring_report],
        jobs=[daily],
    )


class Daemon:
    """The automation sensor's ticks, each from the previous tick's cursor, at a fixed time."""

    def __init__(self, definitions: dg.Definitions, instance: dg.DagsterInstance) -> None:
        self.definitions = definitions
        self.instance = instance
        self.cursor: dg.AssetDaemonCursor | None = None
        self.now = START

    def tick(self) -> dict[str, set[str]]:
        result = dg.evaluate_automation_conditions(
            defs=self.definitions,
            instance=self.instance,
            cursor=self.cursor,
            evaluation_time=self.now,
        )
        self.cursor = result.cursor
        return {
            key.to_user_string(): {str(p) for p in result.get_requested_partitions(key)}
            for key in self.definitions.resolve_asset_graph().get_all_asset_keys()
            if result.get_requested_partitions(key)
        }

    def run_requested(self, requested: dict[str, set[str]]) -> None:
        for name, partitions in requested.items():
            for partition in sorted(partitions):
                dg.materialize(
                    _assets(self.definitions),
                    instance=self.instance,
                    partition_key=partition,
                    selection=[name],
                )


def _assets(definitions: dg.Definitions) -> list[dg.AssetsDefinition]:
    return [asset for asset in definitions.assets or [] if isinstance(asset, dg.AssetsDefinition)]


@contextmanager
def _watermark_ahead(instance: dg.DagsterInstance, ahead: int) -> Iterator[None]:
    """The event log's high-water mark as a tick reads it when writes it does not see yet have
    already taken their ids."""
    storage = instance.event_log_storage
    real = type(storage).get_maximum_record_id
    storage.get_maximum_record_id = lambda: (real(storage) or 0) + ahead  # type: ignore[method-assign]
    try:
        yield
    finally:
        del storage.get_maximum_record_id


def _day(offset: int) -> str:
    return (START + timedelta(days=offset)).date().isoformat()


def _scheduled_run(definitions: dg.Definitions, instance: dg.DagsterInstance, day: str) -> None:
    job = definitions.resolve_job_def("daily_telemetry_job")
    assert job.execute_in_process(instance=instance, partition_key=day).success


def _soak_day_with_a_missed_materialization(condition: dg.AutomationCondition) -> list[str]:
    """Six days of history, then one scheduled day whose scores a mid-run tick missed; what the
    sensor re-runs in the ticks after the run ended."""
    definitions = _graph(condition)
    instance = dg.DagsterInstance.ephemeral()
    daemon = Daemon(definitions, instance)
    with dg.partition_loading_context(effective_dt=START + timedelta(days=6, hours=1)):
        for offset in range(6):
            _scheduled_run(definitions, instance, _day(offset))
        dg.materialize(_assets(definitions), instance=instance, selection=["champion_model"])
    daemon.now = START + timedelta(days=7, minutes=31)
    with dg.partition_loading_context(effective_dt=daemon.now):
        assert daemon.tick() == {}, "the first tick only records where it starts"

        def missed_tick() -> None:
            with _watermark_ahead(instance, ahead=50):
                assert daemon.tick() == {}

        DURING_SCORES["tick"] = missed_tick
        try:
            _scheduled_run(definitions, instance, _day(6))
        finally:
            DURING_SCORES.clear()
        reruns: list[str] = []
        for _ in range(3):
            daemon.now += timedelta(seconds=30)
            requested = daemon.tick()
            requested.pop("monitoring_report", None)
            reruns += [f"{name}[{p}]" for name, parts in requested.items() for p in parts]
            daemon.run_requested(requested)
        return reruns


def _plain_eager() -> dg.AutomationCondition:
    return dg.AutomationCondition.eager().replace(
        "in_latest_time_window", dg.AutomationCondition.in_latest_time_window(timedelta(days=7))
    )


def test_dagsters_eager_re_runs_a_day_whose_own_materialization_a_tick_missed() -> None:
    """The behaviour the product guards against, shown on Dagster's condition alone (if Dagster
    changes it, this test says so)."""
    assert _soak_day_with_a_missed_materialization(_plain_eager()) == [f"anomaly_scores[{_day(6)}]"]


def test_the_late_data_condition_does_not_re_run_a_day_its_scheduled_run_built() -> None:
    condition = late_data_condition(PipelineSettings.from_env({}))
    assert _soak_day_with_a_missed_materialization(condition) == []


def test_late_data_still_re_runs_the_days_that_read_the_re_ingested_one() -> None:
    """A re-ingested day (late data): its own features and the next day's (which read it as
    history) re-run, with their scores and reports, in one tick; nothing else, and only once."""
    reingested = 5
    definitions = _graph(late_data_condition(PipelineSettings.from_env({})))
    instance = dg.DagsterInstance.ephemeral()
    daemon = Daemon(definitions, instance)
    daemon.now = START + timedelta(days=7, hours=1)
    with dg.partition_loading_context(effective_dt=daemon.now):
        for offset in range(7):
            _scheduled_run(definitions, instance, _day(offset))
        dg.materialize(_assets(definitions), instance=instance, selection=["champion_model"])
        assert daemon.tick() == {}
        dg.materialize(
            _assets(definitions),
            instance=instance,
            partition_key=_day(reingested),
            selection=["telemetry_snapshot"],
        )
        daemon.now += timedelta(seconds=30)
        requested = daemon.tick()
        late = {_day(reingested), _day(reingested + 1)}
        assert requested == {"features": late, "anomaly_scores": late, "monitoring_report": late}
        daemon.run_requested(requested)
        for _ in range(2):
            daemon.now += timedelta(seconds=30)
            assert daemon.tick() == {}, "each re-run once"
