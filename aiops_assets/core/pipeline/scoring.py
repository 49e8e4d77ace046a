"""A day's features scored by the version serving each service."""

from __future__ import annotations

import pandas as pd

from aiops_assets.core.ledger import ModelVersion
from aiops_assets.core.telemetry import SERVICE

SCORES_ASSET = "anomaly_scores"
# The name the performance check records its results under in the ledger (``keys.py`` too).
PERFORMANCE_CHECK_NAME = "performance"


def groups_by_version(
    day: pd.DataFrame, serving: dict[str, int | None], champion: ModelVersion | None
) -> list[tuple[int | None, pd.DataFrame]]:
    """The day's rows split by the version that scores them, the champion's first."""
    by_service = day[SERVICE].astype(str).map(serving)
    champion_number = None if champion is None else champion.version
    groups: list[tuple[int | None, pd.DataFrame]] = []
    if by_service.isna().all():
        return [(champion_number, day)]
    order = sorted(
        {int(v) for v in by_service.dropna().unique()}, key=lambda v: (v != champion_number, v)
    )
    for served in order:
        groups.append((served, day[by_service == served]))
    unassigned = day[by_service.isna()]
    if not unassigned.empty:
        groups.append((champion_number, unassigned))
    return groups
