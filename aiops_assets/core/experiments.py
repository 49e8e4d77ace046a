"""The experiment ledger's records: each training run's config, metrics, tags, and the hypothesis
and success criterion declared before it ran.

Declaring the criterion before the run, and recording whether it was met, is what separates an
experiment from a fishing trip: the record cannot be tuned after the metrics are known.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


@dataclass(frozen=True)
class ExperimentRun:
    """One training run as the experiment ledger keeps it (one row per Dagster run id)."""

    run_id: str
    model_name: str
    model_version: int | None
    capsule_id: str | None
    at: datetime
    config: dict[str, Any]
    metrics: dict[str, float]
    tags: dict[str, str] = field(default_factory=dict)
    dataset_version: str = ""
    feature_set_version: str = ""
    hypothesis: str = ""
    success_criterion: str = ""
    criterion_met: bool | None = None
