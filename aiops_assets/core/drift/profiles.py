"""Baseline profiles: what a reference looked like, summarized once so no check rescans it.

Small references keep every sorted value (*exact* mode): the statistics then equal the textbook
ones. Large references keep a quantile sketch (*sketch* mode, `aiops_assets.core.drift.sketch`)
whose error is bounded and reported with every statistic. Profiles merge (partitions of a window,
chunks of a large partition): exact profiles and sketches on the same grid merge exactly, so
``profile(A + B) == merge(profile(A), profile(B))``. A profile is content-addressed like any other
artifact, so its bytes are canonical: equal profiles serialize to equal bytes.
"""

from __future__ import annotations

import hashlib
import json
import math
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, cast

import numpy as np
import pandas as pd

from aiops_assets.core.drift._common import (
    KINDS,
    DataLike,
    Kind,
    Mode,
    Role,
    column_values,
    columns_of,
    finite_sorted,
    is_numeric_column,
    map_in_threads,
    rows_of,
    split_rows,
)
from aiops_assets.core.drift.sketch import (
    NumericSketch,
    Support,
    evaluate_support,
    floats,
    fresh_sketch,
    merge_sketches,
    sketch_on_grid,
    sketch_support,
)

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
# A constant reference has no spread to normalize by; a relative floor keeps the normalized
# Wasserstein finite and still large when the current data leaves the constant.
_RELATIVE_SCALE_FLOOR = 1e-6
PROFILE_SCHEMA_VERSION = 1
_PROFILE_MAGIC = b"AIOPS-DRIFT-PROFILE\n"
_SKETCH_ARRAYS = ("knots", "below", "at_or_below")


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
    def support(self) -> Support:
        """(knots, below, at_or_below) including tails; exact profiles use their distinct values."""
        if self.sketch is not None:
            return sketch_support(self.sketch, float(self.count))
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
        below, at_or_below = evaluate_support(self.support, float(self.count), query.ravel())
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
            data["values"] = None if self.values is None else floats(self.values)
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
        for profile, part_header in self._parts_in_byte_order(header):
            for feature, item in zip(profile.features, part_header["features"], strict=True):
                if feature.values is not None:
                    item["values"] = stash(feature.values)
                if feature.sketch is not None:
                    for key in _SKETCH_ARRAYS:
                        item["sketch"][key] = stash(getattr(feature.sketch, key))
        header_bytes = _canonical_json(header)
        parts = [_PROFILE_MAGIC, struct.pack("<Q", len(header_bytes)), header_bytes]
        parts += [array.tobytes() for array in arrays]
        return b"".join(parts)

    def _parts_in_byte_order(
        self, header: dict[str, Any]
    ) -> list[tuple[BaselineProfile, dict[str, Any]]]:
        """The overall features first, then each slice's in sorted order (as from_bytes reads)."""
        return [(self, header)] + [
            (part, header["slices"][value]) for value, part in self.slices.items()
        ]

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
                    for key in _SKETCH_ARRAYS:
                        item["sketch"][key] = load(item["sketch"][key])
        if offset != len(data):
            raise ValueError("drift profile bytes have trailing data or are truncated")
        return cls.from_dict(header)

    @cached_property
    def sha256(self) -> str:
        return hashlib.sha256(self.to_bytes()).hexdigest()

    def merge(self, other: BaselineProfile) -> BaselineProfile:
        return merge_profiles(self, other)


