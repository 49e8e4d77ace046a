"""The reference pipeline's steps as plain functions, shared by every orchestrator.

The Dagster assets (``reference/assets``) and the Airflow tasks (``aiops_assets/airflow``) both
call these, so the same days give the same snapshot, feature and model hashes whichever
orchestrator ran them; each adapter adds only its own wiring (metadata, events, failures).
"""
