"""What ``dg scaffold defs aiops_assets.AiopsMonitoring <name>`` writes: a starter ``defs.yaml``
that loads as it is, with a starter quality suite beside it.

Dagster's default scaffold is ``attributes: {}``, which the component refuses (it needs to know
which assets to watch), so a team would start from an error. The starter names one asset
(``--asset``, default ``my_asset``) in the file that defines it (``--assets-from``, default
``assets.py``), checks its row count, watches its drift, and says in comments what to change.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import dagster as dg
from pydantic import BaseModel, Field

_SAFE = re.compile(r"[^A-Za-z0-9_]+")


class MonitoringScaffoldParams(BaseModel):
    """The ``dg scaffold`` options: ``--asset`` and ``--assets-from``."""

    asset: str = Field(
        default="my_asset", description="The asset key to monitor (a/b if prefixed)."
    )
    assets_from: str = Field(
        default="assets.py", description="The defs-folder path that defines the asset."
    )


class MonitoringScaffolder(dg.Scaffolder[MonitoringScaffoldParams]):
    """Writes the starter ``defs.yaml`` (YAML format) or Dagster's ``component.py`` (Python)."""

    @classmethod
    def get_scaffold_params(cls) -> type[MonitoringScaffoldParams]:
        return MonitoringScaffoldParams

    def scaffold(self, request: dg.ScaffoldRequest[MonitoringScaffoldParams]) -> None:
        if request.scaffold_format != "yaml":
            dg.scaffold_component(request)
            return
        params = request.params or MonitoringScaffoldParams()
        folder = request.target_path.parent if request.append else request.target_path
        suite = f"suites/{_SAFE.sub('__', params.asset)}.yaml"
        (folder / suite).parent.mkdir(parents=True, exist_ok=True)
        (folder / suite).write_text(starter_suite(Path(suite).stem), encoding="utf-8")
        text = starter_defs_yaml(request.type_name, params, suite)
        if request.append:
            with request.target_path.open("a", encoding="utf-8") as file:
                file.write("---\n" + text)
        else:
            Path(folder / "defs.yaml").write_text(text, encoding="utf-8")


def starter_defs_yaml(type_name: str, params: MonitoringScaffoldParams, suite: str) -> str:
    """The starter component file; strings are JSON-quoted, which YAML reads as they are."""
    asset, assets_from = json.dumps(params.asset), json.dumps(params.assets_from)
    return f"""\
# Quality and drift checks, a drift baseline, alerts (and optionally retraining) on this
# project's own assets. Add one `monitors` entry per asset, then run `dg check defs`.
type: {type_name}
attributes:
  # Paths in the defs folder that define the monitored assets.
  assets_from: [{assets_from}]
  monitors:
    - asset: {asset}
      # A Great Expectations suite, relative to this file (the starter checks the row count).
      quality_suite: {json.dumps(suite)}
      severity: ERROR
      # Each partition against a baseline profiled from the asset's first partitions.
      drift:
        exclude: []  # key or identifier columns that are never profiled
        labels: []  # 0/1 label columns profiled for label drift
  # retrain: {{job: retrain_my_model, assets: [my_model]}}  # the job an ERROR drift requests
  alerts:
    outbox_path: .aiops/alerts.jsonl  # relative to the project root
    # webhook_url_env: SLACK_WEBHOOK_URL  # the variable holding a Slack-compatible webhook
"""


def starter_suite(name: str) -> str:
    """A suite whose checks are ``<name>_error``/``<name>_warn``: ``name`` is an identifier."""
    return f"""\
name: {name}
version: 1
expectations:
  - {{type: expect_table_row_count_to_be_between, kwargs: {{min_value: 1}}}}
"""
