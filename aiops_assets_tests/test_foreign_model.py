"""A separate Dagster project brings its own model and gets the whole closed loop from the plugin.

The project, ``slo_ops``, is written into a temporary directory as its own package: fifteen-minute
service metrics (``ts``, ``service``, ``cpu_pct``, ``latency_ms``, ``error_rate``,
``queue_depth``) with an ``slo_breach`` label, a training-set asset of its own, and a
gradient-boosting classifier that predicts SLO breaches. It imports nothing from
``aiops_assets`` but public names (``build_model_lifecycle``, ``SklearnModel``,
``lifecycle_resources``), and nothing of the reference pipeline. Through ``dg.materialize`` and
``build_sensor_context`` only, the test shows the gate refusing a worse model, a regression
triggering the rollback sensor and the champion returning, a staged rollout halting on a bad
canary, and the champion's capsule re-run in a fresh process reproducing its hash and metrics.
"""

from __future__ import annotations

import json
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from aiops_assets.core.ledger import Ledger
from aiops_assets.core.reproduce import run_in_fresh_process
from aiops_assets.resources import close_ledgers

PACKAGE = "slo_ops"
MODEL = "slo_breach"
CANDIDATE = dg.AssetKey(f"{MODEL}_candidate")
CHAMPION = dg.AssetKey(f"{MODEL}_champion")
SCORES = dg.AssetKey(f"{MODEL}_scores")
PERFORMANCE = dg.AssetCheckKey(SCORES, "performance")
ROLLBACK_SENSOR = f"{MODEL}_rollback_on_regression"
ROLLOUT_SENSOR = f"{MODEL}_staged_rollout"
# The regression day: a new proxy adds latency to every request, no SLO is breached by it.
PROXY_MS = 400.0

