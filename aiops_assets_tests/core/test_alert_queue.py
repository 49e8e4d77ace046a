"""The pending queue of one-off alerts: what a sink missed waits on disk, in order, and goes only
to the sinks still owed it."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aiops_assets.core.alert_queue import PendingAlerts, pending_path
from aiops_assets.core.alerts import (
    AlertDeliveryError,
    FanOutSink,
    PartialDeliveryError,
    QueuedAlert,
)
from aiops_assets_tests.core.test_alert_fanout import Switchable, _alert


def _send(sink: FanOutSink, queue: PendingAlerts, partition: str) -> None:
    alert = _alert(partition, kind="champion_rolled_back")
    try:
        sink.send(alert)
    except AlertDeliveryError as error:
        queue.add_failed(alert, error)


def test_an_alert_a_sink_missed_waits_and_reaches_only_that_sink(tmp_path: Path) -> None:
    slack, manager = Switchable("slack"), Switchable("alertmanager")
    sink = FanOutSink([slack, manager])
    queue = PendingAlerts(tmp_path / "alerts.pending.jsonl")
    manager.down = True
    _send(sink, queue, "2026-01-10")
    _send(sink, queue, "2026-01-11")
    assert [a.partition for a in slack.alerts] == ["2026-01-10", "2026-01-11"]
    assert [item.owed for item in queue.items()] == [("1:alertmanager",), ("1:alertmanager",)]

    report = queue.deliver(sink)  # still down: nothing lost, nothing sent twice
    assert report.sent == [] and len(report.pending) == 2 and report.errors
    manager.down = False
    report = queue.deliver(sink)
    assert [a.partition for a in report.sent] == ["2026-01-10", "2026-01-11"]
    assert [a.partition for a in manager.alerts] == ["2026-01-10", "2026-01-11"]
    assert len(slack.alerts) == 2
    assert queue.items() == []


def test_a_torn_last_line_is_dropped_but_a_corrupt_one_is_refused(tmp_path: Path) -> None:
    queue = PendingAlerts(tmp_path / "pending.jsonl")
    queue.add(QueuedAlert(_alert("2026-01-10")))
    with queue.path.open("a", encoding="utf-8") as handle:
        handle.write('{"alert": {"kind"')
    assert [item.alert.partition for item in queue.items()] == ["2026-01-10"]
    queue.path.write_text('not json\n{"alert": {}, "owed": null}\n', encoding="utf-8")
    with pytest.raises(ValueError, match=r"pending\.jsonl:1"):
        queue.items()


def test_appends_from_many_senders_are_all_kept(tmp_path: Path) -> None:
    queue = PendingAlerts(tmp_path / "pending.jsonl")
    down = Switchable("down")
    down.down = True
    sink = FanOutSink([down])
    threads = [
        threading.Thread(target=_send, args=(sink, queue, f"2026-01-{day:02d}"))
        for day in range(1, 21)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(item.alert.partition or "" for item in queue.items()) == [
        f"2026-01-{day:02d}" for day in range(1, 21)
    ]


def test_the_queue_lives_beside_its_outbox() -> None:
    assert pending_path("/h/alerts.jsonl") == Path("/h/alerts.pending.jsonl")


@given(owed=st.none() | st.lists(st.text(min_size=1), max_size=3).map(tuple))
def test_what_is_owed_round_trips(owed: tuple[str, ...] | None) -> None:
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        queue = PendingAlerts(Path(folder) / "p.jsonl")
        queue.add(QueuedAlert(_alert("2026-01-10"), owed))
        [item] = queue.items()
        assert item == QueuedAlert(_alert("2026-01-10"), owed)


def test_a_partial_failure_is_owed_to_the_failed_targets_only(tmp_path: Path) -> None:
    queue = PendingAlerts(tmp_path / "p.jsonl")
    error = PartialDeliveryError("x", failed={"1:am": "down"}, delivered=["0:slack"])
    item = queue.add_failed(_alert("2026-01-10"), error)
    assert item.owed == ("1:am",)
    whole = queue.add_failed(_alert("2026-01-11"), AlertDeliveryError("down", sink="slack"))
    assert whole.owed is None
