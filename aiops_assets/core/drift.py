"""Drift engine: baseline profiles, drift statistics, false-discovery control and the alert policy.

Why it is shaped this way:

- A drift check runs on every new partition, so it must never rescan the reference window. The
  reference is summarized once into a `BaselineProfile` (content-addressed like any other artifact)
  and a check takes that profile plus the current data only.
- Small references keep every sorted value (*exact* mode): the statistics then equal the textbook
  ones (scipy's to ~1e-15). Large references keep a quantile sketch (*sketch* mode) whose error is
  bounded and reported with every statistic, so a reader knows how far a number can be off.
- Profiles merge (partitions of a window, chunks of a large partition): exact profiles and sketches
  on the same grid merge exactly, so ``profile(A + B) == merge(profile(A), profile(B))``.
- A p-value alone alarms on any shift once the sample is big enough, and testing many features
  alarms by chance. So the policy (a versioned YAML file whose SHA-256 goes into every result)
  combines Benjamini-Hochberg across features with an effect-size floor, optional thresholds
  calibrated on reference chunks, and persistence over partitions.

Sketch-mode error bounds (``metrics["ks_error_bound"]``, ``metrics["wasserstein_error_bound"]``):
a sketch stores the exact counts below and at each of its knots (quantiles of the reference at
levels ``k / sketch_bins``, with finer levels inside the two outer bins) and interpolates the CDF
linearly between knots. Within a gap the true CDF and the interpolation both stay between the
counts at the gap's ends, so the CDF error is at most the largest *gap mass* (the share of values
strictly between two adjacent knots), which is below ``1 / sketch_bins`` for a freshly built
sketch; heavy ties become knots and are exact. Therefore

- ``|KS_sketch - KS_exact| <= gap_mass(reference) + gap_mass(current)``; when the reference is a
  sketch the current data is counted on the reference's grid, so its gap mass is exact too;
- ``|W_sketch - W_exact| <= sum over gaps of gap_mass * gap_width`` for both sides;
- PSI and Jensen-Shannon are exact in sketch mode (their bins are knots of the sketch) as long as
  ``sketch_bins`` is a multiple of ``psi_bins``;
- a merge of sketches on different grids re-selects knots; its bound is the count-weighted bound
  of the inputs plus the largest new gap mass, and is carried in ``NumericSketch.rank_error``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import struct
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Literal, TypeVar, cast

import numpy as np
import pandas as pd
import yaml
from scipy import special as scipy_special
from scipy import stats as scipy_stats

Kind = Literal["numeric", "categorical", "binary"]
Role = Literal["feature", "prediction", "label"]
Mode = Literal["auto", "exact", "sketch"]
Verdict = Literal["ok", "warn", "error"]
DataLike = pd.DataFrame | Mapping[str, Any]
_Item = TypeVar("_Item")
_Result = TypeVar("_Result")

KINDS: tuple[Kind, ...] = ("numeric", "categorical", "binary")
VERDICTS: tuple[Verdict, ...] = ("ok", "warn", "error")
DEFAULT_POLICY_PATH = Path(__file__).with_name("drift_policy.yaml")
# 2000 knots: KS error below 0.0005 and a profile of ~48 KB per feature; a multiple of the common
# PSI bin counts (10, 20, 50, 100), which keeps PSI and JS exact in sketch mode.
DEFAULT_SKETCH_BINS = 2000
DEFAULT_PSI_BINS = 10
# Up to this many reference rows a feature keeps its sorted values: 800 KB each, exact statistics.
DEFAULT_EXACT_MAX_ROWS = 100_000
# A slice (say one service) needs this many reference rows for a reference of its own; smaller
# slices are judged in the overall profile only.
DEFAULT_MIN_SLICE_ROWS = 30
# At most this many slices, the largest by reference rows: a high-cardinality column (a host id)
# would otherwise multiply the profile's size by its cardinality.
DEFAULT_MAX_SLICES = 100
# Below this many rows a slice's columns are profiled and tested in the calling thread: handing a
# few hundred values to a worker thread costs more than the work (measured 4x on the reference
# pipeline's 288-row service-days).
_SLICE_THREAD_MIN_ROWS = 50_000
# PSI's logarithm is infinite for an empty bin; 1e-4 is the floor Evidently and NannyML use, so
# the numbers read the same as theirs.
PSI_EPSILON = 1e-4
# A constant reference has no spread to normalize by; a relative floor keeps the normalized
# Wasserstein finite and still large when the current data leaves the constant.
_RELATIVE_SCALE_FLOOR = 1e-6
# Above this effective sample size KS p-values use Stephens' formula instead of scipy's O(n) one.
KS_EXACT_P_MAX_N = DEFAULT_EXACT_MAX_ROWS
PROFILE_SCHEMA_VERSION = 1
_PROFILE_MAGIC = b"AIOPS-DRIFT-PROFILE\n"

NUMERIC_MEASURES = ("ks", "wasserstein_normalized", "psi", "js")
CATEGORICAL_MEASURES = ("psi", "js")
BINARY_MEASURES = ("rate_difference", "psi", "js")
_MEASURES_BY_KIND: dict[str, tuple[str, ...]] = {
    "numeric": NUMERIC_MEASURES,
    "categorical": CATEGORICAL_MEASURES,
    "binary": BINARY_MEASURES,
}


# --------------------------------------------------------------------------------------------
# Profiles
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class NumericSketch:
    """A CDF known exactly at its knots and linear between them (see the module docstring).

    ``below[k]`` and ``at_or_below[k]`` count the values ``< knots[k]`` and ``<= knots[k]``; both
    are kept so that an atom at a knot is exact. Values outside the knots (current data beyond the
    reference's range) are tails between the exact ``minimum``/``maximum`` and the outer knots.
    Counts are floats so that sums stay exact (below 2**53) and re-gridded merges can interpolate.
    """

    knots: np.ndarray
    below: np.ndarray
    at_or_below: np.ndarray
    minimum: float
    maximum: float
    # How many values equal the minimum and the maximum, so atoms at the extremes stay exact even
    # beyond the knots (an integer metric that reaches a new maximum).
    minimum_count: float
    maximum_count: float
    # Upper bound on sup |F_sketch - F| as a share of the count.
    rank_error: float
    # True while the counts at the knots are exact (fresh sketches and merges on one grid): then
    # each gap's mass bounds the error inside it, which gives the tighter Wasserstein bound.
    counts_exact: bool = True

    def to_dict(self) -> dict[str, Any]:
        return {
            "knots": _floats(self.knots),
            "below": _floats(self.below),
            "at_or_below": _floats(self.at_or_below),
            "minimum": float(self.minimum),
            "maximum": float(self.maximum),
            "minimum_count": float(self.minimum_count),
            "maximum_count": float(self.maximum_count),
            "rank_error": float(self.rank_error),
            "counts_exact": bool(self.counts_exact),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> NumericSketch:
        return cls(
            knots=np.asarray(data["knots"], dtype=np.float64),
            below=np.asarray(data["below"], dtype=np.float64),
            at_or_below=np.asarray(data["at_or_below"], dtype=np.float64),
            minimum=float(data["minimum"]),
            maximum=float(data["maximum"]),
            minimum_count=float(data["minimum_count"]),
            maximum_count=float(data["maximum_count"]),
            rank_error=float(data["rank_error"]),
            counts_exact=bool(data.get("counts_exact", True)),
        )


@dataclass(frozen=True)
class CalibrationStats:
    """How much a measure varies between reference chunks and the whole reference."""

    mean: float
    std: float
    chunks: int

    def threshold(self, sigma: float) -> float:
        return self.mean + sigma * self.std


@dataclass(frozen=True, eq=False)
class FeatureProfile:
    """What the reference looked like for one column; enough to test drift without the data.

    numeric: ``values`` (exact mode, sorted finite values) or ``sketch``; ``mean``/``m2`` are the
    exact mean and sum of squared deviations (they normalize the Wasserstein distance).
    categorical and binary: ``categories`` (sorted) with their ``category_counts``; binary columns
    always have the categories ``("0", "1")``.
    """

    name: str
    kind: Kind
    role: Role
    count: int
    missing: int
    mean: float = 0.0
    m2: float = 0.0
    values: np.ndarray | None = None
    sketch: NumericSketch | None = None
    categories: tuple[str, ...] = ()
    category_counts: np.ndarray | None = None
    calibration: Mapping[str, CalibrationStats] = field(default_factory=dict)

    @property
    def mode(self) -> str:
        if self.kind != "numeric":
            return "exact"
        return "sketch" if self.sketch is not None else "exact"

    @property
    def std(self) -> float:
        return math.sqrt(self.m2 / self.count) if self.count else 0.0

    @cached_property
    def scale(self) -> float:
        """The reference spread that normalizes Wasserstein, floored for constant columns."""
        return max(self.std, _RELATIVE_SCALE_FLOOR * (abs(self.mean) + 1.0))

    @cached_property
    def support(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(knots, below, at_or_below) including tails; exact profiles use their distinct values."""
        if self.sketch is not None:
            return _sketch_support(self.sketch, float(self.count))
        assert self.values is not None
        distinct = np.unique(self.values)
        return (
            distinct,
            np.searchsorted(self.values, distinct, "left").astype(np.float64),
            np.searchsorted(self.values, distinct, "right").astype(np.float64),
        )

    def cdf(self, points: Sequence[float] | np.ndarray, *, left: bool = False) -> np.ndarray:
        """Share of reference values ``<= point`` (``< point`` with ``left``) as the profile knows it.

        Exact for exact profiles; within ``sketch.rank_error`` of the truth for sketches.
        """
        if self.kind != "numeric":
            raise ValueError(f"feature {self.name!r} is {self.kind}; a CDF needs a numeric one")
        query = np.asarray(points, dtype=np.float64)
        if self.count == 0:
            return np.zeros(query.shape)
        below, at_or_below = _evaluate_support(self.support, float(self.count), query.ravel())
        return ((below if left else at_or_below) / self.count).reshape(query.shape)

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "name": self.name,
            "kind": self.kind,
            "role": self.role,
            "count": int(self.count),
            "missing": int(self.missing),
        }
        if self.kind == "numeric":
            data["mean"] = float(self.mean)
            data["m2"] = float(self.m2)
            data["values"] = None if self.values is None else _floats(self.values)
            data["sketch"] = None if self.sketch is None else self.sketch.to_dict()
        else:
            data["categories"] = list(self.categories)
            assert self.category_counts is not None
            data["category_counts"] = [int(count) for count in self.category_counts]
        data["calibration"] = {
            measure: {"mean": stats.mean, "std": stats.std, "chunks": stats.chunks}
            for measure, stats in sorted(self.calibration.items())
        }
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FeatureProfile:
        kind = cast(Kind, str(data["kind"]))
        if kind not in KINDS:
            raise ValueError(f"feature {data.get('name')!r} has unknown kind {kind!r}")
        calibration = {
            str(measure): CalibrationStats(
                mean=float(stats["mean"]), std=float(stats["std"]), chunks=int(stats["chunks"])
            )
            for measure, stats in dict(data.get("calibration") or {}).items()
        }
        common: dict[str, Any] = {
            "name": str(data["name"]),
            "kind": kind,
            "role": cast(Role, str(data["role"])),
            "count": int(data["count"]),
            "missing": int(data["missing"]),
            "calibration": calibration,
        }
        if kind == "numeric":
            values = data.get("values")
            sketch = data.get("sketch")
            return cls(
                **common,
                mean=float(data["mean"]),
                m2=float(data["m2"]),
                values=None if values is None else np.asarray(values, dtype=np.float64),
                sketch=None if sketch is None else NumericSketch.from_dict(sketch),
            )
        return cls(
            **common,
            categories=tuple(str(category) for category in data["categories"]),
            category_counts=np.asarray(data["category_counts"], dtype=np.int64),
        )


