"""`characterize`: the findings of one partition against its references."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import pandas as pd

from aiops_assets.core.data_changes.results import (
    CharacterizationThresholds,
    DataCharacterization,
    Finding,
    require_layer,
)
from aiops_assets.core.data_changes.samples import (
    Measure,
    PartitionData,
    Sample,
    ServiceData,
    Statistic,
    default_columns,
    established_services,
    incident_marks,
    log_level,
    measure_against,
    measure_statistic,
    null_share,
    partition_data,
    pool_samples,
    repeat_share,
    share_change,
    shift_distance,
    sorted_median,
    zero_share,
)
from aiops_assets.core.telemetry import SERVICE

_MINUTES_PER_DAY: Final = 1440.0


@dataclass(frozen=True)
class _Context:
    layer: str
    thresholds: CharacterizationThresholds


def characterize(
    current: pd.DataFrame,
    references: Mapping[str, pd.DataFrame],
    *,
    layer: str,
    partition: str,
    columns: Sequence[str] | None = None,
    thresholds: CharacterizationThresholds | None = None,
    exclude_labeled: bool = True,
) -> DataCharacterization:
    """What changed in ``current`` against the pool of known-good ``references``.

    ``references`` maps partition keys to frames (at least one); seven consecutive good days
    (a whole week) put the weekly cycle inside the measured noise, which fewer cannot.
    ``thresholds`` defaults to `CharacterizationThresholds.for_layer`. ``columns`` defaults to every
    float column of the frames except the key and label columns. Each service is compared with
    its own rows only: raw levels differ between services by orders of magnitude. A level or
    unit finding on a column makes its shift finding redundant, so only the level is reported.

    Rows labeled as incidents (``label == 1``) are left out of the column statistics on both
    sides (``exclude_labeled``): an incident is what the model is there to detect, not a change of
    the data, and a day with one would otherwise look shifted. A column that summarizes a
    trailing window (a feature named ``..._24h``) also leaves out the rows whose window holds an
    incident labeled in any of the frames given (yesterday's incident is in today's 24 h
    features). When labeled rows are most of a service's rows the labels themselves are suspect
    (`aiops_assets.core.label_health`) and they are ignored.
    """
    require_layer(layer)
    settings = thresholds if thresholds is not None else CharacterizationThresholds.for_layer(layer)
    if not references:
        raise ValueError("characterize needs at least one reference partition")
    for name, frame in [(partition, current), *references.items()]:
        if SERVICE not in frame.columns:
            raise ValueError(f"partition {name}: the frame has no {SERVICE!r} column")
    keys = tuple(sorted(references))
    wanted = list(columns) if columns is not None else default_columns(current, references)
    frames = [current, *(references[key] for key in keys)]
    marks = incident_marks(frames) if exclude_labeled else {}
    now = partition_data(current, wanted, marks)
    refs = [partition_data(references[key], wanted, marks) for key in keys]
    context = _Context(layer=layer, thresholds=settings)
    findings = _service_findings(context, now, refs)
    findings += _column_presence_findings(context, current, [references[k] for k in keys], wanted)
    established = established_services(refs)
    for service in sorted(now.services):
        present = [ref.services.get(service) for ref in refs]
        if service in established:
            findings += _column_findings(context, service, now.services[service], present)
    ordered = sorted(findings, key=lambda f: (-f.effect, f.service or "", f.column or "", f.kind))
    return DataCharacterization(
        layer=layer, partition=partition, references=keys, findings=tuple(ordered)
    )


# --------------------------------------------------------------------------------------------
# Findings per service and column
# --------------------------------------------------------------------------------------------


def _column_findings(
    context: _Context, service: str, now: ServiceData, refs: Sequence[ServiceData | None]
) -> list[Finding]:
    known = [ref for ref in refs if ref is not None]
    findings: list[Finding] = []
    for column, current in now.columns.items():
        samples = [ref.columns[column] for ref in known if column in ref.columns]
        if samples:
            findings += _cell_findings(context, service, column, current, samples)
    return findings


def _cell_findings(
    context: _Context, service: str, column: str, current: Sample, refs: Sequence[Sample]
) -> list[Finding]:
    settings = context.thresholds
    pooled = pool_samples(refs)
    loo_refs = refs if len(refs) > 1 else []
    pools: dict[int, Sample] = {}

    def others(index: int) -> Sample:
        if index not in pools:
            pools[index] = pool_samples([ref for j, ref in enumerate(refs) if j != index])
        return pools[index]

    def judge(statistic: Statistic, kind: str) -> Measure | None:
        floor = settings.floor(kind)
        return measure_statistic(statistic, current, pooled, loo_refs, others, floor, settings.k)

    def cell(kind: str, measure: Measure, before: float, after: float, **extra: Any) -> Finding:
        words = _cell_words(kind, service, column, before, after, **extra)
        ratio = extra.get("ratio")
        return _finding(context, service, column, kind, measure, before, after, words, ratio=ratio)

    findings: list[Finding] = []
    for kind, share in (
        ("nulls", null_share),
        ("zeros", zero_share),
        ("constant", repeat_share),
    ):
        measure = judge(share_change(share), kind)
        if measure is not None and measure.significant:
            before, after = share(pooled), share(current)
            assert before is not None and after is not None
            findings.append(cell(kind, measure, before, after))
    level = judge(lambda a, b: log_level(a, b, settings.min_values), "level")
    if level is not None and level.significant:
        ratio = math.exp(level.value)
        near = _near_power_of_ten(ratio, settings.unit_tolerance)
        kind = "unit" if near else "level"
        before, after = sorted_median(pooled.values), sorted_median(current.values)
        findings.append(cell(kind, level, before, after, ratio=ratio))
        return findings
    shift = judge(lambda a, b: shift_distance(a, b, settings.min_values), "shift")
    if shift is not None and shift.significant:
        before, after = float(pooled.values.mean()), float(current.values.mean())
        findings.append(cell("shift", shift, before, after, distance=shift.value))
    return findings


def _near_power_of_ten(ratio: float, tolerance: float) -> bool:
    """Within ``tolerance`` of x10 or x0.1, or within x2 of a larger power of ten.

    A unit change on a Saturday rides on the weekend's own level change (x0.7 on traffic:
    x0.001 arrives as x0.0007), and no fault but a unit multiplies a metric by about 1000; a
    factor near 10 keeps the strict tolerance, so an error rate x12 stays a level change.
    """
    exponent = round(math.log10(ratio))
    band = math.log1p(tolerance) if abs(exponent) == 1 else math.log(2.0)
    return exponent != 0 and abs(math.log(ratio) - exponent * math.log(10.0)) <= band


def _finding(
    context: _Context,
    service: str | None,
    column: str | None,
    kind: str,
    measure: Measure,
    before: float | None,
    after: float | None,
    words: str,
    *,
    ratio: float | None = None,
) -> Finding:
    return Finding(
        layer=context.layer,
        service=service,
        column=column,
        kind=kind,
        before=before,
        after=after,
        ratio=ratio,
        effect=float(measure.effect),
        noise=float(measure.noise),
        words=words,
    )


# --------------------------------------------------------------------------------------------
# Findings per service: presence, rows, duplicates, the clock
# --------------------------------------------------------------------------------------------


def _service_findings(
    context: _Context, now: PartitionData, refs: Sequence[PartitionData]
) -> list[Finding]:
    settings = context.thresholds
    established = established_services(refs)
    findings: list[Finding] = []
    for service in sorted(established - set(now.services)):
        counts = [ref.services[service].rows for ref in refs if service in ref.services]
        before = float(np.median(counts))
        measure = Measure(value=1.0, noise=0.0, threshold=settings.rows)
        words = f"{service} missing (0 rows, was {_count(before)})"
        findings.append(
            _finding(context, service, None, "missing_service", measure, before, 0.0, words)
        )
    for service in sorted(set(now.services) - established):
        rows = float(now.services[service].rows)
        measure = Measure(value=1.0, noise=0.0, threshold=settings.rows)
        words = f"{service} new ({_count(rows)} rows, absent from the references)"
        findings.append(_finding(context, service, None, "new_service", measure, None, rows, words))
    shared = sorted(established & set(now.services))
    per_service = {
        service: _one_service_findings(
            context, service, now.services[service], [ref.services.get(service) for ref in refs]
        )
        for service in shared
    }
    findings += _collapse_partition_wide(context, now, refs, per_service)
    return findings


def _one_service_findings(
    context: _Context, service: str, now: ServiceData, refs: Sequence[ServiceData | None]
) -> list[Finding]:
    settings = context.thresholds
    k = settings.k
    rows = [float(ref.rows) if ref is not None else 0.0 for ref in refs]
    findings: list[Finding] = []
    measure = measure_against(
        _relative(now.rows, rows), _loo(rows, _relative), settings.floor("rows"), k
    )
    if measure is not None and measure.significant:
        before = float(np.median(rows))
        words = f"{service} rows {_count(before)} -> {_count(now.rows)}"
        findings.append(_finding(context, service, None, "rows", measure, before, now.rows, words))
    shares = [ref.duplicates / ref.rows if ref and ref.rows else 0.0 for ref in refs]
    share = now.duplicates / now.rows if now.rows else 0.0
    measure = measure_against(
        share - float(np.median(shares)), _loo(shares, _difference), settings.duplicates, k
    )
    if measure is not None and measure.significant:
        before = float(np.median(shares))
        words = f"{service} duplicate timestamps {_percent(before)} -> {_percent(share)}"
        findings.append(
            _finding(context, service, None, "duplicates", measure, before, share, words)
        )
    findings += _clock_findings(context, service, now, refs)
    return findings


def _clock_findings(
    context: _Context, service: str | None, now: ServiceData, refs: Sequence[ServiceData | None]
) -> list[Finding]:
    settings = context.thresholds
    subject = f"{service} timestamps" if service else "timestamps"
    findings: list[Finding] = []
    starts = [ref.first_minute for ref in refs if ref is not None and ref.first_minute is not None]
    if now.first_minute is not None and starts:
        measure = measure_against(
            now.first_minute - float(np.median(starts)),
            _loo(starts, _difference),
            settings.timestamp_minutes,
            settings.k,
        )
        if measure is not None and measure.significant:
            before = float(np.median(starts))
            words = f"{subject} start {_clock(now.first_minute)} (was {_clock(before)})"
            findings.append(
                _finding(
                    context, service, None, "timestamps", measure, before, now.first_minute, words
                )
            )
    steps = [ref.step_minutes for ref in refs if ref is not None and ref.step_minutes]
    if now.step_minutes and steps:
        measure = measure_against(
            _log_ratio(now.step_minutes, steps),
            _loo(steps, _log_ratio),
            settings.floor("level"),
            settings.k,
        )
        if measure is not None and measure.significant:
            before = float(np.median(steps))
            words = f"{subject} every {_num(now.step_minutes)} min (was {_num(before)} min)"
            findings.append(
                _finding(
                    context,
                    service,
                    None,
                    "timestamps",
                    measure,
                    before,
                    now.step_minutes,
                    words,
                    ratio=now.step_minutes / before,
                )
            )
    return findings


def _collapse_partition_wide(
    context: _Context,
    now: PartitionData,
    refs: Sequence[PartitionData],
    per_service: Mapping[str, list[Finding]],
) -> list[Finding]:
    """When every service's rows (or clock) changed, one partition-wide finding says it once."""
    findings = [finding for items in per_service.values() for finding in items]
    if len(per_service) < 2:
        return findings
    for kind in ("rows", "timestamps"):
        flagged = {f.service for f in findings if f.kind == kind}
        if flagged != set(per_service):
            continue
        wide = _partition_wide(context, kind, now, refs)
        if wide:
            findings = [f for f in findings if f.kind != kind] + wide
    return findings


