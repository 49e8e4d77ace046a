"""Data quality against the baseline profile: each service's level, spread and rows, and the labels.

Static ranges (the GE suite) cannot see a service whose latency arrives in seconds instead of
milliseconds: the values stay in range. Rolling features absorb such a change within a day, so
checks on features and scores go green while the raw data stays wrong. This module compares each
partition's raw columns, service by service, with the drift baseline profile of the partitions the
model was trained on. The reference is fixed: a trailing window would learn the fault and pass on
its second day, whereas a fixed reference fails on every day the fault lasts and passes again the
day the data is back.

What is compared, per service (per slice of the profile) and numeric column:

- the *level*: the median against the reference median, as a factor (for columns whose reference
  holds no negative values and a positive median; a ratio means nothing otherwise);
- the *spread*: the interquartile range against the reference's, as a factor;
- the *rows*: the rows of the partition against the reference's rows per partition;
- *presence*: a service the reference has and the partition lacks.

A level factor close to a power of ten of at least 100 (x100, x1000, x0.001, ...) is called a
probable unit change. The label column gets its own health check (`label_column_health`): labels
missing or outside {0, 1}, or constant for several partitions where the reference varied.

Plain Python, no orchestrator import: the Dagster checks in ``aiops_assets.checks.baseline_quality``
wrap it. The default tolerances were measured on generated days (see ``docs/checks.md``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal

import numpy as np
import pandas as pd

from aiops_assets.core.drift import BaselineProfile, FeatureProfile
from aiops_assets.core.markdown import md_text

__all__ = [
    "STATISTICS",
    "BaselineQualityReport",
    "BaselineTolerances",
    "Comparison",
    "LabelColumnHealth",
    "compare_with_baseline",
    "label_column_health",
    "profile_quantiles",
]

Statistic = Literal["median", "spread", "rows", "presence"]
STATISTICS: Final = ("median", "spread", "rows", "presence")
Verdict = Literal["ok", "warn", "error"]
# The name of the one "slice" of a profile without slices: the whole partition.
WHOLE: Final = "all"
_QUARTILES: Final = (0.25, 0.5, 0.75)


@dataclass(frozen=True)
class BaselineTolerances:
    """How far a partition may sit from the baseline before the check fails; factors either way.

    - ``level``: the median may be this factor above or below the reference median (2.0: x2 or
      x0.5). ``columns`` overrides it per column, for columns steadier or more restless than most.
    - ``spread``: the same for the interquartile range (spreads are more restless than medians).
    - ``rows``: the same for a service's rows against its reference rows per partition.
    - ``unit_tolerance``: a level factor within this many decades of a power of ten of at least
      100 (either way) is a probable unit change (0.2: x631..x1585 reads as x1000).
    - ``min_rows``: fewer finite values than this on either side, and the column is not judged.
    """

    level: float = 2.25
    spread: float = 4.0
    rows: float = 2.0
    unit_tolerance: float = 0.2
    min_rows: int = 30
    columns: Mapping[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        factors = {"level": self.level, "spread": self.spread, "rows": self.rows}
        factors.update({f"columns[{name!r}]": value for name, value in self.columns.items()})
        for name, value in factors.items():
            if not (isinstance(value, int | float) and math.isfinite(value) and value > 1):
                raise ValueError(f"tolerance {name} must be a factor above 1, got {value!r}")
        if not 0 < self.unit_tolerance < 0.5:
            raise ValueError(
                f"unit_tolerance must be in (0, 0.5) decades, got {self.unit_tolerance}"
            )
        if self.min_rows < 2:
            raise ValueError(f"min_rows must be at least 2, got {self.min_rows}")

    def level_for(self, column: str) -> float:
        return float(self.columns.get(column, self.level))

    def to_dict(self) -> dict[str, Any]:
        return {
            "level": self.level,
            "spread": self.spread,
            "rows": self.rows,
            "unit_tolerance": self.unit_tolerance,
            "min_rows": self.min_rows,
            "columns": dict(sorted(self.columns.items())),
        }


@dataclass(frozen=True)
class Comparison:
    """One statistic of one service (slice) against its reference; ``column`` None for rows and
    presence. ``factor`` is current / reference (None when a ratio means nothing)."""

    slice: str
    column: str | None
    statistic: Statistic
    reference: float
    current: float
    factor: float | None
    tolerance: float
    failed: bool
    unit_change: bool = False

    @property
    def key(self) -> str:
        """What identifies a finding from one partition to the next: service, column, statistic."""
        return "/".join([self.slice, self.column or "-", self.statistic])

    def words(self, slice_column: str | None) -> str:
        """For a person on call: ``checkout latency_p99_ms median x0.001 vs baseline (...)``."""
        who = self.slice if slice_column is not None else "the partition"
        if self.statistic == "presence":
            return (
                f"{who}: no rows (baseline: {_number(self.reference)} per partition; "
                "missing service)"
            )
        what = f"{who} {self.column} {self.statistic}" if self.column else f"{who} {self.statistic}"
        factor = (
            "" if self.factor is None else f" {_factor(self.factor, unit_change=self.unit_change)}"
        )
        text = f"{what}{factor} vs baseline ({_number(self.current)} vs {_number(self.reference)})"
        return f"{text} (probable unit change)" if self.unit_change else text

    def to_dict(self, slice_column: str | None) -> dict[str, Any]:
        return {
            "slice": self.slice,
            "column": self.column,
            "statistic": self.statistic,
            "reference": _json_float(self.reference),
            "current": _json_float(self.current),
            "factor": _json_float(self.factor),
            "tolerance": float(self.tolerance),
            "failed": self.failed,
            "unit_change": self.unit_change,
            "words": self.words(slice_column),
        }


@dataclass(frozen=True)
class BaselineQualityReport:
    """Every comparison of one partition, and the services the reference does not know."""

    slice_column: str | None
    comparisons: tuple[Comparison, ...]
    new_slices: tuple[str, ...] = ()

    @property
    def failures(self) -> list[Comparison]:
        """The failed comparisons, the farthest from their tolerance first."""
        failed = [item for item in self.comparisons if item.failed]
        return sorted(failed, key=lambda item: (-_excess(item), item.slice, item.column or ""))

    @property
    def passed(self) -> bool:
        return not any(item.failed for item in self.comparisons)

    @property
    def verdict(self) -> Verdict:
        """``error`` for a probable unit change or a missing service, ``warn`` for any other
        failure: both say the data moved; only the first two say it is surely broken."""
        if self.passed:
            return "ok"
        severe = any(item.unit_change or item.statistic == "presence" for item in self.failures)
        return "error" if severe else "warn"

    def slice_verdicts(self) -> dict[str, Verdict]:
        verdicts: dict[str, Verdict] = {}
        for item in self.comparisons:
            verdicts.setdefault(item.slice, "ok")
            if item.failed:
                severe = item.unit_change or item.statistic == "presence"
                verdicts[item.slice] = (
                    "error" if severe or verdicts[item.slice] == "error" else "warn"
                )
        return dict(sorted(verdicts.items()))

    def failed_slices(self) -> list[str]:
        """The services that failed, the worst first (as in the summary)."""
        seen: dict[str, None] = {}
        for item in self.failures:
            seen.setdefault(item.slice)
        return list(seen)

    def slice_label(self, value: str) -> str:
        return f"{self.slice_column}={value}" if self.slice_column else value

    def headline(self, limit: int = 3) -> str:
        """The worst failures in one line; empty when the partition passed."""
        failures = self.failures
        words = [item.words(self.slice_column) for item in failures[:limit]]
        more = len(failures) - limit
        return "; ".join(words) + (f"; and {more} more" if more > 0 else "")

    def to_markdown(self, since: Mapping[str, str] | None = None) -> str:
        """The summary; ``since`` maps a failure's ``key`` to the partition it has failed since."""
        since = since or {}
        if self.passed:
            lines = [
                f"**OK**: every service within its baseline ({len(self.comparisons)} comparisons)."
            ]
        else:
            failures = self.failures
            lines = [
                f"**{self.verdict.upper()}**: {len(failures)} comparisons off the baseline.",
                "",
            ]
            # Service and column names are data: escaped, each finding stays on its line.
            lines += [
                f"- {md_text(item.words(self.slice_column))}"
                + (f", since {md_text(since[item.key])}" if item.key in since else "")
                for item in failures
            ]
        if self.new_slices:
            names = ", ".join(md_text(self.slice_label(value)) for value in self.new_slices)
            lines += ["", f"Not in the baseline (not judged): {names}."]
        return "\n".join(lines)


