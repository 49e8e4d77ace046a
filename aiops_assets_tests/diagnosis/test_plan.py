"""Which replays an incident gets: deploys are measured by the code that is still there."""

from __future__ import annotations

from datetime import UTC, datetime

from aiops_assets.core.incidents import Change, IncidentWindow, PerformancePoint, Suspect
from aiops_assets.diagnosis.plan import plan_replays

GOOD, BAD = "2026-01-12", "2026-01-13"


def _deploy(partition: str, version: str) -> Suspect:
    change = Change(
        kind="code",
        subject="features",
        at=datetime.fromisoformat(partition).replace(hour=1, tzinfo=UTC),
        summary=f"features[{partition}]: code version -> {version}",
        partition=partition,
        lineage_distance=1,
    )
    return Suspect(change, 0.5, {}, "")


def _flag_change(partition: str) -> Suspect:
    change = Change(
        kind="feature_set",
        subject="features",
        at=datetime.fromisoformat(partition).replace(hour=2, tzinfo=UTC),
        summary=f"features[{partition}]: feature set v1 -> v2",
        partition=partition,
        lineage_distance=1,
    )
    return Suspect(change, 0.5, {}, "")


# Flag versions by day: v2 (the suspect) landed on the last good day, whose check passed
# without computing the metric.
FLAGS = {"2026-01-10": 1, "2026-01-11": 1, GOOD: 2, BAD: 2}


def _plan(suspects: list[Suspect], measurable: list[str]) -> list:
    good = PerformancePoint(GOOD, datetime(2026, 1, 12, 23, tzinfo=UTC), True, {})
    bad = PerformancePoint(BAD, datetime(2026, 1, 13, 23, tzinfo=UTC), False, {"f1": 0.4})
    return plan_replays(
        suspects,
        IncidentWindow(last_good=good, first_bad=bad),
        [BAD],
        limit=5,
        flags_version_at=FLAGS.get,
        snapshot_config_at=lambda _: None,
        measurable=measurable,
    )


def test_a_deploy_is_applied_to_the_latest_day_whose_metric_was_computed() -> None:
    (spec,) = _plan([_deploy(BAD, "features-3")], measurable=["2026-01-10", "2026-01-11"])
    assert (spec.direction, spec.partition) == ("apply", "2026-01-11")


def test_an_earlier_deploy_in_force_when_the_check_passed_gets_no_replay_of_its_own() -> None:
    later, earlier = _deploy(BAD, "features-3"), _deploy(GOOD, "features-2.7")
    specs = _plan([earlier, later], measurable=["2026-01-11", GOOD])
    assert [spec.change for spec in specs] == [later.change]
    assert specs[0].shared_with == ()


def test_a_deploy_applied_to_an_earlier_day_keeps_that_days_flags() -> None:
    # With today's flags, a flag change since would lend the deploy its effect.
    (spec,) = _plan([_deploy(BAD, "features-3")], measurable=["2026-01-11"])
    assert (spec.partition, spec.flags_version) == ("2026-01-11", 1)


def test_a_flag_revert_goes_back_to_the_latest_day_whose_metric_was_computed() -> None:
    # The last good day passed without its metric: its flags (the suspect's) vouch for nothing.
    (spec,) = _plan([_flag_change(GOOD)], measurable=["2026-01-10", "2026-01-11"])
    assert (spec.direction, spec.partition, spec.flags_version) == ("revert", BAD, 1)
    assert "flags of 2026-01-11" in spec.action


def test_a_flag_revert_uses_the_last_good_days_flags_when_it_was_measured() -> None:
    (spec,) = _plan([_flag_change(BAD)], measurable=["2026-01-11", GOOD])
    assert spec.flags_version == 2


def test_a_flag_change_on_a_measured_good_day_is_reverted_to_the_version_before_it() -> None:
    # Rolling features can take a day to break: the day the flags changed may still pass.
    change = Change(
        kind="config",
        subject="flags",
        at=datetime(2026, 1, 12, 2, tzinfo=UTC),
        summary="flags v1 -> v2 by oncall: features telemetry_core-v2 for gateway",
        lineage_distance=0,
        details={"flag_version": 2},
    )
    (spec,) = _plan([Suspect(change, 0.5, {}, "")], measurable=["2026-01-11", GOOD])
    assert spec.flags_version == 1
    assert "the flags before it (v1)" in spec.action
