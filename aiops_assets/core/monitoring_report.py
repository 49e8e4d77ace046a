"""The monitoring report: drift, quality and performance of the last days, one row per partition.

Dagster plots float metadata against materialization time, so a fortnight replayed in three
minutes reads "9:20-9:22 PM" and a re-run day appears twice. A person asking "since when does it
drift?" thinks in partition days: this module lays each day's latest verdicts out by day, as a
table and a picture, for the report asset to carry. It knows nothing of Dagster.
"""

from __future__ import annotations

import io
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from aiops_assets.core.incident_plot import PlotsUnavailable, _pyplot
from aiops_assets.core.markdown import md_row, md_text

__all__ = ["COLUMNS", "CheckVerdict", "DayReport", "PlotsUnavailable", "markdown", "render_png"]

# Name and TableColumn type of each column of `DayReport.row`.
COLUMNS: list[tuple[str, str]] = [
    ("partition", "string"),
    ("drift", "string"),
    ("drift_max_effect", "float"),
    ("drifted", "string"),
    ("quality", "string"),
    ("quality_failed", "string"),
    ("performance", "string"),
    ("performance_basis", "string"),
    ("f1", "float"),
    ("false_alarm_rate", "float"),
]


@dataclass(frozen=True)
class CheckVerdict:
    """The latest evaluation of one check on one partition."""

    check: str
    passed: bool
    severity: str
    metadata: Mapping[str, Any] = field(default_factory=dict)

    def drift_effects(self) -> dict[str, float]:
        """``score/<feature>`` metadata: the drift check's effect per feature."""
        return {
            name[len("score/") :]: float(value)
            for name, value in self.metadata.items()
            if name.startswith("score/") and _number(value)
        }

    def drifted(self) -> list[str]:
        text = str(self.metadata.get("drifted", "") or "")
        return [name.strip() for name in text.split(",") if name.strip()]


@dataclass(frozen=True)
class DayReport:
    """One partition's verdicts, grouped as a person reads them."""

    partition: str
    drift: Sequence[CheckVerdict] = ()
    quality: Sequence[CheckVerdict] = ()
    performance: CheckVerdict | None = None

    def drift_max_effect(self) -> float | None:
        effects = [abs(e) for verdict in self.drift for e in verdict.drift_effects().values()]
        return max(effects) if effects else None

    def metric(self, name: str) -> float | None:
        value = self.performance.metadata.get(name) if self.performance else None
        return float(value) if value is not None and _number(value) else None

    def row(self) -> dict[str, Any]:
        """The table row: plain strings and floats (a missing number is None, shown empty)."""
        failed_quality = [verdict.check for verdict in self.quality if not verdict.passed]
        drifted = sorted({name for verdict in self.drift for name in verdict.drifted()})
        return {
            "partition": self.partition,
            "drift": _status(self.drift),
            "drift_max_effect": _rounded(self.drift_max_effect()),
            "drifted": ", ".join(drifted),
            "quality": _status(self.quality),
            "quality_failed": ", ".join(failed_quality),
            "performance": _status([self.performance] if self.performance else []),
            "performance_basis": self._basis(),
            "f1": _rounded(self.metric("f1")),
            "false_alarm_rate": _rounded(self.metric("false_alarm_rate")),
        }

    def _basis(self) -> str:
        """Whether the performance verdict judged mature labels or is a label-free estimate."""
        if self.performance is None:
            return ""
        return str(self.performance.metadata.get("label_status") or "labels")


def _status(verdicts: Sequence[CheckVerdict]) -> str:
    """ "pass", "WARN", "FAIL" (any ERROR failure) or "" when no check ran that day."""
    if not verdicts:
        return ""
    failed = [verdict for verdict in verdicts if not verdict.passed]
    if not failed:
        return "pass"
    return "FAIL" if any(verdict.severity == "ERROR" for verdict in failed) else "WARN"


def _number(value: Any) -> bool:
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(float(value))
    )


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def markdown(days: Sequence[DayReport], *, title: str, png: bytes | None = None) -> str:
    """The report as markdown: a heading, the picture (when drawn) and the table by day."""
    import base64

    lines = [f"**{md_text(title)}**", ""]
    if png is not None:
        encoded = base64.b64encode(png).decode("ascii")
        lines += [f"![drift, quality and performance by day](data:image/png;base64,{encoded})", ""]
    names = [name for name, _ in COLUMNS]
    lines.append(md_row(names))
    lines.append("|" + "---|" * len(names))
    for day in days:
        row = day.row()
        lines.append(md_row([_cell(row[name]) for name in names]))
    return "\n".join(lines)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def render_png(days: Sequence[DayReport], *, dpi: int = 80) -> bytes:
    """Performance above the largest drift effect, one x tick per partition day; a failed
    day is marked red. Raises `PlotsUnavailable` without matplotlib (the ``plots`` extra)."""
    plt = _pyplot()
    xs = list(range(len(days)))
    figure, (top, bottom) = plt.subplots(2, 1, figsize=(9, 5), sharex=True)
    try:
        for name, color in (("f1", "#1f77b4"), ("false_alarm_rate", "#ff7f0e")):
            points = [(x, day.metric(name)) for x, day in zip(xs, days, strict=True)]
            shown = [(x, y) for x, y in points if y is not None]
            if shown:
                top.plot(
                    [x for x, _ in shown],
                    [y for _, y in shown],
                    marker="o",
                    color=color,
                    label=name,
                )
        _mark_failures(top, xs, [day.row()["performance"] for day in days])
        top.set_ylabel("performance")
        top.legend(loc="best", fontsize=8)
        effects = [(x, day.drift_max_effect()) for x, day in zip(xs, days, strict=True)]
        shown = [(x, y) for x, y in effects if y is not None]
        bottom.bar([x for x, _ in shown], [y for _, y in shown], color="#888888")
        _mark_failures(bottom, xs, [day.row()["drift"] for day in days])
        bottom.set_ylabel("max drift effect")
        bottom.set_xticks(xs)
        bottom.set_xticklabels([day.partition for day in days], rotation=45, ha="right", fontsize=7)
        figure.tight_layout()
        buffer = io.BytesIO()
        # No timestamp in the file: the same history gives the same bytes.
        figure.savefig(buffer, format="png", dpi=dpi, metadata={"Software": None})
    finally:
        plt.close(figure)
    return buffer.getvalue()


def _mark_failures(axis: Any, xs: Sequence[int], statuses: Sequence[str]) -> None:
    for x, status in zip(xs, statuses, strict=True):
        if status in ("FAIL", "WARN"):
            axis.axvspan(
                x - 0.4, x + 0.4, color="#d62728" if status == "FAIL" else "#f2c14e", alpha=0.2
            )
