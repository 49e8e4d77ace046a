"""The mergeable quantile sketch of a numeric column, and the piecewise-linear CDF it describes.

A sketch stores the exact counts below and at each of its knots (quantiles of the reference at
levels ``k / sketch_bins``, with finer levels inside the two outer bins) and interpolates the CDF
linearly between knots. Within a gap the true CDF and the interpolation both stay between the
counts at the gap's ends, so the CDF error is at most the largest *gap mass* (the share of values
strictly between two adjacent knots), which is below ``1 / sketch_bins`` for a freshly built
sketch; heavy ties become knots and are exact. Therefore, for the sketch-mode error bounds
reported with every statistic (``metrics["ks_error_bound"]``, ``metrics["wasserstein_error_bound"]``):

- ``|KS_sketch - KS_exact| <= gap_mass(reference) + gap_mass(current)``; when the reference is a
  sketch the current data is counted on the reference's grid, so its gap mass is exact too;
- ``|W_sketch - W_exact| <= sum over gaps of gap_mass * gap_width`` for both sides;
- PSI and Jensen-Shannon are exact in sketch mode (their bins are knots of the sketch) as long as
  ``sketch_bins`` is a multiple of ``psi_bins``;
- a merge of sketches on different grids re-selects knots; its bound is the count-weighted bound
  of the inputs plus the largest new gap mass, and is carried in ``NumericSketch.rank_error``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

Support = tuple[np.ndarray, np.ndarray, np.ndarray]


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
            "knots": floats(self.knots),
            "below": floats(self.below),
            "at_or_below": floats(self.at_or_below),
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


def floats(array: np.ndarray) -> list[float]:
    return [float(value) for value in np.asarray(array, dtype=np.float64)]


def fresh_sketch(finite: np.ndarray, bins: int) -> NumericSketch:
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
    return sketch_on_grid(finite, knots)


def sketch_on_grid(finite: np.ndarray, knots: np.ndarray) -> NumericSketch:
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
    error = gap_masses(sketch, float(n)).max(initial=0.0) / n if n else 0.0
    return replace_sketch(sketch, rank_error=float(error))


def sketch_support(sketch: NumericSketch, n: float) -> Support:
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


def gap_masses(sketch: NumericSketch, n: float) -> np.ndarray:
    """Values strictly between adjacent knots (tails included): where the sketch interpolates."""
    _, below, at_or_below = sketch_support(sketch, n)
    if below.size < 2:
        return np.zeros(0)
    return np.maximum(below[1:] - at_or_below[:-1], 0.0)


def evaluate_support(
    support: Support, n: float, points: np.ndarray
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


def merge_sketches(
    left: NumericSketch, n_left: float, right: NumericSketch, n_right: float, bins: int
) -> NumericSketch:
    """The sketch of both samples: exact on one grid, re-gridded to ``bins`` levels otherwise."""
    if n_left == 0 or n_right == 0:
        return left if n_right == 0 else right
    if np.array_equal(left.knots, right.knots):
        return _merge_on_one_grid(left, n_left, right, n_right)
    return _merge_on_new_grid(left, n_left, right, n_right, bins)


def _merged_extremes(left: NumericSketch, right: NumericSketch) -> dict[str, float]:
    minimum = min(left.minimum, right.minimum)
    maximum = max(left.maximum, right.maximum)
    return {
        "minimum": minimum,
        "maximum": maximum,
        "minimum_count": sum(s.minimum_count for s in (left, right) if s.minimum == minimum),
        "maximum_count": sum(s.maximum_count for s in (left, right) if s.maximum == maximum),
    }


def _merge_on_one_grid(
    left: NumericSketch, n_left: float, right: NumericSketch, n_right: float
) -> NumericSketch:
    n = n_left + n_right
    merged = NumericSketch(
        knots=left.knots,
        below=left.below + right.below,
        at_or_below=left.at_or_below + right.at_or_below,
        **_merged_extremes(left, right),
        rank_error=0.0,
        counts_exact=left.counts_exact and right.counts_exact,
    )
    if merged.counts_exact:
        error = float(gap_masses(merged, n).max(initial=0.0) / n)
    else:
        error = (n_left * left.rank_error + n_right * right.rank_error) / n
    return replace_sketch(merged, rank_error=error)


def _merge_on_new_grid(
    left: NumericSketch, n_left: float, right: NumericSketch, n_right: float, bins: int
) -> NumericSketch:
    """Sum both CDFs on the union of knots, then keep knots at levels k / bins."""
    n = n_left + n_right
    left_support = sketch_support(left, n_left)
    right_support = sketch_support(right, n_right)
    points = np.union1d(left_support[0], right_support[0])
    below_left, at_left = evaluate_support(left_support, n_left, points)
    below_right, at_right = evaluate_support(right_support, n_right, points)
    below, at_or_below = below_left + below_right, at_left + at_right
    targets = np.arange(bins + 1, dtype=np.float64) * n / bins
    keep = np.unique(np.clip(np.searchsorted(at_or_below, targets, "left"), 0, points.size - 1))
    inherited = (n_left * left.rank_error + n_right * right.rank_error) / n
    kept_below, kept_at = below[keep], at_or_below[keep]
    dropped = np.maximum(kept_below[1:] - kept_at[:-1], 0.0).max(initial=0.0) / n
    return NumericSketch(
        knots=points[keep],
        below=kept_below,
        at_or_below=kept_at,
        **_merged_extremes(left, right),
        rank_error=float(min(1.0, inherited + dropped)),
        counts_exact=False,
    )


def replace_sketch(sketch: NumericSketch, **changes: Any) -> NumericSketch:
    fields = {name: getattr(sketch, name) for name in sketch.__dataclass_fields__}
    fields.update(changes)
    return NumericSketch(**fields)