@dataclass(frozen=True, eq=False)
class BaselineProfile:
    """Per-feature reference profiles; the only thing a drift check needs from the reference.

    ``to_dict()`` is JSON-able (for `ArtifactStore.put_json`); ``to_bytes()`` is a compact
    canonical binary form (for `ArtifactStore.put_bytes`) whose SHA-256 is ``sha256``.

    ``slices`` optionally holds one profile per value of the ``slice_column`` (say each service),
    built and calibrated the same way on that value's rows only: raw levels differ between
    services by orders of magnitude, so a service is judged against its own reference, never the
    pooled one (`evaluate_slices`). A profile without slices serializes exactly as before slices
    existed, so older stored profiles load and keep their hashes.
    """

    features: tuple[FeatureProfile, ...]
    psi_bins: int = DEFAULT_PSI_BINS
    sketch_bins: int = DEFAULT_SKETCH_BINS
    slices: Mapping[str, BaselineProfile] = field(default_factory=dict)
    slice_column: str | None = None

    def __post_init__(self) -> None:
        names = [feature.name for feature in self.features]
        duplicated = sorted({name for name in names if names.count(name) > 1})
        if duplicated:
            raise ValueError(f"a profile names each feature once; repeated: {duplicated}")
        if self.psi_bins < 2 or self.sketch_bins < 2:
            raise ValueError("psi_bins and sketch_bins must be at least 2")
        if self.slices and not self.slice_column:
            raise ValueError("a profile with slices names the column they slice (slice_column)")
        for value, part in self.slices.items():
            if part.slices:
                raise ValueError(f"slice {value!r} has slices of its own; slices do not nest")
            if part.names != names:
                raise ValueError(
                    f"slice {value!r} profiles {part.names}, not the profile's {names}"
                )
        # Canonical order, so equal profiles serialize to equal bytes.
        object.__setattr__(self, "slices", {str(k): self.slices[k] for k in sorted(self.slices)})

    @property
    def names(self) -> list[str]:
        return [feature.name for feature in self.features]

    def feature(self, name: str) -> FeatureProfile:
        for feature in self.features:
            if feature.name == name:
                return feature
        raise KeyError(f"the profile has no feature {name!r} (it has {self.names})")

    def slice_label(self, value: str) -> str:
        """How a slice is named to people and in metadata keys: ``service=checkout``."""
        return f"{self.slice_column}={value}"

    def select(self, names: Sequence[str]) -> BaselineProfile:
        """The profile of ``names`` only (in that order), its slices restricted alike."""
        return BaselineProfile(
            features=tuple(self.feature(name) for name in names),
            psi_bins=self.psi_bins,
            sketch_bins=self.sketch_bins,
            slices={value: part.select(names) for value, part in self.slices.items()},
            slice_column=self.slice_column,
        )

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "schema_version": PROFILE_SCHEMA_VERSION,
            "psi_bins": self.psi_bins,
            "sketch_bins": self.sketch_bins,
            "features": [feature.to_dict() for feature in self.features],
        }
        if self.slices:  # absent otherwise: profiles without slices keep their bytes and hash
            data["slice_column"] = self.slice_column
            data["slices"] = {value: part.to_dict() for value, part in self.slices.items()}
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> BaselineProfile:
        version = int(data.get("schema_version", 0))
        if version != PROFILE_SCHEMA_VERSION:
            raise ValueError(
                f"profile schema version {version} is not {PROFILE_SCHEMA_VERSION}; rebuild it"
            )
        slices = {
            str(value): cls.from_dict(item) for value, item in (data.get("slices") or {}).items()
        }
        column = data.get("slice_column")
        return cls(
            features=tuple(FeatureProfile.from_dict(item) for item in data["features"]),
            psi_bins=int(data["psi_bins"]),
            sketch_bins=int(data["sketch_bins"]),
            slices=slices,
            slice_column=None if column is None else str(column),
        )

    def to_bytes(self) -> bytes:
        """Canonical bytes: a magic line, a canonical JSON header, then raw little-endian arrays.

        JSON lists of a million floats are slow and three times larger than the floats
        themselves; this keeps the arrays binary while staying byte-for-byte deterministic.
        """
        arrays: list[np.ndarray] = []

        def stash(array: np.ndarray) -> dict[str, Any]:
            arrays.append(np.ascontiguousarray(array, dtype="<f8"))
            return {"$array": len(arrays) - 1, "length": int(array.size)}

        header = self.to_dict()
        # The overall features' arrays first, then each slice's in sorted order (from_bytes reads
        # them back in that order).
        parts_in_order = [(self, header)] + [
            (part, header["slices"][value]) for value, part in self.slices.items()
        ]
        for profile, part_header in parts_in_order:
            for feature, item in zip(profile.features, part_header["features"], strict=True):
                if feature.values is not None:
                    item["values"] = stash(feature.values)
                if feature.sketch is not None:
                    for key in ("knots", "below", "at_or_below"):
                        item["sketch"][key] = stash(getattr(feature.sketch, key))
        header_bytes = _canonical_json(header)
        parts = [_PROFILE_MAGIC, struct.pack("<Q", len(header_bytes)), header_bytes]
        parts += [array.tobytes() for array in arrays]
        return b"".join(parts)

    @classmethod
    def from_bytes(cls, data: bytes) -> BaselineProfile:
        if not data.startswith(_PROFILE_MAGIC):
            raise ValueError("not a drift profile: the magic line is missing")
        offset = len(_PROFILE_MAGIC)
        (header_length,) = struct.unpack_from("<Q", data, offset)
        offset += 8
        header = json.loads(data[offset : offset + header_length])
        offset += header_length
        buffer = memoryview(data)

        def load(reference: Any) -> Any:
            nonlocal offset
            if isinstance(reference, dict) and "$array" in reference:
                length = int(reference["length"])
                array = np.frombuffer(buffer[offset : offset + 8 * length], dtype="<f8").copy()
                offset += 8 * length
                return array
            return reference

        slices = header.get("slices") or {}
        for part_header in [header] + [slices[value] for value in sorted(slices)]:
            for item in part_header["features"]:
                item["values"] = load(item.get("values"))
                if item.get("sketch") is not None:
                    for key in ("knots", "below", "at_or_below"):
                        item["sketch"][key] = load(item["sketch"][key])
        if offset != len(data):
            raise ValueError("drift profile bytes have trailing data or are truncated")
        return cls.from_dict(header)

    @cached_property
    def sha256(self) -> str:
        return hashlib.sha256(self.to_bytes()).hexdigest()

    def merge(self, other: BaselineProfile) -> BaselineProfile:
        return merge_profiles(self, other)