PROJECT_FILES: dict[str, str] = {
    f"{PACKAGE}/__init__.py": "",
    f"{PACKAGE}/metrics.py": '''\
        """The host's data: fifteen-minute metrics of four services, and whether the SLO broke."""

        import dagster as dg
        import numpy as np
        import pandas as pd

        DAYS = dg.DailyPartitionsDefinition(start_date="2025-03-01", end_date="2025-03-15")
        SERVICES = ["api", "checkout", "search", "web"]


        def generate(
            day: str, latency_shift_ms: float = 0.0, percent_error: tuple[str, ...] = ()
        ) -> pd.DataFrame:
            start = pd.Timestamp(day)
            rng = np.random.default_rng(int(start.strftime("%Y%m%d")))
            frames = []
            for service in SERVICES:
                rows = 96
                latency = rng.normal(220.0, 60.0, rows).clip(20.0, None)
                errors = rng.beta(1.2, 60.0, rows)
                queue = rng.poisson(4.0 + latency / 80.0)
                risk = 0.3 * (latency - 300.0) + 900.0 * (errors - 0.03)
                breach = rng.random(rows) < 1.0 / (1.0 + np.exp(-risk))
                frames.append(
                    pd.DataFrame(
                        {
                            "ts": pd.date_range(start, periods=rows, freq="15min"),
                            "service": service,
                            "cpu_pct": rng.normal(45.0, 8.0, rows).clip(0.0, 100.0),
                            "latency_ms": latency + latency_shift_ms,
                            # A collector that reports percent instead of a fraction.
                            "error_rate": errors * (100.0 if service in percent_error else 1.0),
                            "queue_depth": queue.astype("float64"),
                            "slo_breach": breach.astype("int64"),
                        }
                    )
                )
            return pd.concat(frames, ignore_index=True)


        class MetricsConfig(dg.Config):
            latency_shift_ms: float = 0.0
            percent_error_services: list[str] = []


        @dg.asset(partitions_def=DAYS)
        def service_metrics(
            context: dg.AssetExecutionContext, config: MetricsConfig
        ) -> pd.DataFrame:
            return generate(
                context.partition_key,
                config.latency_shift_ms,
                tuple(config.percent_error_services),
            )
        ''',
    f"{PACKAGE}/training.py": '''\
        """The host's training set: its first six days, from its own history store."""

        import dagster as dg
        import pandas as pd

        from slo_ops.metrics import generate

        HISTORY = [f"2025-03-0{day}" for day in range(1, 7)]


        class TrainingSetConfig(dg.Config):
            # A broken labelling job that inverted the labels of the first four days.
            corrupt_labels: bool = False


        @dg.asset
        def training_set(config: TrainingSetConfig) -> pd.DataFrame:
            frames = [generate(day) for day in HISTORY]
            if config.corrupt_labels:
                for frame in frames[:4]:
                    frame["slo_breach"] = 1 - frame["slo_breach"]
            return pd.concat(frames, ignore_index=True)
        ''',
    f"{PACKAGE}/spec.py": '''\
        """The host's model: a gradient-boosting classifier of SLO breaches."""

        from sklearn.ensemble import GradientBoostingClassifier
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        import aiops_assets

        MODEL = aiops_assets.SklearnModel(
            make_pipeline(
                StandardScaler(),
                GradientBoostingClassifier(n_estimators=60, max_depth=3, random_state=0),
            ),
            features=["cpu_pct", "latency_ms", "error_rate", "queue_depth"],
            label="slo_breach",
            time_column="ts",
            service_column="service",
        )
        ''',
    f"{PACKAGE}/definitions.py": '''\
        """The host's code location in Python: its assets plus the plugin's model lifecycle."""

        from pathlib import Path

        import dagster as dg

        import aiops_assets
        from slo_ops.metrics import service_metrics
        from slo_ops.spec import MODEL
        from slo_ops.training import training_set

        HOME = Path(__file__).resolve().parent.parent / ".aiops"

        lifecycle = aiops_assets.build_model_lifecycle(
            MODEL,
            name="slo_breach",
            training_set=training_set,
            serve=service_metrics,
            # One service-day has ~90 normal rows: three false alarms are still within budget.
            performance_limits={"false_alarm_tolerance": 0.04},
        )

        defs = dg.Definitions.merge(
            dg.Definitions(assets=[service_metrics, training_set]),
            lifecycle.definitions(aiops_assets.lifecycle_resources(HOME)),
        )
        ''',
    "pyproject.toml": """\
        [project]
        name = "slo-ops"
        version = "0.1.0"

        [tool.dg]
        directory_type = "project"

        [tool.dg.project]
        root_module = "slo_ops"
        """,
    f"{PACKAGE}/defs/__init__.py": "",
    f"{PACKAGE}/defs/assets.py": """\
        from slo_ops.metrics import service_metrics
        from slo_ops.training import training_set

        __all__ = ["service_metrics", "training_set"]
        """,
    f"{PACKAGE}/defs/lifecycle/defs.yaml": """\
        type: aiops_assets.AiopsMonitoring
        attributes:
          assets_from: [assets.py]
          monitors: []
          store_root: .aiops/store
          ledger_url: .aiops/ledger.db
          alerts: {outbox_path: .aiops/alerts.jsonl}
          models:
            - name: slo_breach
              spec: slo_ops.spec:MODEL
              training_set: training_set
              serve: service_metrics
              performance_limits: {false_alarm_tolerance: 0.04}
        """,
    "rollout_plan.yaml": """\
        stages:
          - name: canary
            services: [api]
          - name: all
            percent: 100
        check: "false_alarm_rate<=0.05"
        """,
}


@pytest.fixture
def slo_project(tmp_path: Path) -> Iterator[Path]:
    root = tmp_path / "slo-ops"
    for relative, text in PROJECT_FILES.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    sys.path.insert(0, str(root))
    try:
        yield root
    finally:
        sys.path.remove(str(root))
        for name in [name for name in sys.modules if name.split(".")[0] == PACKAGE]:
            del sys.modules[name]
        close_ledgers()


