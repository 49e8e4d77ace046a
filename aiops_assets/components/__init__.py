"""Dagster Components of the plugin, loadable from a host project's ``defs.yaml``."""

from aiops_assets.components.monitoring import AiopsMonitoring

__all__ = ["AiopsMonitoring"]
