"""The reference location's late-label settings: off by default, wired when configured."""

from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from aiops_assets.reference.definitions import PERFORMANCE_CHECK, build_definitions
from aiops_assets.reference.labels import delayed_labels
from aiops_assets.reference.settings import PipelineSettings


def test_without_a_label_source_or_delay_labels_come_with_the_telemetry() -> None:
    settings = PipelineSettings.from_env({})
    assert settings.label_delay == timedelta(0) and not settings.rollback_on_estimate
    assert delayed_labels(settings) is None


def test_a_delay_and_a_csv_source_reach_the_performance_check(tmp_path: Path) -> None:
    incidents = tmp_path / "incidents.csv"
    incidents.write_text("service,start,end\ncheckout,2026-01-06T10:00,2026-01-06T11:00\n")
    settings = PipelineSettings.from_env(
        {
            "AIOPS_HOME": str(tmp_path / "home"),
            "AIOPS_LABEL_DELAY": "2d",
            "AIOPS_LABEL_SOURCE": str(incidents),
            "AIOPS_NOW": "2026-01-09T00:00",
            "AIOPS_ROLLBACK_ON_ESTIMATE": "1",
        }
    )
    labels = delayed_labels(settings)
    assert labels is not None and labels.delay == timedelta(days=2)
    assert labels.now() == datetime(2026, 1, 9, tzinfo=UTC)
    assert labels.windows is not None and len(labels.windows()) == 1
    partitions = dg.DailyPartitionsDefinition(start_date="2026-01-05")
    assert labels.is_mature(partitions, "2026-01-06")
    assert not labels.is_mature(partitions, "2026-01-07")
    frame = pd.DataFrame(
        {
            "timestamp": pd.to_datetime(["2026-01-06T10:30", "2026-01-06T11:00"], utc=True),
            "service": ["checkout", "checkout"],
            "label": [0, 0],
        }
    )
    assert labels.labeled(frame)["label"].tolist() == [1, 0]
    definitions = build_definitions(settings)
    dg.Definitions.validate_loadable(definitions)
    [check] = [
        item
        for item in definitions.asset_checks or ()
        if isinstance(item, dg.AssetChecksDefinition) and PERFORMANCE_CHECK in item.check_keys
    ]
    assert "artifact_store" in check.required_resource_keys
    assert "label-free estimate" in (
        check.get_spec_for_check_key(PERFORMANCE_CHECK).description or ""
    )


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"AIOPS_LABEL_DELAY": "two days"}, "AIOPS_LABEL_DELAY must look like"),
        ({"AIOPS_ROLLBACK_ON_ESTIMATE": "maybe"}, "AIOPS_ROLLBACK_ON_ESTIMATE must be on or off"),
        ({"AIOPS_LABEL_SOURCE": "postgresql://db/labels"}, "AIOPS_LABEL_TABLE"),
    ],
)
def test_bad_label_settings_are_refused_in_one_line(environ: dict[str, str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        PipelineSettings.from_env(environ)
