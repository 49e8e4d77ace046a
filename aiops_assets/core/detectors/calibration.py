"""Calibrate a stream's likelihood tail on pure noise, where every page is a false page.

The likelihood rule reads a stream's averaged score as normal. For some streams it is not: on
Gaussian noise the isolation forest's tail falls below 1e-4 about ten times as often as 1e-4 of
its rows, so an "any of" pager pages on noise because of the forest alone. The fix needs no
labels: score seeded noise, count how often the tail falls below ``level``, and multiply the
stream's tails by that ratio (never by less than 1: no stream is made more confident), so that
"tail 1e-4" means about the same on noise for every stream.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from aiops_assets.core.detectors.alarms import likelihood_tail
from aiops_assets.core.detectors.base import FloatArray

# The noise a stream is calibrated on: NAB's most common file (two weeks at five minutes, 15 %
# of it to learn from), seeded so the factors, and every score that uses them, are reproducible.
NOISE_ROWS = 4032
NOISE_PERIOD = 288
NOISE_LEARN_ROWS = 604
NOISE_SERIES = 12
NOISE_SEED = 20221


def noise_series(count: int = NOISE_SERIES, rows: int = NOISE_ROWS) -> list[FloatArray]:
    """``count`` seeded series of standard Gaussian noise: a stream with nothing to find."""
    return [np.random.default_rng(NOISE_SEED + k).normal(0.0, 1.0, rows) for k in range(count)]


def tail_factor(
    stream: Callable[[FloatArray], FloatArray],
    *,
    level: float = 1e-4,
    history_rows: int = 2016,
    series: list[FloatArray] | None = None,
    learn_rows: int = NOISE_LEARN_ROWS,
) -> float:
    """How many times more often than ``level`` the stream's tail is at most ``level`` on noise.

    ``stream`` maps a series to its score stream (fit on the first ``learn_rows`` rows inside).
    Only rows after the learning rows count, as only they can page. At least 1.
    """
    hits = rows = 0
    for values in series if series is not None else noise_series():
        tail = likelihood_tail(stream(values), start=learn_rows, history_rows=history_rows)
        hits += int((tail[learn_rows:] <= level).sum())
        rows += len(values) - learn_rows
    return max(1.0, hits / (rows * level)) if rows else 1.0


def calibrated(tail: FloatArray, factor: float) -> FloatArray:
    """The tail scaled by its noise factor (capped at 1, still a probability)."""
    return np.minimum(np.asarray(tail, dtype="float64") * factor, 1.0)
