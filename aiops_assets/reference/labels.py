"""The reference pipeline's late labels: the performance check's label source, delay and clock.

With no label source and no delay (the defaults) there is nothing to wait for: the check judges
the telemetry's label series at once, exactly as without this module, and the demo is unchanged.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import dagster as dg
import pandas as pd

from aiops_assets import DelayedLabels
from aiops_assets.core.delayed_labels import read_incident_csv, read_incident_table
from aiops_assets.reference.settings import PipelineSettings

SCORE_BASELINE = dg.AssetKey("score_baseline")


def delayed_labels(settings: PipelineSettings) -> DelayedLabels | None:
    """The check's late-label policy, or None when labels come with the telemetry at once."""
    if not settings.label_source and not settings.label_delay:
        return None
    return DelayedLabels(
        delay=settings.label_delay,
        windows=_windows(settings) if settings.label_source else None,
        now=_clock(settings),
        score_baseline=SCORE_BASELINE,
    )


def _windows(settings: PipelineSettings) -> Callable[[], pd.DataFrame]:
    """Read at each evaluation: incident write-ups keep arriving while the pipeline runs."""
    source, table = settings.label_source, settings.label_table
    if "://" in source:
        return lambda: read_incident_table(source, table)
    return lambda: read_incident_csv(source)


def _clock(settings: PipelineSettings) -> Callable[[], datetime]:
    """The pipeline clock: the fixed instant of ``AIOPS_NOW`` (or the demo's), else real time."""
    fixed = settings.now
    return (lambda: fixed) if fixed is not None else (lambda: datetime.now(UTC))