def build_profile(
    data: DataLike,
    *,
    numeric: Sequence[str] | None = None,
    categorical: Sequence[str] = (),
    predictions: Sequence[str] = (),
    labels: Sequence[str] = (),
    mode: Mode = "auto",
    sketch_bins: int = DEFAULT_SKETCH_BINS,
    psi_bins: int = DEFAULT_PSI_BINS,
    exact_max_rows: int = DEFAULT_EXACT_MAX_ROWS,
    like: BaselineProfile | None = None,
    workers: int | None = None,
    slice_by: str | None = None,
    min_slice_rows: int = DEFAULT_MIN_SLICE_ROWS,
    max_slices: int = DEFAULT_MAX_SLICES,
) -> BaselineProfile:
    """Profile a reference window (or any data) once, for checks that never rescan it.

    ``numeric=None`` takes every numeric column of a frame that is not named elsewhere.
    ``predictions`` are numeric score columns (prediction drift is the numeric path on a score);
    ``labels`` are 0/1 columns (label drift compares the positive rate). ``mode="auto"`` keeps exact
    values up to ``exact_max_rows`` rows and sketches above.

    ``like=profile`` profiles other data *the same way* (same features, kinds, modes and sketch
    grids): chunks of a large partition profiled like the reference merge exactly, and a current
    profile built like the reference compares with it without re-gridding.

    ``slice_by=column`` also profiles each value of that column (each service, say) on its own rows,
    with the same columns and settings; the overall profile is the same as without it. Values with
    fewer than ``min_slice_rows`` rows get no slice, and only the ``max_slices`` largest slices are
    kept (ties by name). With ``like``, slices follow ``like``'s: same column, each slice profiled
    like its counterpart, values ``like`` has no slice for skipped.
    """
    columns = _columns_of(data)
    if like is not None and like.slices and slice_by is None:
        slice_by = like.slice_column
    if slice_by is not None and slice_by not in columns:
        raise ValueError(f"slice column {slice_by!r} is not in the data (it has {columns})")
    specs: list[tuple[str, Kind, Role, FeatureProfile | None]]
    if like is not None:
        if numeric is not None or categorical or predictions or labels:
            raise ValueError("pass either like=profile or column lists, not both")
        specs = [(f.name, f.kind, f.role, f) for f in like.features]
        psi_bins, sketch_bins = like.psi_bins, like.sketch_bins
    else:
        named = [*categorical, *predictions, *labels, *([slice_by] if slice_by else [])]
        if numeric is None:
            numeric = [
                name for name in columns if name not in named and _is_numeric_column(data, name)
            ]
        specs_plain: list[tuple[str, Kind, Role]] = [
            *((name, "numeric", "feature") for name in numeric),
            *((name, "categorical", "feature") for name in categorical),
            *((name, "numeric", "prediction") for name in predictions),
            *((name, "binary", "label") for name in labels),
        ]
        specs = [(name, kind, role, None) for name, kind, role in specs_plain]
    missing_columns = [name for name, *_ in specs if name not in columns]
    if missing_columns:
        raise ValueError(f"columns {missing_columns} are not in the data (it has {columns})")
    if mode not in ("auto", "exact", "sketch"):
        raise ValueError(f"mode must be auto, exact or sketch, not {mode!r}")

    def profile_one(spec: tuple[str, Kind, Role, FeatureProfile | None]) -> FeatureProfile:
        name, kind, role, template = spec
        column = _column(data, name)
        if kind != "numeric":
            return _categorical_profile(name, kind, role, column)
        finite, missing = _finite_sorted(column)
        sketch: NumericSketch | None = None
        if template is not None:
            if template.sketch is not None:
                sketch = _sketch_on_grid(finite, template.sketch.knots)
        elif mode == "sketch" or (mode == "auto" and len(column) > exact_max_rows):
            sketch = _fresh_sketch(finite, sketch_bins)
        return _numeric_profile(name, role, finite, missing, sketch)

    features = _map_in_threads(profile_one, specs, workers)
    profile = BaselineProfile(features=tuple(features), psi_bins=psi_bins, sketch_bins=sketch_bins)
    if slice_by is None:
        return profile
    parts = _split_rows(data, slice_by, profile.names)
    if like is not None:
        wanted = [value for value in parts if value in like.slices]
    else:
        sizes = {value: _rows_of(part) for value, part in parts.items()}
        large = [value for value in parts if sizes[value] >= min_slice_rows]
        wanted = sorted(large, key=lambda value: (-sizes[value], value))[: max(0, max_slices)]
    numeric_names = [f.name for f in profile.features if (f.kind, f.role) == ("numeric", "feature")]
    categorical_names = [f.name for f in profile.features if f.kind == "categorical"]
    prediction_names = [f.name for f in profile.features if f.role == "prediction"]
    label_names = [f.name for f in profile.features if f.kind == "binary"]
    slices = {}
    for value in wanted:
        if like is not None:
            slices[value] = build_profile(
                parts[value], like=like.slices[value], workers=_slice_workers(parts[value], workers)
            )
        else:
            slices[value] = build_profile(
                parts[value],
                numeric=numeric_names,
                categorical=categorical_names,
                predictions=prediction_names,
                labels=label_names,
                mode=mode,
                sketch_bins=sketch_bins,
                psi_bins=psi_bins,
                exact_max_rows=exact_max_rows,
                workers=_slice_workers(parts[value], workers),
            )
    return _with_slices(profile, slices, slice_by)


def merge_profiles(*profiles: BaselineProfile) -> BaselineProfile:
    """Profile of the union of the data behind ``profiles`` (e.g. partitions of a window).

    Exact profiles and sketches on one grid merge exactly; an exact profile merged with a sketch
    is first counted exactly on the sketch's grid. Sketches on different grids are re-gridded
    with a bounded error (module docstring). Calibration is dropped: it described the old reference,
    so run `calibrate` on the merged profile. Slices merge value by value (a value only one side
    has is that side's slice).
    """
    if not profiles:
        raise ValueError("merge_profiles needs at least one profile")
    merged = profiles[0]
    for other in profiles[1:]:
        if merged.names != other.names:
            raise ValueError(f"cannot merge profiles of {merged.names} and {other.names}")
        if merged.slices and other.slices and merged.slice_column != other.slice_column:
            raise ValueError(
                f"cannot merge slices by {merged.slice_column!r} with slices by "
                f"{other.slice_column!r}"
            )
        slices = {value: merge_profiles(part) for value, part in merged.slices.items()}
        for value, part in other.slices.items():
            slices[value] = merge_profiles(slices[value], part) if value in slices else part
        if merged.psi_bins != other.psi_bins:
            raise ValueError(
                f"cannot merge profiles with {merged.psi_bins} and {other.psi_bins} PSI bins"
            )
        # Re-gridding keeps the finer resolution of the two.
        sketch_bins = max(merged.sketch_bins, other.sketch_bins)
        merged = BaselineProfile(
            features=tuple(
                _merge_features(left, right, sketch_bins)
                for left, right in zip(merged.features, other.features, strict=True)
            ),
            psi_bins=merged.psi_bins,
            sketch_bins=sketch_bins,
            slices={value: _without_calibration(part) for value, part in slices.items()},
            slice_column=merged.slice_column or other.slice_column,
        )
    return merged


def calibrate(
    profile: BaselineProfile, chunks: Iterable[DataLike], *, workers: int | None = None
) -> BaselineProfile:
    """Record how much each measure varies between reference chunks and the whole reference.

    A policy with calibration enabled then alarms only beyond ``mean + sigma * std`` of that
    variation (NannyML's reference-chunk thresholds): a feature that is naturally restless does
    not alarm on its usual restlessness. Chunks should be the size of the partitions that will be
    checked, since PSI and the test statistics shrink with sample size. Computed once, here, and
    stored in the profile.

    A profile with slices has each slice calibrated on its own rows of each chunk (the chunks must
    then hold the slice column); a slice present in fewer than two chunks keeps the policy's plain
    floors.
    """
    if profile.slices:
        chunks = list(chunks)
    observed: dict[str, dict[str, list[float]]] = {name: {} for name in profile.names}
    chunk_count = 0
    for chunk in chunks:
        chunk_count += 1
        for name, stats in compute_statistics(
            profile, chunk, workers=workers, ks_p_values=False
        ).items():
            if stats.current_count == 0:
                continue
            for measure in _MEASURES_BY_KIND[stats.kind]:
                observed[name].setdefault(measure, []).append(stats.metrics[measure])
    if chunk_count < 2:
        raise ValueError(f"calibration needs at least 2 reference chunks, got {chunk_count}")
    features = []
    for feature in profile.features:
        calibration = {
            measure: CalibrationStats(
                mean=float(np.mean(values)),
                std=float(np.std(values, ddof=1)) if len(values) > 1 else 0.0,
                chunks=len(values),
            )
            for measure, values in sorted(observed[feature.name].items())
            if values
        }
        features.append(_replace_feature(feature, calibration=calibration))
    slices = dict(profile.slices)
    if slices:
        column = cast(str, profile.slice_column)
        by_value: dict[str, list[DataLike]] = {value: [] for value in slices}
        for chunk in cast(list[DataLike], chunks):
            if column not in _columns_of(chunk):
                raise ValueError(f"a calibration chunk lacks the slice column {column!r}")
            for value, part in _split_rows(chunk, column, profile.names).items():
                if value in by_value:
                    by_value[value].append(part)
        for value, parts in by_value.items():
            if len(parts) >= 2:
                slices[value] = calibrate(
                    slices[value], parts, workers=_slice_workers(parts[0], workers)
                )
    return BaselineProfile(
        features=tuple(features),
        psi_bins=profile.psi_bins,
        sketch_bins=profile.sketch_bins,
        slices=slices,
        slice_column=profile.slice_column,
    )


# --------------------------------------------------------------------------------------------
# Statistics
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FeatureStatistics:
    """Policy-free drift statistics of one feature; ``metrics`` holds every number computed."""

    name: str
    kind: Kind
    role: Role
    mode: str
    test: str
    statistic: float
    p_value: float
    reference_count: int
    current_count: int
    metrics: Mapping[str, float]


def compute_statistics(
    reference: BaselineProfile,
    current: DataLike | BaselineProfile,
    *,
    workers: int | None = None,
    ks_p_values: bool = True,
) -> dict[str, FeatureStatistics]:
    """Drift statistics of ``current`` (data or a profile of it) against the reference profile.

    numeric (features and predictions): KS statistic and asymptotic p-value (scipy's
    ``ks_2samp(method="asymp")``), Wasserstein-1, Wasserstein over the reference std, PSI and
    Jensen-Shannon distance (base 2) on the reference's ``psi_bins`` quantile bins.
    categorical: chi-square test of homogeneity, PSI, Jensen-Shannon. binary (labels): the same,
    plus the positive rates and their absolute difference.

    The expensive part, a merge of sorted reference and current values per numeric column, is one
    column at a time on purpose: a 2-D sort along axis 0 measured 4x slower than per-column
    contiguous sorts here, and it would hold a sorted copy of every column at once. Columns run
    in ``workers`` threads (NumPy releases the GIL); everything after it is vectorized across
    features. ``ks_p_values=False`` leaves the KS p-values NaN: they cost O(n) each below
    `KS_EXACT_P_MAX_N`, and calibration, which reads only the measures, does not need them.
    """
    current_features: Mapping[str, FeatureProfile] | None = None
    current_data: DataLike = {}
    if isinstance(current, BaselineProfile):
        current_features = {feature.name: feature for feature in current.features}
        absent = [name for name in reference.names if name not in current_features]
    else:
        current_data = current
        available = set(_columns_of(current))
        absent = [name for name in reference.names if name not in available]
    if absent:
        raise ValueError(f"the current data lacks the profiled columns {absent}")

    def numeric_one(feature: FeatureProfile) -> _NumericRaw:
        if current_features is not None:
            return _numeric_against_profile(feature, current_features[feature.name], reference)
        return _numeric_against_data(feature, _column(current_data, feature.name), reference)

    numeric_features = [f for f in reference.features if f.kind == "numeric"]
    with _merge_buffers():
        raw_numeric = dict(
            zip(
                [f.name for f in numeric_features],
                _map_in_threads(numeric_one, numeric_features, workers),
                strict=True,
            )
        )
    categorical_counts: dict[str, tuple[np.ndarray, np.ndarray, int, int]] = {}
    for feature in reference.features:
        if feature.kind == "numeric":
            continue
        if current_features is not None:
            other = current_features[feature.name]
        else:
            other = _categorical_profile(
                feature.name, feature.kind, feature.role, _column(current_data, feature.name)
            )
        categorical_counts[feature.name] = _aligned_category_counts(feature, other)

    results: dict[str, FeatureStatistics] = {}
    results.update(_finish_numeric(reference, raw_numeric, with_p_values=ks_p_values))
    results.update(_finish_categorical(reference, categorical_counts))
    return {name: results[name] for name in reference.names}