def profile_quantiles(feature: FeatureProfile, quantiles: Sequence[float]) -> np.ndarray:
    """Quantiles of a numeric feature as its profile knows them (exact, or from the sketch)."""
    if feature.kind != "numeric":
        raise ValueError(
            f"feature {feature.name!r} is {feature.kind}; quantiles need a numeric one"
        )
    wanted = np.asarray(quantiles, dtype=np.float64)
    if feature.count == 0:
        return np.full(wanted.shape, np.nan)
    if feature.values is not None:
        return np.quantile(feature.values, wanted)
    knots, _, at_or_below = feature.support
    return np.interp(wanted, at_or_below / feature.count, knots)


def compare_with_baseline(
    profile: BaselineProfile,
    frame: pd.DataFrame,
    tolerances: BaselineTolerances | None = None,
    *,
    columns: Sequence[str] | None = None,
) -> BaselineQualityReport:
    """Each service of ``frame`` against its own slice of ``profile``, column by column.

    A profile without slices judges the whole frame against the whole reference. ``columns``
    (default: every numeric feature the profile holds) must be profiled; labels and categorical
    columns are never compared here (`label_column_health` judges labels).
    """
    settings = tolerances if tolerances is not None else BaselineTolerances()
    numeric = [f.name for f in profile.features if f.kind == "numeric"]
    wanted = list(columns) if columns is not None else numeric
    unknown = sorted(set(wanted) - set(numeric))
    if unknown:
        raise ValueError(f"the baseline profiles no numeric columns {unknown} (it has {numeric})")
    missing = sorted(set(wanted) - set(frame.columns))
    if missing:
        raise ValueError(f"the partition lacks the profiled columns {missing}")
    column = profile.slice_column if profile.slices else None
    references = dict(profile.slices) if column is not None else {WHOLE: profile}
    if column is not None and column not in frame.columns:
        raise ValueError(f"the baseline is sliced by {column!r}, which the partition lacks")
    parts = _parts(frame, column)
    comparisons: list[Comparison] = []
    for value, reference in references.items():
        part = parts.get(value)
        comparisons += _slice_comparisons(value, reference, part, wanted, settings)
    new = tuple(sorted(value for value in parts if value not in references))
    return BaselineQualityReport(
        slice_column=column, comparisons=tuple(comparisons), new_slices=new
    )