def _partition_wide(
    context: _Context, kind: str, now: PartitionData, refs: Sequence[PartitionData]
) -> list[Finding]:
    whole_now = _whole(now)
    wholes = [_whole(ref) for ref in refs]
    if kind == "timestamps":
        return _clock_findings(context, None, whole_now, wholes)
    rows = [float(whole.rows) for whole in wholes]
    measure = measure_against(
        _relative(whole_now.rows, rows),
        _loo(rows, _relative),
        context.thresholds.rows,
        context.thresholds.k,
    )
    if measure is None or not measure.significant:
        return []
    before = float(np.median(rows))
    words = f"rows {_count(before)} -> {_count(whole_now.rows)}"
    return [_finding(context, None, None, "rows", measure, before, whole_now.rows, words)]


def _whole(data: PartitionData) -> ServiceData:
    """The partition as one block: total rows, earliest start, the most common step."""
    parts = list(data.services.values())
    starts = [p.first_minute for p in parts if p.first_minute is not None]
    steps = [p.step_minutes for p in parts if p.step_minutes]
    return ServiceData(
        rows=sum(p.rows for p in parts),
        duplicates=sum(p.duplicates for p in parts),
        first_minute=min(starts) if starts else None,
        step_minutes=float(np.median(steps)) if steps else None,
        columns={},
    )


