"""A service or column named to break markdown ("api|x\\n# boom") leaves a check's summary intact:
the drift check's feature table keeps its cells, no heading or extra row appears, and each name
renders as the characters it is. Parsed with markdown-it-py (CommonMark + GFM tables)."""

from itertools import pairwise
from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd
from markdown_it import MarkdownIt
from markdown_it.token import Token

from aiops_assets.baselines import build_drift_baseline_asset
from aiops_assets.checks.drift import build_drift_checks
from aiops_assets.checks.quality import build_quality_checks
from aiops_assets.resources import ArtifactStoreResource

PARTITIONS = dg.DailyPartitionsDefinition(start_date="2026-03-01", end_date="2026-03-06")
SHIFTED = "2026-03-05"
HOSTILE_SERVICE = "api|x\n# boom"
HOSTILE_COLUMN = "p99|ms\r\n## <b>[x](http://evil)</b>"
ROWS = 720


@dg.asset(partitions_def=PARTITIONS, io_manager_key="artifact_io_manager")
def hostile(context: dg.AssetExecutionContext, artifact_store: ArtifactStoreResource):
    day = context.partition_key
    rng = np.random.default_rng(int(day.replace("-", "")))
    shift = 5.0 if day >= SHIFTED else 0.0
    frames = [
        pd.DataFrame(
            {
                "timestamp": pd.date_range(day, periods=ROWS, freq="2min"),
                "service": pd.Series([service] * ROWS, dtype=object),
                HOSTILE_COLUMN: rng.normal(200.0 + shift * 20.0, 20.0, ROWS),
                "queue_depth": rng.normal(5.0, 1.0, ROWS),
            }
        )
        for service in (HOSTILE_SERVICE, "web")
    ]
    return artifact_store.get_store().put_frame(pd.concat(frames, ignore_index=True))


hostile_baseline = build_drift_baseline_asset(hostile, name="hostile_baseline", group_name=None)


def _summary(resources: dict[str, object], instance: dg.DagsterInstance) -> str:
    keys = PARTITIONS.get_partition_keys()
    for day in keys[:3]:
        dg.materialize([hostile], instance=instance, resources=resources, partition_key=day)
    dg.materialize(
        [hostile, hostile_baseline],
        instance=instance,
        resources=resources,
        selection=[hostile_baseline.key],
    )
    checks = build_drift_checks(hostile, hostile_baseline)
    result = dg.materialize(
        [hostile, hostile_baseline, *checks],
        instance=instance,
        resources=resources,
        partition_key=SHIFTED,
        selection=dg.AssetSelection.assets(hostile),
    )
    (evaluation,) = result.get_asset_check_evaluations()
    assert not evaluation.passed
    assert evaluation.metadata["drifted"].value == HOSTILE_COLUMN
    return str(evaluation.metadata["summary"].value)


QUEUE_SUITE = """
name: queues
version: 1
slice_by: queue
row_id_columns: [queue, ts]
expectations:
  - {type: expect_column_values_to_be_between, kwargs: {column: depth, min_value: 0}, severity: ERROR}
"""


@dg.asset(partitions_def=PARTITIONS)
def queues(context: dg.AssetExecutionContext) -> pd.DataFrame:
    start = context.partition_time_window.start.replace(tzinfo=None)
    return pd.DataFrame(
        {
            "ts": pd.date_range(start, periods=4, freq="h"),
            "queue": [HOSTILE_SERVICE, "mail", HOSTILE_SERVICE, "mail"],
            "depth": [-1.0, 1.0, -2.0, 3.0],
        }
    )


def _parse(summary: str) -> list[Token]:
    return MarkdownIt("commonmark").enable("table").parse(summary)


def _plain(token: Token) -> str:
    return "".join(child.content for child in token.children or [])


def test_a_hostile_service_and_column_name_do_not_rewrite_the_drift_summary(
    resources: dict[str, object], instance: dg.DagsterInstance
) -> None:
    summary = _summary(resources, instance)
    tokens = _parse(summary)
    kinds = [token.type for token in tokens]
    assert "heading_open" not in kinds, summary
    assert "html_inline" not in kinds and "html_block" not in kinds, summary
    assert not any(child.type == "link_open" for t in tokens for child in t.children or [])

    # The feature table: a header and one row per drifted feature, nine cells each.
    rows: list[list[Token]] = []
    for previous, token in pairwise(tokens):
        if token.type == "tr_open":
            rows.append([])
        elif token.type == "inline" and previous.type in {"th_open", "td_open"}:
            rows[-1].append(token)
    assert len(rows) == 2, summary
    assert [len(row) for row in rows] == [9, 9], summary
    (feature_cell,) = [child for child in rows[1][0].children or []]
    assert feature_cell.type == "code_inline"
    assert feature_cell.content == HOSTILE_COLUMN.replace("\r\n", " ")

    # The per-service section: the hostile service is one list item, named as it is.
    items = [
        _plain(token)
        for index, token in enumerate(tokens)
        if token.type == "inline" and tokens[index - 2].type == "list_item_open"
    ]
    names = {item.split(": ")[0] for item in items}
    assert HOSTILE_SERVICE.replace("\n", " ") in names, items
    assert HOSTILE_SERVICE not in summary and HOSTILE_COLUMN not in summary


def test_a_hostile_slice_name_stays_inside_its_line_of_the_quality_summary(
    tmp_path: Path, instance: dg.DagsterInstance
) -> None:
    suite = tmp_path / "queues.yaml"
    suite.write_text(QUEUE_SUITE)
    result = dg.materialize(
        [queues, *build_quality_checks(queues, suite)],
        instance=instance,
        partition_key="2026-03-01",
        raise_on_error=False,
    )
    (evaluation,) = result.get_asset_check_evaluations()
    assert not evaluation.passed
    summary = str(evaluation.metadata["summary"].value)
    assert HOSTILE_SERVICE not in summary
    tokens = _parse(summary)
    assert "heading_open" not in [token.type for token in tokens], summary
    (failed,) = [
        _plain(token)
        for index, token in enumerate(tokens)
        if token.type == "inline" and tokens[index - 2].type == "list_item_open"
    ]
    assert failed.startswith("expect_column_values_to_be_between on depth: 2 row(s)"), failed
    assert f"queue={HOSTILE_SERVICE.replace(chr(10), ' ')} (2)" in failed, failed
    paragraphs = [_plain(token) for token in tokens if token.type == "inline"]
    assert f"Implicated slices: queue={HOSTILE_SERVICE.replace(chr(10), ' ')} (2)" in paragraphs