@dataclass
class _NumericRaw:
    """Per-column intermediate results, finished for all columns at once in `_finish_numeric`."""

    ks: float
    wasserstein: float
    reference_bin_counts: np.ndarray
    current_bin_counts: np.ndarray
    current_count: int
    current_missing: int
    current_mean: float
    ks_error_bound: float
    wasserstein_error_bound: float


def _numeric_against_data(
    feature: FeatureProfile, column: np.ndarray, reference: BaselineProfile
) -> _NumericRaw:
    edges, reference_cumulative = _reference_bins(feature, reference.psi_bins)
    if feature.values is not None:
        return _exact_against_data(feature.values, column, edges, reference_cumulative)
    finite, missing = _finite_sorted(column)
    assert feature.sketch is not None
    current = _numeric_profile(feature.name, feature.role, finite, missing, None)
    current = _replace_feature(
        current, values=None, sketch=_sketch_on_grid(finite, feature.sketch.knots)
    )
    return _sketch_pair(feature, current, edges, reference_cumulative, finite)


def _numeric_against_profile(
    feature: FeatureProfile, current: FeatureProfile, reference: BaselineProfile
) -> _NumericRaw:
    if current.kind != "numeric":
        raise ValueError(f"feature {feature.name!r} is numeric in the reference only")
    edges, reference_cumulative = _reference_bins(feature, reference.psi_bins)
    if feature.values is not None and current.values is not None:
        return _exact_against_data(feature.values, current.values, edges, reference_cumulative)
    return _sketch_pair(feature, current, edges, reference_cumulative, None)


def _exact_against_data(
    reference_sorted: np.ndarray,
    column: np.ndarray,
    edges: np.ndarray,
    reference_cumulative: np.ndarray,
) -> _NumericRaw:
    """KS and Wasserstein from one stable merge of the sorted reference and current values.

    Walking the merged order, the scaled CDF gap ``n_cur * F_ref - n_ref * F_cur`` is a cumulative
    sum of +n_cur (a reference value) and -n_ref (a current value), exact in float64 below 2**53.
    KS is its largest magnitude at the last element of each group of equal values; Wasserstein is
    its magnitude times the distance to the next value, summed (scipy's formula, same order).
    Buffers are reused so the peak stays near 25 bytes per merged value.
    """
    n_ref = reference_sorted.size
    n_raw = column.size
    workspace = _workspace(n_raw + n_ref)
    buffer = workspace.values[: n_raw + n_ref]
    current = buffer[:n_raw]
    current[...] = column
    current.sort()  # NaN sorts last, -inf first, +inf before NaN
    low = int(np.searchsorted(current, -np.inf, "right"))
    high = int(np.searchsorted(current, np.inf, "left"))
    finite = current[low:high]
    n_cur = finite.size
    current_cumulative = np.searchsorted(finite, edges, "right").astype(np.float64)
    current_mean = float(finite.mean()) if n_cur else 0.0
    ks = wasserstein = 0.0
    if n_cur and n_ref:
        buffer[high : high + n_ref] = reference_sorted
        merged_input = buffer[low : high + n_ref]
        size = merged_input.size
        order = merged_input.argsort(kind="stable")
        merged = np.take(merged_input, order, out=workspace.merged[:size])
        is_current = np.less(order, n_cur, out=workspace.flags[:size])
        del order
        gap = np.multiply(is_current, -float(n_ref + n_cur), out=workspace.gap[:size])
        gap += n_cur
        np.cumsum(gap, out=gap)
        np.abs(gap, out=gap)
        deltas = np.subtract(merged[1:], merged[:-1], out=merged_input[:-1])
        group_end = np.greater(deltas, 0.0, out=is_current[:-1])
        scale = float(n_ref) * float(n_cur)
        ks = float(np.max(gap[:-1], where=group_end, initial=0.0)) / scale
        # Not np.dot: BLAS wakes its thread pool for long vectors, which cost 10 ms a column here
        # on a busy machine; a multiply and NumPy's pairwise sum (scipy's own order) do not.
        wasserstein = float(np.multiply(gap[:-1], deltas, out=gap[:-1]).sum()) / scale
    return _NumericRaw(
        ks=ks,
        wasserstein=wasserstein,
        reference_bin_counts=_bin_counts(reference_cumulative, float(n_ref)),
        current_bin_counts=_bin_counts(current_cumulative, float(n_cur)),
        current_count=n_cur,
        current_missing=n_raw - n_cur,
        current_mean=current_mean,
        ks_error_bound=0.0,
        wasserstein_error_bound=0.0,
    )


class _MergeWorkspace:
    """Buffers reused across the columns one thread merges.

    Fresh multi-megabyte arrays per column cost more in page faults than the merge itself (the
    allocator hands large blocks back to the OS on free), and the faults serialize threads.
    """

    def __init__(self, size: int) -> None:
        self.values = np.empty(size, dtype=np.float64)
        self.merged = np.empty(size, dtype=np.float64)
        self.gap = np.empty(size, dtype=np.float64)
        self.flags = np.empty(size, dtype=bool)


_workspaces = threading.local()


def _workspace(size: int) -> _MergeWorkspace:
    current: _MergeWorkspace | None = getattr(_workspaces, "buffers", None)
    if current is None or current.values.size < size:
        current = _MergeWorkspace(size)
        _workspaces.buffers = current
    return current


@contextlib.contextmanager
def _merge_buffers() -> Iterator[None]:
    """Scope of one check: worker threads end with it, and the caller's buffers are released."""
    try:
        yield
    finally:
        _workspaces.buffers = None


def _sketch_pair(
    feature: FeatureProfile,
    current: FeatureProfile,
    edges: np.ndarray,
    reference_cumulative: np.ndarray,
    current_sorted: np.ndarray | None,
) -> _NumericRaw:
    """KS and Wasserstein between two piecewise-linear CDFs, evaluated on the union of knots.

    Between adjacent knots both CDFs are linear, so their difference is too: its largest magnitude
    sits at a knot, and its integral is a trapezoid (two triangles when it changes sign).
    """
    n_ref, n_cur = float(feature.count), float(current.count)
    if current_sorted is not None:
        current_cumulative = np.searchsorted(current_sorted, edges, "right").astype(np.float64)
    else:
        current_cumulative = _evaluate_support(current.support, n_cur, edges)[1]
    ks = wasserstein = 0.0
    if n_ref and n_cur:
        points = np.union1d(feature.support[0], current.support[0])
        ref_below, ref_at = _evaluate_support(feature.support, n_ref, points)
        cur_below, cur_at = _evaluate_support(current.support, n_cur, points)
        left = ref_below / n_ref - cur_below / n_cur
        right = ref_at / n_ref - cur_at / n_cur
        ks = float(max(np.max(np.abs(left)), np.max(np.abs(right))))
        start, end = right[:-1], left[1:]  # the difference just after a knot, just before the next
        widths = np.diff(points)
        magnitude = np.abs(start) + np.abs(end)
        same_sign = start * end >= 0
        safe = np.where(magnitude > 0, magnitude, 1.0)
        area = np.where(
            same_sign, widths * magnitude / 2, widths * (start**2 + end**2) / (2 * safe)
        )
        wasserstein = float(area.sum())
    return _NumericRaw(
        ks=ks,
        wasserstein=wasserstein,
        reference_bin_counts=_bin_counts(reference_cumulative, n_ref),
        current_bin_counts=_bin_counts(current_cumulative, n_cur),
        current_count=current.count,
        current_missing=current.missing,
        current_mean=current.mean,
        ks_error_bound=_rank_error(feature) + _rank_error(current),
        wasserstein_error_bound=_wasserstein_error(feature) + _wasserstein_error(current),
    )


