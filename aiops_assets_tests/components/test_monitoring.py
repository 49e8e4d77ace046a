"""``AiopsMonitoring`` from YAML: what it builds, where its paths point, and how it refuses."""

import importlib.metadata
import sys
import textwrap
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import dagster as dg
import pytest

import aiops_assets

SUITE = """\
name: readings
version: 1
expectations:
  - {type: expect_column_values_to_not_be_null, kwargs: {column: value}}
  - {type: expect_column_values_to_be_between, kwargs: {column: value, min_value: 0}, severity: WARN}
"""

ASSETS = """\
import dagster as dg
import pandas as pd

HOURS = dg.HourlyPartitionsDefinition(start_date="2025-01-01-00:00", end_date="2025-01-02-00:00")


@dg.asset(partitions_def=HOURS, key=["plant", "readings"])
def readings() -> pd.DataFrame:
    return pd.DataFrame({"sensor": ["a", "b"], "value": [1.0, 2.0]})


@dg.asset
def totals() -> int:
    return 1
"""

LoadProject = Callable[[str], dg.Definitions]


@pytest.fixture
def load_project(tmp_path: Path) -> Iterator[LoadProject]:
    """Writes a one-asset dg project with the given monitoring YAML and loads its definitions."""
    package = f"plant_{uuid.uuid4().hex[:8]}"
    root = tmp_path / "plant"
    files = {
        "pyproject.toml": f'[tool.dg]\ndirectory_type = "project"\n\n'
        f'[tool.dg.project]\nroot_module = "{package}"\n',
        f"{package}/__init__.py": "",
        f"{package}/defs/__init__.py": "",
        f"{package}/defs/sensors_assets.py": ASSETS,
        f"{package}/defs/monitoring/suite.yaml": SUITE,
    }
    for relative, text in files.items():
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        (root / relative).write_text(text)
    sys.path.insert(0, str(root))

    def load(attributes: str) -> dg.Definitions:
        document = "type: aiops_assets.AiopsMonitoring\nattributes:\n" + textwrap.indent(
            textwrap.dedent(attributes), "  "
        )
        (root / package / "defs" / "monitoring" / "defs.yaml").write_text(document)
        return dg.load_from_defs_folder(path_within_project=root)

    try:
        yield load
    finally:
        sys.path.remove(str(root))
        for name in [name for name in sys.modules if name.split(".")[0] == package]:
            del sys.modules[name]


READINGS = dg.AssetKey(["plant", "readings"])


def refusal(load: Callable[[], object]) -> str:
    """The messages of the error a load raises and of its causes (dg wraps the component's)."""
    with pytest.raises(Exception) as raised:
        load()
    messages = []
    error: BaseException | None = raised.value
    while error is not None:
        messages.append(str(error))
        error = error.__cause__ or error.__context__
    return "\n".join(messages)


def test_checks_are_partitioned_like_the_host_asset_found_in_the_defs_folder(
    load_project: LoadProject,
) -> None:
    defs = load_project("""
        assets_from: [sensors_assets.py]
        monitors:
          - {asset: plant/readings, quality_suite: suite.yaml, drift: {exclude: [sensor]}}
        """)
    graph = defs.resolve_asset_graph()
    assert set(graph.asset_check_keys) == {
        dg.AssetCheckKey(READINGS, "readings_error"),
        dg.AssetCheckKey(READINGS, "readings_warn"),
        dg.AssetCheckKey(READINGS, "drift"),
    }
    hours = graph.get(READINGS).partitions_def
    assert isinstance(hours, dg.HourlyPartitionsDefinition)
    for check in defs.asset_checks or ():
        for spec in check.check_specs:
            assert spec.partitions_def == hours
    baseline = dg.AssetKey("plant__readings_drift_baseline")
    assert graph.get(baseline).partitions_def is None
    assert graph.get(baseline).group_name == "aiops_monitoring"
    assert READINGS in graph.get(baseline).parent_keys


def test_sensors_are_stopped_unless_asked_and_retraining_needs_a_job(
    load_project: LoadProject,
) -> None:
    quality_only = load_project("""
        assets_from: [sensors_assets.py]
        monitors: [{asset: plant/readings, quality_suite: suite.yaml, severity: WARN}]
        """)
    repository = quality_only.get_repository_def()
    assert [sensor.name for sensor in repository.sensor_defs] == ["alert_on_check_failure"]
    assert repository.sensor_defs[0].default_status == dg.DefaultSensorStatus.STOPPED
    assert (
        dg.AssetKey("plant__readings_drift_baseline")
        not in repository.asset_graph.get_all_asset_keys()
    )
    # severity WARN: the suite's unnamed entries are WARN too, so there is no ERROR check.
    assert set(repository.asset_graph.asset_check_keys) == {
        dg.AssetCheckKey(READINGS, "readings_warn")
    }

    running = load_project("""
        assets_from: [sensors_assets.py]
        monitors: [{asset: plant/readings, drift: {}}]
        retrain: {job: rebuild_totals, assets: [totals], run_config: {ops: {}}}
        sensors_running: true
        """)
    repository = running.get_repository_def()
    sensors = {sensor.name: sensor for sensor in repository.sensor_defs}
    assert set(sensors) == {"alert_on_check_failure", "retrain_on_drift"}
    assert {sensor.default_status for sensor in sensors.values()} == {
        dg.DefaultSensorStatus.RUNNING
    }
    assert sensors["retrain_on_drift"].job_name == "rebuild_totals"
    job = running.resolve_job_def("rebuild_totals")
    assert job.asset_layer.executable_asset_keys == {dg.AssetKey("totals")}


