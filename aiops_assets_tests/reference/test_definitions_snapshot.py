"""A snapshot of what the reference code location declares, so no change to it goes unnoticed.

Asset keys (group, partitioning, code version, parents), checks (blocking, partitioned), jobs,
schedules, sensors (default status, target jobs) and resources (class and config field NAMES;
never values, which depend on the machine). A check's severity is not part of its spec in
Dagster (a result carries it), so it is not in the snapshot.

When a change to the definitions is intended, rewrite the snapshot and review its diff:

    .venv/bin/pytest aiops_assets_tests/reference/test_definitions_snapshot.py --snapshot-update

It is kept as JSON in ``__snapshots__/test_definitions_snapshot/`` beside this file.
"""

from __future__ import annotations

from typing import Any

import dagster as dg
import pytest
from syrupy.assertion import SnapshotAssertion
from syrupy.extensions.json import JSONSnapshotExtension

from aiops_assets.reference.definitions import build_definitions
from aiops_assets.reference.settings import PipelineSettings


@pytest.fixture
def snapshot_json(snapshot: SnapshotAssertion) -> SnapshotAssertion:
    return snapshot.use_extension(JSONSnapshotExtension)


def _partitioning(partitions_def: dg.PartitionsDefinition | None) -> str | None:
    return None if partitions_def is None else type(partitions_def).__name__


def _assets(graph: Any) -> dict[str, Any]:
    described = {}
    for key in sorted(graph.get_all_asset_keys(), key=lambda key: key.to_user_string()):
        node = graph.get(key)
        described[key.to_user_string()] = {
            "group": node.group_name,
            "partitions": _partitioning(node.partitions_def),
            "code_version": node.code_version,
            "parents": sorted(parent.to_user_string() for parent in node.parent_keys),
        }
    return described


def _checks(graph: Any) -> dict[str, Any]:
    described = {}
    for key in sorted(graph.asset_check_keys, key=str):
        spec = graph.get_check_spec(key)
        described[f"{key.asset_key.to_user_string()}:{key.name}"] = {
            "blocking": spec.blocking,
            "partitions": _partitioning(spec.partitions_def),
        }
    return described


def _jobs(definitions: dg.Definitions) -> dict[str, Any]:
    described = {}
    for job in sorted(definitions.jobs or [], key=lambda job: job.name):
        resolved = definitions.resolve_job_def(job.name)
        described[job.name] = {
            "executor": resolved.executor_def.name,
            "partitions": _partitioning(resolved.partitions_def),
            "assets": sorted(
                key.to_user_string() for key in resolved.asset_layer.selected_asset_keys
            ),
        }
    return described


def _schedules(definitions: dg.Definitions) -> dict[str, Any]:
    described = {}
    for name in sorted(schedule.name for schedule in definitions.schedules or []):
        schedule = definitions.resolve_schedule_def(name)
        described[name] = {
            "cron": schedule.cron_schedule,
            "job": schedule.job_name,
            "default_status": schedule.default_status.name,
        }
    return described


def _sensors(definitions: dg.Definitions) -> dict[str, Any]:
    return {
        sensor.name: {
            "type": sensor.sensor_type.name,
            "default_status": sensor.default_status.name,
            "minimum_interval_seconds": sensor.minimum_interval_seconds,
            "jobs": sorted(target.job_name for target in sensor.targets),
        }
        for sensor in sorted(definitions.sensors or [], key=lambda sensor: sensor.name)
    }


def _config_fields(resource: Any) -> list[str]:
    if hasattr(type(resource), "model_fields"):  # a Pythonic (pydantic) resource
        return sorted(type(resource).model_fields)
    schema = resource.config_schema
    return sorted(schema.as_field().config_type.fields) if schema is not None else []


def _resources(definitions: dg.Definitions) -> dict[str, Any]:
    return {
        key: {"class": type(resource).__name__, "config_fields": _config_fields(resource)}
        for key, resource in sorted((definitions.resources or {}).items())
    }


def test_the_reference_definitions_match_their_snapshot(snapshot_json: SnapshotAssertion) -> None:
    # Default settings, not the environment's: the snapshot is the same on every machine.
    definitions = build_definitions(PipelineSettings())
    graph = definitions.resolve_asset_graph()
    declared = {
        "assets": _assets(graph),
        "checks": _checks(graph),
        "jobs": _jobs(definitions),
        "schedules": _schedules(definitions),
        "sensors": _sensors(definitions),
        "resources": _resources(definitions),
    }
    assert declared == snapshot_json
