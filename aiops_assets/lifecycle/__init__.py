"""The model lifecycle as a plugin: a host's own model gets registration, the promotion gate,
serving, rollback, staged rollouts and capsules (``build_model_lifecycle``).

Public through ``aiops_assets`` (``build_model_lifecycle``, ``SklearnModel``); the submodules
here are the plugin's own and may change. A new model format (an MLflow pyfunc, say) is a
``core.model_codec.ModelFormat`` returned by a ``LifecycleModel``'s ``format``.
"""
