"""The demo's own mechanics: settings refused before any side effect, archives that come back,
a step total known from the first line, reasons told once, and no Dagster log in its output."""

from __future__ import annotations

import io
import json
import logging
import warnings
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import dagster as dg
import pytest

from aiops_assets.reference.demo import (
    archive_previous_demo,
    list_demo_archives,
    restore_demo_archive,
    run_demo,
    validate_demo_settings,
)
from aiops_assets.reference.demo.archive import MANIFEST
from aiops_assets.reference.demo.result import DemoResult
from aiops_assets.reference.demo.run import as_progress, dagster_output, plan_demo
from aiops_assets.reference.demo.steps import NOTE_WIDTH, DemoSteps, one_line
from aiops_assets.reference.settings import PipelineSettings
from aiops_assets.runner import daily_partition_keys

# A rollback reason as long as the one the demo's fire drill produces.
LONG_REASON = "anomaly_scores:performance[2026-01-15] failed for v3: " + "; ".join(
    f"service=s{index}: false-alarm rate 0.0{index}21 exceeds 0.0500 (the holdout's 0.1024 + 0.02)"
    for index in range(10)
)


@dataclass
class RecordingProgress:
    """A ``Progress`` that keeps what it was told."""

    totals: list[int] = field(default_factory=list)
    steps: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    ended: bool = False

    def begin(self, total: int, label: str = "") -> None:
        self.totals.append(total)

    def step(self, label: str) -> None:
        self.steps.append(label)

    def note(self, line: str) -> None:
        self.notes.append(line)

    def end(self, summary: str = "") -> None:
        self.ended = True


def _leave_a_previous_demo(settings: PipelineSettings, marker: str = "first") -> dict[Path, str]:
    """What a demo leaves in its home (stand-ins for the ledger, outbox and Dagster history)."""
    files = {
        Path(settings.ledger_url.removeprefix("sqlite:///")): f"ledger {marker}",
        settings.alert_outbox: f"alerts {marker}",
        settings.dagster_home / "history" / "runs.db": f"runs {marker}",
        settings.dagster_home / "dagster.yaml": "telemetry:\n  enabled: false\n",
    }
    for path, text in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return files


def _contents(files: dict[Path, str]) -> dict[Path, str | None]:
    return {path: path.read_text() if path.exists() else None for path in files}


# --- validation: refused before anything happens ---------------------------------------------


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"days": 3}, "needs more than 4 days"),
        ({"days": 4}, "pass --days 5 or more"),
        ({"seed": -1}, "seed must be a non-negative integer"),
        ({"start": date(9999, 12, 20)}, "daily partitions"),
        ({"environment": "sandbox"}, "sandbox environment cannot"),
    ],
)
def test_settings_no_demo_can_run_on_are_refused_in_one_line(
    small_settings: PipelineSettings, changes: dict[str, object], message: str
) -> None:
    with pytest.raises(ValueError, match=message) as refused:
        validate_demo_settings(small_settings.with_overrides(**changes))
    assert "\n" not in str(refused.value)
    assert not small_settings.home.exists(), "validation creates nothing"