def _parts(frame: pd.DataFrame, column: str | None) -> dict[str, pd.DataFrame]:
    if column is None:
        return {WHOLE: frame}
    keys = frame[column].astype(str)
    return {str(value): part for value, part in frame.groupby(keys, sort=True)}


def _slice_comparisons(
    value: str,
    reference: BaselineProfile,
    part: pd.DataFrame | None,
    columns: Sequence[str],
    settings: BaselineTolerances,
) -> list[Comparison]:
    per_partition = _reference_rows_per_partition(reference)
    if part is None or part.empty:
        rows = per_partition if per_partition is not None else float(_reference_rows(reference))
        return [Comparison(value, None, "presence", rows, 0.0, 0.0, settings.rows, failed=True)]
    found: list[Comparison] = []
    if per_partition is not None:
        factor = len(part) / per_partition
        found.append(
            Comparison(
                value,
                None,
                "rows",
                per_partition,
                float(len(part)),
                factor,
                settings.rows,
                failed=_outside(factor, settings.rows),
            )
        )
    for name in columns:
        found += _column_comparisons(value, reference.feature(name), part[name], settings)
    return found


def _column_comparisons(
    value: str, feature: FeatureProfile, series: pd.Series, settings: BaselineTolerances
) -> list[Comparison]:
    current = pd.to_numeric(series, errors="coerce").to_numpy(dtype=np.float64)
    current = current[np.isfinite(current)]
    if current.size < settings.min_rows or feature.count < settings.min_rows:
        return []
    before = profile_quantiles(feature, _QUARTILES)
    now = np.quantile(current, _QUARTILES)
    found: list[Comparison] = []
    magnitudes = _reference_minimum(feature) >= 0 and before[1] > 0
    if magnitudes and now[1] >= 0:
        found.append(_level(value, feature.name, float(before[1]), float(now[1]), settings))
    spread_before, spread_now = float(before[2] - before[0]), float(now[2] - now[0])
    if spread_before > 0:
        factor = spread_now / spread_before
        found.append(
            Comparison(
                value,
                feature.name,
                "spread",
                spread_before,
                spread_now,
                factor,
                settings.spread,
                failed=_outside(factor, settings.spread),
            )
        )
    return found


