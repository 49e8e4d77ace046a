"""The performance check's judge: one partition's scores against the serving version's holdout.

Kept apart from the check so a counterfactual replay (``aiops_assets/diagnosis``) measures a
re-run partition exactly as the check does, without recording anything.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.metrics import f1_score, precision_score, recall_score

from aiops_assets.core.features import LABEL, SERVICE
from aiops_assets.core.models import ALERT


@dataclass(frozen=True)
class PerformanceLimits:
    """How far a version may fall from its holdout before the check fails."""

    f1_tolerance: float = 0.3
    false_alarm_tolerance: float = 0.02
    false_alarm_budget: float = 0.05
    min_positives: int = 5

    def __post_init__(self) -> None:
        if not 0 <= self.f1_tolerance <= 1 or not 0 <= self.false_alarm_tolerance <= 1:
            raise ValueError("tolerances are differences of rates and must lie in [0, 1]")
        if not 0 < self.false_alarm_budget <= 1:
            raise ValueError(
                f"false_alarm_budget is a rate in (0, 1], got {self.false_alarm_budget}"
            )


@dataclass(frozen=True)
class _Verdict:
    """One partition's measurements against the serving version's holdout, and why it failed."""

    observed: dict[str, float]
    reference_far: float
    reference_f1: float
    slices: dict[str, float]
    implicated: list[str]
    reasons: list[str]
    labeled_anomalies: int
    rows: int

    @property
    def passed(self) -> bool:
        return not self.reasons

    @property
    def judged_f1(self) -> bool:
        return "f1" in self.observed


def judge_scores(
    scores: Any, holdout: Mapping[str, Any], limits: PerformanceLimits | None = None
) -> tuple[bool, dict[str, float], list[str]]:
    """The check's verdict on a frame of scores without recording it: a counterfactual replay
    must be measured exactly as the check measures, or its effect would be the judge's.

    Returns whether it passes, the observed metrics and the implicated services.
    """
    verdict = _judge(scores, dict(holdout), limits or PerformanceLimits())
    return verdict.passed, dict(verdict.observed), list(verdict.implicated)


def f1_failed(f1: float, holdout: Mapping[str, Any], limits: PerformanceLimits) -> bool:
    """Whether an F1 reading fails the check: more than the tolerance below the holdout's. The
    diagnosis asks it too, to explain the metric that failed and not another."""
    return f1 < float(holdout.get("f1", 0.0)) - limits.f1_tolerance


def _judge(scores: Any, holdout: dict[str, Any], limits: PerformanceLimits) -> _Verdict:
    """The day's rates, overall and per service, against the holdout and the budget."""
    labels = scores[LABEL].to_numpy().astype("int8")
    alerts = scores[ALERT].to_numpy().astype("int8")
    observed = _measure(labels, alerts, limits.min_positives)
    reference_far = float(holdout.get("false_alarm_rate", 0.0))
    reference_f1 = float(holdout.get("f1", 0.0))
    reasons: list[str] = []
    far = observed["false_alarm_rate"]
    if far > reference_far + limits.false_alarm_tolerance:
        reasons.append(
            f"false-alarm rate {far:.4f} exceeds the holdout's "
            f"{reference_far:.4f} by more than {limits.false_alarm_tolerance}"
        )
    if far > limits.false_alarm_budget:
        reasons.append(f"false-alarm rate {far:.4f} exceeds the budget {limits.false_alarm_budget}")
    slices = _service_slices(scores, alerts, labels, labels == 0)
    far_limit = min(reference_far + limits.false_alarm_tolerance, limits.false_alarm_budget)
    # Averaged over every service, one service paging all night can hide; judged alone,
    # its false-alarm rate meets the same tolerance and budget as the whole.
    implicated = sorted(service for service, rate in slices.items() if rate > far_limit)
    for service in implicated:
        reasons.append(
            f"{SERVICE}={service}: false-alarm rate {slices[service]:.4f} exceeds "
            f"{far_limit:.4f} (the holdout's {reference_far:.4f} + "
            f"{limits.false_alarm_tolerance}, at most the budget {limits.false_alarm_budget})"
        )
    if "f1" in observed and f1_failed(observed["f1"], holdout, limits):
        reasons.append(
            f"F1 {observed['f1']:.3f} is more than {limits.f1_tolerance} below the holdout's "
            f"{reference_f1:.3f}"
        )
    return _Verdict(
        observed=observed,
        reference_far=reference_far,
        reference_f1=reference_f1,
        slices=slices,
        implicated=implicated,
        reasons=reasons,
        labeled_anomalies=int(labels.sum()),
        rows=int(np.size(labels)),
    )


def _measure(labels: np.ndarray, alerts: np.ndarray, min_positives: int) -> dict[str, float]:
    """Rates of a set of rows; F1, precision and recall only with enough labeled anomalies to
    mean something."""
    normal = labels == 0
    measured = {
        "false_alarm_rate": float(alerts[normal].mean()) if normal.any() else 0.0,
        "labeled_anomalies": float(labels.sum()),
        "alert_rate": float(alerts.mean()),
    }
    if int(labels.sum()) >= min_positives:
        measured["f1"] = float(f1_score(labels, alerts, zero_division=0.0))
        measured["precision"] = float(precision_score(labels, alerts, zero_division=0.0))
        measured["recall"] = float(recall_score(labels, alerts, zero_division=0.0))
    return measured


def _service_slices(
    scores: Any, alerts: np.ndarray, labels: np.ndarray, normal: np.ndarray
) -> dict[str, float]:
    """Each service's false-alarm rate; empty when the scores carry no service column.

    Only false alarms are judged per service: a service-day holds a handful of labeled
    anomalies at most, so a per-service F1 would be noise, while its false-alarm rate is what
    that service's on-call engineer lives with.
    """
    if SERVICE not in getattr(scores, "columns", ()):
        return {}
    services = scores[SERVICE].astype(str).to_numpy()
    rates = {}
    for service in np.unique(services):
        chosen = (services == service) & normal
        if chosen.any():
            rates[str(service)] = float(alerts[chosen].mean())
    return rates
