"""Label health: whether a partition's labels, not the model, explain a drop in its scores.

Performance is measured against labels, so broken labels look like a broken model: with every
label 0 from one day on, each real incident the model catches counts as a false alarm. The
signatures, each measured against reference partitions whose labels were trusted:

- ``missing``: labels are NaN where the references had them;
- ``constant``: every label is one value that the references rarely held (all 1 where a few
  percent were positive). All 0 is what a quiet day looks like, so it is judged as a collapse;
- ``collapse``: positives vanished while the model kept alerting. With ``k`` alerts today and the
  references' precision ``p`` (the share of their alerts labeled positive), ``p_value`` is the
  binomial chance of so few positives among ``k`` alerts;
- ``rate_shift``: the positive rate jumped while the model's alert rate did not.

A day without anomalies is normal: labels all 0 with few alerts. Then the unlabeled alerts are
no more than the references' false alarms explain, and the evidence stays near 0. Rows are not
independent (an incident spans many rows, and so do its alerts), so day counts are compared
with the references' day counts and their spread, not row by row.

Measured with the isolation-forest detector on generated days (each day against the 7 before
it, 8 days of each of 10 seeds; tuning seeds 1-10, held out 101-110): evidence 0 on every
healthy day (68 held out, 12 of them without any incident but 3 of those quiet days, Mondays on
which the model raised 12-18 false alarms, read as a collapse at 0.8); every label 0: listed as
a collapse on 57 of 80 held-out days, 37 of 38 where the model alerted at least at its
reference rate; all labels missing or all 1: 80/80 at evidence 1; a x1000 unit change with
the labels intact: 3 of 80 read as a collapse. A rate shift is hard to tell from a day with
more incidents: 2 of 80 planted ones are listed.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any, Final

import numpy as np
import numpy.typing as npt
from scipy import stats as scipy_stats

__all__ = ["COLLAPSE_P", "NORMAL_ALERT_FACTOR", "PROBLEMS", "LabelHealth", "assess_labels"]

PROBLEMS: Final = ("missing", "constant", "collapse", "rate_shift")
COLLAPSE_P: Final = 1e-6
"""A chance this small (or smaller) is full evidence; 1.0 is none, on a log scale between."""
NORMAL_ALERT_FACTOR: Final = 2.0
"""A model alerting more than this many times its reference rate has a problem of its own: its
precision falls with the labels intact, so a collapse then counts for less."""
# A problem is listed (and counts as evidence) from half-strength on: a collapse with every
# positive gone and a chance of 1e-3.
_LISTED: Final = 0.5
# Under a label collapse, the share of true alerts still labeled positive.
_SURVIVING: Final = 0.01
# Missing labels beyond the references' share by this much are a problem; at half the rows
# missing the evidence is full.
_MISSING_MARGIN: Final = 0.05
_MISSING_FULL: Final = 0.5
# Fewer labeled rows than this say nothing about constancy.
_MIN_ROWS: Final = 12
# The positive rate must at least triple, with alerts up by less than half, to be a rate shift;
# the model might be missing a new kind of incident, so its evidence is capped.
_RATE_SHIFT_FACTOR: Final = 3.0
_ALERT_STEADY_FACTOR: Final = 1.5
_RATE_SHIFT_CAP: Final = 0.6

_Array = npt.ArrayLike


@dataclass(frozen=True)
class LabelHealth:
    """The labels of one partition, against their references; ``evidence`` is 0..1.

    ``evidence`` is how strongly the labels (not the model) are to blame: the largest of the
    problems' evidences, 0 when there is none. ``missing_rate`` is the share of NaN labels.
    """

    partition: str
    label_rate: float | None
    reference_label_rate: float | None
    alert_rate: float
    reference_alert_rate: float
    reference_precision: float | None
    problems: tuple[str, ...]
    evidence: float
    p_value: float | None
    words: str
    missing_rate: float = 0.0

    def __post_init__(self) -> None:
        unknown = [problem for problem in self.problems if problem not in PROBLEMS]
        if unknown:
            raise ValueError(f"unknown label problems {unknown}; expected some of {PROBLEMS}")

    @property
    def healthy(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        return {
            "partition": self.partition,
            "label_rate": _json_float(self.label_rate),
            "reference_label_rate": _json_float(self.reference_label_rate),
            "alert_rate": float(self.alert_rate),
            "reference_alert_rate": float(self.reference_alert_rate),
            "reference_precision": _json_float(self.reference_precision),
            "problems": list(self.problems),
            "evidence": float(self.evidence),
            "p_value": _json_float(self.p_value),
            "words": self.words,
            "missing_rate": float(self.missing_rate),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LabelHealth:
        required = [f.name for f in fields(cls) if f.name != "missing_rate"]
        missing = [name for name in required if name not in data]
        if missing:
            raise ValueError(f"a label health record needs the keys {missing}")
        return cls(
            partition=str(data["partition"]),
            label_rate=_optional_float(data["label_rate"]),
            reference_label_rate=_optional_float(data["reference_label_rate"]),
            alert_rate=float(data["alert_rate"]),
            reference_alert_rate=float(data["reference_alert_rate"]),
            reference_precision=_optional_float(data["reference_precision"]),
            problems=tuple(str(problem) for problem in data["problems"]),
            evidence=float(data["evidence"]),
            p_value=_optional_float(data["p_value"]),
            words=str(data["words"]),
            missing_rate=float(data.get("missing_rate", 0.0)),
        )


@dataclass(frozen=True)
class _Counts:
    """Labels and alerts of one or more partitions, reduced to counts."""

    rows: int
    labeled: int  # rows whose label is known
    positives: int
    alerts: int
    alerts_labeled: int  # alerts whose label is known
    alerts_positive: int

    @property
    def missing_rate(self) -> float:
        return 1.0 - self.labeled / self.rows if self.rows else 0.0

    @property
    def label_rate(self) -> float | None:
        return self.positives / self.labeled if self.labeled else None

    @property
    def alert_rate(self) -> float:
        return self.alerts / self.rows if self.rows else 0.0

    @property
    def precision(self) -> float | None:
        return self.alerts_positive / self.alerts_labeled if self.alerts_labeled else None

    @property
    def false_alarm_rate(self) -> float:
        """Alerts labeled negative, per labeled row."""
        negatives = self.alerts_labeled - self.alerts_positive
        return negatives / self.labeled if self.labeled else 0.0

    def __add__(self, other: _Counts) -> _Counts:
        return _Counts(*(getattr(self, f.name) + getattr(other, f.name) for f in fields(self)))


def assess_labels(
    current_labels: _Array,
    current_alerts: _Array,
    references: Mapping[str, tuple[_Array, _Array]],
    *,
    partition: str,
) -> LabelHealth:
    """The health of ``partition``'s labels (0/1, NaN missing) given the model's alerts (0/1).

    ``references`` maps partition keys to ``(labels, alerts)`` of partitions whose labels were
    trusted; each pair holds one value per row, like the current pair.
    """
    now = _counts(current_labels, current_alerts, partition)
    if not references:
        raise ValueError("assess_labels needs at least one reference partition")
    parts = [_counts(labels, alerts, key) for key, (labels, alerts) in sorted(references.items())]
    ref = _sum(parts)
    findings: list[tuple[str, float, str]] = []
    p_value = None
    missing = _missing(now, ref)
    if missing:
        findings.append(missing)
    collapse, p_value = _collapse(now, ref, parts)
    if collapse:
        findings.append(collapse)
    constant = _constant(now, ref)
    if constant:
        findings.append(constant)
    shift = _rate_shift(now, ref, parts)
    if shift:
        findings.append(shift)
    findings = sorted((f for f in findings if f[1] >= _LISTED), key=lambda item: -item[1])
    return LabelHealth(
        partition=partition,
        label_rate=now.label_rate,
        reference_label_rate=ref.label_rate,
        alert_rate=now.alert_rate,
        reference_alert_rate=ref.alert_rate,
        reference_precision=ref.precision,
        problems=tuple(problem for problem, _, _ in findings),
        evidence=max((evidence for _, evidence, _ in findings), default=0.0),
        p_value=p_value,
        words=_words(now, ref, findings),
        missing_rate=now.missing_rate,
    )


def _counts(labels: _Array, alerts: _Array, name: str) -> _Counts:
    label_values = np.asarray(labels, dtype=np.float64).ravel()
    alert_values = np.asarray(alerts, dtype=np.float64).ravel()
    if label_values.size != alert_values.size:
        raise ValueError(
            f"partition {name}: {label_values.size} labels but {alert_values.size} alerts; "
            "they must describe the same rows"
        )
    known = ~np.isnan(label_values)
    bad_labels = np.unique(label_values[known & ~np.isin(label_values, (0.0, 1.0))])
    if bad_labels.size:
        raise ValueError(
            f"partition {name}: labels must be 0, 1 or NaN; found {bad_labels[:5].tolist()}"
        )
    bad_alerts = np.unique(alert_values[~np.isin(alert_values, (0.0, 1.0))])
    if bad_alerts.size:
        raise ValueError(
            f"partition {name}: alerts must be 0 or 1; found {bad_alerts[:5].tolist()}"
        )
    alerted = alert_values == 1
    positive = label_values == 1
    return _Counts(
        rows=int(label_values.size),
        labeled=int(known.sum()),
        positives=int(positive.sum()),
        alerts=int(alerted.sum()),
        alerts_labeled=int((alerted & known).sum()),
        alerts_positive=int((alerted & positive).sum()),
    )


def _sum(parts: Sequence[_Counts]) -> _Counts:
    total = parts[0]
    for part in parts[1:]:
        total = total + part
    return total


def _surprise(p_value: float) -> float:
    """0 for p = 1, 1 for p <= `COLLAPSE_P`, linear in log10(p) between."""
    if p_value <= COLLAPSE_P:
        return 1.0
    return max(0.0, math.log10(p_value) / math.log10(COLLAPSE_P))


def _missing(now: _Counts, ref: _Counts) -> tuple[str, float, str] | None:
    excess = now.missing_rate - ref.missing_rate
    if excess <= _MISSING_MARGIN:
        return None
    evidence = min(1.0, excess / _MISSING_FULL)
    words = (
        f"{_percent(now.missing_rate)} of labels missing (references: {_percent(ref.missing_rate)})"
    )
    return "missing", evidence, words


def _collapse(
    now: _Counts, ref: _Counts, parts: Sequence[_Counts]
) -> tuple[tuple[str, float, str] | None, float | None]:
    """Did the positives vanish while the model kept alerting, or is today a quiet day?

    Today's alerts are weighed under two explanations, each measured on the references (per
    day, scaled to today's rows, with their day-to-day spread: alerts come in bursts, one odd
    hour raises a dozen): healthy labels, when today's positive alerts are as many as the
    references' days have (a quiet day has none) and the rest are false alarms; or broken
    labels, when today's alerts are a day's worth of alerts with almost none labeled positive.
    ``evidence`` is the posterior of the second at even prior odds, times the share of its
    reference alert rate the model kept (with a few alerts a quiet day and a collapse look
    alike) and the share of positives that vanished (a model that false-alarms more with its
    labels intact explains nothing away), and less when the model alerts beyond
    `NORMAL_ALERT_FACTOR` times its reference rate. The reported ``p_value`` is the binomial
    chance of so few positives among the alerts at the reference precision; it overstates,
    since alerts are not independent.
    """
    precision = ref.precision
    if precision is None or precision == 0 or now.alerts_labeled == 0:
        return None, None
    k, observed = now.alerts_labeled, now.alerts_positive
    p_value = float(scipy_stats.binom.cdf(observed, k, precision))
    known = [part for part in parts if part.labeled]
    scale = [now.labeled / part.labeled for part in known]
    false_alarms = _burst_law(
        [(p.alerts_labeled - p.alerts_positive) * f for p, f in zip(known, scale, strict=True)]
    )
    all_alerts = _burst_law([p.alerts_labeled * f for p, f in zip(known, scale, strict=True)])
    true_alerts = _burst_law([p.alerts_positive * f for p, f in zip(known, scale, strict=True)])
    # Healthy: the positives among today's alerts as the references have them (a quiet day at
    # least as likely as Laplace's rule allows), and the rest false alarms.
    quiet = 1.0 / (len(known) + 2) if observed == 0 else 0.0
    healthy = max(float(true_alerts.pmf(observed)), quiet) * float(false_alarms.pmf(k - observed))
    # Broken: a day's worth of alerts, almost none of them (1 %) still labeled positive.
    broken = float(all_alerts.pmf(k)) * float(scipy_stats.binom.pmf(observed, k, _SURVIVING))
    posterior = broken / (broken + healthy) if broken + healthy > 0 else 0.0
    reference_rate = ref.label_rate or 0.0
    today_rate = now.label_rate or 0.0
    vanished = 1.0 - min(1.0, today_rate / reference_rate) if reference_rate > 0 else 0.0
    kept = min(1.0, now.alert_rate / ref.alert_rate) if ref.alert_rate else 0.0
    busy = now.alert_rate / (NORMAL_ALERT_FACTOR * ref.alert_rate) if ref.alert_rate else 1.0
    evidence = vanished * kept * posterior / max(busy, 1.0)
    every = "every label is 0; " if now.positives == 0 and now.labeled >= _MIN_ROWS else ""
    words = (
        f"{every}{observed} of {k} alerts labeled positive (references: {_percent(precision)}); "
        f"p={_p(p_value)}"
    )
    return ("collapse", evidence, words), p_value


def _burst_law(per_day: Sequence[float]) -> Any:
    """A negative binomial with the references' per-day mean and variance (a frozen scipy law).

    Incidents and false alarms come in bursts, so daily counts spread far wider than a
    Poisson's. Counts that vary less than a Poisson's get a Poisson law; a single reference,
    which measures no spread, a geometric one (variance ``m + m**2``). The mean is floored at
    0.5.
    """
    mean = max(float(np.mean(per_day)) if len(per_day) else 0.0, 0.5)
    if len(per_day) < 2:
        variance = mean + mean * mean
    else:
        variance = float(np.var(per_day, ddof=1))
        if variance <= mean:
            return scipy_stats.poisson(mean)
    size = mean * mean / (variance - mean)
    return scipy_stats.nbinom(size, size / (size + mean))


def _constant(now: _Counts, ref: _Counts) -> tuple[str, float, str] | None:
    """Every known label 1, where the references held mostly 0 and some 1."""
    if now.labeled < _MIN_ROWS or ref.label_rate is None or ref.positives in (0, ref.labeled):
        return None
    if now.positives == now.labeled and ref.label_rate < 0.5:
        words = f"every label is 1 (references: {_percent(ref.label_rate)} positive)"
        return "constant", 1.0, words
    return None


def _rate_shift(
    now: _Counts, ref: _Counts, parts: Sequence[_Counts]
) -> tuple[str, float, str] | None:
    """Many more positives than the references, while the model sees nothing new."""
    if now.label_rate is None or not ref.label_rate or now.positives == now.labeled:
        return None
    if now.label_rate < _RATE_SHIFT_FACTOR * ref.label_rate:
        return None
    if now.alert_rate > _ALERT_STEADY_FACTOR * max(ref.alert_rate, 1.0 / max(now.rows, 1)):
        return None
    positives = [part.positives * now.labeled / part.labeled for part in parts if part.labeled]
    chance = float(_burst_law(positives).sf(now.positives - 1))
    evidence = _RATE_SHIFT_CAP * _surprise(chance)
    words = (
        f"positive rate {_percent(ref.label_rate)} -> {_percent(now.label_rate)} while alerts "
        f"stayed at {_percent(now.alert_rate)} (references: {_percent(ref.alert_rate)})"
    )
    return "rate_shift", evidence, words


def _words(now: _Counts, ref: _Counts, findings: Sequence[tuple[str, float, str]]) -> str:
    if findings:
        return "labels: " + "; ".join(words for _, _, words in findings)
    today = "unknown" if now.label_rate is None else _percent(now.label_rate)
    before = "unknown" if ref.label_rate is None else _percent(ref.label_rate)
    return f"labels: healthy (positive rate {today}, references: {before})"


def _percent(share: float) -> str:
    percent = 100.0 * share
    return f"{percent:.0f}%" if percent >= 10 or percent == 0 else f"{percent:.1f}%"


def _p(value: float) -> str:
    return f"{value:.0e}" if value < 1e-3 else f"{value:.3f}"


def _json_float(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else float(value)


def _optional_float(value: Any) -> float | None:
    return None if value is None else float(value)
