"""Reading partitions once, and the statistics compared between them.

A partition becomes, per service, one `Sample` per column (sorted finite values and the counts
the rates need); references pool by merging samples. Every statistic is judged against its
leave-one-out spread among the references (`measured`).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Final

import numpy as np
import pandas as pd

from aiops_assets.core.drift.profiles import FeatureProfile
from aiops_assets.core.telemetry import LABEL, SERVICE, TIMESTAMP

_RESERVED: Final = frozenset({TIMESTAMP, SERVICE, LABEL})
_NS_PER_MINUTE: Final = 60 * 10**9
_NS_PER_DAY: Final = 1440 * _NS_PER_MINUTE


@dataclass(frozen=True)
class Sample:
    """One service's values of one column on one partition, reduced to what is compared."""

    values: np.ndarray  # sorted finite values
    rows: int
    nulls: int
    zeros: int
    repeats: int  # finite values equal to the previous finite value, in time order
    pairs: int

    @functools.cached_property
    def scale(self) -> float:
        """The drift engine's normalizer (`FeatureProfile.scale`), so shifts read the same."""
        count = int(self.values.size)
        mean = float(self.values.mean()) if count else 0.0
        centered = self.values - mean
        m2 = float(np.einsum("i,i->", centered, centered)) if count else 0.0
        profile = FeatureProfile(
            name="", kind="numeric", role="feature", count=count, missing=0, mean=mean, m2=m2
        )
        return profile.scale


@dataclass(frozen=True)
class ServiceData:
    rows: int
    duplicates: int
    first_minute: float | None  # the first timestamp, in minutes after the day's midnight
    step_minutes: float | None
    columns: Mapping[str, Sample]


@dataclass(frozen=True)
class PartitionData:
    services: Mapping[str, ServiceData]


def default_columns(current: pd.DataFrame, references: Mapping[str, pd.DataFrame]) -> list[str]:
    names: dict[str, None] = {}
    for frame in [current, *references.values()]:
        for column, dtype in frame.dtypes.items():
            if column not in _RESERVED and pd.api.types.is_float_dtype(dtype):
                names.setdefault(str(column))
    return sorted(names)


def incident_marks(frames: Sequence[pd.DataFrame]) -> dict[str, np.ndarray]:
    """Per service, the sorted timestamps (ns) labeled as incidents in any of ``frames``.

    A service-partition whose labels mark most of its rows has suspect labels; it marks nothing.
    """
    found: dict[str, list[np.ndarray]] = {}
    for frame in frames:
        if LABEL not in frame.columns or TIMESTAMP not in frame.columns or frame.empty:
            continue
        labeled = frame[LABEL].to_numpy(dtype=np.float64, na_value=np.nan) == 1
        if not labeled.any():
            continue
        services = frame[SERVICE].astype(str).to_numpy()
        times = frame[TIMESTAMP].to_numpy(dtype="datetime64[ns]").astype(np.int64)
        for service in np.unique(services[labeled]).tolist():
            mine = services == service
            if 2 * int(labeled[mine].sum()) <= int(mine.sum()):
                found.setdefault(service, []).append(times[mine & labeled])
    return {service: np.unique(np.concatenate(parts)) for service, parts in found.items()}


def partition_data(
    frame: pd.DataFrame, columns: Sequence[str], marks: Mapping[str, np.ndarray]
) -> PartitionData:
    present = [column for column in columns if column in frame.columns]
    services = frame[SERVICE].astype(str).to_numpy()
    times = None
    if TIMESTAMP in frame.columns:
        times = frame[TIMESTAMP].to_numpy(dtype="datetime64[ns]").astype(np.int64)
    order = (
        np.lexsort((times, services)) if times is not None else np.argsort(services, kind="stable")
    )
    services = services[order]
    matrix = frame[present].to_numpy(dtype=np.float64, na_value=np.nan)[order]
    times = None if times is None else times[order]
    bounds = np.flatnonzero(services[1:] != services[:-1]) + 1
    starts = np.concatenate(([0], bounds)) if services.size else np.array([], dtype=np.int64)
    ends = np.concatenate((bounds, [services.size])) if services.size else starts
    result: dict[str, ServiceData] = {}
    for start, end in zip(starts.tolist(), ends.tolist(), strict=True):
        service = str(services[start])
        clock = None if times is None else times[start:end]
        result[service] = _service_data(matrix[start:end], clock, marks.get(service), present)
    return PartitionData(services=result)