def test_a_home_that_is_a_file_is_refused(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.write_text("not a folder")
    settings = PipelineSettings(start=date(2026, 1, 5), days=6, home=home)
    with pytest.raises(ValueError, match="is a file, not a folder"):
        validate_demo_settings(settings)
    with pytest.raises(ValueError, match="cannot be created"):
        validate_demo_settings(settings.with_overrides(home=home / "below"))


def test_good_settings_pass(small_settings: PipelineSettings) -> None:
    validate_demo_settings(small_settings)
    assert not small_settings.home.exists()


def test_a_refused_demo_leaves_the_previous_one_in_place(
    small_settings: PipelineSettings, instance: dg.DagsterInstance
) -> None:
    files = _leave_a_previous_demo(small_settings)
    with pytest.raises(ValueError, match="needs more than 4 days"):
        run_demo(small_settings.with_overrides(days=3), instance=instance, progress=io.StringIO())
    assert _contents(files) == files
    assert not (small_settings.home / "archive").exists()


# --- archives: kept, listed, restored ----------------------------------------------------------


def test_an_archive_is_a_sortable_time_named_folder_that_says_where_things_came_from(
    small_settings: PipelineSettings,
) -> None:
    assert archive_previous_demo(small_settings) is None, "nothing to keep in a fresh home"
    files = _leave_a_previous_demo(small_settings)
    first = archive_previous_demo(small_settings, small_settings.dagster_home)
    _leave_a_previous_demo(small_settings, "second")
    second = archive_previous_demo(small_settings, small_settings.dagster_home)
    assert first is not None and second is not None
    assert first.name[:15].replace("T", "").isdigit() and first.name[8] == "T"
    assert list_demo_archives(small_settings) == [first, second]
    assert sorted([second.name, first.name]) == [first.name, second.name]
    assert (first / "dagster_home" / "history" / "runs.db").read_text() == "runs first"
    origins = json.loads((first / MANIFEST).read_text())["origins"]
    assert origins["ledger.db"] == str(Path(small_settings.ledger_url.removeprefix("sqlite:///")))
    # The instance's own settings stay; everything else moved.
    remaining = _contents(files)
    assert remaining.pop(small_settings.dagster_home / "dagster.yaml") is not None
    assert set(remaining.values()) == {None}


def test_restoring_archives_the_current_state_first_then_puts_the_archive_back(
    small_settings: PipelineSettings,
) -> None:
    files = _leave_a_previous_demo(small_settings, "first")
    first = archive_previous_demo(small_settings, small_settings.dagster_home)
    _leave_a_previous_demo(small_settings, "second")

    restored = restore_demo_archive(small_settings, first.name if first else None)

    assert restored == first and not first.exists(), "an archive moves back, not a copy"
    assert _contents(files) == files, "the first demo's files are back where they were"
    [kept] = list_demo_archives(small_settings)
    assert (kept / "dagster_home" / "history" / "runs.db").read_text() == "runs second"
    # Undo: the latest archive is the state the restore replaced.
    assert restore_demo_archive(small_settings, "latest") == kept
    assert Path(small_settings.ledger_url.removeprefix("sqlite:///")).read_text() == "ledger second"
    [again] = list_demo_archives(small_settings)
    assert (again / "ledger.db").read_text() == "ledger first"


def test_restoring_an_unknown_archive_names_the_ones_that_exist(
    small_settings: PipelineSettings,
) -> None:
    with pytest.raises(ValueError, match="no demo archive in"):
        restore_demo_archive(small_settings, None)
    _leave_a_previous_demo(small_settings)
    archive = archive_previous_demo(small_settings, small_settings.dagster_home)
    assert archive is not None
    with pytest.raises(ValueError, match=f"there are: {archive.name}"):
        restore_demo_archive(small_settings, "20000101T000000")
    assert list_demo_archives(small_settings) == [archive], "a refused restore changes nothing"


# --- the plan: every step counted before the first one -------------------------------------


def test_the_two_week_plan_counts_every_step_it_takes() -> None:
    settings = PipelineSettings()
    from aiops_assets.reference.definitions import build_definitions

    keys = daily_partition_keys(build_definitions(settings))
    schedule = plan_demo(keys, 4, rollout_stages=3).schedule()
    kinds = [kind for kind, _ in schedule]
    # 9 history days (ingest + score), training, the lifecycle, 5 served days (ingest, score,
    # sensors), the fire drill and the staged rollout.
    assert len(schedule) == 9 * 2 + 1 + 1 + 5 * 3 + 1 + 1
    assert kinds.count("fire_drill") == kinds.count("rollout") == 1
    assert kinds.index("lifecycle") < kinds.index("sensors") < kinds.index("fire_drill")
    assert kinds.index("fire_drill") < kinds.index("rollout")


def test_a_short_plan_has_no_fire_drill_and_no_rollout() -> None:
    keys = [f"2026-01-{day:02d}" for day in range(5, 11)]
    kinds = [kind for kind, _ in plan_demo(keys, 4, rollout_stages=3).schedule()]
    assert "fire_drill" not in kinds and "rollout" not in kinds
    assert kinds.count("sensors") == 1


# --- reasons told once, on one line ----------------------------------------------------------


def test_a_long_reason_is_told_once_on_one_line(instance: dg.DagsterInstance) -> None:
    progress = RecordingProgress()
    steps = DemoSteps(dg.Definitions(), instance, DemoResult(), progress, clock=lambda: 0.0)
    steps.reason("rollback_on_regression", LONG_REASON)
    steps.reason("rollback_on_regression requests rollback_champion_job", LONG_REASON[:200])
    steps.reason("champion: rolled back", LONG_REASON)
    assert len(LONG_REASON) > 800
    assert sum(LONG_REASON[:60] in note for note in progress.notes) == 1
    assert progress.notes[1:] == [
        "rollback_on_regression requests rollback_champion_job (reason above)",
        "champion: rolled back (reason above)",
    ]
    assert all(len(note) <= NOTE_WIDTH and "\n" not in note for note in progress.notes)
    # A later step tells its own reasons, even one a sensor repeats every tick.
    steps.announce("2026-01-16", ("sensors",))
    steps.reason("rollback_on_regression", LONG_REASON)
    assert progress.notes[-1].startswith("rollback_on_regression: anomaly_scores")


def test_one_line_cuts_at_a_clause_when_it_can() -> None:
    assert one_line("short\nreason") == "short reason"
    cut = one_line(LONG_REASON, 200)
    assert len(cut) <= 200 and cut.endswith("…")
    assert cut[:-1].endswith(";")
    hard = one_line("x" * 300, 120)
    assert hard == "x" * 119 + "…"


def test_a_text_stream_is_still_a_progress() -> None:
    stream = io.StringIO()
    progress = as_progress(stream)
    progress.begin(2)
    progress.step("first")
    progress.note("detail")
    assert stream.getvalue().splitlines() == ["[ 1/2] first", "        detail"]
    recording = RecordingProgress()
    assert as_progress(recording) is recording


def test_dagster_log_and_warnings_stay_out_unless_verbose(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    with warnings.catch_warnings(record=True) as seen:
        warnings.resetwarnings()  # as a plain `python`, without pytest's own filters
        with dagster_output(verbose=False):
            logging.getLogger("dagster").info("quiet, please")
            warnings.warn("a beta API", dg.BetaWarning, stacklevel=1)
        assert not seen and "quiet, please" not in caplog.text
        with dagster_output(verbose=True):
            logging.getLogger("dagster").info("now loud")
            warnings.warn("a beta API", dg.BetaWarning, stacklevel=1)
        assert len(seen) == 1 and "now loud" in caplog.text
        warnings.simplefilter("error", dg.BetaWarning)
        with dagster_output(verbose=False), pytest.raises(dg.BetaWarning):
            warnings.warn("a beta API", dg.BetaWarning, stacklevel=1)


# --- one short demo, end to end --------------------------------------------------------------


@pytest.mark.slow
def test_a_short_demo_announces_its_true_total_and_prints_no_dagster_log(
    small_settings: PipelineSettings,
    instance: dg.DagsterInstance,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    progress = RecordingProgress()

    result = run_demo(small_settings, instance=instance, progress=progress)

    assert progress.totals == [len(progress.steps)], "the first total is the final one"
    assert progress.ended and result.registry["champion"]
    assert any(step.endswith("sensors") for step in progress.steps)
    assert any("requests" in note for note in progress.notes), "a sensor launched a run"
    captured = capsys.readouterr()
    printed = [*captured.out.splitlines(), *captured.err.splitlines(), *progress.notes]
    assert not [line for line in printed if " - dagster - " in line], printed
    assert not [record for record in caplog.records if record.name.startswith("dagster")]
    assert all(len(note) <= NOTE_WIDTH for note in progress.notes)
