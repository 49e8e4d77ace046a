"""Run NannyML's CorrelationRanker on the incident scenarios and print its rankings as JSON.

Runs inside benchmarks/peers/.venv (NannyML needs pandas < 3), as a subprocess of
benchmarks/incident_vs_baseline.py.

Usage: python run_ranker.py SCENARIOS_JSON
SCENARIOS_JSON is a list of {"name", "partitions", "f1", "passed", "drift": {feature: [effect per
partition]}}.

The ranker works on NannyML's own results, so raw data is simulated to reproduce the scenario:
per partition (one chunk of ROWS rows), each feature is N(effect, 1) against an N(0, 1)
reference, so NannyML's Wasserstein drift equals the scenario's drift effect (up to sampling
noise of about 1/sqrt(ROWS)); labels and predictions are built so that the chunk's F1 equals the
scenario's F1 (precision = recall = F1; the y_pred_proba NannyML requires is 0.75 / 0.25). The
reference period has the passing partitions' mean F1. Then, as NannyML documents it:
UnivariateDriftCalculator (Wasserstein) and PerformanceCalculator (F1) fitted on the reference,
CorrelationRanker fitted on the reference performance and ranking the analysis drift against the
analysis performance. Note that NannyML sorts by the signed Pearson r (drift against the absolute
performance change), not its absolute value.
"""

from __future__ import annotations

import json
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

ROWS = 4000
REFERENCE_CHUNKS = 4
SEED = 20260105


def labels_for_f1(f1: float, rows: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """y_true with half positives, y_pred with precision = recall = f1 (to one row)."""
    positives = rows // 2
    true_positives = round(f1 * positives)
    misses = positives - true_positives
    y_true = np.r_[np.ones(positives, dtype=int), np.zeros(rows - positives, dtype=int)]
    y_pred = np.r_[
        np.ones(true_positives, dtype=int),
        np.zeros(misses, dtype=int),
        np.ones(misses, dtype=int),  # false positives, as many as misses
        np.zeros(rows - positives - misses, dtype=int),
    ]
    order = rng.permutation(rows)
    return y_true[order], y_pred[order]


def frame(
    effects: dict[str, list[float]], f1: list[float], rng: np.random.Generator
) -> pd.DataFrame:
    parts = []
    for index, value in enumerate(f1):
        chunk: dict[str, Any] = {
            feature: rng.normal(values[index], 1.0, ROWS) for feature, values in effects.items()
        }
        chunk["y_true"], chunk["y_pred"] = labels_for_f1(value, ROWS, rng)
        # NannyML requires scores for binary problems; F1 reads only y_pred.
        chunk["y_pred_proba"] = np.where(chunk["y_pred"] == 1, 0.75, 0.25)
        parts.append(pd.DataFrame(chunk))
    return pd.concat(parts, ignore_index=True)


def rank(scenario: dict[str, Any]) -> dict[str, Any]:
    import nannyml

    rng = np.random.default_rng(SEED)
    features = sorted(scenario["drift"])
    passing = [f for f, ok in zip(scenario["f1"], scenario["passed"], strict=True) if ok]
    reference_f1 = float(np.mean(passing)) if passing else float(np.mean(scenario["f1"]))
    reference = frame(
        {feature: [0.0] * REFERENCE_CHUNKS for feature in features},
        [reference_f1] * REFERENCE_CHUNKS,
        rng,
    )
    analysis = frame(
        {feature: scenario["drift"][feature] for feature in features}, scenario["f1"], rng
    )

    began = time.perf_counter()
    drift = nannyml.UnivariateDriftCalculator(
        column_names=features, continuous_methods=["wasserstein"], chunk_size=ROWS
    )
    drift.fit(reference)
    drift_result = drift.calculate(analysis).filter(period="analysis", methods=["wasserstein"])
    performance = nannyml.PerformanceCalculator(
        y_true="y_true",
        y_pred="y_pred",
        y_pred_proba="y_pred_proba",
        problem_type="classification_binary",
        metrics=["f1"],
        chunk_size=ROWS,
    )
    performance.fit(reference)
    performance_result = performance.calculate(analysis)
    ranker = nannyml.CorrelationRanker()
    ranker.fit(performance_result.filter(period="reference", metrics=["f1"]))
    ranked = ranker.rank(drift_result, performance_result.filter(period="analysis", metrics=["f1"]))
    seconds = time.perf_counter() - began
    return {
        "name": scenario["name"],
        "seconds": seconds,
        "ranking": [
            [str(row.column_name), float(row.pearsonr_correlation)]
            for row in ranked.itertuples(index=False)
        ],
    }


def main() -> None:
    warnings.filterwarnings("ignore")
    scenarios = json.loads(Path(sys.argv[1]).read_text())
    print(json.dumps({"scenarios": [rank(scenario) for scenario in scenarios]}))


if __name__ == "__main__":
    main()
