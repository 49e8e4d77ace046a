"""Reference-chunk calibration: how restless each measure is when nothing has drifted.

It runs the drift statistics on chunks of the reference itself, so it sits above both profiles
and statistics; the result is stored in the profile, so a check never recomputes it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import cast

import numpy as np

from aiops_assets.core.drift._common import MEASURES_BY_KIND, DataLike, columns_of, split_rows
from aiops_assets.core.drift.profiles import (
    BaselineProfile,
    CalibrationStats,
    replace_feature,
    slice_workers,
)
from aiops_assets.core.drift.statistics import compute_statistics

# Per feature, per measure: its value on each reference chunk.
_Observed = dict[str, dict[str, list[float]]]


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
    observed, chunk_count = _observe_chunks(profile, chunks, workers)
    if chunk_count < 2:
        raise ValueError(f"calibration needs at least 2 reference chunks, got {chunk_count}")
    features = tuple(
        replace_feature(feature, calibration=_calibration_of(observed[feature.name]))
        for feature in profile.features
    )
    slices = dict(profile.slices)
    if slices:
        slices.update(_calibrated_slices(profile, cast(list[DataLike], chunks), workers))
    return BaselineProfile(
        features=features,
        psi_bins=profile.psi_bins,
        sketch_bins=profile.sketch_bins,
        slices=slices,
        slice_column=profile.slice_column,
    )


def _observe_chunks(
    profile: BaselineProfile, chunks: Iterable[DataLike], workers: int | None
) -> tuple[_Observed, int]:
    """Each measure of each feature on each chunk (a chunk without the feature's values skipped)."""
    observed: _Observed = {name: {} for name in profile.names}
    chunk_count = 0
    for chunk in chunks:
        chunk_count += 1
        statistics = compute_statistics(profile, chunk, workers=workers, ks_p_values=False)
        for name, stats in statistics.items():
            if stats.current_count == 0:
                continue
            for measure in MEASURES_BY_KIND[stats.kind]:
                observed[name].setdefault(measure, []).append(stats.metrics[measure])
    return observed, chunk_count


def _calibration_of(observed: Mapping[str, list[float]]) -> dict[str, CalibrationStats]:
    return {
        measure: CalibrationStats(
            mean=float(np.mean(values)),
            std=float(np.std(values, ddof=1)) if len(values) > 1 else 0.0,
            chunks=len(values),
        )
        for measure, values in sorted(observed.items())
        if values
    }


def _calibrated_slices(
    profile: BaselineProfile, chunks: list[DataLike], workers: int | None
) -> dict[str, BaselineProfile]:
    """Each slice calibrated on its rows of the chunks, if it has rows in at least two."""
    column = cast(str, profile.slice_column)
    by_value: dict[str, list[DataLike]] = {value: [] for value in profile.slices}
    for chunk in chunks:
        if column not in columns_of(chunk):
            raise ValueError(f"a calibration chunk lacks the slice column {column!r}")
        for value, part in split_rows(chunk, column, profile.names).items():
            if value in by_value:
                by_value[value].append(part)
    return {
        value: calibrate(profile.slices[value], parts, workers=slice_workers(parts[0], workers))
        for value, parts in by_value.items()
        if len(parts) >= 2
    }
