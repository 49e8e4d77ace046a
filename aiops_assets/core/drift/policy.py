"""The drift alert policy: false-discovery control, effect-size floors, calibration, persistence.

A p-value alone alarms on any shift once the sample is big enough, and testing many features
alarms by chance. So the policy (a versioned YAML file whose SHA-256 goes into every result)
combines Benjamini-Hochberg across features with an effect-size floor, optional thresholds
calibrated on reference chunks, and persistence over partitions.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from aiops_assets.core.drift._common import KINDS, MEASURES_BY_KIND
from aiops_assets.core.yaml_mapping import parse_yaml_mapping

# The packaged default stays at ``core/drift_policy.yaml``, beside this package, where the docs
# and users' configurations point.
DEFAULT_POLICY_PATH = Path(__file__).parent.parent / "drift_policy.yaml"
_POLICY_FIELDS = {"version", "name", "alpha", "kinds", "calibration", "persistence", "episodes"}


@dataclass(frozen=True)
class KindPolicy:
    """Per kind: which measure is the effect size (with its floors) and which is the main score."""

    effect: str
    warn: float
    error: float
    score: str
    # The error floor for a calibrated profile, whose thresholds already know the reference's own
    # day-to-day spread; None: `error` for both.
    error_calibrated: float | None = None


@dataclass(frozen=True)
class DriftPolicy:
    """The alert policy, parsed from its YAML ``source``; ``sha256`` is the hash of that text.

    Change a loaded policy with `replace`, which rewrites the source so the hash stays honest.
    """

    source: str
    name: str
    version: int
    alpha: float
    kinds: Mapping[str, KindPolicy]
    calibration_enabled: bool
    calibration_sigma: float
    persistence_window: int
    persistence_required: int
    # Absent from a policy file written before they existed: their defaults keep its meaning.
    persistence_escalate_at: float = 0.0
    episode_bridge: int = 1

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.source.encode()).hexdigest()

    @classmethod
    def from_yaml(cls, text: str | bytes) -> DriftPolicy:
        source = text.decode() if isinstance(text, bytes) else text
        raw = parse_yaml_mapping(source, what="a drift policy", expected="a YAML mapping")
        return cls._from_mapping(raw, source)

    @classmethod
    def _from_mapping(cls, raw: Mapping[str, Any], source: str) -> DriftPolicy:
        unknown = sorted(set(raw) - _POLICY_FIELDS)
        if unknown:
            raise ValueError(
                f"unknown drift policy fields {unknown}; known: {sorted(_POLICY_FIELDS)}"
            )
        kinds_raw = raw.get("kinds") or {}
        kinds: dict[str, KindPolicy] = {
            kind: _kind_policy(kind, kinds_raw.get(kind)) for kind in KINDS
        }
        calibration = raw.get("calibration") or {}
        persistence = raw.get("persistence") or {}
        episodes = raw.get("episodes") or {}
        window = int(persistence.get("window", 1))
        required = int(persistence.get("required", 1))
        result = cls(
            source=source,
            name=str(raw.get("name", "unnamed")),
            version=int(raw["version"]),
            alpha=float(raw["alpha"]),
            kinds=kinds,
            calibration_enabled=bool(calibration.get("enabled", False)),
            calibration_sigma=float(calibration.get("sigma", 3.0)),
            persistence_window=window,
            persistence_required=required,
            persistence_escalate_at=float(persistence.get("escalate_at", 0.0)),
            episode_bridge=int(episodes.get("bridge", max(window - required, 0))),
        )
        if not 0 < result.alpha < 1:
            raise ValueError("drift policy: alpha must be in (0, 1)")
        if not 1 <= result.persistence_required <= result.persistence_window:
            raise ValueError("drift policy: persistence needs 1 <= required <= window")
        if not 0 <= result.persistence_escalate_at <= 1:
            raise ValueError("drift policy: persistence.escalate_at must be in [0, 1]")
        if result.episode_bridge < 0:
            raise ValueError("drift policy: episodes.bridge must be >= 0")
        return result

    def to_mapping(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "name": self.name,
            "alpha": self.alpha,
            "kinds": {
                kind: {
                    "effect": policy.effect,
                    "warn": policy.warn,
                    "error": policy.error,
                    "score": policy.score,
                    **(
                        {}
                        if policy.error_calibrated is None
                        else {"error_calibrated": policy.error_calibrated}
                    ),
                }
                for kind, policy in self.kinds.items()
            },
            "calibration": {"enabled": self.calibration_enabled, "sigma": self.calibration_sigma},
            "persistence": {
                "window": self.persistence_window,
                "required": self.persistence_required,
                "escalate_at": self.persistence_escalate_at,
            },
            "episodes": {"bridge": self.episode_bridge},
        }

    def replace(self, changes: Mapping[str, Any]) -> DriftPolicy:
        """A policy with nested ``changes`` applied, e.g. ``{"kinds": {"numeric": {"warn": 0}}}``."""
        mapping = _deep_update(self.to_mapping(), changes)
        return DriftPolicy.from_yaml(yaml.safe_dump(mapping, sort_keys=False))


def _kind_policy(kind: str, entry: Any) -> KindPolicy:
    if not isinstance(entry, dict):
        raise ValueError(f"drift policy: kinds.{kind} is missing")
    policy = KindPolicy(
        effect=str(entry["effect"]),
        warn=float(entry["warn"]),
        error=float(entry["error"]),
        score=str(entry["score"]),
        error_calibrated=(
            None if entry.get("error_calibrated") is None else float(entry["error_calibrated"])
        ),
    )
    for measure in (policy.effect, policy.score):
        if measure not in MEASURES_BY_KIND[kind]:
            raise ValueError(
                f"drift policy: {kind} measure {measure!r} is not one of {MEASURES_BY_KIND[kind]}"
            )
    if not 0 <= policy.warn <= policy.error:
        raise ValueError(f"drift policy: {kind} needs 0 <= warn <= error")
    if policy.error_calibrated is not None and policy.error_calibrated < policy.warn:
        raise ValueError(f"drift policy: {kind} needs warn <= error_calibrated")
    return policy


def _deep_update(base: dict[str, Any], changes: Mapping[str, Any]) -> dict[str, Any]:
    result = dict(base)
    for key, value in changes.items():
        if isinstance(value, Mapping) and isinstance(result.get(key), dict):
            result[key] = _deep_update(result[key], value)
        else:
            result[key] = value
    return result


def load_policy(path: str | os.PathLike[str] | None = None) -> DriftPolicy:
    """The policy in ``path``, by default the packaged ``drift_policy.yaml``."""
    return DriftPolicy.from_yaml(Path(path or DEFAULT_POLICY_PATH).read_bytes())


def benjamini_hochberg(p_values: Sequence[float] | np.ndarray) -> np.ndarray:
    """BH-adjusted p-values (q-values): reject where q < alpha to keep the FDR at alpha."""
    p = np.asarray(p_values, dtype=np.float64)
    if p.size == 0:
        return p.copy()
    order = np.argsort(p, kind="stable")
    ranked = p[order] * p.size / np.arange(1, p.size + 1)
    adjusted = np.minimum.accumulate(ranked[::-1])[::-1]
    q = np.empty_like(p)
    q[order] = np.clip(adjusted, 0.0, 1.0)
    return q


def persistence_met(
    previous: Sequence[str | None], drifted_now: bool, *, window: int, required: int
) -> bool:
    """True when at least ``required`` of the last ``window`` partitions, this one included, drifted.

    ``previous`` are earlier verdicts of the same feature, oldest first; a partition without one
    (None) did not drift. Pure, so the caller owns where history lives (a Dagster check reads it
    from earlier check results).
    """
    if window < 1 or required < 1:
        raise ValueError("persistence needs window >= 1 and required >= 1")
    earlier = list(previous)[-(window - 1) :] if window > 1 else []
    drifted = sum(verdict in ("warn", "error") for verdict in earlier) + int(drifted_now)
    return drifted >= required
