"""Anomaly detectors for operational telemetry, plain Python: no Dagster, no labels.

Four families behind one online contract (:class:`Detector`: ``fit`` on the first rows, ``score``
a stream where each row sees only its past), built by name with :func:`build_detector` so a
pipeline, a benchmark and a selection protocol can all ask for "the chosen family" the same way,
and :mod:`alarms` to turn any score stream into pages. Which family and settings to use is not
decided here but by cross-validation (:mod:`aiops_assets.core.nab_cv` on NAB).
"""

from __future__ import annotations

from aiops_assets.core.detectors.alarms import (
    AlarmRule,
    alarm_rows,
    any_tail,
    debounce,
    likelihood_tail,
    spatial_anomalies,
)
from aiops_assets.core.detectors.base import Detector, FloatArray, as_matrix
from aiops_assets.core.detectors.calibration import calibrated, noise_series, tail_factor
from aiops_assets.core.detectors.ensemble import EnsembleDetector, combine_scores
from aiops_assets.core.detectors.forest import IsolationForestDetector
from aiops_assets.core.detectors.pager import Pager
from aiops_assets.core.detectors.registry import FAMILIES, build_detector
from aiops_assets.core.detectors.seasonal import SeasonalResidualDetector
from aiops_assets.core.detectors.streaming import EwmaDetector

__all__ = [
    "FAMILIES",
    "AlarmRule",
    "Detector",
    "EnsembleDetector",
    "EwmaDetector",
    "FloatArray",
    "IsolationForestDetector",
    "Pager",
    "SeasonalResidualDetector",
    "alarm_rows",
    "any_tail",
    "as_matrix",
    "build_detector",
    "calibrated",
    "combine_scores",
    "debounce",
    "likelihood_tail",
    "noise_series",
    "spatial_anomalies",
    "tail_factor",
]
