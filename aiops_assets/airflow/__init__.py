"""The Airflow 3 provider: the reference pipeline's steps on ``core/``, as task-SDK DAGs.

Install with ``pip install 'aiops-assets[airflow]'``; see ``docs/airflow.md``. Nothing here
imports Dagster: the steps (``steps_data``, ``steps_model``) call ``core/`` and the loop's
decisions (``loop``) mirror the Dagster sensors' run keys and cooldown. Importing this package
does not import Airflow; ``dags`` and ``assets`` do.
"""
