"""Incident diagnosis: line a model's performance drop up with every change upstream of it, and
rank the changes by measured evidence.

Plain Python (no orchestrator import), so it can be tested on scripted histories and run outside
Dagster: ``records`` (what the change log and the engine share), ``scoring`` (the prior: timing,
lineage, drift), ``evidence`` (replays, data characterization, label health: what orders
suspects), ``report`` (what the person on call reads).
"""

from aiops_assets.core.incidents.records import (
    CHANGE_KINDS,
    Change,
    DriftPoint,
    IncidentWindow,
    PerformancePoint,
    Suspect,
    find_incident_window,
)
from aiops_assets.core.incidents.report import (
    IncidentReport,
    asset_links,
    build_incident_report,
)
from aiops_assets.core.incidents.scoring import (
    ScoringWeights,
    correlation_ranker_baseline,
    score_suspects,
)

__all__ = [
    "CHANGE_KINDS",
    "Change",
    "DriftPoint",
    "IncidentReport",
    "IncidentWindow",
    "PerformancePoint",
    "ScoringWeights",
    "Suspect",
    "asset_links",
    "build_incident_report",
    "correlation_ranker_baseline",
    "find_incident_window",
    "score_suspects",
]
