"""A host whose model is an MLflow pyfunc model gets the lifecycle: versions, gate, serving, reproduce.

The host, ``breach_ops``, is ``test_foreign_model.py``'s ``slo_ops`` with its model swapped: a
``mlflow.pyfunc.PythonModel`` wrapping a logistic regression, trained by the host's own
module-level function. The test goes through ``dg.materialize``, the ledger and the ``aiops``
command only.
"""

from __future__ import annotations

import json
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest

import aiops_assets
from aiops_assets.resources import close_ledgers
from aiops_assets_tests.cli.process import aiops_process
from aiops_assets_tests.test_foreign_model import PACKAGE as SLO_PACKAGE
from aiops_assets_tests.test_foreign_model import PROJECT_FILES as SLO_FILES
from aiops_assets_tests.test_foreign_model import Host

PACKAGE = "breach_ops"
MODEL = "breach"
CANDIDATE = dg.AssetKey(f"{MODEL}_candidate")
CHAMPION = dg.AssetKey(f"{MODEL}_champion")
SCORES = dg.AssetKey(f"{MODEL}_scores")
PERFORMANCE = dg.AssetCheckKey(SCORES, "performance")

SPEC = '''\
    """The host's model: an MLflow PythonModel around a logistic regression, its own trainer."""

    import mlflow.pyfunc
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    import aiops_assets

    FEATURES = ["cpu_pct", "latency_ms", "error_rate", "queue_depth"]


    class BreachModel(mlflow.pyfunc.PythonModel):
        def __init__(self, mean, scale, classifier):
            self.mean, self.scale, self.classifier = mean, scale, classifier

        def predict(self, context, model_input, params=None):
            matrix = (model_input[FEATURES].to_numpy(dtype="float64") - self.mean) / self.scale
            return self.classifier.predict_proba(matrix)[:, 1]


    def train_breach_model(train):
        matrix = train[FEATURES].to_numpy(dtype="float64")
        mean, scale = matrix.mean(axis=0), matrix.std(axis=0) + 1e-9
        classifier = LogisticRegression(max_iter=500).fit((matrix - mean) / scale, train["slo_breach"])
        return BreachModel(mean, scale, classifier)


    MODEL = aiops_assets.PyfuncModel(
        trainer=train_breach_model,
        features=FEATURES,
        label="slo_breach",
        time_column="ts",
        service_column="service",
        save_options={"pip_requirements": ["scikit-learn", "numpy"]},
    )
    '''

DEFINITIONS = """\
    from pathlib import Path

    import dagster as dg

    import aiops_assets
    from breach_ops.metrics import service_metrics
    from breach_ops.spec import MODEL
    from breach_ops.training import training_set

    HOME = Path(__file__).resolve().parent.parent / ".aiops"

    lifecycle = aiops_assets.build_model_lifecycle(
        MODEL,
        name="breach",
        training_set=training_set,
        serve=service_metrics,
        performance_limits={"false_alarm_tolerance": 0.04},
    )

    defs = dg.Definitions.merge(
        dg.Definitions(assets=[service_metrics, training_set]),
        lifecycle.definitions(aiops_assets.lifecycle_resources(HOME)),
    )
    """


@pytest.fixture
def breach_project(tmp_path: Path) -> Iterator[Path]:
    root = tmp_path / "breach-ops"
    files = {
        f"{PACKAGE}/__init__.py": "",
        f"{PACKAGE}/metrics.py": SLO_FILES[f"{SLO_PACKAGE}/metrics.py"],
        f"{PACKAGE}/training.py": SLO_FILES[f"{SLO_PACKAGE}/training.py"],
        f"{PACKAGE}/spec.py": SPEC,
        f"{PACKAGE}/definitions.py": DEFINITIONS,
    }
    for relative, text in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).replace(SLO_PACKAGE, PACKAGE))
    sys.path.insert(0, str(root))
    try:
        yield root
    finally:
        sys.path.remove(str(root))
        for name in [name for name in sys.modules if name.split(".")[0] == PACKAGE]:
            del sys.modules[name]
        close_ledgers()


def test_a_pyfunc_model_is_versioned_served_and_reproduced(
    breach_project: Path, instance: dg.DagsterInstance
) -> None:
    import importlib

    defs = importlib.import_module(f"{PACKAGE}.definitions").defs
    host = Host(defs, instance, breach_project / ".aiops")
    trained = host.materialize([dg.AssetKey("training_set"), CANDIDATE, CHAMPION])
    (candidate_event,) = trained.asset_materializations_for_node(CANDIDATE.path[-1])
    assert candidate_event.metadata["model_format"].value == "mlflow-pyfunc"

    ledger = host.ledger
    champion = ledger.get_alias(MODEL, "champion")
    assert champion is not None and champion.tags["model_format"] == "mlflow-pyfunc"
    capsule = ledger.get_capsule(str(candidate_event.metadata["capsule_id"].value))
    assert capsule is not None
    recipe = capsule.config["lifecycle"]
    assert recipe["kind"] == "pyfunc" and recipe["format"] == "mlflow-pyfunc"
    assert recipe["trainer"] == f"{PACKAGE}.spec:train_breach_model"
    # The holdout metrics are those of a real model, not a constant.
    assert 0.3 < capsule.metrics["pr_auc"] <= 1.0

    # Served: the scores asset loads the pyfunc from its verified bytes, the check judges it.
    host.materialize([dg.AssetKey("service_metrics")], partition="2025-03-08")
    served = host.materialize([SCORES], partition="2025-03-08")
    (evaluation,) = [
        item for item in served.get_asset_check_evaluations() if item.asset_check_key == PERFORMANCE
    ]
    assert evaluation.passed, evaluation.metadata

    # Reproduced by `aiops reproduce` from the host's folder (a fresh process re-imports the
    # trainer by the path the capsule recorded).
    completed = aiops_process(
        "reproduce",
        "champion",
        "--model",
        MODEL,
        "--json",
        "--home",
        str(breach_project / ".aiops"),
        cwd=breach_project,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    report = json.loads(completed.stdout)
    names = {item["name"] for item in report["comparisons"]}
    assert {"training_set sha256", "model sha256", "metric f1"} <= names


def test_a_trainer_that_cannot_be_imported_again_is_refused_up_front() -> None:
    def nested(train: object) -> object:
        return train

    with pytest.raises(ValueError, match="module level"):
        aiops_assets.PyfuncModel(trainer=nested, features=["x"], label="y")
