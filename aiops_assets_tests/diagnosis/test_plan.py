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


def _plan(suspects: list[Suspect], measurable: list[str]) -> list:
    good = PerformancePoint(GOOD, datetime(2026, 1, 12, 23, tzinfo=UTC), True, {})
    bad = PerformancePoint(BAD, datetime(2026, 1, 13, 23, tzinfo=UTC), False, {"f1": 0.4})
    return plan_replays(
        suspects,
        IncidentWindow(last_good=good, first_bad=bad),
        [BAD],
        limit=5,
        flags_version_at=lambda _: 0,
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
