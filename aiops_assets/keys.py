"""Names shared across layers: the reference pipeline's asset keys, the plugin's check names, jobs.

One module so a check, a sensor, the runner and the CLI spell a key the same way without importing
each other (a check importing an asset module to learn a key was how the layers got tangled).
"""

from __future__ import annotations

import dagster as dg

SNAPSHOT_KEY = dg.AssetKey("telemetry_snapshot")
FEATURES_KEY = dg.AssetKey("features")
SCORES_KEY = dg.AssetKey("anomaly_scores")
CHAMPION_KEY = dg.AssetKey("champion_model")
# The drift baseline profile of the raw snapshots the model was trained on (first partitions).
TELEMETRY_BASELINE_KEY = dg.AssetKey("telemetry_baseline")
# Per partition: the last days' drift, quality and performance, by partition day.
MONITORING_REPORT_KEY = dg.AssetKey("monitoring_report")

DRIFT_CHECK_NAME = "drift"
PERFORMANCE_CHECK_NAME = "performance"
LEAKAGE_CHECK_NAME = "point_in_time_correct"
REPRODUCIBLE_CHECK_NAME = "reproducible"
# Each partition's level, spread and rows per service against a fixed baseline profile, and
# its labels: the checks that stay red for as long as a data fault lasts.
BASELINE_QUALITY_CHECK_NAME = "baseline_quality"
LABEL_HEALTH_CHECK_NAME = "label_health"
# Checks that cost a training each: launched by a person (UI, `aiops reproduce`), never by a job
# or by the in-process runner.
ON_DEMAND_CHECK_NAMES = frozenset({REPRODUCIBLE_CHECK_NAME})

DAILY_JOB = "daily_telemetry_job"
TRAIN_JOB = "train_and_promote_job"
ROLLBACK_JOB = "rollback_champion_job"
ADOPT_JOB = "adopt_champion_job"