def _finish_numeric(
    reference: BaselineProfile, raw: Mapping[str, _NumericRaw], *, with_p_values: bool = True
) -> dict[str, FeatureStatistics]:
    if not raw:
        return {}
    names = list(raw)
    features = [reference.feature(name) for name in names]
    n_ref = np.array([f.count for f in features], dtype=np.float64)
    n_cur = np.array([raw[name].current_count for name in names], dtype=np.float64)
    ks = np.array([raw[name].ks for name in names])
    wasserstein = np.array([raw[name].wasserstein for name in names])
    scale = np.array([f.scale for f in features])
    psi, js = _psi_and_js(
        [raw[name].reference_bin_counts for name in names],
        [raw[name].current_bin_counts for name in names],
    )
    p_values = ks_p_values(ks, n_ref, n_cur) if with_p_values else np.full(ks.shape, np.nan)
    results = {}
    for index, (name, feature) in enumerate(zip(names, features, strict=True)):
        item = raw[name]
        total_ref = feature.count + feature.missing
        total_cur = item.current_count + item.current_missing
        metrics = {
            "ks": float(ks[index]),
            "ks_p": float(p_values[index]),
            "wasserstein": float(wasserstein[index]),
            "wasserstein_normalized": float(wasserstein[index] / scale[index]),
            "psi": float(psi[index]),
            "js": float(js[index]),
            "mean_reference": float(feature.mean),
            "mean_current": float(item.current_mean),
            "std_reference": float(feature.std),
            "missing_rate_reference": feature.missing / total_ref if total_ref else 0.0,
            "missing_rate_current": item.current_missing / total_cur if total_cur else 0.0,
            "ks_error_bound": float(item.ks_error_bound),
            "wasserstein_error_bound": float(item.wasserstein_error_bound),
        }
        results[name] = FeatureStatistics(
            name=name,
            kind="numeric",
            role=feature.role,
            mode=feature.mode,
            test="ks",
            statistic=metrics["ks"],
            p_value=metrics["ks_p"],
            reference_count=feature.count,
            current_count=item.current_count,
            metrics=metrics,
        )
    return results


def _finish_categorical(
    reference: BaselineProfile, counts: Mapping[str, tuple[np.ndarray, np.ndarray, int, int]]
) -> dict[str, FeatureStatistics]:
    if not counts:
        return {}
    names = list(counts)
    reference_counts = [counts[name][0] for name in names]
    current_counts = [counts[name][1] for name in names]
    psi, js = _psi_and_js(reference_counts, current_counts)
    chi2, p_values = chi2_homogeneity(reference_counts, current_counts)
    results = {}
    for index, name in enumerate(names):
        feature = reference.feature(name)
        ref, cur, current_missing, new_categories = counts[name]
        n_ref, n_cur = float(ref.sum()), float(cur.sum())
        total_ref = feature.count + feature.missing
        total_cur = n_cur + current_missing
        metrics = {
            "chi2": float(chi2[index]),
            "chi2_p": float(p_values[index]),
            "psi": float(psi[index]),
            "js": float(js[index]),
            "new_categories": float(new_categories),
            "missing_rate_reference": feature.missing / total_ref if total_ref else 0.0,
            "missing_rate_current": current_missing / total_cur if total_cur else 0.0,
        }
        if feature.kind == "binary":
            rate_reference = float(ref[1] / n_ref) if n_ref else 0.0
            rate_current = float(cur[1] / n_cur) if n_cur else 0.0
            metrics["rate_reference"] = rate_reference
            metrics["rate_current"] = rate_current
            metrics["rate_difference"] = (
                abs(rate_current - rate_reference) if n_ref and n_cur else 0.0
            )
        results[name] = FeatureStatistics(
            name=name,
            kind=feature.kind,
            role=feature.role,
            mode="exact",
            test="chi2",
            statistic=metrics["chi2"],
            p_value=metrics["chi2_p"],
            reference_count=int(n_ref),
            current_count=int(n_cur),
            metrics=metrics,
        )
    return results


def ks_p_values(statistic: np.ndarray, n_ref: np.ndarray, n_cur: np.ndarray) -> np.ndarray:
    """Two-sided KS p-values: scipy's ``ks_2samp(method="asymp")`` up to a large effective size.

    With ``n = round(n_ref * n_cur / (n_ref + n_cur))``, scipy computes ``kstwo.sf(D, n)``, the
    exact finite-n distribution, whose tail costs O(n) per feature (about 1 ms per thousand, so
    close to a second at a million rows). Up to `KS_EXACT_P_MAX_N` (which covers every exact-mode
    profile of the default `build_profile`) this function returns exactly that. Above, it uses
    Stephens' large-sample formula ``Q_KS((sqrt(n) + 0.12 + 0.11 / sqrt(n)) * D)``, within 5e-4
    of scipy's value at n = 100,000 and closer as n grows (the error shrinks like 1 / sqrt(n)).
    Where scipy has no answer (an empty side, or one value on each side, whose effective size
    rounds to 0) the p-value is 1: no evidence of drift rather than a NaN that would poison BH.
    """
    statistic = np.asarray(statistic, dtype=np.float64)
    larger = np.asarray(np.maximum(n_ref, n_cur), dtype=np.float64)
    smaller = np.asarray(np.minimum(n_ref, n_cur), dtype=np.float64)
    effective = np.round(larger * smaller / np.maximum(larger + smaller, 1.0))
    valid = effective >= 1
    small = valid & (effective <= KS_EXACT_P_MAX_N)
    p_values = np.ones(statistic.shape)
    if small.any():
        p_values[small] = scipy_stats.kstwo.sf(statistic[small], effective[small])
    large = valid & ~small
    if large.any():
        root = np.sqrt(effective[large])
        p_values[large] = scipy_special.kolmogorov((root + 0.12 + 0.11 / root) * statistic[large])
    return np.clip(p_values, 0.0, 1.0)


def chi2_homogeneity(
    reference_counts: Sequence[np.ndarray], current_counts: Sequence[np.ndarray]
) -> tuple[np.ndarray, np.ndarray]:
    """Chi-square test that two samples share one categorical distribution, for many features.

    Pearson's statistic on the 2 x K table of counts (no continuity correction), with K the
    categories seen in either sample; p from chi2 with K - 1 degrees of freedom. Both samples are
    samples: a goodness-of-fit test against reference proportions would treat the reference as
    the truth and alarm more than it should.
    """
    reference, current = _pad(reference_counts), _pad(current_counts)
    column_totals = reference + current
    row_ref = reference.sum(axis=1, keepdims=True)
    row_cur = current.sum(axis=1, keepdims=True)
    total = row_ref + row_cur
    safe_total = np.where(total > 0, total, 1.0)
    expected_ref = row_ref * column_totals / safe_total
    expected_cur = row_cur * column_totals / safe_total
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(
            expected_ref > 0, (reference - expected_ref) ** 2 / expected_ref, 0.0
        ) + np.where(expected_cur > 0, (current - expected_cur) ** 2 / expected_cur, 0.0)
    statistic = terms.sum(axis=1)
    dof = (column_totals > 0).sum(axis=1) - 1
    testable = (dof > 0) & (row_ref[:, 0] > 0) & (row_cur[:, 0] > 0)
    p_values = np.where(testable, scipy_stats.chi2.sf(statistic, np.maximum(dof, 1)), 1.0).astype(
        np.float64
    )
    return np.where(testable, statistic, 0.0), p_values


def psi_and_js(
    reference_counts: np.ndarray, current_counts: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """PSI and Jensen-Shannon distance (base 2) per row of two count matrices (features x bins).

    PSI = sum (q - p) ln(q / p) with both shares floored at `PSI_EPSILON`; JS needs no floor.
    Padding bins (zero in both) contribute nothing to either.
    """
    reference = np.asarray(reference_counts, dtype=np.float64)
    current = np.asarray(current_counts, dtype=np.float64)
    ref_total = reference.sum(axis=1, keepdims=True)
    cur_total = current.sum(axis=1, keepdims=True)
    p = reference / np.where(ref_total > 0, ref_total, 1.0)
    q = current / np.where(cur_total > 0, cur_total, 1.0)
    used = (reference + current) > 0
    p_floor = np.maximum(p, PSI_EPSILON)
    q_floor = np.maximum(q, PSI_EPSILON)
    psi = np.where(used, (q_floor - p_floor) * np.log(q_floor / p_floor), 0.0).sum(axis=1)
    middle = (p + q) / 2
    with np.errstate(divide="ignore", invalid="ignore"):
        kl_p = np.where(p > 0, p * np.log2(p / middle), 0.0).sum(axis=1)
        kl_q = np.where(q > 0, q * np.log2(q / middle), 0.0).sum(axis=1)
    js = np.sqrt(np.clip((kl_p + kl_q) / 2, 0.0, 1.0))
    empty = (ref_total[:, 0] == 0) | (cur_total[:, 0] == 0)
    return np.where(empty, 0.0, psi), np.where(empty, 0.0, js)


def _psi_and_js(
    reference_counts: Sequence[np.ndarray], current_counts: Sequence[np.ndarray]
) -> tuple[np.ndarray, np.ndarray]:
    return psi_and_js(_pad(reference_counts), _pad(current_counts))


def reference_bin_edges(feature: FeatureProfile, bins: int) -> np.ndarray:
    """The PSI/JS bin edges: distinct inverted-CDF quantiles of the reference at levels j / bins.

    Bins are right-closed, ``(-inf, e1], (e1, e2], ..., (e_last, inf)``, so a value equal to an
    edge (a heavy tie) always lands in one bin and current data outside the reference range lands
    in the outer bins.
    """
    return _reference_bins(feature, bins)[0]


def _reference_bins(feature: FeatureProfile, bins: int) -> tuple[np.ndarray, np.ndarray]:
    cache: dict[int, tuple[np.ndarray, np.ndarray]] = feature.__dict__.setdefault("_bins", {})
    if bins in cache:
        return cache[bins]
    n = feature.count
    if n == 0:
        result = (np.empty(0), np.empty(0))
    elif feature.values is not None:
        levels = np.arange(1, bins, dtype=np.int64)
        index = (levels * n + bins - 1) // bins - 1
        edges = np.unique(feature.values[index])
        result = (edges, np.searchsorted(feature.values, edges, "right").astype(np.float64))
    else:
        knots, _, at_or_below = feature.support
        targets = np.arange(1, bins, dtype=np.float64) * n
        positions = np.unique(
            np.clip(np.searchsorted(at_or_below * bins, targets, "left"), 0, knots.size - 1)
        )
        result = (knots[positions], at_or_below[positions])
    cache[bins] = result
    return result


def _bin_counts(cumulative: np.ndarray, total: float) -> np.ndarray:
    return np.diff(np.concatenate(([0.0], cumulative, [total])))


# --------------------------------------------------------------------------------------------
# Policy and evaluation
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class KindPolicy:
    """Per kind: which measure is the effect size (with its floors) and which is the main score."""

    effect: str
    warn: float
    error: float
    score: str


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

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.source.encode()).hexdigest()

    @classmethod
    def from_yaml(cls, text: str | bytes) -> DriftPolicy:
        source = text.decode() if isinstance(text, bytes) else text
        raw = yaml.safe_load(source)
        if not isinstance(raw, dict):
            raise ValueError("a drift policy is a YAML mapping")
        return cls._from_mapping(raw, source)

    @classmethod
    def _from_mapping(cls, raw: Mapping[str, Any], source: str) -> DriftPolicy:
        known = {"version", "name", "alpha", "kinds", "calibration", "persistence"}
        unknown = sorted(set(raw) - known)
        if unknown:
            raise ValueError(f"unknown drift policy fields {unknown}; known: {sorted(known)}")
        kinds_raw = raw.get("kinds") or {}
        kinds: dict[str, KindPolicy] = {}
        for kind in KINDS:
            entry = kinds_raw.get(kind)
            if not isinstance(entry, dict):
                raise ValueError(f"drift policy: kinds.{kind} is missing")
            policy = KindPolicy(
                effect=str(entry["effect"]),
                warn=float(entry["warn"]),
                error=float(entry["error"]),
                score=str(entry["score"]),
            )
            for measure in (policy.effect, policy.score):
                if measure not in _MEASURES_BY_KIND[kind]:
                    raise ValueError(
                        f"drift policy: {kind} measure {measure!r} is not one of "
                        f"{_MEASURES_BY_KIND[kind]}"
                    )
            if not 0 <= policy.warn <= policy.error:
                raise ValueError(f"drift policy: {kind} needs 0 <= warn <= error")
            kinds[kind] = policy
        calibration = raw.get("calibration") or {}
        persistence = raw.get("persistence") or {}
        result = cls(
            source=source,
            name=str(raw.get("name", "unnamed")),
            version=int(raw["version"]),
            alpha=float(raw["alpha"]),
            kinds=kinds,
            calibration_enabled=bool(calibration.get("enabled", False)),
            calibration_sigma=float(calibration.get("sigma", 3.0)),
            persistence_window=int(persistence.get("window", 1)),
            persistence_required=int(persistence.get("required", 1)),
        )
        if not 0 < result.alpha < 1:
            raise ValueError("drift policy: alpha must be in (0, 1)")
        if not 1 <= result.persistence_required <= result.persistence_window:
            raise ValueError("drift policy: persistence needs 1 <= required <= window")
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
                }
                for kind, policy in self.kinds.items()
            },
            "calibration": {"enabled": self.calibration_enabled, "sigma": self.calibration_sigma},
            "persistence": {
                "window": self.persistence_window,
                "required": self.persistence_required,
            },
        }

    def replace(self, changes: Mapping[str, Any]) -> DriftPolicy:
        """A policy with nested ``changes`` applied, e.g. ``{"kinds": {"numeric": {"warn": 0}}}``."""
        mapping = _deep_update(self.to_mapping(), changes)
        return DriftPolicy.from_yaml(yaml.safe_dump(mapping, sort_keys=False))


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


