"""A separate Dagster project adds the plugin's monitoring, once with the factories and once with
the ``AiopsMonitoring`` component from YAML, and gets running checks and a firing drift sensor.

The project is written into a temporary directory as its own package, ``foreign_ops``: an asset
of service metrics whose columns (``ts``, ``host``, ``cpu_pct``, ``p99_latency_ms``,
``is_incident``) are none of the reference pipeline's, stored by Dagster's default IO manager, and
a "model" asset to retrain. It imports nothing from ``aiops_assets`` but its public names
(``test_public_api.py`` checks the sources below).
"""

import json
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

PACKAGE = "foreign_ops"
DAYS = dg.DailyPartitionsDefinition(start_date="2025-03-01", end_date="2025-03-08")
METRICS = dg.AssetKey("service_metrics")
BASELINE = dg.AssetKey("service_metrics_drift_baseline")
DRIFT = dg.AssetCheckKey(METRICS, "drift")
QUALITY_ERROR = dg.AssetCheckKey(METRICS, "service_metrics_error")
QUALITY_WARN = dg.AssetCheckKey(METRICS, "service_metrics_warn")
RETRAIN_JOB = "refit_latency_model"
# p99 latency moves by ~30 standard deviations on the drifted day, past the suite's WARN bound.
SHIFT_MS = 3000.0

SUITE = """\
name: service_metrics
version: 1
slice_by: host
row_id_columns: [host, ts]
expectations:
  - {type: expect_table_row_count_to_be_between, kwargs: {min_value: 1}}
  - {type: expect_column_values_to_not_be_null, kwargs: {column: p99_latency_ms}}
  - {type: expect_column_values_to_be_between, kwargs: {column: cpu_pct, min_value: 0, max_value: 100}}
  - type: expect_column_values_to_be_between
    kwargs: {column: p99_latency_ms, min_value: 0, max_value: 2000}
    severity: WARN
"""

PROJECT_FILES: dict[str, str] = {
    "pyproject.toml": """\
        [project]
        name = "foreign-ops"
        version = "0.1.0"

        [tool.dg]
        directory_type = "project"

        [tool.dg.project]
        root_module = "foreign_ops"
        """,
    "foreign_ops/__init__.py": "",
    "foreign_ops/metrics.py": '''\
        """The host's own data: five-minute service metrics, one partition a day."""

        import dagster as dg
        import numpy as np
        import pandas as pd

        DAYS = dg.DailyPartitionsDefinition(start_date="2025-03-01", end_date="2025-03-08")


        class MetricsConfig(dg.Config):
            latency_shift_ms: float = 0.0


        @dg.asset(partitions_def=DAYS)
        def service_metrics(
            context: dg.AssetExecutionContext, config: MetricsConfig
        ) -> pd.DataFrame:
            day = pd.Timestamp(context.partition_key)
            rng = np.random.default_rng(int(day.strftime("%Y%m%d")))
            rows = 288
            return pd.DataFrame(
                {
                    "ts": pd.date_range(day, periods=rows, freq="5min"),
                    "host": rng.choice(["web-1", "web-2", "web-3"], rows),
                    "cpu_pct": rng.normal(40.0, 5.0, rows).clip(0.0, 100.0),
                    "p99_latency_ms": rng.normal(120.0, 10.0, rows) + config.latency_shift_ms,
                    "is_incident": (rng.random(rows) < 0.02).astype("int64"),
                }
            )


        @dg.asset(deps=[service_metrics])
        def latency_model() -> dict[str, float]:
            return {"threshold_ms": 250.0}
        ''',
    "foreign_ops/suites/service_metrics.yaml": SUITE,
    "foreign_ops/factories.py": '''\
        """Monitoring wired in with Python, from the plugin's public API only."""

        from pathlib import Path

        import dagster as dg

        import aiops_assets
        from foreign_ops.metrics import latency_model, service_metrics

        PROJECT = Path(__file__).resolve().parent.parent
        STORE = str(PROJECT / ".aiops" / "store")

        baseline = aiops_assets.build_drift_baseline_asset(
            service_metrics,
            name="service_metrics_drift_baseline",
            exclude=["ts", "host"],
            labels=["is_incident"],
        )
        checks = [
            *aiops_assets.build_quality_checks(
                service_metrics, Path(__file__).parent / "suites" / "service_metrics.yaml"
            ),
            *aiops_assets.build_drift_checks(service_metrics, baseline),
        ]
        refit = dg.define_asset_job("refit_latency_model", selection=[latency_model])

        defs = dg.Definitions(
            assets=[service_metrics, latency_model, baseline],
            asset_checks=checks,
            jobs=[refit],
            sensors=[
                aiops_assets.build_retrain_on_drift_sensor(
                    job=refit,
                    drift_checks=[dg.AssetCheckKey(service_metrics.key, "drift")],
                    run_config=lambda evaluation: {},
                ),
                aiops_assets.build_alert_on_check_failure_sensor(),
            ],
            resources={
                "artifact_store": aiops_assets.ArtifactStoreResource(root=STORE),
                "artifact_io_manager": aiops_assets.ArtifactRefIOManager(root=STORE),
                "alert_sink": aiops_assets.AlertSinkResource(
                    outbox_path=str(PROJECT / ".aiops" / "alerts.jsonl")
                ),
            },
        )
        ''',
    "foreign_ops/defs/__init__.py": "",
    "foreign_ops/defs/assets.py": """\
        from foreign_ops.metrics import latency_model, service_metrics

        __all__ = ["latency_model", "service_metrics"]
        """,
    "foreign_ops/defs/monitoring/defs.yaml": """\
        type: aiops_assets.AiopsMonitoring
        attributes:
          assets_from: [assets.py]
          monitors:
            - asset: service_metrics
              quality_suite: suites/service_metrics.yaml
              drift:
                exclude: [ts, host]
                labels: [is_incident]
          retrain:
            job: refit_latency_model
            assets: [latency_model]
          alerts:
            webhook_url: "{{ env('FOREIGN_OPS_WEBHOOK', '') }}"
        """,
    "foreign_ops/defs/monitoring/suites/service_metrics.yaml": SUITE,
}


