"""The IO manager's contract as a host reaches it through the public class alone.

An input whose metadata sets ``ArtifactRefIOManager.ALLOW_MISSING_PARTITIONS`` receives only the
partitions that have a current version, and ``ArtifactRefIOManager.ref_name`` names the store
ref that holds a partition's current version (what the reference's gate reads served days by).
"""

import warnings
from pathlib import Path
from typing import Any

import dagster as dg
import pandas as pd
import pytest

import aiops_assets as aiops

DAYS = dg.DailyPartitionsDefinition(start_date="2026-01-01", end_date="2026-01-04")


@dg.asset(partitions_def=DAYS, io_manager_key="artifact_io_manager")
def host_rows(
    context: dg.AssetExecutionContext, artifact_store: aiops.ArtifactStoreResource
) -> dg.Output[Any]:
    frame = pd.DataFrame({"day": [context.partition_key], "value": [1.0]})
    ref = artifact_store.get_store().put_frame(frame)
    with warnings.catch_warnings():  # data_version is beta, and the IO manager's way
        warnings.simplefilter("ignore", dg.BetaWarning)
        return dg.Output(ref, data_version=dg.DataVersion(ref.sha256))


@dg.asset(
    ins={
        "host_rows": dg.AssetIn(
            metadata={aiops.ArtifactRefIOManager.ALLOW_MISSING_PARTITIONS: True},
            partition_mapping=dg.AllPartitionMapping(),
        )
    }
)
def host_summary(host_rows: dict[str, pd.DataFrame]) -> dg.MaterializeResult:
    return dg.MaterializeResult(
        metadata={"days": ", ".join(sorted(host_rows)), "rows": sum(map(len, host_rows.values()))}
    )


@pytest.fixture
def resources(tmp_path: Path) -> dict[str, Any]:
    return aiops.lifecycle_resources(tmp_path)


def test_an_input_allowing_missing_partitions_gets_the_ones_that_exist(
    resources: dict[str, Any],
) -> None:
    with dg.instance_for_test() as instance:
        for day in ("2026-01-01", "2026-01-03"):
            assert dg.materialize(
                [host_rows], resources=resources, instance=instance, partition_key=day
            ).success
        result = dg.materialize(
            [host_rows, host_summary],
            selection=[host_summary],
            resources=resources,
            instance=instance,
        )
        metadata = result.asset_materializations_for_node("host_summary")[0].metadata
        assert metadata["days"].value == "2026-01-01, 2026-01-03"
        assert metadata["rows"].value == 2


def test_ref_name_names_where_a_partitions_current_version_is(resources: dict[str, Any]) -> None:
    with dg.instance_for_test() as instance:
        result = dg.materialize(
            [host_rows], resources=resources, instance=instance, partition_key="2026-01-02"
        )
        [materialization] = result.asset_materializations_for_node("host_rows")
        store = resources["artifact_store"].get_store()
        name = aiops.ArtifactRefIOManager.ref_name(host_rows.key, "2026-01-02")
        ref = store.get_ref(name)
        assert ref is not None
        assert ref.sha256 == (materialization.tags or {}).get("dagster/data_version")
        assert store.get_frame(ref)["day"].tolist() == ["2026-01-02"]
        assert (
            store.get_ref(aiops.ArtifactRefIOManager.ref_name(host_rows.key, "2026-01-01")) is None
        )