class Host:
    """Runs the host's location as its daemon would: materializations, then sensor ticks."""

    def __init__(self, defs: dg.Definitions, instance: dg.DagsterInstance, home: Path) -> None:
        self.defs = defs
        self.instance = instance
        self.home = home
        self.cursors: dict[str, str | None] = {}

    @property
    def ledger(self) -> Ledger:
        resources = self.defs.resources or {}
        ledger: Ledger = resources["ledger"].get_ledger()
        return ledger

    def champion(self) -> int:
        version = self.ledger.get_alias(MODEL, "champion")
        assert version is not None
        return version.version

    def materialize(
        self,
        keys: list[dg.AssetKey],
        *,
        partition: str | None = None,
        config: dict[str, Any] | None = None,
        tags: dict[str, str] | None = None,
    ) -> dg.ExecuteInProcessResult:
        result = dg.materialize(
            [*(self.defs.assets or ()), *(self.defs.asset_checks or ())],  # type: ignore[list-item]
            instance=self.instance,
            resources=self.defs.resources,
            selection=dg.AssetSelection.assets(*keys),
            partition_key=partition,
            run_config={"ops": config or {}},
            tags=tags,
        )
        assert result.success
        return result

    def champion_run(self, **config: Any) -> dict[str, Any]:
        """One champion materialization with this config; its metadata as plain values."""
        result = self.materialize([CHAMPION], config={CHAMPION.path[-1]: {"config": config}})
        return _metadata(result, CHAMPION)

    def train(self, *, corrupt: bool = False) -> dict[str, Any]:
        result = self.materialize(
            [dg.AssetKey("training_set"), CANDIDATE, CHAMPION],
            config={
                "training_set": {"config": {"corrupt_labels": corrupt}},
                CHAMPION.path[-1]: {"config": {"bootstrap_samples": 400}},
            },
        )
        return {"candidate": _metadata(result, CANDIDATE), "champion": _metadata(result, CHAMPION)}

    def serve(self, day: str, shift: float = 0.0) -> dg.AssetCheckEvaluation:
        self.materialize(
            [dg.AssetKey("service_metrics")],
            partition=day,
            config={"service_metrics": {"config": {"latency_shift_ms": shift}}},
        )
        result = self.materialize([SCORES], partition=day)
        (evaluation,) = [
            item
            for item in result.get_asset_check_evaluations()
            if item.asset_check_key == PERFORMANCE
        ]
        return evaluation

    def tick(self, sensor_name: str) -> tuple[list[dg.RunRequest], str | None]:
        repository = self.defs.get_repository_def()
        context = dg.build_sensor_context(
            instance=self.instance,
            cursor=self.cursors.get(sensor_name),
            repository_def=repository,
            resources=self.defs.resources,
        )
        data = repository.get_sensor_def(sensor_name).evaluate_tick(context)
        self.cursors[sensor_name] = data.cursor
        return list(data.run_requests or []), data.skip_message

    def alerts(self) -> list[dict[str, Any]]:
        outbox = self.home / "alerts.jsonl"
        if not outbox.exists():
            return []
        return [json.loads(line) for line in outbox.read_text().splitlines() if line.strip()]


def _metadata(result: dg.ExecuteInProcessResult, key: dg.AssetKey) -> dict[str, Any]:
    (event,) = result.asset_materializations_for_node(key.path[-1])
    return {name: getattr(value, "value", value) for name, value in event.metadata.items()}


def _load(root: Path, instance: dg.DagsterInstance) -> Host:
    import importlib

    defs = importlib.import_module(f"{PACKAGE}.definitions").defs
    return Host(defs, instance, root / ".aiops")


def test_the_component_gives_the_same_lifecycle_from_yaml(
    slo_project: Path, instance: dg.DagsterInstance
) -> None:
    defs = dg.load_from_defs_folder(path_within_project=slo_project)
    repository = defs.get_repository_def()
    assert {ROLLBACK_SENSOR, ROLLOUT_SENSOR} <= {s.name for s in repository.sensor_defs}
    assert {f"{MODEL}_train_job", f"{MODEL}_rollback_job", f"{MODEL}_adopt_job"} <= {
        job.name for job in repository.get_all_jobs()
    }
    host = Host(defs, instance, slo_project / ".aiops")
    assert host.train()["champion"]["decision"] == "promoted"
    refused = host.train(corrupt=True)
    assert refused["champion"]["decision"] == "kept"
    assert host.champion() == 1
    assert (slo_project / ".aiops" / "ledger.db").is_file()


