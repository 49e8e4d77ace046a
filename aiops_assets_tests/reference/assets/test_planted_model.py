"""Issue 19's code execution from the store: a planted object never executes, whatever the ref or
a rewritten version row says.

The attacker can write the store and the ledger database but holds no audit key. The planted
object is a pickle, or a skops file naming ``os.system``, that writes a marker file when it is
built; each case then runs the asset that loads the champion and expects a refusal naming why,
with no marker written. (A planted file whose hash a *vouched* version records is refused by the
codec: ``core/test_registry.py``.)
"""

from __future__ import annotations

import shutil
import sqlite3
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import dagster as dg
import pytest

from aiops_assets.core.store import PICKLE, SKOPS, ArtifactRef, ArtifactStore
from aiops_assets.io import asset_ref_name
from aiops_assets.keys import CHAMPION_KEY, SCORES_KEY
from aiops_assets.reference.definitions import build_definitions
from aiops_assets.reference.settings import PipelineSettings
from aiops_assets.resources import close_ledgers
from aiops_assets.runner import materialize_selection, quiet
from aiops_assets_tests.core.planted_models import planted_os_system, planted_pickle

PLANTS: dict[str, tuple[Callable[[Path], bytes], str]] = {
    "pickle": (planted_pickle, PICKLE),
    "skops-os.system": (planted_os_system, SKOPS),
}


@pytest.fixture
def home(trained_home: PipelineSettings, tmp_path: Path) -> PipelineSettings:
    copy = tmp_path / "aiops"
    shutil.copytree(trained_home.home, copy)
    # with_overrides, not dataclasses.replace: the ledger URL and store root follow the home.
    copied = trained_home.with_overrides(home=copy)
    assert str(copy) in copied.ledger_url and str(copy) in copied.store_root
    return copied


def _plant(settings: PipelineSettings, marker: Path, kind: str) -> ArtifactRef:
    """An object whose name is its own hash, as the store's integrity check wants."""
    build, media_type = PLANTS[kind]
    return ArtifactStore(settings.store_root).put_bytes(build(marker), media_type)


def _repoint_champion(settings: PipelineSettings, planted: ArtifactRef) -> None:
    ArtifactStore(settings.store_root).set_ref(asset_ref_name(CHAMPION_KEY, None), planted)


def _run(settings: PipelineSettings, key: dg.AssetKey, partition: str | None) -> str:
    """The failure message of one run of ``key`` (it must fail)."""
    close_ledgers()
    with dg.DagsterInstance.ephemeral() as instance:
        result = materialize_selection(
            build_definitions(settings),
            instance,
            dg.AssetSelection.assets(key).without_checks(),
            partition_key=partition,
            run_config=quiet({}),
            raise_on_error=False,
        )
    close_ledgers()
    return _failure(result)


def _last_day(settings: PipelineSettings) -> str:
    return (settings.end - timedelta(days=1)).isoformat()


def _failure(result: dg.ExecuteInProcessResult) -> str:
    assert not result.success
    failures = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    return " ".join(str(e.event_specific_data) for e in failures)


@pytest.mark.parametrize("kind", sorted(PLANTS))
def test_a_champion_ref_repointed_at_a_planted_object_is_refused_unexecuted(
    home: PipelineSettings, tmp_path: Path, kind: str
) -> None:
    marker = tmp_path / "pwned"
    planted = _plant(home, marker, kind)
    _repoint_champion(home, planted)
    for key, partition in ((SCORES_KEY, _last_day(home)), (dg.AssetKey("score_baseline"), None)):
        message = _run(home, key, partition)
        assert "refusing to load" in message, message
    assert not marker.exists()


@pytest.mark.parametrize("kind", sorted(PLANTS))
def test_a_version_row_pointed_at_a_planted_object_is_refused_unexecuted(
    home: PipelineSettings, tmp_path: Path, kind: str
) -> None:
    marker = tmp_path / "pwned"
    planted = _plant(home, marker, kind)
    ledger_file = Path(home.ledger_url.removeprefix("sqlite:///"))
    with sqlite3.connect(ledger_file) as conn:
        conn.execute(
            "UPDATE model_versions SET sha256 = ? WHERE version = (SELECT MAX(version) FROM model_versions)",
            (planted.sha256,),
        )
    _repoint_champion(home, planted)
    message = _run(home, SCORES_KEY, _last_day(home))
    assert "not the row the audit chain recorded" in message, message
    assert not marker.exists()
