"""The incident timeline as a picture: performance per partition above the most drifted features.

A table says which change ranks first; the plot shows whether the drop and the drift start on the
same day, which is what convinces a person (or refutes the ranking) in seconds.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from aiops_assets.core.incidents import DriftPoint, IncidentReport

TOP_FEATURES = 3
PLOTS_EXTRA = "pip install 'aiops-assets[plots]'"


class PlotsUnavailable(ImportError):
    """matplotlib is an extra: the report stands without its picture, so only the picture fails."""


def _pyplot() -> Any:
    """matplotlib.pyplot, imported on first use: a plugin that never draws does not need it."""
    try:
        import matplotlib
    except ModuleNotFoundError as error:
        raise PlotsUnavailable(
            f"the incident timeline needs matplotlib, which is not installed: {PLOTS_EXTRA}"
        ) from error
    matplotlib.use("Agg")  # files only: never open a window, work on a server without a display
    import matplotlib.pyplot as plt

    return plt


def top_drifted_features(
    report: IncidentReport, drift: Sequence[DriftPoint], count: int = TOP_FEATURES
) -> list[str]:
    """The features with the largest drift effect in the first failing partition."""
    partition = report.window.first_bad.partition
    effects: dict[str, float] = {}
    for point in drift:
        if point.partition == partition:
            effects[point.feature] = max(effects.get(point.feature, 0.0), abs(point.effect))
    return [name for name, _ in sorted(effects.items(), key=lambda item: (-item[1], item[0]))][
        :count
    ]


def plot_incident(report: IncidentReport, drift: Sequence[DriftPoint], path: Path) -> Path:
    """Write the timeline PNG to ``path`` (for the command line and for sharing in a ticket)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(render_incident_png(report, drift))
    return path


def render_incident_png(
    report: IncidentReport, drift: Sequence[DriftPoint], *, dpi: int = 100
) -> bytes:
    """The PNG bytes: the metric with pass/fail per partition, then the top features' drift.

    Bytes rather than a file, so a check can embed the picture in its own metadata: the person
    paged sees it on the check's page without access to the machine that drew it.
    """
    points = [p for p in report.performance if report.metric in p.metrics]
    partitions = sorted({p.partition for p in report.performance} | {d.partition for d in drift})
    index = {partition: position for position, partition in enumerate(partitions)}
    features = top_drifted_features(report, drift)
    plt = _pyplot()
    figure, (top, bottom) = plt.subplots(
        2, 1, figsize=(10, 6), sharex=True, gridspec_kw={"height_ratios": [1, 1]}
    )
    try:
        xs = [index[p.partition] for p in points]
        top.plot(xs, [p.metrics[report.metric] for p in points], color="#444444", linewidth=1)
        for passed, color, label in ((True, "#2a9d3a", "passed"), (False, "#d62728", "failed")):
            chosen = [p for p in points if p.passed is passed]
            top.scatter(
                [index[p.partition] for p in chosen],
                [p.metrics[report.metric] for p in chosen],
                color=color,
                label=label,
                zorder=3,
            )
        top.set_ylabel(report.metric)
        top.set_title(f"{report.model}: {report.verdict()}", fontsize=10)
        top.legend(loc="best", fontsize=8)
        for feature in features:
            series = sorted(
                (index[d.partition], abs(d.effect)) for d in drift if d.feature == feature
            )
            bottom.plot([x for x, _ in series], [y for _, y in series], marker=".", label=feature)
        bottom.set_ylabel("drift effect")
        if features:
            bottom.legend(loc="best", fontsize=8)
        for axis in (top, bottom):
            if report.window.last_good is not None:
                axis.axvline(index[report.window.last_good.partition], color="#2a9d3a", ls=":")
            axis.axvline(index[report.window.first_bad.partition], color="#d62728", ls="--")
        bottom.set_xticks(range(len(partitions)))
        bottom.set_xticklabels(partitions, rotation=45, ha="right", fontsize=7)
        figure.tight_layout()
        buffer = io.BytesIO()
        # No timestamp in the file: the same report gives the same bytes.
        figure.savefig(buffer, format="png", dpi=dpi, metadata={"Software": None})
    finally:
        plt.close(figure)
    return buffer.getvalue()
