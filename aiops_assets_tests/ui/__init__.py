"""The Dagster UI driven by a real browser against `dagster dev` serving a materialized demo."""
