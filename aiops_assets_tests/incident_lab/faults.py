"""How each planted change reaches the pipeline, the way it would reach a real one.

- *data* faults change the files the collectors export (the directory source reads them as they
  are): a unit change, spikes, a gradual degradation, nulls, a missing service, broken labels, or
  a harmless change of an unrelated service;
- *config* faults are run config of ``telemetry_snapshot`` (``unit_scale``), as a deploy of the
  deployment's config would set it;
- *deploy* faults are stand-ins for code that changed: a patched function and a new code version,
  or a library that now behaves and reports differently. They stay active from the day they land
  through the diagnosis, because that is the code now deployed;
- *ledger* faults go through the ``aiops`` CLI (a feature set and a flag version, a promotion).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping
from typing import Any
from unittest import mock

import numpy as np
import pandas as pd
from pandas.core.window.rolling import Rolling

from aiops_assets.core import features as core_features
from aiops_assets.core.telemetry import LABEL, SERVICE, TIMESTAMP
from aiops_assets.metadata import package_versions
from aiops_assets.reference.assets import drift as drift_assets
from aiops_assets.reference.assets import features as feature_assets
from aiops_assets.reference.assets import snapshot as snapshot_assets
from aiops_assets.reference.assets.features import FEATURE_LIBRARIES
from aiops_assets_tests.incident_lab.spec import START, Fault
from aiops_assets_tests.incident_rehearsals import nan_propagating

DATA_KINDS = frozenset(
    {
        "unit_change",
        "spikes",
        "gradual",
        "nulls",
        "missing_service",
        "label_break",
        "unrelated_change",
    }
)
CONFIG_KINDS = frozenset({"config_change", "noop_config"})
DEPLOY_KINDS = frozenset({"code_change", "library_upgrade", "noop_deploy"})
LEDGER_KINDS = frozenset({"feature_set_change", "bad_promotion"})

# The contract's hard limits the quality suite enforces (a value beyond them is quarantined).
_MAX_LATENCY_MS = 600_000.0
_PERCENT = frozenset({"cpu_pct", "memory_pct"})

# Module and constant holding each daily asset's code version, for the deploy stand-ins.
CODE_VERSIONS: dict[str, tuple[Any, str]] = {
    "telemetry_snapshot": (snapshot_assets, "SNAPSHOT_CODE_VERSION"),
    "features": (feature_assets, "FEATURES_CODE_VERSION"),
    "anomaly_scores": (drift_assets, "SCORES_CODE_VERSION"),
}


# --- data ------------------------------------------------------------------------------------


def apply_data_faults(
    frame: pd.DataFrame, day: int, faults: tuple[Fault, ...], seed: int
) -> pd.DataFrame:
    """The day's export with every data fault active on ``day`` applied, in the given order."""
    result = frame.copy()
    for fault in faults:
        if fault.kind in DATA_KINDS and fault.day <= day:
            result = _DATA[fault.kind](result, day, fault, np.random.default_rng([seed, day]))
    return _valid(result)


def _rows(frame: pd.DataFrame, service: str) -> np.ndarray:
    return (frame[SERVICE] == service).to_numpy()


def _scale(frame: pd.DataFrame, rows: np.ndarray, column: str, factor: Any) -> None:
    frame.loc[rows, column] = frame.loc[rows, column].to_numpy() * factor


def _unit_change(frame: pd.DataFrame, day: int, fault: Fault, rng: Any) -> pd.DataFrame:
    """From ``at_hour`` of the first day, the collectors of one service are updated one by one
    over ``rollout_hours``: each sample comes from an updated one with a probability growing from
    0 to 1, then every sample is in the new unit (and on every later day)."""
    rows = _rows(frame, fault.params["service"])
    updated = np.ones(int(rows.sum()), dtype=bool)
    if day == fault.day:
        day_start = pd.Timestamp(START) + pd.Timedelta(days=day)
        hours = (frame.loc[rows, TIMESTAMP] - day_start).dt.total_seconds().to_numpy() / 3600.0
        share = np.clip(
            (hours - float(fault.params["at_hour"])) / float(fault.params["rollout_hours"]), 0, 1
        )
        updated = rng.random(len(hours)) < share
    for column, factor in fault.params["factors"].items():
        _scale(frame, rows, column, np.where(updated, float(factor), 1.0))
    return frame