def test_relative_roots_are_the_projects_and_urls_stay_as_given(
    load_project: LoadProject, tmp_path: Path
) -> None:
    defs = load_project("""
        assets_from: [sensors_assets.py]
        monitors: [{asset: plant/readings, drift: {}}]
        """)
    resources = defs.resources or {}
    store = resources["artifact_store"]
    alerts = resources["alert_sink"]
    assert isinstance(store, aiops_assets.ArtifactStoreResource)
    assert isinstance(alerts, aiops_assets.AlertSinkResource)
    assert Path(store.root) == tmp_path / "plant" / ".aiops" / "store"
    assert Path(alerts.outbox_path) == tmp_path / "plant" / ".aiops" / "alerts.jsonl"

    remote = load_project("""
        assets_from: [sensors_assets.py]
        monitors: [{asset: plant/readings, drift: {}}]
        store_root: memory://plant/store
        """)
    io_manager = (remote.resources or {})["artifact_io_manager"]
    assert isinstance(io_manager, aiops_assets.ArtifactRefIOManager)
    assert io_manager.root == "memory://plant/store"


def test_an_unknown_asset_is_refused_naming_what_exists(load_project: LoadProject) -> None:
    message = refusal(
        lambda: load_project("""
            assets_from: [sensors_assets.py]
            monitors: [{asset: plant/readingz, quality_suite: suite.yaml}]
            """)
    )
    assert "plant/readingz not defined in ['sensors_assets.py']" in message
    assert "(found plant/readings, totals)" in message


def test_retraining_without_a_drift_check_is_refused(load_project: LoadProject) -> None:
    message = refusal(
        lambda: load_project("""
            assets_from: [sensors_assets.py]
            monitors: [{asset: plant/readings, quality_suite: suite.yaml}]
            retrain: {job: rebuild_totals, assets: [totals]}
            """)
    )
    assert "retrain needs at least one monitor with drift" in message


def test_a_misspelt_attribute_is_refused_by_the_schema(load_project: LoadProject) -> None:
    message = refusal(
        lambda: load_project("""
            assets_from: [sensors_assets.py]
            monitors: [{asset: plant/readings, quality_suit: suite.yaml}]
            """)
    )
    assert "quality_suit" in message


def test_the_component_is_registered_with_dg() -> None:
    (entry_point,) = [
        entry_point
        for entry_point in importlib.metadata.entry_points(group="dagster_dg_cli.registry_modules")
        if entry_point.value == "aiops_assets"
    ]
    module = entry_point.load()
    components = [
        name
        for name in dir(module)
        if isinstance(getattr(module, name), type)
        and issubclass(getattr(module, name), dg.Component)
    ]
    assert components == ["AiopsMonitoring"]


def test_alerts_can_go_to_alertmanager_with_its_urls_passed_by_name(
    load_project: LoadProject, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PLANT_ALERTMANAGERS", "http://am-1:9093, http://am-2:9093")
    defs = load_project("""
        assets_from: [sensors_assets.py]
        monitors: [{asset: plant/readings, drift: {}}]
        alerts:
          alertmanager_urls_env: PLANT_ALERTMANAGERS
          service: plant-team
          runbook_url: "https://runbooks.example/{check}"
        """)
    alerts = (defs.resources or {})["alert_sink"]
    assert isinstance(alerts, aiops_assets.AlertSinkResource)
    # Passed by name, the URLs are read from the environment when the sink is built.
    sink = alerts.get_sink()
    assert sink.describe().count("am-") == 2, sink.describe()
    assert alerts.service == "plant-team"
    assert alerts.runbook_url == "https://runbooks.example/{check}"

    literal = load_project("""
        assets_from: [sensors_assets.py]
        monitors: [{asset: plant/readings, drift: {}}]
        alerts: {alertmanager_urls: "http://127.0.0.1:9093"}
        """)
    resource = (literal.resources or {})["alert_sink"]
    assert isinstance(resource, aiops_assets.AlertSinkResource)
    assert resource.alertmanager_urls == "http://127.0.0.1:9093"
    assert "127.0.0.1:9093" in resource.get_sink().describe()
