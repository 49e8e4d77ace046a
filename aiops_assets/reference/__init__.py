"""The reference code location: an example of the plugin on generated telemetry, not a special case.

``aiops_assets.reference.definitions`` is the code location Dagster loads (``workspace.yaml``,
``[tool.dagster]``); the demo, its settings and the sandbox live beside it.
"""