def _service_data(
    block: np.ndarray, clock: np.ndarray | None, marks: np.ndarray | None, columns: Sequence[str]
) -> ServiceData:
    rows = block.shape[0]
    duplicates = 0
    first_minute = step = None
    if clock is not None and rows:
        distinct = np.unique(clock)
        duplicates = rows - distinct.size
        midnight = clock[rows // 2] - clock[rows // 2] % _NS_PER_DAY
        first_minute = float(clock[0] - midnight) / _NS_PER_MINUTE
        if distinct.size > 1:
            step = float(np.median(np.diff(distinct))) / _NS_PER_MINUTE
    return ServiceData(
        rows=rows,
        duplicates=duplicates,
        first_minute=first_minute,
        step_minutes=step,
        columns=_samples(block, clock, marks, columns),
    )


def _samples(
    block: np.ndarray, clock: np.ndarray | None, marks: np.ndarray | None, columns: Sequence[str]
) -> dict[str, Sample]:
    """Each column's sample, outside labeled incidents and the windows that summarize them.

    A feature that summarizes a trailing window (``latency_p99_ms__std_24h``) carries an incident
    for that long after it: those rows are left out too, on both sides of the comparison.
    """
    if marks is None or clock is None:
        return _column_samples(block, columns)
    groups: dict[int, list[int]] = {}
    for index, column in enumerate(columns):
        groups.setdefault(_window_ns(column), []).append(index)
    result: dict[str, Sample] = {}
    for window, indices in groups.items():
        keep = ~_covered(clock, marks, window)
        result.update(_column_samples(block[keep][:, indices], [columns[i] for i in indices]))
    return {column: result[column] for column in columns}


def _covered(clock: np.ndarray, marks: np.ndarray, window: int) -> np.ndarray:
    """Rows at a mark or less than ``window`` after one (``clock`` and ``marks`` sorted)."""
    latest = np.searchsorted(marks, clock, "right") - 1
    since = clock - marks[np.maximum(latest, 0)]
    return (latest >= 0) & (since < max(window, 1))


@functools.lru_cache(maxsize=4096)
def _window_ns(column: str) -> int:
    """The trailing window a column's name ends with (``..._24h``), in ns; 0 for a plain column."""
    _, separator, suffix = column.rpartition("_")
    if not separator or not suffix[:1].isdigit():
        return 0
    try:
        window = pd.Timedelta(suffix)
    except ValueError:
        return 0
    return max(int(window.value), 0)


def _column_samples(block: np.ndarray, columns: Sequence[str]) -> dict[str, Sample]:
    """One pass over the block for all columns; only columns with gaps need one of their own."""
    rows = block.shape[0]
    by_column = np.ascontiguousarray(block.T)  # one contiguous row per column
    by_column[~np.isfinite(by_column)] = np.nan
    missing = np.isnan(by_column)
    nulls = missing.sum(axis=1).tolist()
    zeros = (by_column == 0).sum(axis=1).tolist()
    repeats = (by_column[:, 1:] == by_column[:, :-1]).sum(axis=1).tolist()  # NaN never equal
    ordered = np.sort(by_column, axis=1)  # NaN last
    result: dict[str, Sample] = {}
    for index, column in enumerate(columns):
        finite = rows - nulls[index]
        if nulls[index]:  # repeats between the finite neighbours either side of a gap
            series = by_column[index][~missing[index]]
            repeats[index] = int((series[1:] == series[:-1]).sum())
        result[column] = Sample(
            values=ordered[index, :finite],
            rows=rows,
            nulls=nulls[index],
            zeros=zeros[index],
            repeats=repeats[index],
            pairs=max(finite - 1, 0),
        )
    return result


def pool_samples(samples: Sequence[Sample]) -> Sample:
    if len(samples) == 1:
        return samples[0]
    values = np.concatenate([sample.values for sample in samples])
    values.sort(kind="stable")  # timsort: merging sorted runs is linear
    return Sample(
        values=values,
        rows=sum(sample.rows for sample in samples),
        nulls=sum(sample.nulls for sample in samples),
        zeros=sum(sample.zeros for sample in samples),
        repeats=sum(sample.repeats for sample in samples),
        pairs=sum(sample.pairs for sample in samples),
    )


def established_services(refs: Sequence[PartitionData]) -> set[str]:
    """Services present in at least half the references: their absence is news."""
    counts: dict[str, int] = {}
    for ref in refs:
        for service, data in ref.services.items():
            if data.rows:
                counts[service] = counts.get(service, 0) + 1
    return {service for service, count in counts.items() if 2 * count >= len(refs)}


# --------------------------------------------------------------------------------------------
# Measuring a statistic against its day-to-day spread
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Measure:
    value: float  # signed where the statistic has a direction
    noise: float
    threshold: float

    @property
    def effect(self) -> float:
        return abs(self.value) / self.threshold

    @property
    def significant(self) -> bool:
        return abs(self.value) > self.threshold


def measure_against(
    value: float | None, leave_one_out: Iterable[float | None], floor: float, k: float
) -> Measure | None:
    """The statistic against ``max(floor, k * noise)``; noise is the RMS of its LOO values."""
    if value is None or not math.isfinite(value):
        return None
    spread = [item for item in leave_one_out if item is not None and math.isfinite(item)]
    noise = math.sqrt(sum(item * item for item in spread) / len(spread)) if spread else 0.0
    return Measure(value=value, noise=noise, threshold=max(floor, k * noise))


Statistic = Callable[[Sample, Sample], float | None]


def measure_statistic(
    statistic: Statistic,
    current: Sample,
    pooled: Sample,
    refs: Sequence[Sample],
    others: Callable[[int], Sample],
    floor: float,
    k: float,
) -> Measure | None:
    """``statistic(current, pool)``, judged against each reference versus the pool of the others.

    The leave-one-out values are computed only for a statistic beyond its floor: below it, no
    noise can make it significant, and most cells of a normal day stay there (3x faster).
    """
    value = statistic(current, pooled)
    if value is None or abs(value) <= floor:
        return measure_against(value, [], floor, k)
    loo = [statistic(ref, others(index)) for index, ref in enumerate(refs)]
    return measure_against(value, loo, floor, k)


def shift_distance(sample: Sample, reference: Sample, min_values: int) -> float | None:
    if sample.values.size < min_values or reference.values.size < min_values:
        return None
    return _wasserstein(sample.values, reference.values) / reference.scale


def _wasserstein(u_sorted: np.ndarray, v_sorted: np.ndarray) -> float:
    """Wasserstein-1 of two sorted samples: scipy's CDF-difference formula, without re-sorting."""
    merged = np.concatenate((u_sorted, v_sorted))
    merged.sort()
    deltas = np.diff(merged)
    u_cdf = np.searchsorted(u_sorted, merged[:-1], "right") / u_sorted.size
    v_cdf = np.searchsorted(v_sorted, merged[:-1], "right") / v_sorted.size
    return float(np.sum(np.abs(u_cdf - v_cdf) * deltas))


def log_level(sample: Sample, reference: Sample, min_values: int) -> float | None:
    """log(median / reference median) for magnitudes only: no negative values on either side."""
    if sample.values.size < min_values or reference.values.size < min_values:
        return None
    if sample.values[0] < 0 or reference.values[0] < 0:
        return None
    now, before = sorted_median(sample.values), sorted_median(reference.values)
    if now <= 0 or before <= 0:
        return None
    return math.log(now / before)


def sorted_median(sorted_values: np.ndarray) -> float:
    size = sorted_values.size
    middle = size // 2
    if size % 2:
        return float(sorted_values[middle])
    return float((sorted_values[middle - 1] + sorted_values[middle]) / 2)


def null_share(sample: Sample) -> float | None:
    return sample.nulls / sample.rows if sample.rows else None


def zero_share(sample: Sample) -> float | None:
    return sample.zeros / sample.values.size if sample.values.size else None


def repeat_share(sample: Sample) -> float | None:
    return sample.repeats / sample.pairs if sample.pairs else None


def share_change(share: Callable[[Sample], float | None]) -> Statistic:
    def change(sample: Sample, reference: Sample) -> float | None:
        now, before = share(sample), share(reference)
        return None if now is None or before is None else now - before

    return change