def _scaled(frame: pd.DataFrame, day: int, fault: Fault, rng: Any) -> pd.DataFrame:
    rows = _rows(frame, fault.params["service"])
    for column in fault.params["columns"]:
        _scale(frame, rows, column, float(fault.params["factor"]))
    return frame


def _spikes(frame: pd.DataFrame, day: int, fault: Fault, rng: Any) -> pd.DataFrame:
    """Isolated samples of one service multiplied by ``factor`` in every listed column at once:
    an instance that stalls now and then (garbage collection, a noisy neighbour)."""
    positions = np.flatnonzero(_rows(frame, fault.params["service"]))
    count = max(1, round(float(fault.params["fraction"]) * len(positions)))
    chosen = np.zeros(len(frame), dtype=bool)
    chosen[rng.choice(positions, size=min(count, len(positions)), replace=False)] = True
    for column in fault.params["columns"]:
        _scale(frame, chosen, column, float(fault.params["factor"]))
    return frame


def _gradual(frame: pd.DataFrame, day: int, fault: Fault, rng: Any) -> pd.DataFrame:
    """A linear ramp from the start of ``fault.day``: ``1 + per_day * elapsed days``."""
    rows = _rows(frame, fault.params["service"])
    onset = pd.Timestamp(START) + pd.Timedelta(days=fault.day)
    elapsed = (frame.loc[rows, TIMESTAMP] - onset).dt.total_seconds().to_numpy() / 86_400.0
    factor = 1.0 + float(fault.params["per_day"]) * np.maximum(elapsed, 0.0)
    for column in fault.params["columns"]:
        _scale(frame, rows, column, factor)
    return frame


def _nulls(frame: pd.DataFrame, day: int, fault: Fault, rng: Any) -> pd.DataFrame:
    """The same rows lose every listed column, as when a collector drops part of a payload."""
    for service in fault.params["services"]:
        positions = np.flatnonzero(_rows(frame, service))
        count = round(float(fault.params["fraction"]) * len(positions))
        chosen = rng.choice(positions, size=count, replace=False)
        for column in fault.params["columns"]:
            frame.loc[frame.index[chosen], column] = np.nan
    return frame


def _missing_service(frame: pd.DataFrame, day: int, fault: Fault, rng: Any) -> pd.DataFrame:
    return frame.loc[~_rows(frame, fault.params["service"])].reset_index(drop=True)


def _label_break(frame: pd.DataFrame, day: int, fault: Fault, rng: Any) -> pd.DataFrame:
    frame[LABEL] = 0
    return frame


_DATA: dict[str, Callable[[pd.DataFrame, int, Fault, Any], pd.DataFrame]] = {
    "unit_change": _unit_change,
    "spikes": _spikes,
    "gradual": _gradual,
    "nulls": _nulls,
    "missing_service": _missing_service,
    "label_break": _label_break,
    # A real but harmless change: the unrelated service's traffic grew a little.
    "unrelated_change": _scaled,
}


def _valid(frame: pd.DataFrame) -> pd.DataFrame:
    """What a collector could report: percentages within 0..100, errors within requests, p50
    within p99, latencies within the contract's range. A fault may be absurd, never impossible."""
    for column in _PERCENT:
        frame[column] = frame[column].clip(0.0, 100.0)
    frame["error_rate"] = frame["error_rate"].clip(upper=frame["request_rate"])
    frame["latency_p99_ms"] = frame["latency_p99_ms"].clip(upper=_MAX_LATENCY_MS)
    frame["latency_p50_ms"] = frame["latency_p50_ms"].clip(upper=frame["latency_p99_ms"])
    return frame