def _relative(value: float, references: Sequence[float]) -> float | None:
    before = float(np.median(references))
    return value / before - 1.0 if before > 0 else None


def _difference(value: float, references: Sequence[float]) -> float | None:
    return value - float(np.median(references))


def _log_ratio(value: float, references: Sequence[float]) -> float | None:
    before = float(np.median(references))
    return math.log(value / before) if before > 0 and value > 0 else None


def _loo(
    values: Sequence[float], statistic: Callable[[float, Sequence[float]], float | None]
) -> list[float | None]:
    if len(values) < 2:
        return []
    return [
        statistic(value, [other for j, other in enumerate(values) if j != i])
        for i, value in enumerate(values)
    ]


def _column_presence_findings(
    context: _Context,
    current: pd.DataFrame,
    references: Sequence[pd.DataFrame],
    columns: Sequence[str],
) -> list[Finding]:
    """A column every reference had and the partition lacks is 100 % missing, everywhere."""
    findings: list[Finding] = []
    measure = Measure(value=1.0, noise=0.0, threshold=context.thresholds.rate)
    for column in columns:
        if column not in current.columns and all(column in ref.columns for ref in references):
            words = f"{column} absent (every reference had it)"
            findings.append(_finding(context, None, column, "nulls", measure, 0.0, 1.0, words))
    return findings


