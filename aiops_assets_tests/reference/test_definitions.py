from __future__ import annotations

import dagster as dg

from aiops_assets.reference.definitions import (
    PARTITIONED_ASSETS,
    REPORT_ASSETS,
    UNPARTITIONED_ASSETS,
    build_definitions,
    defs,
)
from aiops_assets.reference.settings import PipelineSettings


def test_the_code_location_loads() -> None:
    dg.Definitions.validate_loadable(defs)


def test_every_reference_asset_is_defined_with_a_code_version() -> None:
    graph = defs.resolve_asset_graph()
    keys = {key.to_user_string() for key in graph.get_all_asset_keys()}
    assert keys == set(PARTITIONED_ASSETS) | set(UNPARTITIONED_ASSETS) | set(REPORT_ASSETS)
    for key in graph.get_all_asset_keys():
        assert graph.get(key).code_version, f"{key.to_user_string()} has no code_version"


def test_daily_assets_share_the_settings_partitions() -> None:
    definitions = build_definitions(PipelineSettings(days=9))
    graph = definitions.resolve_asset_graph()
    for name in PARTITIONED_ASSETS:
        partitions_def = graph.get(dg.AssetKey(name)).partitions_def
        assert partitions_def is not None
        keys = partitions_def.get_partition_keys()
        assert (keys[0], len(keys)) == ("2026-01-05", 9)
    for name in UNPARTITIONED_ASSETS:
        assert graph.get(dg.AssetKey(name)).partitions_def is None


def test_lineage_runs_from_snapshot_to_champion() -> None:
    graph = defs.resolve_asset_graph()

    def parents(name: str) -> set[str]:
        return {key.to_user_string() for key in graph.get(dg.AssetKey(name)).parent_keys}

    assert parents("features") == {"telemetry_snapshot"}
    assert parents("training_set") == {"features"}
    assert parents("candidate_model") == {"training_set"}
    assert parents("champion_model") == {"candidate_model", "training_set"}
