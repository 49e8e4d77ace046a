"""The reference pipeline for Airflow 3: copy this file into the DAGs folder.

Configured by the same ``AIOPS_*`` variables as the Dagster code location (see docs/airflow.md);
pointing both at one ``AIOPS_HOME`` shares their store, ledger and audit chain.
"""

from aiops_assets.airflow.dags import build_reference_dags

_DAGS = build_reference_dags()
aiops_reference_daily = _DAGS["aiops_reference_daily"]
aiops_reference_train = _DAGS["aiops_reference_train"]
aiops_reference_rollback = _DAGS["aiops_reference_rollback"]
