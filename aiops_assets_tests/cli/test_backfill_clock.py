"""``aiops backfill`` takes its range from the pipeline's clock: only closed days, daily only."""

from __future__ import annotations

import re
from datetime import date

import pytest

from aiops_assets.cli._common import CliError
from aiops_assets.cli.backfill import check_range
from aiops_assets.reference.settings import PipelineSettings


def test_a_fixed_clock_allows_the_closed_days_and_refuses_the_one_in_its_lag() -> None:
    settings = PipelineSettings(clock="2026-01-09T00:20")  # the 8th closes at 00:30
    check_range(settings, date(2026, 1, 5), date(2026, 1, 7))
    with pytest.raises(
        CliError, match=re.escape("outside the daily partitions 2026-01-05..2026-01-07")
    ):
        check_range(settings, date(2026, 1, 5), date(2026, 1, 8))


def test_the_live_clock_reaches_past_the_configured_days() -> None:
    check_range(PipelineSettings(clock="live"), date(2026, 1, 5), date(2026, 2, 20))


def test_hourly_partitions_are_sent_to_the_ui_backfill() -> None:
    with pytest.raises(CliError, match="backfill hourly partitions from the UI"):
        check_range(PipelineSettings(partition="hourly"), date(2026, 1, 5), date(2026, 1, 6))