# --------------------------------------------------------------------------------------------
# Words
# --------------------------------------------------------------------------------------------


def _cell_words(
    kind: str,
    service: str,
    column: str,
    before: float,
    after: float,
    *,
    ratio: float | None = None,
    distance: float | None = None,
) -> str:
    subject = f"{service} {column}"
    if kind == "unit":
        assert ratio is not None
        # Named by the power of ten it is near (what to put in unit_scale), measured beside it.
        power = _factor(10.0 ** round(math.log10(ratio)))
        return f"{subject} x{power} (probable unit change; measured x{_factor(ratio)})"
    if kind == "level":
        assert ratio is not None
        return f"{subject} x{_factor(ratio)} (median {_num(before)} -> {_num(after)})"
    if kind == "shift":
        assert distance is not None
        return f"{subject} shifted {distance:.2g} sd (mean {_num(before)} -> {_num(after)})"
    label = {"nulls": "nulls", "zeros": "zeros", "constant": "repeated values"}[kind]
    return f"{subject} {label} {_percent(before)} -> {_percent(after)}"


def _factor(ratio: float) -> str:
    if ratio >= 100:
        return f"{ratio:.0f}"
    text = f"{ratio:.2g}"
    return text if "e" not in text else f"{ratio:.6f}".rstrip("0")


def _num(value: float) -> str:
    if value != 0 and (abs(value) >= 1e5 or abs(value) < 1e-3):
        return f"{value:.2e}"
    return f"{value:.3g}"


def _count(value: float) -> str:
    return f"{value:.0f}" if float(value).is_integer() else f"{value:.1f}"


def _percent(share: float) -> str:
    percent = 100.0 * share
    return f"{percent:.0f}%" if percent >= 1 or percent == 0 else f"{percent:.1g}%"


def _clock(minutes: float) -> str:
    days, rest = divmod(round(minutes), int(_MINUTES_PER_DAY))
    hours, mins = divmod(rest, 60)
    prefix = f"{days:+d}d " if days else ""
    return f"{prefix}{hours:02d}:{mins:02d}"