@pytest.fixture
def foreign_project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """The project on disk and importable; forgotten again afterwards."""
    monkeypatch.delenv("FOREIGN_OPS_WEBHOOK", raising=False)  # alerts go to the outbox
    root = tmp_path / "foreign-ops"
    for relative, text in PROJECT_FILES.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text if text is SUITE else textwrap.dedent(text))
    sys.path.insert(0, str(root))
    try:
        yield root
    finally:
        sys.path.remove(str(root))
        for name in [name for name in sys.modules if name.split(".")[0] == PACKAGE]:
            del sys.modules[name]


def _factory_definitions(project: Path) -> dg.Definitions:
    import importlib

    return importlib.import_module(f"{PACKAGE}.factories").defs


def _component_definitions(project: Path) -> dg.Definitions:
    return dg.load_from_defs_folder(path_within_project=project)


class Project:
    """Runs the host's own asset day by day, as its scheduler would, and ticks the sensors."""

    def __init__(self, defs: dg.Definitions, instance: dg.DagsterInstance) -> None:
        self.defs = defs
        self.instance = instance
        self.cursors: dict[str, str | None] = {}

    def materialize(
        self, selection: dg.AssetSelection, day: str | None = None, shift: float = 0.0
    ) -> dg.ExecuteInProcessResult:
        definitions = [*(self.defs.assets or ()), *(self.defs.asset_checks or ())]
        run_config = (
            {"ops": {"service_metrics": {"config": {"latency_shift_ms": shift}}}}
            if day is not None
            else None
        )
        result = dg.materialize(
            definitions,  # type: ignore[arg-type]
            instance=self.instance,
            resources=self.defs.resources,
            selection=selection,
            partition_key=day,
            run_config=run_config,
        )
        assert result.success
        return result

    def day(self, day: str, shift: float = 0.0) -> dict[dg.AssetCheckKey, dg.AssetCheckEvaluation]:
        result = self.materialize(dg.AssetSelection.assets(METRICS), day, shift)
        return {item.asset_check_key: item for item in result.get_asset_check_evaluations()}

    def tick(self, sensor_name: str) -> tuple[list[dg.RunRequest], str | None]:
        repository = self.defs.get_repository_def()
        sensor = repository.get_sensor_def(sensor_name)
        context = dg.build_sensor_context(
            instance=self.instance,
            cursor=self.cursors.get(sensor_name),
            repository_def=repository,
            resources=self.defs.resources,
        )
        data = sensor.evaluate_tick(context)
        self.cursors[sensor_name] = data.cursor
        return list(data.run_requests or []), data.skip_message


