"""Detectors plus an alarm rule: the one object a pipeline calls to turn a stream into pages.

The selection protocol (``core.nab_cv``) picks a *candidate*: one detector, or several whose
alarms are OR-ed ("any of them is surprised"), and an :class:`AlarmRule`. A :class:`Pager` is
that candidate made runnable on any stream, so the reference pipeline can use the chosen family
without knowing how the choice was made.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy.typing as npt

from aiops_assets.core.detectors import alarms as alarm_rules
from aiops_assets.core.detectors.base import FloatArray, as_matrix
from aiops_assets.core.detectors.calibration import calibrated
from aiops_assets.core.detectors.registry import build_detector


@dataclass(frozen=True)
class Pager:
    """``components`` are ``(family, params)`` pairs; more than one pages on any of them."""

    components: Sequence[tuple[str, Mapping[str, Any]]]
    rule: alarm_rules.AlarmRule
    # Per component, its tail's calibration on noise (``calibration.tail_factor``); empty: none.
    factors: Sequence[float] = ()

    def __post_init__(self) -> None:
        if not self.components:
            raise ValueError("a pager needs at least one detector")
        if self.factors and len(self.factors) != len(self.components):
            raise ValueError("a pager needs one calibration factor per detector, or none")

    def tail(self, values: npt.ArrayLike, *, learn_rows: int) -> FloatArray:
        """Per row, the likelihood tail of "any component is surprised" (small: anomalous)."""
        stream = as_matrix(values)
        learn = stream[: max(learn_rows, 2)]
        factors = list(self.factors) or [1.0] * len(self.components)
        tails = [
            calibrated(
                alarm_rules.likelihood_tail(
                    build_detector(family, params).fit(learn).score(stream),
                    start=learn_rows,
                    average_rows=self.rule.average_rows,
                    history_rows=self.rule.history_rows,
                ),
                factor,
            )
            for (family, params), factor in zip(self.components, factors, strict=True)
        ]
        return tails[0] if len(tails) == 1 else alarm_rules.any_tail(tails)

    def alarms(self, values: npt.ArrayLike, *, learn_rows: int) -> alarm_rules.IntArray:
        """The rows that page; none before ``learn_rows`` (the rows the detectors learn from)."""
        tolerance = self.rule.spatial_tolerance
        spatial = (
            alarm_rules.spatial_anomalies(values, tolerance) if tolerance is not None else None
        )
        return alarm_rules.alarm_rows(
            self.tail(values, learn_rows=learn_rows), self.rule, start=learn_rows, spatial=spatial
        )
