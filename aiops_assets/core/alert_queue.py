"""Alerts that could not be delivered, kept on disk until a later pass delivers them.

The check and freshness alerts keep their undelivered alerts in their sensor's cursor. The
one-off alerts (a promotion, a rollback, a failed run, a broken audit chain) are sent from
wherever the event happened, which has no cursor: when every attempt of a sink failed, the alert
goes here, with the fan-out targets still owed it, and the redelivery sensor retries it on each
tick in order (``deliver_queue``), so an Alertmanager outage delays a page but never loses it.

A JSON-lines file beside the outbox, changed only under an exclusive ``flock``: the sender
appends while a redelivery pass rewrites, and neither may lose the other's lines. The rewrite
is a temporary file and ``os.replace``, so a crash leaves the old queue or the new one.
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from aiops_assets.core.alerts import (
    Alert,
    AlertDeliveryError,
    AlertSink,
    DeliveryReport,
    PartialDeliveryError,
    QueuedAlert,
    deliver_queue,
)


class PendingAlerts:
    """The queue at ``path`` (created on first use, with its folder)."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._lock_path = self.path.with_name(self.path.name + ".lock")

    def add(self, item: QueuedAlert) -> None:
        with self._locked(), self.path.open("a", encoding="utf-8") as handle:
            handle.write(_encode(item) + "\n")
            handle.flush()
            os.fsync(handle.fileno())

    def add_failed(self, alert: Alert, error: AlertDeliveryError) -> QueuedAlert:
        """Queue ``alert`` for the targets ``error`` says it did not reach (all of them when
        the sink does not fan out)."""
        owed = tuple(error.failed) if isinstance(error, PartialDeliveryError) else None
        item = QueuedAlert(alert, owed)
        self.add(item)
        return item

    def items(self) -> list[QueuedAlert]:
        with self._locked():
            return self._read()

    def deliver(self, sink: AlertSink) -> DeliveryReport:
        """One redelivery pass: send the queue in order, keep what is still owed."""
        with self._locked():
            queue = self._read()
            if not queue:
                return DeliveryReport()
            report = deliver_queue(sink, queue)
            self._write(report.pending)
            return report

    @contextmanager
    def _locked(self) -> Iterator[None]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._lock_path.open("a") as lock:
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock.fileno(), fcntl.LOCK_UN)

    def _read(self) -> list[QueuedAlert]:
        try:
            lines = self.path.read_text(encoding="utf-8").split("\n")
        except FileNotFoundError:
            return []
        items = []
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                items.append(_decode(line))
            except (ValueError, TypeError, KeyError) as error:
                if number == len(lines):
                    break  # a torn last append (a crash mid-line) is not a corrupt queue
                raise ValueError(f"{self.path}:{number}: {error}") from None
        return items

    def _write(self, items: list[QueuedAlert]) -> None:
        temporary = self.path.with_name(self.path.name + ".tmp")
        with temporary.open("w", encoding="utf-8") as handle:
            handle.writelines(_encode(item) + "\n" for item in items)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, self.path)


def pending_path(outbox: Path | str) -> Path:
    """Where the queue of an outbox lives: ``alerts.jsonl`` -> ``alerts.pending.jsonl``."""
    outbox = Path(outbox)
    return outbox.with_name(f"{outbox.stem}.pending{outbox.suffix or '.jsonl'}")


def _encode(item: QueuedAlert) -> str:
    return json.dumps(
        {"alert": json.loads(item.alert.to_json()), "owed": item.owed}, sort_keys=True
    )


def _decode(line: str) -> QueuedAlert:
    data = json.loads(line)
    owed = data["owed"]
    return QueuedAlert(
        Alert.from_json(json.dumps(data["alert"])), None if owed is None else tuple(owed)
    )


__all__ = ["PendingAlerts", "pending_path"]