def _canonical_json(obj: Any) -> bytes:
    return json.dumps(
        obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode()


# --------------------------------------------------------------------------------------------
# Building a profile
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _ColumnSpec:
    """One column to profile; ``template`` is the feature it is profiled like, if any."""

    name: str
    kind: Kind
    role: Role
    template: FeatureProfile | None = None


@dataclass(frozen=True)
class _Settings:
    mode: Mode
    sketch_bins: int
    psi_bins: int
    exact_max_rows: int


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
    columns = columns_of(data)
    if like is not None and like.slices and slice_by is None:
        slice_by = like.slice_column
    if slice_by is not None and slice_by not in columns:
        raise ValueError(f"slice column {slice_by!r} is not in the data (it has {columns})")
    if like is not None:
        if numeric is not None or categorical or predictions or labels:
            raise ValueError("pass either like=profile or column lists, not both")
        specs = [_ColumnSpec(f.name, f.kind, f.role, f) for f in like.features]
        psi_bins, sketch_bins = like.psi_bins, like.sketch_bins
    else:
        named = [*categorical, *predictions, *labels, *([slice_by] if slice_by else [])]
        if numeric is None:
            numeric = [
                name for name in columns if name not in named and is_numeric_column(data, name)
            ]
        specs = _column_specs(numeric, categorical, predictions, labels)
    _check_request(specs, columns, mode)
    settings = _Settings(mode, sketch_bins, psi_bins, exact_max_rows)
    features = map_in_threads(lambda spec: _profile_column(data, spec, settings), specs, workers)
    profile = BaselineProfile(features=tuple(features), psi_bins=psi_bins, sketch_bins=sketch_bins)
    if slice_by is None:
        return profile
    parts = split_rows(data, slice_by, profile.names)
    if like is not None:
        slices = _slices_like(like, parts, workers)
    else:
        slices = _new_slices(profile, parts, settings, workers, min_slice_rows, max_slices)
    return _with_slices(profile, slices, slice_by)


def _column_specs(
    numeric: Sequence[str],
    categorical: Sequence[str],
    predictions: Sequence[str],
    labels: Sequence[str],
) -> list[_ColumnSpec]:
    return [
        *(_ColumnSpec(name, "numeric", "feature") for name in numeric),
        *(_ColumnSpec(name, "categorical", "feature") for name in categorical),
        *(_ColumnSpec(name, "numeric", "prediction") for name in predictions),
        *(_ColumnSpec(name, "binary", "label") for name in labels),
    ]


def _check_request(specs: Sequence[_ColumnSpec], columns: Sequence[str], mode: str) -> None:
    missing_columns = [spec.name for spec in specs if spec.name not in columns]
    if missing_columns:
        raise ValueError(f"columns {missing_columns} are not in the data (it has {columns})")
    if mode not in ("auto", "exact", "sketch"):
        raise ValueError(f"mode must be auto, exact or sketch, not {mode!r}")


def _profile_column(data: DataLike, spec: _ColumnSpec, settings: _Settings) -> FeatureProfile:
    column = column_values(data, spec.name)
    if spec.kind != "numeric":
        return categorical_profile(spec.name, spec.kind, spec.role, column)
    finite, missing = finite_sorted(column)
    sketch: NumericSketch | None = None
    if spec.template is not None:
        if spec.template.sketch is not None:
            sketch = sketch_on_grid(finite, spec.template.sketch.knots)
    elif settings.mode == "sketch" or (
        settings.mode == "auto" and len(column) > settings.exact_max_rows
    ):
        sketch = fresh_sketch(finite, settings.sketch_bins)
    return numeric_profile(spec.name, spec.role, finite, missing, sketch)


def _slices_like(
    like: BaselineProfile, parts: Mapping[str, DataLike], workers: int | None
) -> dict[str, BaselineProfile]:
    """Each value ``like`` has a slice for, profiled like that slice."""
    return {
        value: build_profile(part, like=like.slices[value], workers=slice_workers(part, workers))
        for value, part in parts.items()
        if value in like.slices
    }


def _new_slices(
    profile: BaselineProfile,
    parts: Mapping[str, DataLike],
    settings: _Settings,
    workers: int | None,
    min_slice_rows: int,
    max_slices: int,
) -> dict[str, BaselineProfile]:
    """The ``max_slices`` largest values with ``min_slice_rows`` rows, profiled like ``profile``."""
    sizes = {value: rows_of(part) for value, part in parts.items()}
    large = [value for value in parts if sizes[value] >= min_slice_rows]
    wanted = sorted(large, key=lambda value: (-sizes[value], value))[: max(0, max_slices)]
    features = profile.features
    return {
        value: build_profile(
            parts[value],
            numeric=[f.name for f in features if (f.kind, f.role) == ("numeric", "feature")],
            categorical=[f.name for f in features if f.kind == "categorical"],
            predictions=[f.name for f in features if f.role == "prediction"],
            labels=[f.name for f in features if f.kind == "binary"],
            mode=settings.mode,
            sketch_bins=settings.sketch_bins,
            psi_bins=settings.psi_bins,
            exact_max_rows=settings.exact_max_rows,
            workers=slice_workers(parts[value], workers),
        )
        for value in wanted
    }


def numeric_profile(
    name: str, role: Role, finite: np.ndarray, missing: int, sketch: NumericSketch | None
) -> FeatureProfile:
    """The profile of a numeric column's sorted finite values (kept unless ``sketch`` is given)."""
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


def categorical_profile(name: str, kind: Kind, role: Role, column: np.ndarray) -> FeatureProfile:
    """Counts per category (as text), or of 0 and 1 for a binary label that must hold only those."""
    series = pd.Series(column, dtype=object)
    present = series[series.notna()]
    missing = int(series.size - present.size)
    if kind == "binary":
        return _binary_profile(name, role, present, missing)
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


def _binary_profile(name: str, role: Role, present: pd.Series, missing: int) -> FeatureProfile:
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


# --------------------------------------------------------------------------------------------
# Merging profiles
# --------------------------------------------------------------------------------------------


def merge_profiles(*profiles: BaselineProfile) -> BaselineProfile:
    """Profile of the union of the data behind ``profiles`` (e.g. partitions of a window).

    Exact profiles and sketches on one grid merge exactly; an exact profile merged with a sketch
    is first counted exactly on the sketch's grid. Sketches on different grids are re-gridded
    with a bounded error (`aiops_assets.core.drift.sketch`). Calibration is dropped: it described
    the old reference, so run `calibrate` on the merged profile. Slices merge value by value (a
    value only one side has is that side's slice).
    """
    if not profiles:
        raise ValueError("merge_profiles needs at least one profile")
    merged = profiles[0]
    for other in profiles[1:]:
        merged = _merge_two(merged, other)
    return merged


def _merge_two(merged: BaselineProfile, other: BaselineProfile) -> BaselineProfile:
    if merged.names != other.names:
        raise ValueError(f"cannot merge profiles of {merged.names} and {other.names}")
    if merged.slices and other.slices and merged.slice_column != other.slice_column:
        raise ValueError(
            f"cannot merge slices by {merged.slice_column!r} with slices by {other.slice_column!r}"
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
    return BaselineProfile(
        features=tuple(
            _merge_features(left, right, sketch_bins)
            for left, right in zip(merged.features, other.features, strict=True)
        ),
        psi_bins=merged.psi_bins,
        sketch_bins=sketch_bins,
        slices={value: _without_calibration(part) for value, part in slices.items()},
        slice_column=merged.slice_column or other.slice_column,
    )


def _merge_features(left: FeatureProfile, right: FeatureProfile, bins: int) -> FeatureProfile:
    if (left.name, left.kind, left.role) != (right.name, right.kind, right.role):
        raise ValueError(f"cannot merge feature {left.name!r} ({left.kind}) with {right.name!r}")
    if left.kind != "numeric":
        return _merge_categorical(left, right)
    return _merge_numeric(left, right, bins)


def _merge_categorical(left: FeatureProfile, right: FeatureProfile) -> FeatureProfile:
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
        count=left.count + right.count,
        missing=left.missing + right.missing,
        categories=categories,
        category_counts=np.array([totals.get(c, 0) for c in categories], dtype=np.int64),
    )


def _merge_numeric(left: FeatureProfile, right: FeatureProfile, bins: int) -> FeatureProfile:
    count = left.count + right.count
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
        sketch = _merge_feature_sketches(left, right, bins)
    return FeatureProfile(
        name=left.name,
        kind="numeric",
        role=left.role,
        count=count,
        missing=left.missing + right.missing,
        mean=mean,
        m2=m2,
        values=values,
        sketch=sketch,
    )


def _merge_feature_sketches(
    left: FeatureProfile, right: FeatureProfile, bins: int
) -> NumericSketch:
    """Sketches of both sides merged; an exact side is first counted on the other's grid."""
    left_sketch, right_sketch = left.sketch, right.sketch
    if left_sketch is None:
        assert right_sketch is not None and left.values is not None
        left_sketch = sketch_on_grid(left.values, right_sketch.knots)
    if right_sketch is None:
        assert right.values is not None
        right_sketch = sketch_on_grid(right.values, left_sketch.knots)
    return merge_sketches(left_sketch, float(left.count), right_sketch, float(right.count), bins)


# --------------------------------------------------------------------------------------------
# Copies with changes
# --------------------------------------------------------------------------------------------


def replace_feature(feature: FeatureProfile, **changes: Any) -> FeatureProfile:
    fields = {name: getattr(feature, name) for name in feature.__dataclass_fields__}
    fields.update(changes)
    return FeatureProfile(**fields)


def _without_calibration(profile: BaselineProfile) -> BaselineProfile:
    if not any(feature.calibration for feature in profile.features):
        return profile
    return BaselineProfile(
        features=tuple(replace_feature(f, calibration={}) for f in profile.features),
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


def slice_workers(data: DataLike | BaselineProfile, workers: int | None) -> int | None:
    """Threads for one slice: the caller's choice, else none for a slice too small to share."""
    if workers is not None or isinstance(data, BaselineProfile):
        return workers
    return 1 if rows_of(data) < _SLICE_THREAD_MIN_ROWS else None
