"""Build a detector by family name: how a pipeline asks for "the chosen family"."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from aiops_assets.core.detectors.base import Detector
from aiops_assets.core.detectors.ensemble import EnsembleDetector
from aiops_assets.core.detectors.forest import IsolationForestDetector
from aiops_assets.core.detectors.seasonal import SeasonalResidualDetector
from aiops_assets.core.detectors.streaming import EwmaDetector

FAMILIES: Final = ("isolation_forest", "seasonal_residual", "ewma", "ensemble")


def build_detector(name: str, params: Mapping[str, Any] | None = None) -> Detector:
    """A detector of family ``name`` with ``params`` (its dataclass fields).

    ``ensemble`` takes ``components``: a list of ``[name, params]`` pairs, and ``history_rows``.
    An unknown family or parameter is a ``ValueError`` naming it.
    """
    chosen = dict(params or {})
    try:
        if name == "isolation_forest":
            if "windows" in chosen:
                chosen["windows"] = tuple(chosen["windows"])
            return IsolationForestDetector(**chosen)
        if name == "seasonal_residual":
            return SeasonalResidualDetector(**chosen)
        if name == "ewma":
            return EwmaDetector(**chosen)
        if name == "ensemble":
            components = [
                build_detector(str(part), dict(part_params))
                for part, part_params in chosen.pop("components", ())
            ]
            return EnsembleDetector(components=components, **chosen)
    except TypeError as error:
        raise ValueError(f"detector {name!r}: {error}") from error
    raise ValueError(f"unknown detector family {name!r} (known: {', '.join(FAMILIES)})")