def _level(
    value: str, column: str, before: float, now: float, settings: BaselineTolerances
) -> Comparison:
    tolerance = settings.level_for(column)
    factor = now / before
    failed = _outside(factor, tolerance)
    return Comparison(
        value,
        column,
        "median",
        before,
        now,
        factor,
        tolerance,
        failed=failed,
        unit_change=failed and _near_power_of_ten(factor, settings.unit_tolerance),
    )


def _outside(factor: float, tolerance: float) -> bool:
    if factor <= 0:
        return True
    return abs(math.log(factor)) > math.log(tolerance)


def _near_power_of_ten(factor: float, tolerance: float) -> bool:
    """Within ``tolerance`` decades of x100, x1000, ... or x0.01, x0.001, ...; x10 is not a unit
    change anyone makes by accident often enough to say so (an error rate x12 is not one)."""
    if factor <= 0:
        return False
    decades = math.log10(factor)
    nearest = round(decades)
    return abs(nearest) >= 2 and abs(decades - nearest) <= tolerance


def _reference_minimum(feature: FeatureProfile) -> float:
    if feature.values is not None:
        return float(feature.values[0]) if feature.values.size else math.nan
    knots = feature.support[0]
    return float(knots[0]) if knots.size else math.nan


def _reference_rows(profile: BaselineProfile) -> int:
    first = profile.features[0] if profile.features else None
    return 0 if first is None else int(first.count + first.missing)


def _reference_rows_per_partition(profile: BaselineProfile) -> float | None:
    """Rows per reference partition: the profile's rows over the calibration chunks it saw.

    None without calibration (a baseline of one partition), which leaves rows unjudged.
    """
    if not profile.features:
        return None
    chunks = max((stats.chunks for stats in profile.features[0].calibration.values()), default=0)
    if chunks < 1:
        return None
    return _reference_rows(profile) / chunks


# --------------------------------------------------------------------------------------------
# Label health
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LabelColumnHealth:
    """The label column of one partition: missing, invalid and constant labels.

    ``constant_partitions`` counts the partitions in a row, this one included, whose labels were
    all one value; a label pipeline that broke keeps it growing. A run of ``quiet_partitions``
    fails while the reference had both values, as does a partition of positives only (a
    reference positive rate below one half never explains a whole partition of incidents).
    """

    label: str
    rows: int
    missing: int
    invalid: int
    invalid_values: tuple[str, ...]
    positives: int
    reference_rate: float | None
    constant_value: int | None
    constant_partitions: int
    quiet_partitions: int
    positives_by_slice: Mapping[str, int] = field(default_factory=dict)

    @property
    def problems(self) -> list[str]:
        found: list[str] = []
        if self.missing:
            found.append(f"{self.label}: {self.missing} of {self.rows} labels missing (NaN)")
        if self.invalid:
            values = ", ".join(self.invalid_values)
            found.append(f"{self.label}: {self.invalid} labels outside {{0, 1}} ({values})")
        if self._constant_failed():
            found.append(self._constant_words())
        return found

    def _reference_varied(self) -> bool:
        return self.reference_rate is not None and 0.0 < self.reference_rate < 1.0

    def _constant_failed(self) -> bool:
        if self.constant_value is None or not self._reference_varied():
            return False
        assert self.reference_rate is not None
        if self.constant_value == 1:
            return self.reference_rate < 0.5
        return self.constant_partitions >= self.quiet_partitions

    def _constant_words(self) -> str:
        rate = f"{100 * (self.reference_rate or 0.0):.2g} %"
        runs = (
            f"for {self.constant_partitions} partitions in a row"
            if self.constant_partitions > 1
            else "on the whole partition"
        )
        return (
            f"{self.label}: every label is {self.constant_value} {runs}; the baseline's positive "
            f"rate is {rate} (probable label pipeline break)"
        )

    @property
    def passed(self) -> bool:
        return not self.problems

    @property
    def verdict(self) -> Verdict:
        """``error`` for missing or invalid labels (they cannot be scored), ``warn`` for
        constant ones (they can be true for a while)."""
        if self.passed:
            return "ok"
        return "error" if self.missing or self.invalid else "warn"

    def to_markdown(self, since: Mapping[str, str] | None = None) -> str:
        """The summary; ``since`` maps a failure's ``key`` to the partition it has failed since."""
        since = since or {}
        if self.passed:
            rate = "" if self.reference_rate is None else f" (baseline {self.reference_rate:.4f})"
            share = self.positives / self.rows if self.rows else 0.0
            return (
                f"**OK**: {self.positives} positive labels of {self.rows}, rate {share:.4f}{rate}."
            )
        return "\n".join(
            [f"**{self.verdict.upper()}**: the labels look broken.", ""]
            + [f"- {md_text(problem)}" for problem in self.problems]
        )


