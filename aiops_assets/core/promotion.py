"""Promotion gate: when a challenger may replace the champion detector.

Why it is shaped this way:

- A challenger replaces the champion only on evidence, never on one lucky number. Three criteria
  must all pass: every blocking data check on its inputs passed; it beats the champion on the
  holdout by the configured margin *beyond bootstrap noise*; its shadow run on the latest served
  partitions shows no regression. The decision carries every number it rests on (``evidence``,
  JSON-serializable) and a markdown report, so a reviewer can audit a refusal without rerunning.
- Both models score the *same* holdout rows, so the comparison is paired: each resample draws one
  set of row indices and evaluates both models on it. Pairing cancels the variance the two models
  share (which rows are hard), which is what makes a small real improvement detectable.
- Telemetry rows are autocorrelated and anomalies come in bursts, so resampling single rows would
  pretend to have far more independent evidence than there is. A moving-block bootstrap resamples
  contiguous runs of ``block_rows`` rows instead: ``ceil(n / block)`` block starts drawn uniformly
  in ``[0, n - block]``, concatenated and truncated to ``n`` rows.
- The gate runs inside a materialization, so 1000 resamples must cost well under a few seconds.
  A resample only changes how many times each row is counted, so it is represented by its row
  multiplicities (weights) rather than by the resampled rows. Each model's rows are ranked by
  score once; AP then only needs, at each group of equal scores holding a positive (ties grouped
  as scikit-learn groups them), the weighted count of rows and of positives ranked at or above
  it: one sparse product per chunk of resamples plus a cumulative sum over those groups. Integer
  weights make this exactly the AP of the resampled rows (tested against
  ``sklearn.metrics.average_precision_score``).
- Resamples whose rows contain no positive label have no defined AP/recall/F1. They score 0 for
  both models (so the paired difference is 0, counted as "not better"): this is conservative — a
  holdout so sparse in anomalies that many resamples miss them all cannot prove an improvement.
  Their number is reported as ``resamples_without_positives``.

The holdout criterion passes iff the lower bound of the percentile confidence interval of
``metric(candidate) - metric(champion)`` exceeds ``margin``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
from scipy import sparse

from aiops_assets.core.markdown import md_code, md_text

if TYPE_CHECKING:
    import pandas as pd

METRICS = ("pr_auc", "f1", "precision", "recall")

BLOCKING_CHECKS = "blocking_checks"
HOLDOUT_IMPROVEMENT = "holdout_improvement"
SHADOW = "shadow"

NO_CHAMPION = "no champion to compare with"
NO_SHADOW = "no served partitions to shadow yet"
NO_BLOCKING_CHECKS = "no blocking checks on the inputs"
NO_PAIRED_HOLDOUT = (
    "the champion cannot score the candidate's holdout (different inputs); no paired comparison "
    "is possible — promote manually if intended"
)

# Upper bound on the elements of one chunk's weight matrix: bounds memory (a few arrays of this
# many float64s, ~32 MiB each) while keeping enough resamples per numpy call to amortize overhead.
_CHUNK_ELEMENTS = 4_000_000


def _check_metric(metric: str, what: str = "metric") -> None:
    if metric not in METRICS:
        raise ValueError(f"{what} must be one of {', '.join(METRICS)}; got {metric!r}")


@dataclass(frozen=True)
class GateConfig:
    """How strict the gate is.

    ``margin`` may be negative (a non-inferiority gate: "not worse than the champion by more than
    |margin|"). ``bootstrap_samples`` only needs to be >= 1 to run, but percentile bounds from
    fewer than ~1000 resamples are coarse (at 95 % the 2.5 % tail then holds < 25 values), so
    keep the default unless a test needs speed.
    """

    metric: str = "pr_auc"
    margin: float = 0.0
    bootstrap_samples: int = 1000
    confidence: float = 0.95
    block_rows: int = 60
    seed: int = 0
    shadow_metric: str = "f1"
    shadow_tolerance: float = 0.02
    max_alert_rate_increase: float = 0.01

    def __post_init__(self) -> None:
        _check_metric(self.metric, "metric")
        _check_metric(self.shadow_metric, "shadow_metric")
        if not math.isfinite(self.margin):
            raise ValueError(f"margin must be a finite number; got {self.margin!r}")
        if not 0.0 < self.confidence < 1.0:
            raise ValueError(
                f"confidence must be strictly between 0 and 1; got {self.confidence!r}"
            )
        if self.bootstrap_samples < 1:
            raise ValueError(
                f"bootstrap_samples must be >= 1 (>= 1000 recommended); got "
                f"{self.bootstrap_samples!r}"
            )
        if self.block_rows < 1:
            raise ValueError(f"block_rows must be >= 1; got {self.block_rows!r}")
        for name in ("shadow_tolerance", "max_alert_rate_increase"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0.0):
                raise ValueError(f"{name} must be a finite number >= 0; got {value!r}")


@dataclass(frozen=True, eq=False)
class ScoredRows:
    """One model's scores on rows in time order, with the labels and the model's threshold.

    ``eq=False``: the fields are arrays, whose ``==`` is element-wise, so value equality of two
    instances would be ambiguous; identity equality is the honest default.
    """

    labels: np.ndarray
    scores: np.ndarray
    threshold: float

    def __post_init__(self) -> None:
        labels = np.asarray(self.labels)
        scores = np.asarray(self.scores, dtype=np.float64)
        if labels.ndim != 1 or scores.ndim != 1:
            raise ValueError("labels and scores must be 1-D arrays")
        if len(labels) != len(scores):
            raise ValueError(
                f"labels and scores must have equal lengths; got {len(labels)} labels and "
                f"{len(scores)} scores"
            )
        if len(labels) and not np.isin(labels, (0, 1)).all():
            raise ValueError("labels must be 0 or 1")
        if not np.isfinite(scores).all():
            # NaN has no place in a ranking: sorting would silently put it at one end.
            raise ValueError("scores must be finite")
        if math.isnan(self.threshold):
            raise ValueError("threshold must not be NaN")
        object.__setattr__(self, "labels", labels.astype(np.int8, copy=False))
        object.__setattr__(self, "scores", scores)
        object.__setattr__(self, "threshold", float(self.threshold))

    def __len__(self) -> int:
        return len(self.labels)


class _Ranked:
    """A model's rows ranked once by descending score, reused by every resample chunk.

    Weights arrive as a ``(rows, resamples)`` matrix. Recall only moves at groups of equal
    scores that hold a positive, so AP needs, at each such group, the resampled count of rows
    ranked at or above it and of positives among them. Each row is assigned to the first such
    group at or below its rank; two sparse 0/1 matrices then sum the weights per group in one
    pass (no per-resample sort, no full-width cumulative sum), and a cumulative sum over the few
    groups gives the counts.
    """

    def __init__(self, rows: ScoredRows) -> None:
        count = len(rows)
        # Stable descending sort, exactly as scikit-learn's _binary_clf_curve orders rows.
        order = np.argsort(-rows.scores, kind="stable")
        sorted_scores = rows.scores[order]
        sorted_labels = rows.labels[order]
        group_ends = np.r_[np.flatnonzero(np.diff(sorted_scores)), count - 1]
        group_of_rank = np.searchsorted(group_ends, np.arange(count))
        positive_ranks = np.flatnonzero(sorted_labels == 1)
        positive_group_ends = group_ends[np.unique(group_of_rank[positive_ranks])]
        # Rows ranked below the last positive group never change recall: bucket == groups drops them.
        bucket = np.searchsorted(positive_group_ends, np.arange(count))
        kept = bucket < len(positive_group_ends)
        shape = (len(positive_group_ends), count)
        self.groups = len(positive_group_ends)
        self.rows_per_group = sparse.csr_matrix(
            (np.ones(int(kept.sum())), (bucket[kept], order[kept])), shape=shape
        )
        self.positives_per_group = sparse.csr_matrix(
            (np.ones(len(positive_ranks)), (bucket[positive_ranks], order[positive_ranks])),
            shape=shape,
        )
        alerts = rows.scores >= rows.threshold
        self.true_alerts = (alerts & (rows.labels == 1)).astype(np.float64)
        self.alerts = alerts.astype(np.float64)
        self.positives = (rows.labels == 1).astype(np.float64)

    def average_precision(self, weights: np.ndarray) -> np.ndarray:
        """AP of each column of ``weights`` (row multiplicities, rows in original order)."""
        if self.groups == 0:
            return np.zeros(weights.shape[1])
        predicted = np.cumsum(self.rows_per_group @ weights, axis=0)
        true_positives = np.cumsum(self.positives_per_group @ weights, axis=0)
        total = true_positives[-1:, :]
        # A group's counts are 0 only when its true-positive count is 0 too, so dividing by 1
        # instead of 0 yields the 0 that the zero recall step multiplies anyway.
        precision = true_positives / np.maximum(predicted, 1.0)
        recall = true_positives / np.where(total > 0, total, 1.0)
        steps = np.diff(recall, axis=0, prepend=0.0)
        return np.where(total[0] > 0, np.sum(steps * precision, axis=0), 0.0)

    def threshold_metric(self, weights: np.ndarray, metric: str) -> np.ndarray:
        true_positives = self.true_alerts @ weights
        alerts = self.alerts @ weights
        positives = self.positives @ weights
        precision = np.divide(
            true_positives, alerts, out=np.zeros_like(true_positives), where=alerts > 0
        )
        recall = np.divide(
            true_positives, positives, out=np.zeros_like(true_positives), where=positives > 0
        )
        if metric == "precision":
            return precision
        if metric == "recall":
            return recall
        denominator = alerts + positives
        return np.divide(
            2.0 * true_positives,
            denominator,
            out=np.zeros_like(true_positives),
            where=denominator > 0,
        )

    def metric(self, weights: np.ndarray, metric: str) -> np.ndarray:
        if metric == "pr_auc":
            return self.average_precision(weights)
        return self.threshold_metric(weights, metric)


def paired_rows(
    score: Callable[[Any, pd.DataFrame], np.ndarray],
    threshold_of: Callable[[Any], float],
    candidate: Any,
    champion: Any | None,
    frame: pd.DataFrame,
    labels: np.ndarray,
) -> tuple[ScoredRows, ScoredRows] | None:
    """Both models on the same rows, given in time order (the bootstrap resamples blocks of
    time); None when there is no champion or it cannot score these rows.

    One pairing for every model and orchestrator: the lifecycle's gate, the reference detector's
    and the Airflow task's, so the same two models on the same rows give the gate the same pair.
    """
    if champion is None or frame.empty:
        return None
    try:
        champion_scores = score(champion, frame)
    except (ValueError, KeyError):
        # A champion trained on other inputs cannot score these rows: no paired comparison is
        # possible, and the gate says so rather than guessing.
        return None
    return (
        ScoredRows(
            labels=labels, scores=score(candidate, frame), threshold=threshold_of(candidate)
        ),
        ScoredRows(labels=labels, scores=champion_scores, threshold=threshold_of(champion)),
    )


def weighted_metric_values(rows: ScoredRows, metric: str, weights: np.ndarray) -> np.ndarray:
    """``metric`` of ``rows`` repeated ``weights[k, i]`` times, for each row ``k`` of ``weights``.

    Exposed so tests (and the benchmark) can hold the fast path against scikit-learn on the
    explicitly resampled rows; equal to it for integer weights.
    """
    _check_metric(metric)
    matrix = np.asarray(weights, dtype=np.float64)
    if matrix.ndim == 1:
        matrix = matrix[np.newaxis, :]
    if matrix.ndim != 2 or matrix.shape[1] != len(rows):
        raise ValueError(f"weights must have shape (k, {len(rows)}); got {np.shape(weights)}")
    return _Ranked(rows).metric(np.ascontiguousarray(matrix.T), metric)


def metric_value(rows: ScoredRows, metric: str) -> float:
    """``pr_auc`` is scikit-learn's average precision; the others are taken at the threshold.

    Every metric is 0.0 where it is undefined (no positive label, no alert), so a model cannot
    win on an empty denominator.
    """
    return float(weighted_metric_values(rows, metric, np.ones(len(rows)))[0])


def block_starts(rng: np.random.Generator, rows: int, block_rows: int, samples: int) -> np.ndarray:
    """Start row of every block of every resample, shape ``(samples, ceil(rows / block))``."""
    block = min(block_rows, rows)
    blocks = math.ceil(rows / block)
    return rng.integers(0, rows - block + 1, size=(samples, blocks))


def block_indices(starts: np.ndarray, rows: int, block_rows: int) -> np.ndarray:
    """The row indices the blocks of each resample select (the slow, literal definition)."""
    block = min(block_rows, rows)
    runs = starts[:, :, np.newaxis] + np.arange(block)
    return runs.reshape(len(starts), -1)[:, :rows]


def block_weights(starts: np.ndarray, rows: int, block_rows: int) -> np.ndarray:
    """Row multiplicities of each resample: ``bincount(block_indices(...))`` without the indices.

    Shape ``(samples, rows)``, like the indices; the bootstrap itself uses the transposed layout.
    """
    return _block_weights_by_row(starts, rows, block_rows).T


def _block_weights_by_row(starts: np.ndarray, rows: int, block_rows: int) -> np.ndarray:
    """Multiplicities as a ``(rows, samples)`` matrix, the layout the sparse sums read fastest.

    A block adds 1 to a contiguous run of rows, so a +1 at its start and a -1 after its end,
    accumulated along the rows, gives the counts in ``O(blocks + rows)`` per resample. The last
    block of a resample is cut so the resample has exactly ``rows`` rows.
    """
    block = min(block_rows, rows)
    samples, blocks = starts.shape
    lengths = np.full(blocks, block)
    lengths[-1] = rows - (blocks - 1) * block
    column = np.arange(samples)[:, np.newaxis]
    marks = np.concatenate(
        [(starts * samples + column).ravel(), ((starts + lengths) * samples + column).ravel()]
    )
    signs = np.concatenate([np.ones(starts.size), -np.ones(starts.size)])
    deltas = np.bincount(marks, weights=signs, minlength=(rows + 1) * samples)
    return np.cumsum(deltas.reshape(rows + 1, samples)[:rows], axis=0)


@dataclass(frozen=True)
class BootstrapResult:
    """Paired moving-block bootstrap of ``metric(candidate) - metric(champion)``."""

    metric: str
    observed_difference: float
    ci_low: float
    ci_high: float
    confidence: float
    samples: int
    block_rows: int
    probability_not_better: float
    candidate: float
    champion: float
    margin: float
    resamples_without_positives: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _check_pair(candidate: ScoredRows, champion: ScoredRows) -> None:
    if len(candidate) != len(champion):
        raise ValueError(
            f"candidate and champion must score the same rows; got {len(candidate)} and "
            f"{len(champion)} rows"
        )
    if not np.array_equal(candidate.labels, champion.labels):
        raise ValueError("candidate and champion must carry the same labels (the same rows)")


def paired_bootstrap(
    candidate: ScoredRows,
    champion: ScoredRows,
    *,
    metric: str,
    samples: int,
    block_rows: int,
    confidence: float,
    margin: float = 0.0,
    seed: int = 0,
) -> BootstrapResult:
    """Percentile CI of the paired difference; both models see the same resampled rows.

    All block starts are drawn up front from ``seed``, so the result does not depend on how the
    resamples are chunked.
    """
    _check_metric(metric)
    _check_pair(candidate, champion)
    if len(candidate) == 0:
        raise ValueError("the holdout has no rows; nothing to compare")
    if samples < 1 or block_rows < 1 or not 0.0 < confidence < 1.0:
        raise ValueError("need samples >= 1, block_rows >= 1 and 0 < confidence < 1")
    rows = len(candidate)
    starts = block_starts(np.random.default_rng(seed), rows, block_rows, samples)
    ranked_candidate, ranked_champion = _Ranked(candidate), _Ranked(champion)
    differences = np.empty(samples)
    without_positives = 0
    chunk = max(1, min(samples, _CHUNK_ELEMENTS // rows))
    for first in range(0, samples, chunk):
        weights = _block_weights_by_row(starts[first : first + chunk], rows, block_rows)
        without_positives += int(np.count_nonzero(ranked_candidate.positives @ weights == 0))
        differences[first : first + chunk] = ranked_candidate.metric(
            weights, metric
        ) - ranked_champion.metric(weights, metric)
    alpha = 1.0 - confidence
    low, high = np.quantile(differences, [alpha / 2.0, 1.0 - alpha / 2.0])
    candidate_value = metric_value(candidate, metric)
    champion_value = metric_value(champion, metric)
    return BootstrapResult(
        metric=metric,
        observed_difference=float(candidate_value - champion_value),
        ci_low=float(low),
        ci_high=float(high),
        confidence=float(confidence),
        samples=int(samples),
        block_rows=int(block_rows),
        probability_not_better=float(np.mean(differences <= margin)),
        candidate=candidate_value,
        champion=champion_value,
        margin=float(margin),
        resamples_without_positives=without_positives,
    )


@dataclass(frozen=True)
class ShadowResult:
    """Both models on the latest served partitions (labels are often missing there)."""

    metric: str
    candidate: float | None
    champion: float | None
    candidate_alert_rate: float
    champion_alert_rate: float
    rows: int
    partitions: list[str]
    regression: bool
    reasons: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _alert_rate(rows: ScoredRows) -> float:
    return float(np.mean(rows.scores >= rows.threshold)) if len(rows) else 0.0


def shadow_compare(
    candidate: ScoredRows,
    champion: ScoredRows,
    *,
    metric: str,
    tolerance: float,
    max_alert_rate_increase: float,
    partitions: Sequence[str] = (),
) -> ShadowResult:
    """A regression is a worse metric (only judged when the rows have labelled anomalies) or a
    higher alert rate: served partitions are usually unlabelled, and an on-call team pays for
    every extra alert whether or not anyone labels it."""
    _check_metric(metric)
    _check_pair(candidate, champion)
    labelled = bool(np.any(candidate.labels == 1))
    candidate_value = metric_value(candidate, metric) if labelled else None
    champion_value = metric_value(champion, metric) if labelled else None
    candidate_rate, champion_rate = _alert_rate(candidate), _alert_rate(champion)
    reasons: list[str] = []
    if (
        candidate_value is not None
        and champion_value is not None
        and candidate_value < champion_value - tolerance
    ):
        reasons.append(
            f"{metric} {candidate_value:.4f} < champion {champion_value:.4f} - tolerance "
            f"{tolerance:.4f}"
        )
    if candidate_rate > champion_rate + max_alert_rate_increase:
        reasons.append(
            f"alert rate {candidate_rate:.4f} > champion {champion_rate:.4f} + allowed increase "
            f"{max_alert_rate_increase:.4f}"
        )
    return ShadowResult(
        metric=metric,
        candidate=candidate_value,
        champion=champion_value,
        candidate_alert_rate=candidate_rate,
        champion_alert_rate=champion_rate,
        rows=len(candidate),
        partitions=[str(partition) for partition in partitions],
        regression=bool(reasons),
        reasons=reasons,
    )


@dataclass(frozen=True)
class Criterion:
    name: str
    passed: bool
    detail: str


@dataclass(frozen=True)
class GateDecision:
    promote: bool
    reason: str
    criteria: list[Criterion]
    evidence: dict[str, Any]

    def markdown(self) -> str:
        """The report a reviewer reads in the UI: the verdict first, then the numbers behind it."""
        evidence = self.evidence
        verdict = "promote" if self.promote else "keep the champion"
        champion = evidence.get("champion")
        lines = [
            f"**Decision: {verdict}** — candidate {md_code(evidence.get('candidate'))}, champion "
            f"{md_code(champion if champion is not None else 'none')}",
            "",
            f"{_cell(self.reason)}",
            "",
            "| criterion | passed | detail |",
            "|---|---|---|",
        ]
        lines += [
            f"| {_cell(item.name)} | {'✅' if item.passed else '❌'} | {_cell(item.detail)} |"
            for item in self.criteria
        ]
        bootstrap = evidence.get("bootstrap")
        if bootstrap:
            lines += [
                "",
                "### Holdout: paired moving-block bootstrap",
                "",
                "| metric | candidate | champion | difference | CI low | CI high | confidence "
                "| margin | P(difference ≤ margin) | samples | block rows | resamples without "
                "positives |",
                "|---|---|---|---|---|---|---|---|---|---|---|---|",
                f"| {_cell(bootstrap['metric'])} | {bootstrap['candidate']:.4f} "
                f"| {bootstrap['champion']:.4f} | {bootstrap['observed_difference']:+.4f} "
                f"| {bootstrap['ci_low']:+.4f} | {bootstrap['ci_high']:+.4f} "
                f"| {bootstrap['confidence']:.0%} | {bootstrap['margin']:+.4f} "
                f"| {bootstrap['probability_not_better']:.3f} | {bootstrap['samples']} "
                f"| {bootstrap['block_rows']} | {bootstrap['resamples_without_positives']} |",
            ]
        shadow = evidence.get("shadow")
        if shadow:
            partitions = _cell(", ".join(shadow["partitions"]) or "—")
            lines += [
                "",
                f"### Shadow on served partitions ({partitions})",
                "",
                f"| rows | {_cell(shadow['metric'])} candidate | {_cell(shadow['metric'])} champion "
                "| alert rate candidate | alert rate champion | regression |",
                "|---|---|---|---|---|---|",
                f"| {shadow['rows']} | {_number(shadow['candidate'])} "
                f"| {_number(shadow['champion'])} | {shadow['candidate_alert_rate']:.4f} "
                f"| {shadow['champion_alert_rate']:.4f} "
                f"| {'yes' if shadow['regression'] else 'no'} |",
            ]
            lines += [f"- {_cell(reason)}" for reason in shadow["reasons"]]
        failed = [name for name, ok in evidence.get("blocking_checks", {}).items() if not ok]
        if failed:
            lines += ["", "### Failed blocking checks", ""]
            lines += [f"- {_cell(name)}" for name in failed]
        return "\n".join(lines) + "\n"


def _cell(text: object) -> str:
    """Reasons, check names, metrics and partitions as literal text (see core.markdown)."""
    return md_text(text)


def _number(value: float | None) -> str:
    return "unlabelled" if value is None else f"{value:.4f}"


def _blocking_criterion(blocking_checks: Mapping[str, bool]) -> Criterion:
    if not blocking_checks:
        return Criterion(BLOCKING_CHECKS, True, NO_BLOCKING_CHECKS)
    failed = [name for name, passed in blocking_checks.items() if not passed]
    if failed:
        return Criterion(
            BLOCKING_CHECKS,
            False,
            f"{len(failed)} of {len(blocking_checks)} blocking checks failed: {', '.join(failed)}",
        )
    return Criterion(BLOCKING_CHECKS, True, f"all {len(blocking_checks)} blocking checks passed")


def _holdout_criterion(result: BootstrapResult) -> Criterion:
    passed = result.ci_low > result.margin
    comparison = ">" if passed else "<="
    detail = (
        f"{result.metric} candidate {result.candidate:.4f} vs champion {result.champion:.4f}: "
        f"observed difference {result.observed_difference:+.4f}, {result.confidence:.0%} CI "
        f"[{result.ci_low:+.4f}, {result.ci_high:+.4f}] ({result.samples} paired resamples of "
        f"{result.block_rows}-row blocks); CI lower bound {result.ci_low:+.4f} {comparison} "
        f"margin {result.margin:+.4f}"
        + ("" if passed else " — the improvement is not distinguishable from noise")
    )
    return Criterion(HOLDOUT_IMPROVEMENT, passed, detail)


def _shadow_criterion(result: ShadowResult) -> Criterion:
    where = f"{result.rows} rows of {', '.join(result.partitions) or 'served partitions'}"
    if result.regression:
        return Criterion(SHADOW, False, f"regression on {where}: {'; '.join(result.reasons)}")
    metric = (
        f"{result.metric} {result.candidate:.4f} vs champion {result.champion:.4f}"
        if result.candidate is not None and result.champion is not None
        else f"{result.metric} not judged (no labelled anomalies)"
    )
    return Criterion(
        SHADOW,
        True,
        f"no regression on {where}: {metric}; alert rate {result.candidate_alert_rate:.4f} vs "
        f"champion {result.champion_alert_rate:.4f}",
    )


def decide(
    *,
    candidate_id: str,
    champion_id: str | None,
    blocking_checks: Mapping[str, bool],
    holdout: tuple[ScoredRows, ScoredRows] | None,
    shadow: tuple[ScoredRows, ScoredRows] | None,
    config: GateConfig,
    shadow_partitions: Sequence[str] = (),
) -> GateDecision:
    """Every criterion is evaluated even after one fails, so the evidence shows the whole picture
    (a reviewer forcing a promotion wants to know what else would have failed)."""
    checks = {str(name): bool(passed) for name, passed in blocking_checks.items()}
    criteria = [_blocking_criterion(checks)]
    bootstrap: BootstrapResult | None = None
    shadow_result: ShadowResult | None = None
    if champion_id is None:
        criteria += [
            Criterion(HOLDOUT_IMPROVEMENT, True, NO_CHAMPION),
            Criterion(SHADOW, True, NO_CHAMPION),
        ]
    else:
        if holdout is None:
            criteria.append(Criterion(HOLDOUT_IMPROVEMENT, False, NO_PAIRED_HOLDOUT))
        else:
            bootstrap = paired_bootstrap(
                holdout[0],
                holdout[1],
                metric=config.metric,
                samples=config.bootstrap_samples,
                block_rows=config.block_rows,
                confidence=config.confidence,
                margin=config.margin,
                seed=config.seed,
            )
            criteria.append(_holdout_criterion(bootstrap))
        if shadow is None:
            criteria.append(Criterion(SHADOW, True, NO_SHADOW))
        else:
            shadow_result = shadow_compare(
                shadow[0],
                shadow[1],
                metric=config.shadow_metric,
                tolerance=config.shadow_tolerance,
                max_alert_rate_increase=config.max_alert_rate_increase,
                partitions=shadow_partitions,
            )
            criteria.append(_shadow_criterion(shadow_result))
    promote = all(item.passed for item in criteria)
    failing = next((item for item in criteria if not item.passed), None)
    if failing is not None:
        reason = f"{failing.name} failed: {failing.detail}"
    elif champion_id is None:
        reason = f"all criteria passed: first model ({criteria[0].detail}; {NO_CHAMPION})"
    else:
        reason = "all criteria passed: " + "; ".join(
            f"{item.name}: {item.detail}" for item in criteria
        )
    evidence: dict[str, Any] = {
        "candidate": candidate_id,
        "champion": champion_id,
        "config": asdict(config),
        "criteria": [asdict(item) for item in criteria],
        "blocking_checks": checks,
        "bootstrap": None if bootstrap is None else bootstrap.to_dict(),
        "shadow": None if shadow_result is None else shadow_result.to_dict(),
        "shadow_partitions": [str(partition) for partition in shadow_partitions],
    }
    return GateDecision(promote=promote, reason=reason, criteria=criteria, evidence=evidence)