@dataclass(frozen=True)
class FeatureDrift:
    """One feature's drift evaluation: the test, its q-value, the effect size and the verdict."""

    feature: str
    kind: Kind
    role: Role
    mode: str
    test: str
    statistic: float
    p_value: float
    q_value: float
    effect_name: str
    effect: float
    score_name: str
    score: float
    warn_threshold: float
    error_threshold: float
    calibrated: bool
    persistent: bool
    verdict: Verdict
    reference_count: int
    current_count: int
    metrics: Mapping[str, float]

    def to_dict(self) -> dict[str, Any]:
        data = {name: getattr(self, name) for name in self.__dataclass_fields__}
        data["metrics"] = dict(self.metrics)
        return data


@dataclass(frozen=True)
class DriftResult:
    """Everything one drift evaluation decided, with the policy hash that decided it."""

    features: tuple[FeatureDrift, ...]
    verdict: Verdict
    drifted: tuple[str, ...]
    policy_sha256: str
    policy_name: str
    policy_version: int
    alpha: float

    def feature_verdicts(self) -> dict[str, Verdict]:
        """What the next partition's evaluation needs for persistence."""
        return {item.feature: item.verdict for item in self.features}

    def feature(self, name: str) -> FeatureDrift:
        for item in self.features:
            if item.feature == name:
                return item
        raise KeyError(name)

    def to_dict(self) -> dict[str, Any]:
        return {
            "verdict": self.verdict,
            "drifted": list(self.drifted),
            "policy_sha256": self.policy_sha256,
            "policy_name": self.policy_name,
            "policy_version": self.policy_version,
            "alpha": self.alpha,
            "features": [item.to_dict() for item in self.features],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DriftResult:
        return cls(
            features=tuple(FeatureDrift(**item) for item in data["features"]),
            verdict=data["verdict"],
            drifted=tuple(data["drifted"]),
            policy_sha256=str(data["policy_sha256"]),
            policy_name=str(data["policy_name"]),
            policy_version=int(data["policy_version"]),
            alpha=float(data["alpha"]),
        )

    def to_markdown(self, *, limit: int = 10) -> str:
        """A short report: the verdict, the drifted features by name, and their numbers."""
        lines = [
            f"**Drift: {self.verdict.upper()}**: {len(self.drifted)} of {len(self.features)} "
            f"features drifted (policy `{self.policy_name}` v{self.policy_version}, "
            f"sha256 `{self.policy_sha256[:12]}`, FDR alpha {self.alpha:g})",
            "",
        ]
        if self.drifted:
            lines.append("Drifted: " + ", ".join(f"`{name}`" for name in self.drifted))
            lines.append("")
        shown = [self.feature(name) for name in self.drifted[:limit]]
        if shown:
            lines.append(
                "| feature | verdict | test | statistic | p | q | effect | warn / error | score |"
            )
            lines.append("|---|---|---|---|---|---|---|---|---|")
            for item in shown:
                lines.append(
                    f"| `{item.feature}` | {item.verdict}{' (persistent)' if item.persistent else ''}"
                    f" | {item.test} | {item.statistic:.4g} | {item.p_value:.3g} | "
                    f"{item.q_value:.3g} | {item.effect_name} {item.effect:.4g} | "
                    f"{item.warn_threshold:.3g} / {item.error_threshold:.3g}"
                    f"{' (calibrated)' if item.calibrated else ''} | "
                    f"{item.score_name} {item.score:.3g} |"
                )
            hidden = len(self.drifted) - len(shown)
            if hidden > 0:
                lines.append(f"\n... and {hidden} more drifted features.")
        else:
            lines.append("No feature drifted beyond the policy's thresholds.")
        return "\n".join(lines)


def evaluate_drift(
    reference: BaselineProfile,
    current: DataLike | BaselineProfile,
    policy: DriftPolicy | None = None,
    *,
    previous: Sequence[Mapping[str, str]] = (),
    workers: int | None = None,
) -> DriftResult:
    """Test every profiled feature of ``current`` for drift and apply the alert policy.

    A feature *drifts* when its test is significant after Benjamini-Hochberg across all features
    (q < alpha) and its effect size reaches the warn threshold. It is an ERROR when the effect also
    reaches the error threshold, or when the drift is persistent (``required`` of the last
    ``window`` partitions drifted, ``previous`` being the earlier partitions' `feature_verdicts`,
    oldest first); otherwise a WARN. Thresholds are the policy's floors, raised to the calibrated
    ``mean + sigma * std`` when calibration is enabled and the profile carries it. The overall
    verdict is the worst feature verdict.
    """
    policy = policy or load_policy()
    statistics = compute_statistics(reference, current, workers=workers)
    names = list(statistics)
    q_values = benjamini_hochberg([statistics[name].p_value for name in names])
    items = []
    for name, q_value in zip(names, q_values, strict=True):
        stats = statistics[name]
        feature = reference.feature(name)
        kind_policy = policy.kinds[stats.kind]
        effect = stats.metrics[kind_policy.effect]
        warn_threshold, error_threshold = kind_policy.warn, kind_policy.error
        calibration = feature.calibration.get(kind_policy.effect)
        calibrated = policy.calibration_enabled and calibration is not None
        if calibrated:
            assert calibration is not None
            warn_threshold = max(warn_threshold, calibration.threshold(policy.calibration_sigma))
            error_threshold = max(error_threshold, warn_threshold)
        drifted = bool(q_value < policy.alpha) and effect >= warn_threshold
        persistent = drifted and persistence_met(
            [partition.get(name) for partition in previous],
            drifted,
            window=policy.persistence_window,
            required=policy.persistence_required,
        )
        verdict: Verdict = "ok"
        if drifted:
            verdict = "error" if effect >= error_threshold or persistent else "warn"
        items.append(
            FeatureDrift(
                feature=name,
                kind=stats.kind,
                role=stats.role,
                mode=stats.mode,
                test=stats.test,
                statistic=stats.statistic,
                p_value=stats.p_value,
                q_value=float(q_value),
                effect_name=kind_policy.effect,
                effect=float(effect),
                score_name=kind_policy.score,
                score=float(stats.metrics[kind_policy.score]),
                warn_threshold=float(warn_threshold),
                error_threshold=float(error_threshold),
                calibrated=calibrated,
                persistent=persistent,
                verdict=verdict,
                reference_count=stats.reference_count,
                current_count=stats.current_count,
                metrics=dict(stats.metrics),
            )
        )
    worst = max((VERDICTS.index(item.verdict) for item in items), default=0)
    drifted_items = sorted(
        (item for item in items if item.verdict != "ok"),
        key=lambda item: (-VERDICTS.index(item.verdict), -item.effect, item.feature),
    )
    return DriftResult(
        features=tuple(items),
        verdict=VERDICTS[worst],
        drifted=tuple(item.feature for item in drifted_items),
        policy_sha256=policy.sha256,
        policy_name=policy.name,
        policy_version=policy.version,
        alpha=policy.alpha,
    )


def evaluate_slices(
    reference: BaselineProfile,
    current: DataLike | BaselineProfile,
    policy: DriftPolicy | None = None,
    *,
    previous: Sequence[Mapping[str, Mapping[str, str]]] = (),
    workers: int | None = None,
) -> dict[str, DriftResult]:
    """`evaluate_drift` for each slice the reference profiles and ``current`` holds rows of.

    Each slice's rows are tested against that slice's own profile (with its own calibration, and
    Benjamini-Hochberg across that slice's features), never against the pooled reference: a quiet
    service whose level is a thousandth of the busiest one would otherwise look drifted all the
    time. The overall verdict is `evaluate_drift`'s alone; this adds the per-slice ones.

    ``previous`` holds, oldest first, each earlier partition's ``{slice value: feature verdicts}``
    (only the drifted features are needed), for the policy's persistence within a slice. Empty
    when the reference has no slices or ``current`` lacks the slice column.
    """
    if not reference.slices:
        return {}
    policy = policy or load_policy()
    column = cast(str, reference.slice_column)
    parts: Mapping[str, DataLike | BaselineProfile]
    if isinstance(current, BaselineProfile):
        parts = current.slices
    elif column in _columns_of(current):
        parts = _split_rows(current, column, reference.names)
    else:
        return {}
    return {
        value: evaluate_drift(
            reference.slices[value],
            parts[value],
            policy,
            previous=[partition.get(value, {}) for partition in previous],
            workers=_slice_workers(parts[value], workers),
        )
        for value in sorted(set(reference.slices) & set(parts))
    }


def slices_markdown(results: Mapping[str, DriftResult], column: str, *, limit: int = 5) -> str:
    """A short section naming each drifted slice and its drifted features, worst first."""
    if not results:
        return ""
    drifted = sorted(
        (value for value, result in results.items() if result.verdict != "ok"),
        key=lambda value: (-VERDICTS.index(results[value].verdict), value),
    )
    lines = [
        f"**Per-{column} slices** (each against its own reference): {len(drifted)} of "
        f"{len(results)} drifted" + (":" if drifted else ".")
    ]
    for value in drifted:
        result = results[value]
        names = ", ".join(f"`{name}`" for name in result.drifted[:limit])
        more = len(result.drifted) - limit
        lines.append(
            f"- {value}: {result.verdict.upper()} ({names}{f', and {more} more' if more > 0 else ''})"
        )
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# Internals
# --------------------------------------------------------------------------------------------


def _columns_of(data: DataLike) -> list[str]:
    return [str(name) for name in data.columns] if isinstance(data, pd.DataFrame) else list(data)


def _column(data: DataLike, name: str) -> np.ndarray:
    column = data[name]
    if isinstance(column, pd.Series):
        if column.dtype == np.float64:
            return column.to_numpy()  # a view: NaN already marks missing values
        if pd.api.types.is_numeric_dtype(column.dtype) or pd.api.types.is_bool_dtype(column.dtype):
            return column.to_numpy(dtype=np.float64, na_value=np.nan)
        return column.to_numpy(dtype=object)
    return np.asarray(column)


def _is_numeric_column(data: DataLike, name: str) -> bool:
    column = data[name]
    dtype = column.dtype if isinstance(column, pd.Series) else np.asarray(column).dtype
    return bool(pd.api.types.is_numeric_dtype(dtype) and not pd.api.types.is_bool_dtype(dtype))


def _finite_sorted(column: np.ndarray) -> tuple[np.ndarray, int]:
    """Sorted finite values and the count of the rest (NaN, +-inf count as missing)."""
    values = np.array(column, dtype=np.float64)  # a copy we may sort in place
    values.sort()
    low = int(np.searchsorted(values, -np.inf, "right"))
    high = int(np.searchsorted(values, np.inf, "left"))
    return values[low:high], values.size - (high - low)


def _numeric_profile(
    name: str, role: Role, finite: np.ndarray, missing: int, sketch: NumericSketch | None
) -> FeatureProfile:
    count = int(finite.size)
    mean = float(finite.mean()) if count else 0.0
    centered = finite - mean
    m2 = float(np.einsum("i,i->", centered, centered)) if count else 0.0  # no BLAS threads
    return FeatureProfile(
        name=name,
        kind="numeric",
        role=role,
        count=count,
        missing=int(missing),
        mean=mean,
        m2=m2,
        values=None if sketch is not None else finite,
        sketch=sketch,
    )


def _categorical_profile(name: str, kind: Kind, role: Role, column: np.ndarray) -> FeatureProfile:
    series = pd.Series(column, dtype=object)
    present = series[series.notna()]
    missing = int(series.size - present.size)
    if kind == "binary":
        numbers = pd.to_numeric(present, errors="coerce")
        bad = present[numbers.isna() | ~numbers.isin([0, 1])]
        if not bad.empty:
            raise ValueError(
                f"label column {name!r} must hold 0/1 values; found {bad.unique()[:5].tolist()}"
            )
        positives = int((numbers == 1).sum())
        counts = np.array([present.size - positives, positives], dtype=np.int64)
        return FeatureProfile(
            name=name,
            kind="binary",
            role=role,
            count=int(present.size),
            missing=missing,
            categories=("0", "1"),
            category_counts=counts,
        )
    tallies = present.astype(str).value_counts(sort=False)
    categories = sorted(str(category) for category in tallies.index)
    counts = np.array([int(tallies[category]) for category in categories], dtype=np.int64)
    return FeatureProfile(
        name=name,
        kind="categorical",
        role=role,
        count=int(present.size),
        missing=missing,
        categories=tuple(categories),
        category_counts=counts,
    )


def _aligned_category_counts(
    reference: FeatureProfile, current: FeatureProfile
) -> tuple[np.ndarray, np.ndarray, int, int]:
    """Counts of both sides over the union of categories, reference categories first."""
    assert reference.category_counts is not None and current.category_counts is not None
    new = [c for c in current.categories if c not in set(reference.categories)]
    universe = [*reference.categories, *new]
    position = {category: index for index, category in enumerate(universe)}
    ref = np.zeros(len(universe))
    ref[: len(reference.categories)] = reference.category_counts
    cur = np.zeros(len(universe))
    for category, count in zip(current.categories, current.category_counts, strict=True):
        cur[position[category]] = count
    return ref, cur, current.missing, len(new)


def _fresh_sketch(finite: np.ndarray, bins: int) -> NumericSketch:
    """Knots at the inverted-CDF quantiles k / bins (k = 0..bins) of sorted finite values.

    The two outer bins also get knots at levels 1 / (bins * 2**m) from each end, down to single
    values: a tail bin is as heavy as any other but can be far wider, and Wasserstein's error is
    mass times width. It costs about 2 * log2(n / bins) knots.
    """
    n = finite.size
    if n == 0:
        empty = np.empty(0)
        return NumericSketch(empty, empty, empty, 0.0, 0.0, 0.0, 0.0, 0.0)
    levels = np.arange(bins + 1, dtype=np.int64)
    index = (levels * n + bins - 1) // bins - 1
    doublings = (n // bins).bit_length() - 1 if n >= bins else 0  # floor(log2(n / bins))
    denominators = bins * 2 ** np.arange(1, doublings + 1, dtype=np.int64)
    low_tail = (n + denominators - 1) // denominators - 1  # level 1 / d: ceil(n / d) - 1
    high_tail = n - n // denominators - 1  # level 1 - 1 / d: ceil(n - n / d) - 1
    index = np.concatenate((index, low_tail, high_tail))
    knots = np.unique(finite[np.clip(index, 0, n - 1)])
    return _sketch_on_grid(finite, knots)


def _sketch_on_grid(finite: np.ndarray, knots: np.ndarray) -> NumericSketch:
    """Exact counts of sorted finite values at given knots; merges exactly with the same grid."""
    n = finite.size
    below = np.searchsorted(finite, knots, "left").astype(np.float64)
    at_or_below = np.searchsorted(finite, knots, "right").astype(np.float64)
    minimum = float(finite[0]) if n else 0.0
    maximum = float(finite[-1]) if n else 0.0
    minimum_count = float(np.searchsorted(finite, minimum, "right")) if n else 0.0
    maximum_count = float(n - np.searchsorted(finite, maximum, "left")) if n else 0.0
    sketch = NumericSketch(
        knots, below, at_or_below, minimum, maximum, minimum_count, maximum_count, 0.0
    )
    error = _gap_masses(sketch, float(n)).max(initial=0.0) / n if n else 0.0
    return _replace_sketch(sketch, rank_error=float(error))


def _sketch_support(sketch: NumericSketch, n: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Knots with the tails: the exact minimum and maximum (and their atoms) as outer knots."""
    knots, below, at_or_below = sketch.knots, sketch.below, sketch.at_or_below
    if n == 0:
        return np.empty(0), np.empty(0), np.empty(0)
    if knots.size == 0 or sketch.minimum < knots[0]:
        knots = np.concatenate(([sketch.minimum], knots))
        below = np.concatenate(([0.0], below))
        at_or_below = np.concatenate(([sketch.minimum_count], at_or_below))
    if sketch.maximum > knots[-1]:
        knots = np.concatenate((knots, [sketch.maximum]))
        below = np.concatenate((below, [n - sketch.maximum_count]))
        at_or_below = np.concatenate((at_or_below, [n]))
    return knots, below, at_or_below


def _gap_masses(sketch: NumericSketch, n: float) -> np.ndarray:
    """Values strictly between adjacent knots (tails included): where the sketch interpolates."""
    _, below, at_or_below = _sketch_support(sketch, n)
    if below.size < 2:
        return np.zeros(0)
    return np.maximum(below[1:] - at_or_below[:-1], 0.0)


def _evaluate_support(
    support: tuple[np.ndarray, np.ndarray, np.ndarray], n: float, points: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Counts below and at-or-below each point of a piecewise-linear CDF given by its knots."""
    knots, below, at_or_below = support
    if knots.size == 0:
        zeros = np.zeros(points.size)
        return zeros, zeros
    right = np.searchsorted(knots, points, "left")  # knots[right - 1] < point <= knots[right]
    inside = np.clip(right, 1, max(knots.size - 1, 1))
    on_knot = (right < knots.size) & (knots[np.minimum(right, knots.size - 1)] == points)
    if knots.size > 1:
        x0, x1 = knots[inside - 1], knots[inside]
        y0, y1 = at_or_below[inside - 1], below[inside]
        fraction = (points - x0) / (x1 - x0)
        interpolated = y0 + (y1 - y0) * fraction
    else:
        interpolated = np.zeros(points.size)
    interpolated = np.where(right == 0, 0.0, np.where(right >= knots.size, n, interpolated))
    hit = np.minimum(right, knots.size - 1)
    return (
        np.where(on_knot, below[hit], interpolated),
        np.where(on_knot, at_or_below[hit], interpolated),
    )


def _rank_error(feature: FeatureProfile) -> float:
    return feature.sketch.rank_error if feature.sketch is not None else 0.0


def _wasserstein_error(feature: FeatureProfile) -> float:
    sketch = feature.sketch
    if sketch is None or feature.count == 0:
        return 0.0
    knots = feature.support[0]
    if sketch.counts_exact:
        masses = _gap_masses(sketch, float(feature.count))
        return float((masses * np.diff(knots)).sum() / feature.count)
    return float(sketch.rank_error * (knots[-1] - knots[0]))


def _merge_features(left: FeatureProfile, right: FeatureProfile, bins: int) -> FeatureProfile:
    if (left.name, left.kind, left.role) != (right.name, right.kind, right.role):
        raise ValueError(f"cannot merge feature {left.name!r} ({left.kind}) with {right.name!r}")
    count = left.count + right.count
    missing = left.missing + right.missing
    if left.kind != "numeric":
        assert left.category_counts is not None and right.category_counts is not None
        totals: dict[str, int] = {}
        for profile in (left, right):
            assert profile.category_counts is not None
            for category, amount in zip(profile.categories, profile.category_counts, strict=True):
                totals[category] = totals.get(category, 0) + int(amount)
        categories = tuple(sorted(totals)) if left.kind == "categorical" else ("0", "1")
        return FeatureProfile(
            name=left.name,
            kind=left.kind,
            role=left.role,
            count=count,
            missing=missing,
            categories=categories,
            category_counts=np.array([totals.get(c, 0) for c in categories], dtype=np.int64),
        )
    # Chan et al.'s parallel update: exact in exact arithmetic, stable in floating point.
    mean, m2 = left.mean, left.m2
    if count:
        delta = right.mean - left.mean
        mean = left.mean + delta * right.count / count
        m2 = left.m2 + right.m2 + delta * delta * left.count * right.count / count
    values: np.ndarray | None = None
    sketch: NumericSketch | None = None
    if left.values is not None and right.values is not None:
        # Timsort merges two sorted runs in linear time.
        values = np.sort(np.concatenate((left.values, right.values)), kind="stable")
    else:
        sketch = _merge_sketches(left, right, bins)
    return FeatureProfile(
        name=left.name,
        kind="numeric",
        role=left.role,
        count=count,
        missing=missing,
        mean=mean,
        m2=m2,
        values=values,
        sketch=sketch,
    )


def _merge_sketches(left: FeatureProfile, right: FeatureProfile, bins: int) -> NumericSketch:
    left_sketch, right_sketch = left.sketch, right.sketch
    if left_sketch is None:
        assert right_sketch is not None and left.values is not None
        left_sketch = _sketch_on_grid(left.values, right_sketch.knots)
    if right_sketch is None:
        assert right.values is not None
        right_sketch = _sketch_on_grid(right.values, left_sketch.knots)
    n_left, n_right = float(left.count), float(right.count)
    n = n_left + n_right
    if n_left == 0 or n_right == 0:
        return left_sketch if n_right == 0 else right_sketch
    minimum = min(left_sketch.minimum, right_sketch.minimum)
    maximum = max(left_sketch.maximum, right_sketch.maximum)
    minimum_count = sum(
        s.minimum_count for s in (left_sketch, right_sketch) if s.minimum == minimum
    )
    maximum_count = sum(
        s.maximum_count for s in (left_sketch, right_sketch) if s.maximum == maximum
    )
    if np.array_equal(left_sketch.knots, right_sketch.knots):
        merged = NumericSketch(
            knots=left_sketch.knots,
            below=left_sketch.below + right_sketch.below,
            at_or_below=left_sketch.at_or_below + right_sketch.at_or_below,
            minimum=minimum,
            maximum=maximum,
            minimum_count=minimum_count,
            maximum_count=maximum_count,
            rank_error=0.0,
            counts_exact=left_sketch.counts_exact and right_sketch.counts_exact,
        )
        if merged.counts_exact:
            error = float(_gap_masses(merged, n).max(initial=0.0) / n)
        else:
            error = (n_left * left_sketch.rank_error + n_right * right_sketch.rank_error) / n
        return _replace_sketch(merged, rank_error=error)
    # Different grids: sum both CDFs on the union of knots, then keep knots at levels k / bins.
    left_support = _sketch_support(left_sketch, n_left)
    right_support = _sketch_support(right_sketch, n_right)
    points = np.union1d(left_support[0], right_support[0])
    below_left, at_left = _evaluate_support(left_support, n_left, points)
    below_right, at_right = _evaluate_support(right_support, n_right, points)
    below, at_or_below = below_left + below_right, at_left + at_right
    targets = np.arange(bins + 1, dtype=np.float64) * n / bins
    keep = np.unique(np.clip(np.searchsorted(at_or_below, targets, "left"), 0, points.size - 1))
    inherited = (n_left * left_sketch.rank_error + n_right * right_sketch.rank_error) / n
    kept_below, kept_at = below[keep], at_or_below[keep]
    dropped = np.maximum(kept_below[1:] - kept_at[:-1], 0.0).max(initial=0.0) / n
    return NumericSketch(
        knots=points[keep],
        below=kept_below,
        at_or_below=kept_at,
        minimum=minimum,
        maximum=maximum,
        minimum_count=minimum_count,
        maximum_count=maximum_count,
        rank_error=float(min(1.0, inherited + dropped)),
        counts_exact=False,
    )


def _replace_sketch(sketch: NumericSketch, **changes: Any) -> NumericSketch:
    fields = {name: getattr(sketch, name) for name in sketch.__dataclass_fields__}
    fields.update(changes)
    return NumericSketch(**fields)


def _replace_feature(feature: FeatureProfile, **changes: Any) -> FeatureProfile:
    fields = {name: getattr(feature, name) for name in feature.__dataclass_fields__}
    fields.update(changes)
    return FeatureProfile(**fields)


def _without_calibration(profile: BaselineProfile) -> BaselineProfile:
    if not any(feature.calibration for feature in profile.features):
        return profile
    return BaselineProfile(
        features=tuple(_replace_feature(f, calibration={}) for f in profile.features),
        psi_bins=profile.psi_bins,
        sketch_bins=profile.sketch_bins,
    )


def _with_slices(
    profile: BaselineProfile, slices: Mapping[str, BaselineProfile], column: str
) -> BaselineProfile:
    return BaselineProfile(
        features=profile.features,
        psi_bins=profile.psi_bins,
        sketch_bins=profile.sketch_bins,
        slices=slices,
        slice_column=column if slices else None,
    )


def _split_rows(data: DataLike, column: str, names: Sequence[str]) -> dict[str, dict[str, Any]]:
    """The columns ``names`` of each value's rows (values as text, missing ones dropped).

    One stable sort of the value codes, then one take per column and value: the rows of every
    slice together cost about one copy of the profiled columns.
    """
    codes, uniques = pd.factorize(pd.Series(_column(data, column), dtype=object), sort=True)
    order = np.argsort(codes, kind="stable")
    bounds = np.searchsorted(codes[order], np.arange(len(uniques) + 1), "left")
    arrays = {name: _column(data, name) for name in names}
    rows: dict[str, np.ndarray] = {}
    for index, unique in enumerate(uniques):
        chosen = order[bounds[index] : bounds[index + 1]]
        value = str(unique)
        rows[value] = np.sort(np.concatenate((rows[value], chosen))) if value in rows else chosen
    return {
        value: {name: array[chosen] for name, array in arrays.items()}
        for value, chosen in rows.items()
    }


def _slice_workers(data: DataLike | BaselineProfile, workers: int | None) -> int | None:
    if workers is not None or isinstance(data, BaselineProfile):
        return workers
    return 1 if _rows_of(data) < _SLICE_THREAD_MIN_ROWS else None


def _rows_of(data: DataLike) -> int:
    if isinstance(data, pd.DataFrame):
        return len(data)
    return max((len(data[name]) for name in data), default=0)


def _pad(rows: Sequence[np.ndarray]) -> np.ndarray:
    width = max((row.size for row in rows), default=0)
    matrix = np.zeros((len(rows), width))
    for index, row in enumerate(rows):
        matrix[index, : row.size] = row
    return matrix


def _map_in_threads(
    function: Callable[[_Item], _Result], items: Sequence[_Item], workers: int | None
) -> list[_Result]:
    """Run per-column work in threads; NumPy's sorts and merges release the GIL."""
    count = workers if workers is not None else min(4, os.cpu_count() or 1)
    count = max(1, min(count, len(items)))
    if count == 1:
        return [function(item) for item in items]
    with ThreadPoolExecutor(max_workers=count) as pool:
        return list(pool.map(function, items))


def _floats(array: np.ndarray) -> list[float]:
    return [float(value) for value in np.asarray(array, dtype=np.float64)]


def _canonical_json(obj: Any) -> bytes:
    return json.dumps(
        obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode()


def _deep_update(base: dict[str, Any], changes: Mapping[str, Any]) -> dict[str, Any]:
    result = dict(base)
    for key, value in changes.items():
        if isinstance(value, Mapping) and isinstance(result.get(key), dict):
            result[key] = _deep_update(result[key], value)
        else:
            result[key] = value
    return result