def label_column_health(
    frame: pd.DataFrame,
    label: str,
    reference: FeatureProfile | None,
    *,
    previous_constant_partitions: int = 0,
    quiet_partitions: int = 3,
    slice_column: str | None = None,
) -> LabelColumnHealth:
    """The health of ``frame[label]`` given the label's baseline profile (``reference``).

    ``previous_constant_partitions`` is the run of constant partitions just before this one (read
    from the check's previous result); this partition extends it or ends it.
    """
    if label not in frame.columns:
        raise ValueError(f"the partition has no label column {label!r}")
    if quiet_partitions < 1:
        raise ValueError(f"quiet_partitions must be at least 1, got {quiet_partitions}")
    raw = frame[label]
    numbers = pd.to_numeric(raw, errors="coerce")
    missing_mask = raw.isna().to_numpy()
    invalid_mask = ~missing_mask & ~numbers.isin([0, 1]).to_numpy()
    valid = numbers[~missing_mask & ~invalid_mask]
    constant = (
        int(valid.iloc[0])
        if len(valid) and valid.nunique() == 1 and not invalid_mask.any()
        else None
    )
    reference_rate = _positive_rate(reference)
    by_slice: dict[str, int] = {}
    if slice_column is not None and slice_column in frame.columns:
        positives = (numbers == 1).groupby(frame[slice_column].astype(str)).sum()
        by_slice = {str(key): int(count) for key, count in positives.sort_index().items()}
    return LabelColumnHealth(
        label=label,
        rows=len(frame),
        missing=int(missing_mask.sum()),
        invalid=int(invalid_mask.sum()),
        invalid_values=tuple(sorted({str(v) for v in raw[invalid_mask].unique()[:5]})),
        positives=int((numbers == 1).sum()),
        reference_rate=reference_rate,
        constant_value=constant,
        constant_partitions=previous_constant_partitions + 1 if constant is not None else 0,
        quiet_partitions=quiet_partitions,
        positives_by_slice=by_slice,
    )


def _positive_rate(reference: FeatureProfile | None) -> float | None:
    if reference is None or reference.kind != "binary" or reference.category_counts is None:
        return None
    total = int(reference.category_counts.sum())
    return float(reference.category_counts[1] / total) if total else None


def _factor(factor: float, *, unit_change: bool = False) -> str:
    """``x0.001`` for a unit change (its power of ten), else ``x2.95``, ``x12``, ``x0.00092``."""
    if factor <= 0:
        return "x0"
    if unit_change:
        decades = round(math.log10(factor))
        if abs(decades) > 6:
            return f"x1e{decades}"
        return f"x{10**decades}" if decades >= 0 else f"x{10.0**decades:.{-decades}f}"
    if factor >= 10:
        return f"x{factor:.0f}"
    return f"x{factor:.3g}" if factor >= 0.01 else f"x{factor:.2g}"


def _number(value: float) -> str:
    if not math.isfinite(value):
        return str(value)
    if value == 0 or 0.01 <= abs(value) < 100_000:
        return f"{value:.4g}"
    return f"{value:.3g}"


def _excess(item: Comparison) -> float:
    """How many tolerances beyond: a x1000 unit change before a x2.1 wobble."""
    if item.statistic == "presence":
        return math.inf
    if item.factor is None or item.factor <= 0:
        return math.inf
    return abs(math.log(item.factor)) / math.log(item.tolerance)


def _json_float(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else float(value)