def test_a_foreign_classifier_gets_the_gate_rollback_and_a_halting_rollout(
    slo_project: Path, instance: dg.DagsterInstance
) -> None:
    host = _load(slo_project, instance)
    for sensor in (ROLLBACK_SENSOR, ROLLOUT_SENSOR):
        host.tick(sensor)  # a sensor's first tick starts it at the present

    first = host.train()
    assert first["champion"]["decision"] == "promoted"
    version_one = host.ledger.get_version(MODEL, 1)
    assert version_one is not None and version_one.tags["model_format"] == "skops"
    assert version_one.metrics["pr_auc"] > 0.6, version_one.metrics
    assert version_one.capsule_ref == first["candidate"]["capsule_id"]

    # A worse model (trained on inverted labels) is registered, and the gate refuses it.
    worse = host.train(corrupt=True)
    assert worse["candidate"]["model_version"] == 2
    assert worse["champion"]["decision"] == "kept"
    assert "holdout_improvement failed" in worse["champion"]["reason"]
    assert worse["champion"]["gate_ci_high"] < 0.0
    assert host.champion() == 1

    # v1 serves a normal day and passes: it is known good.
    normal = host.serve("2025-03-07")
    assert normal.passed, normal.metadata["summary"]
    # Someone promotes v2 past the gate; on the next day it pages for nothing.
    assert host.champion_run(action="promote", version=2, reason="hotfix")["model_version"] == 2
    regression = host.serve("2025-03-08")
    assert not regression.passed
    assert regression.metadata["model_version"].value == 2
    requests, _ = host.tick(ROLLBACK_SENSOR)
    assert [request.run_key for request in requests] == [f"{ROLLBACK_SENSOR}:{MODEL}:v2"]
    rollback = requests[0]
    result = host.materialize(
        [CHAMPION], config=rollback.run_config["ops"], tags=dict(rollback.tags)
    )
    assert _metadata(result, CHAMPION)["decision"] == "rolled back"
    assert host.champion() == 1
    assert host.tick(ROLLBACK_SENSOR)[0] == []  # one regression, one rollback

    # A staged rollout of v2 (past the gate's refusal, on record) halts on its canary.
    started = host.champion_run(
        action="rollout",
        version=2,
        rollout_plan=str(slo_project / "rollout_plan.yaml"),
        override_gate=True,
        override_reason="canary trial of the hotfix",
    )
    assert started["decision"] == "rollout started"
    canary_day = host.serve("2025-03-09")
    assert canary_day.metadata["rollout_slice"].value == "api"
    requests, _ = host.tick(ROLLOUT_SENSOR)
    assert requests == []
    (rollout,) = host.ledger.rollouts(MODEL)
    assert rollout.status == "halted"
    assert rollout.stages[0].status != "passed"
    assert host.champion() == 1
    kinds = [(alert.get("kind"), alert.get("severity")) for alert in host.alerts()]
    assert ("rollback", "ERROR") in kinds and ("rollout", "ERROR") in kinds, kinds


def test_the_foreign_champion_reproduces_in_a_fresh_process(
    slo_project: Path, instance: dg.DagsterInstance
) -> None:
    host = _load(slo_project, instance)
    trained = host.train()
    capsule = host.ledger.get_capsule(trained["candidate"]["capsule_id"])
    assert capsule is not None
    reproduction = run_in_fresh_process(capsule, str(host.home / "store"), timeout=300)
    assert reproduction.ok, reproduction.lines()
    names = {item.name for item in reproduction.comparisons}
    assert {"training_set sha256", "model sha256", "metric pr_auc", "metric f1"} <= names
