"""The gate's evidence for any lifecycle model: check outcomes read from the instance, two models
scored on the same rows, and the gate's numbers as plottable metadata."""

from __future__ import annotations

from collections.abc import Iterable

import dagster as dg

from aiops_assets.check_history import check_execution_pages
from aiops_assets.core.promotion import GateDecision
from aiops_assets.core.promotion import paired_rows as paired_rows  # the lifecycle's pairing


def latest_check_outcomes(
    instance: dg.DagsterInstance, check_key: dg.AssetCheckKey, wanted: set[str]
) -> dict[str | None, bool]:
    """The latest completed outcome per partition, paging back until every wanted one is found."""
    latest: dict[str | None, bool] = {}
    for records in check_execution_pages(instance, check_key, page_size=500):
        for record in records:  # newest first
            if record.partition in latest or record.status.value not in ("SUCCEEDED", "FAILED"):
                continue
            latest[record.partition] = record.status.value == "SUCCEEDED"
        if None in latest or wanted <= set(latest):
            break
    return latest


def blocking_outcomes(
    instance: dg.DagsterInstance,
    check_keys: Iterable[dg.AssetCheckKey],
    partitions: list[str],
) -> dict[str, bool]:
    """Each required check, per trained partition: did its latest completed execution pass?

    A check that never completed for a partition the model learned from counts as not passed,
    because nothing proves that data was good.
    """
    outcomes: dict[str, bool] = {}
    for check_key in check_keys:
        latest = latest_check_outcomes(instance, check_key, set(partitions))
        # The run's own graph may not include the checked asset, so its history says whether
        # the check is per partition.
        partitioned = any(partition is not None for partition in latest)
        wanted: list[str | None] = list(partitions) if partitioned else [None]
        for partition in wanted:
            label = check_key.to_user_string() + (f"[{partition}]" if partition else "")
            outcomes[label] = latest.get(partition, False)
    return outcomes


def gate_numbers(decision: GateDecision) -> dict[str, dg.MetadataValue]:
    """The bootstrap's interval and the shadow metrics as floats, so the UI plots them."""
    numbers: dict[str, dg.MetadataValue] = {}
    bootstrap = decision.evidence.get("bootstrap") or {}
    for name in ("observed_difference", "ci_low", "ci_high", "probability_not_better"):
        if isinstance(bootstrap.get(name), int | float):
            numbers[f"gate_{name}"] = dg.MetadataValue.float(float(bootstrap[name]))
    shadow = decision.evidence.get("shadow") or {}
    for name in ("candidate", "champion", "candidate_alert_rate", "champion_alert_rate"):
        if isinstance(shadow.get(name), int | float):
            numbers[f"shadow_{name}"] = dg.MetadataValue.float(float(shadow[name]))
    return numbers