def incident_rate_factor(faults: tuple[Fault, ...], day: int) -> float:
    """How much busier than usual ``day`` is with real incidents (a label break lands on a day
    of real incidents, so the model has something to flag that the broken labels deny)."""
    factor = 1.0
    for fault in faults:
        if fault.kind == "label_break" and fault.day == day:
            factor = max(factor, float(fault.params.get("incident_rate_factor", 1.0)))
    return factor


# --- config ------------------------------------------------------------------------------------


def snapshot_config(faults: tuple[Fault, ...], day: int) -> dict[str, Any]:
    """The ``telemetry_snapshot`` run config in force on ``day``: every ``unit_scale`` entry
    deployed on or before it."""
    unit_scale: dict[str, dict[str, float]] = {}
    for fault in sorted(faults, key=lambda item: item.day):
        if fault.kind in CONFIG_KINDS and fault.day <= day:
            entry = unit_scale.setdefault(str(fault.params["service"]), {})
            entry.update({str(c): float(f) for c, f in fault.params["factors"].items()})
    return {"unit_scale": unit_scale} if unit_scale else {}


# --- deploys -----------------------------------------------------------------------------------


def deploy(fault: Fault) -> contextlib.AbstractContextManager[Any]:
    """The deployed code of a deploy fault, as a context that stays entered while it is live."""
    return _DEPLOYS[fault.kind](fault.params)


def _code_version(stack: contextlib.ExitStack, asset: str, version: str) -> None:
    module, name = CODE_VERSIONS[asset]
    stack.enter_context(mock.patch.object(module, name, version))


def _noop_deploy(params: Mapping[str, Any]) -> contextlib.AbstractContextManager[Any]:
    stack = contextlib.ExitStack()
    _code_version(stack, str(params["asset"]), str(params["version"]))
    return stack


def _code_change(params: Mapping[str, Any]) -> contextlib.AbstractContextManager[Any]:
    """A refactor of the feature code: z-scores and rates clipped "so outliers stop
    dominating", or the ratios given in percent."""
    original = core_features._service_features
    variant = str(params["variant"])
    value = float(params["value"])

    def changed(group: pd.DataFrame, metrics: list[str], spec: Any) -> pd.DataFrame:
        frame = original(group, metrics, spec)
        if variant == "clip":
            standardized = [c for c in frame.columns if "__z_" in c or c.endswith("__dz")]
            frame[standardized] = frame[standardized].clip(-value, value)
        else:
            ratios = [c for c in frame.columns if c.startswith("ratio__")]
            frame[ratios] = frame[ratios] * value
        return frame

    stack = contextlib.ExitStack()
    _code_version(stack, "features", str(params["version"]))
    stack.enter_context(mock.patch.object(core_features, "_service_features", changed))
    return stack


def _library_upgrade(params: Mapping[str, Any]) -> contextlib.AbstractContextManager[Any]:
    """A pandas minor whose rolling statistics return NaN for any window holding a NaN, and
    which reports its new version; our code is unchanged."""
    installed = package_versions(FEATURE_LIBRARIES)
    major, minor, *_ = installed["pandas"].split(".")
    upgraded = {**installed, "pandas": f"{major}.{int(minor) + int(params['minor_step'])}.0"}
    stack = contextlib.ExitStack()
    stack.enter_context(
        mock.patch.object(feature_assets, "package_versions", lambda names: upgraded)
    )
    for name in params["methods"]:
        stack.enter_context(
            mock.patch.object(Rolling, name, nan_propagating(getattr(Rolling, name)))
        )
    return stack


_DEPLOYS: dict[str, Callable[[Mapping[str, Any]], contextlib.AbstractContextManager[Any]]] = {
    "code_change": _code_change,
    "library_upgrade": _library_upgrade,
    "noop_deploy": _noop_deploy,
}


def current_code_version(asset: str) -> str:
    module, name = CODE_VERSIONS[asset]
    return str(getattr(module, name))