def _alerts(outbox: Path) -> list[dict[str, Any]]:
    if not outbox.exists():
        return []
    return [json.loads(line) for line in outbox.read_text().splitlines() if line.strip()]


@pytest.mark.parametrize(
    "load", [_factory_definitions, _component_definitions], ids=["factories", "component"]
)
def test_a_foreign_project_gets_checks_a_baseline_and_a_drift_sensor_that_fires(
    foreign_project: Path,
    instance: dg.DagsterInstance,
    load: Callable[[Path], dg.Definitions],
) -> None:
    defs = load(foreign_project)
    project = Project(defs, instance)
    outbox = foreign_project / ".aiops" / "alerts.jsonl"
    days = DAYS.get_partition_keys()

    # Reference days: the quality checks run on the host's columns, through the host's IO manager.
    for day in days[:3]:
        evaluations = project.materialize(
            dg.AssetSelection.assets(METRICS) - dg.AssetSelection.checks(DRIFT), day
        ).get_asset_check_evaluations()
        assert {item.asset_check_key: item.passed for item in evaluations} == {
            QUALITY_ERROR: True,
            QUALITY_WARN: True,
        }
    built = project.materialize(dg.AssetSelection.assets(BASELINE))
    (materialization,) = built.get_asset_materialization_events()
    metadata = materialization.materialization.metadata
    assert metadata["reference_partitions"].value == ", ".join(days[:3])
    assert metadata["profiled_features"].value == 3  # cpu, p99, label

    for sensor in ("retrain_on_drift", "alert_on_check_failure"):
        requests, message = project.tick(sensor)
        assert requests == [] and message is not None and message.startswith("started")

    # A normal day: every check passes; nothing to retrain, nothing to alert.
    quiet = project.day(days[3])
    assert {key: item.passed for key, item in quiet.items()} == {
        QUALITY_ERROR: True,
        QUALITY_WARN: True,
        DRIFT: True,
    }
    requests, message = project.tick("retrain_on_drift")
    assert requests == [] and message is not None and "no ERROR drift" in message
    project.tick("alert_on_check_failure")
    assert _alerts(outbox) == []

    # Latency drifts: the drift check fails at ERROR naming the column, the WARN suite fails.
    drifted = project.day(days[4], shift=SHIFT_MS)
    assert not drifted[DRIFT].passed
    assert drifted[DRIFT].severity == dg.AssetCheckSeverity.ERROR
    assert str(drifted[DRIFT].metadata["drifted"].value).startswith("p99_latency_ms")
    assert drifted[QUALITY_ERROR].passed and not drifted[QUALITY_WARN].passed

    (request,), _ = project.tick("retrain_on_drift")
    # Keyed by the drift episode that starts on this day: a shift that lasts retrains once.
    episode = str(drifted[DRIFT].metadata["episode_id"].value)
    assert episode.startswith(days[4])
    assert request.run_key == f"retrain_on_drift:service_metrics:drift:episode {episode}"
    assert defs.get_repository_def().get_sensor_def("retrain_on_drift").job_name == RETRAIN_JOB
    retrained = defs.resolve_job_def(RETRAIN_JOB).execute_in_process(
        instance=instance, run_config=request.run_config, tags=request.tags
    )
    assert retrained.success
    assert [event.asset_key for event in retrained.get_asset_materialization_events()] == [
        dg.AssetKey("latency_model")
    ]

    project.tick("alert_on_check_failure")
    sent = {(alert["check"], alert["partition"], alert["severity"]) for alert in _alerts(outbox)}
    assert sent == {("drift", days[4], "ERROR"), ("service_metrics_warn", days[4], "WARN")}
