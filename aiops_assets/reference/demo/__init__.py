"""The demo: the whole reference pipeline on embedded defaults, in a project-local instance.

It materializes through the same ``dg.Definitions`` the UI loads, into the same ``DAGSTER_HOME``
that ``make dev`` serves, so after the demo the UI shows every materialization with its data
version, code version and metadata. Runs use the in-process executor: a subprocess per step would
spend most of the demo importing.

A caller checks the settings first (``validate_demo_settings``), then may archive the previous
run (``archive_previous_demo``; ``list_demo_archives`` and ``restore_demo_archive`` bring one
back), then runs it (``run_demo``) and shows the result (``format_summary``).
"""

from aiops_assets.reference.demo.archive import (
    archive_previous_demo as archive_previous_demo,
)
from aiops_assets.reference.demo.archive import (
    list_demo_archives as list_demo_archives,
)
from aiops_assets.reference.demo.archive import (
    restore_demo_archive as restore_demo_archive,
)
from aiops_assets.reference.demo.lifecycle import (
    DEMO_ABLATION_CRITERION as DEMO_ABLATION_CRITERION,
)
from aiops_assets.reference.demo.lifecycle import DEMO_ACTOR as DEMO_ACTOR
from aiops_assets.reference.demo.lifecycle import (
    DEMO_FEATURE_SET_CHANGES as DEMO_FEATURE_SET_CHANGES,
)
from aiops_assets.reference.demo.result import DemoResult as DemoResult
from aiops_assets.reference.demo.result import format_summary as format_summary
from aiops_assets.reference.demo.run import FIRE_DRILL_RUN_CONFIG as FIRE_DRILL_RUN_CONFIG
from aiops_assets.reference.demo.run import run_demo as run_demo
from aiops_assets.reference.demo.run import validate_demo_settings as validate_demo_settings

__all__ = [
    "DEMO_ABLATION_CRITERION",
    "DEMO_ACTOR",
    "DEMO_FEATURE_SET_CHANGES",
    "FIRE_DRILL_RUN_CONFIG",
    "DemoResult",
    "archive_previous_demo",
    "format_summary",
    "list_demo_archives",
    "restore_demo_archive",
    "run_demo",
    "validate_demo_settings",
]
