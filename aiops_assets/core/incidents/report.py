"""The incident report: what a person on call reads, in markdown, JSON and the UI."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from typing import Any

import numpy as np

from aiops_assets.core.incidents.evidence import (
    Evidence,
    EvidenceInputs,
    Replay,
    change_key,
    evidence_for,
    evidence_rank,
)
from aiops_assets.core.incidents.records import (
    Change,
    DriftPoint,
    IncidentWindow,
    PerformancePoint,
    Suspect,
    _sorted_performance,
    find_incident_window,
)
from aiops_assets.core.incidents.scoring import (
    DEFAULT_WEIGHTS,
    ScoringWeights,
    _finite,
    _in_failing_partitions,
    score_suspects,
)
from aiops_assets.core.markdown import md_text


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, np.generic):
        return _jsonable(value.item())
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_jsonable(v) for v in value]
    if hasattr(value, "__dataclass_fields__"):
        return {name: _jsonable(getattr(value, name)) for name in value.__dataclass_fields__}
    return repr(value)


def _cell(text: Any) -> str:
    # Subjects, services, columns and reasons come from data and config: never markup.
    return md_text(text)


def _fmt_metric(point: PerformancePoint, metric: str) -> str:
    value = _finite(point.metrics.get(metric))
    return "n/a" if value is None else f"{value:.2f}"


# What to do about a cause, by kind: the report's first line ends with it.
_ACTIONS = {
    "data": "fix the feed at its source (or declare the unit in `unit_scale`); do not retrain on it",
    "labels": "fix the label pipeline; do not roll back or retrain on these labels",
    "config": "revert the config change",
    "code": "roll back the deploy",
    "environment": "pin the library back to its previous version",
    "feature_set": "revert the feature set (flags or spec) to the previous version",
    "alias": "roll back the champion (`aiops registry rollback`)",
    "threshold": "restore the previous threshold",
    "policy": "restore the previous policy",
}


def _action(change: Change) -> str:
    if change.kind == "config" and change.subject == "flags":
        return "revert the flag version (`aiops experiment flags`)"
    return _ACTIONS.get(change.kind, "revert it")


def _is_routine(change: Change) -> bool:
    """New data with nothing characterized in it: the daily refresh, shown as one line."""
    details = change.details if isinstance(change.details, Mapping) else {}
    return change.kind == "data" and not details.get("findings") and not details.get("null_rises")


def _what(change: Change) -> str:
    details = change.details if isinstance(change.details, Mapping) else {}
    return str(details.get("headline") or change.summary)


@dataclass(frozen=True)
class IncidentReport:
    """Everything a person needs to judge the ranking: the boundary, the ranked suspects with their
    evidence, what changed in the data, the replays, and the timeline they were drawn from, so a
    change the engine missed is visible."""

    model: str
    window: IncidentWindow
    suspects: list[Suspect]
    timeline: list[Change]
    performance: list[PerformancePoint]
    metric: str = "f1"
    implicated_services: tuple[str, ...] = ()
    data_changes: tuple[Mapping[str, Any], ...] = ()  # DataCharacterization.to_dict() items
    replays: tuple[Replay, ...] = ()

    def verdict(self) -> str:
        first_bad = self.window.first_bad
        who = f"v{first_bad.model_version}" if first_bad.model_version is not None else self.model
        bad = f"{_fmt_metric(first_bad, self.metric)} ({first_bad.partition})"
        last_good = self.window.last_good
        if last_good is None:
            return f"{who}'s {self.metric} was {bad}, with no passing evaluation before it"
        good = f"{_fmt_metric(last_good, self.metric)} ({last_good.partition}"
        if (
            last_good.model_version is not None
            and last_good.model_version != first_bad.model_version
        ):
            good += f", v{last_good.model_version}"
        return f"{who}'s {self.metric} went from {good}) to {bad}"

    def likely_cause(self) -> str:
        """The first line for the person on call: what, where, since when, the evidence, what to do."""
        top = self.suspects[0] if self.suspects else None
        if top is None:
            return (
                f"No change upstream of {self.model} in the window explains it ({self.verdict()})."
            )
        if top.evidence <= 0:
            return (
                f"No suspect has measured evidence; the closest in time and lineage is "
                f"{_what(top.change)} ({top.change.kind}, {top.change.subject}). {self.verdict()}. "
                f"Do: measure before acting (`aiops incident` replays the suspects); if it is "
                f"confirmed, {_action(top.change)}."
            )
        since = top.change.partition or top.change.at.date().isoformat()
        why = top.reasons[0] if top.reasons else top.evidence_source
        return (
            f"Likely cause: {_what(top.change)} ({top.change.kind} of {top.change.subject}, since "
            f"{since}); evidence: {why}. {self.verdict()}. Do: {_action(top.change)}."
        )

    def markdown(self, *, top: int = 5, links: Mapping[str, str] | None = None) -> str:
        links = links or {}

        def subject(name: str) -> str:
            return f"[{_cell(name)}]({links[name]})" if name in links else _cell(name)

        lines = [
            f"# Incident: {md_text(self.model)}",
            "",
            f"**{md_text(self.likely_cause())}**",
            "",
        ]
        if self.implicated_services:
            services = ", ".join(md_text(service) for service in self.implicated_services)
            lines += [f"Implicated services: {services}.", ""]
        lines += self._data_section()
        lines += self._replay_section()
        lines += self._suspect_section(top, subject)
        lines += self._timeline_section(subject)
        return "\n".join(lines) + "\n"

    def _data_section(self) -> list[str]:
        rows = [
            f"| {_cell(item.get('layer'))} | {_cell(item.get('partition'))} "
            f"| {_cell(finding.get('service') or '-')} | {_cell(finding.get('column') or '-')} "
            f"| {_cell(finding.get('kind'))} | {_cell(finding.get('words'))} |"
            for item in self.data_changes
            for finding in list(item.get("findings") or [])[:8]
        ]
        if not rows:
            return ["## What changed in the data", "", "Nothing beyond day-to-day variation.", ""]
        return [
            "## What changed in the data",
            "",
            "| layer | partition | service | column | kind | change |",
            "| --- | --- | --- | --- | --- | --- |",
            *rows,
            "",
        ]

    def _replay_section(self) -> list[str]:
        if not self.replays:
            return []
        rows = [
            f"| {_cell(r.action)} | {_cell(r.direction)} | {_fmt_value(r.observed)} "
            f"| {_fmt_value(r.replayed)} | {'-' if r.error else f'{r.effect:.0%}'} "
            f"| {'decoy' if r.decoy else ('error: ' + _cell(r.error) if r.error else 'evidence')}"
            f"{' (cached)' if r.cached else ''} |"
            for r in self.replays
        ]
        return [
            f"## Replays ({md_text(self.metric)} on the failing partition, each suspect reverted)",
            "",
            "| replay | direction | as failed | replayed | share of the drop | reads as |",
            "| --- | --- | --- | --- | --- | --- |",
            *rows,
            "",
        ]

    def _suspect_section(self, top: int, subject: Any) -> list[str]:
        """One table, best first: those with measured evidence, then those without (the prior
        orders them), so a reader sees at once which rank rests on a measurement."""
        lines = [
            "## Suspects",
            "",
            "| rank | evidence | kind | subject | what | why |",
            "| --- | --- | --- | --- | --- | --- |",
        ]
        for rank, suspect in enumerate(self.suspects[:top], start=1):
            if suspect.evidence > 0:
                strength = f"{suspect.evidence:.2f} ({_cell(suspect.evidence_source)})"
            else:
                strength = "decoy" if suspect.decoy else "none"
            why = "; ".join(suspect.reasons)
            if suspect.evidence <= 0:
                why = f"{why}; prior {suspect.score:.2f}: {suspect.explanation}"
            lines.append(
                f"| {rank} | {strength} | {_cell(suspect.change.kind)} "
                f"| {subject(suspect.change.subject)} | {_cell(_what(suspect.change))} "
                f"| {_cell(why)} |"
            )
        if not self.suspects:
            lines.append("| - | - | - | - | no change in the window | - |")
        return [*lines, ""]

    def _timeline_section(self, subject: Any) -> list[str]:
        rows: list[tuple[datetime, int, str]] = []
        routine = [change for change in self.timeline if _is_routine(change)]
        for change in self.timeline:
            if _is_routine(change):
                continue
            rows.append(
                (
                    change.at,
                    1,
                    f"| {change.at.isoformat()} | {_cell(change.kind)} | {subject(change.subject)} "
                    f"| {_cell(change.partition or '')} | {_cell(_what(change))} |",
                )
            )
        if routine:
            assets = sorted({change.subject for change in routine})
            parts = sorted({change.partition for change in routine if change.partition})
            span = f"{parts[0]} .. {parts[-1]}" if parts else ""
            rows.append(
                (
                    routine[0].at,
                    2,
                    f"| {routine[0].at.isoformat()} | data | {_cell(', '.join(assets))} | "
                    f"{_cell(span)} | {len(routine)} routine refreshes (nothing characterized) |",
                )
            )
        for point, label in (
            (self.window.last_good, "last good"),
            (self.window.first_bad, "first bad"),
        ):
            if point is None:
                continue
            verdict = "passed" if point.passed else "failed"
            served = f" by v{point.model_version}" if point.model_version is not None else ""
            rows.append(
                (
                    point.at,
                    0,
                    f"| {point.at.isoformat()} | **evaluation** | {subject(self.model)} "
                    f"| {_cell(point.partition)} | **{label} evaluation**{served}: {md_text(self.metric)} "
                    f"{_fmt_metric(point, self.metric)} ({verdict}) |",
                )
            )
        return [
            "## Timeline",
            "",
            "| time | kind | subject | partition | summary |",
            "| --- | --- | --- | --- | --- |",
            *[row for _, _, row in sorted(rows, key=lambda r: (r[0], r[1]))],
        ]

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "metric": self.metric,
            "likely_cause": self.likely_cause(),
            "verdict": self.verdict(),
            "window": _jsonable(self.window),
            "implicated_services": list(self.implicated_services),
            "data_changes": _jsonable(list(self.data_changes)),
            "replays": [_jsonable(replay.to_dict()) for replay in self.replays],
            "suspects": [
                {
                    "change": _jsonable(s.change),
                    "evidence": _jsonable(s.evidence),
                    "evidence_source": s.evidence_source,
                    "reasons": list(s.reasons),
                    "decoy": s.decoy,
                    "score": _jsonable(s.score),
                    "components": _jsonable(s.components),
                    "explanation": s.explanation,
                }
                for s in self.suspects
            ],
            "timeline": [_jsonable(c) for c in self.timeline],
            "performance": [_jsonable(p) for p in self.performance],
        }


def rank_by_evidence(suspects: Sequence[Suspect], inputs: EvidenceInputs) -> list[Suspect]:
    """Evidence first; the prior (timing, lineage, drift) only among equal evidence."""
    measured = evidence_for([s.change for s in suspects], inputs)
    ranked = []
    for suspect in suspects:
        evidence = measured[change_key(suspect.change)]
        ranked.append(
            replace(
                suspect,
                evidence=evidence.value,
                evidence_source=evidence.source,
                reasons=evidence.reasons,
                decoy=evidence.decoy,
            )
        )
    return sorted(
        ranked,
        key=lambda s: (
            -evidence_rank(Evidence(s.evidence, (), s.evidence_source)),
            s.decoy,  # shown to change nothing: below every suspect not yet measured
            -s.score,
            s.change.subject,
            s.change.at.isoformat(),
        ),
    )


def build_incident_report(
    model: str,
    changes: Sequence[Change],
    performance: Sequence[PerformancePoint],
    drift: Sequence[DriftPoint],
    *,
    at: datetime | None = None,
    weights: ScoringWeights = DEFAULT_WEIGHTS,
    metric: str = "f1",
    lookback: timedelta = timedelta(days=3),
    inputs: EvidenceInputs | None = None,
    data_changes: Sequence[Mapping[str, Any]] = (),
) -> IncidentReport | None:
    """Answer "what changed?" in one call; None when the model never failed, because a report
    with no incident would invite people to find causes for noise.

    ``inputs`` carries what the plugin measured (replays, implicated services); the changes carry
    their characterized findings in ``details``. Without them the ranking is the prior alone.
    """
    window = find_incident_window(performance, at=at)
    if window is None:
        return None
    prior = score_suspects(
        changes, performance, drift, window, weights=weights, metric=metric, lookback=lookback
    )
    inputs = inputs or EvidenceInputs()
    suspects = rank_by_evidence(prior, inputs)
    first_bad = window.first_bad
    start = first_bad.at - lookback
    if window.last_good is not None:
        start = min(start, window.last_good.at)
    suspected = {id(s.change) for s in suspects}
    timeline = sorted(
        (
            c
            for c in changes
            if start <= c.at <= first_bad.at
            or id(c) in suspected
            or _in_failing_partitions(c, window)
        ),
        key=lambda c: (c.at, c.kind, c.subject),
    )
    return IncidentReport(
        model=model,
        window=window,
        suspects=suspects,
        timeline=timeline,
        performance=_sorted_performance(performance),
        metric=metric,
        implicated_services=tuple(inputs.implicated_services),
        data_changes=tuple(data_changes),
        # A replay shared by two suspects (two deploys in force on one day) is listed once.
        replays=tuple({replay.key: replay for replay in inputs.replays.values()}.values()),
    )


def _fmt_value(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def asset_links(report: IncidentReport, base_url: str) -> dict[str, str]:
    """Each asset subject of the report (not aliases or checks) -> its page in the Dagster UI."""
    subjects = {change.subject for change in report.timeline}
    subjects |= {suspect.change.subject for suspect in report.suspects}
    base = base_url.rstrip("/")
    # Flags and aliases live in the ledger, not the asset graph: they get no asset page.
    return {
        subject: f"{base}/assets/{subject}"
        for subject in subjects
        if ":" not in subject and subject != "flags"
    }
