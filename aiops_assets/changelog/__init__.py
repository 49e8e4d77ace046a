"""The change log, captured from what Dagster and the ledger already record.

An incident report lines a model's performance drop up with every change upstream of it. Nobody
keeps a change log by hand reliably, and nobody has to: each materialization already carries its
data version, code version and config hash, each capsule its environment, each drift check its
policy hash, and the ledger every alias move. This package reads those records back (through
indexed queries: per asset key, per check key, per run id) and turns each difference between
consecutive records into a ``Change``; the correlation engine in ``core/incidents.py`` does the
rest without touching Dagster.
"""

from aiops_assets.changelog.collect import collect_changes, upstream_distances
from aiops_assets.changelog.history import drift_history, performance_history
from aiops_assets.changelog.records import MODEL_ASSET, PERFORMANCE_CHECK

__all__ = [
    "MODEL_ASSET",
    "PERFORMANCE_CHECK",
    "collect_changes",
    "drift_history",
    "performance_history",
    "upstream_distances",
]
