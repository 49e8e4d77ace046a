"""A seeded generator of incidents run through the real pipeline, as an on-call team meets them.

Telemetry arrives as CSV exports in the incident's own source directory (source kind
``directory``); the pipeline is the reference definitions with the reference run config (a config
change is run config of ``telemetry_snapshot``); feature sets, flags and promotions go through
the ``aiops`` CLI and the ledger; the diagnosis is exactly what ``aiops incident --json --home H``
prints. Shared by ``benchmarks/incident_benchmark.py`` and the acceptance tests.

Timeline (eleven daily partitions from Monday 2026-01-05): days 1-5 are ingested and trained on,
the weekend is served (the shared history of a base seed, built once and copied per incident);
each incident then serves from Monday 2026-01-12 until the performance check fails, at most one
day past the day its cause should have failed it. A planted fault that fails nothing (or that the
quality gate catches, or that a failure precedes) is redrawn, and counted.

Modules: ``spec`` (what is planted and how a report names it), ``families`` (the seeded draws of
causes and decoys), ``faults`` (how each reaches the pipeline), ``pipeline`` (history, serving,
the CLI), ``lab`` (one incident end to end, and its scores).
"""

from aiops_assets_tests.incident_lab.families import (
    DECOY_KINDS,
    DEFAULT_FAMILIES,
    FAMILIES,
    draw_incident,
)
from aiops_assets_tests.incident_lab.lab import (
    diagnose,
    diagnose_only,
    history_home,
    incident_home,
    run_incident,
    score_ranking,
    score_report,
    stored_result,
)
from aiops_assets_tests.incident_lab.pipeline import (
    LabError,
    aiops,
    prepare_history,
    serve_incident,
)
from aiops_assets_tests.incident_lab.spec import Fault, IncidentSpec, Predicate

__all__ = [
    "DECOY_KINDS",
    "DEFAULT_FAMILIES",
    "FAMILIES",
    "Fault",
    "IncidentSpec",
    "LabError",
    "Predicate",
    "aiops",
    "diagnose",
    "diagnose_only",
    "draw_incident",
    "history_home",
    "incident_home",
    "prepare_history",
    "run_incident",
    "score_ranking",
    "score_report",
    "serve_incident",
    "stored_result",
]
