"""The soak test's fake clock, loaded into every Python process the soak starts (this folder is
put first on their ``PYTHONPATH``; nothing else puts it there).

``AIOPS_SOAK_CLOCK`` names a file holding an offset in seconds; wall-clock time in the process is
the real time plus that offset, re-read five times a second, so the test moves the clock of the
daemon, the code server and every run at once. Only wall-clock time moves: ``time.time`` (and
``time_ns``, except for gRPC's deadlines) and Dagster's own clock, at the two functions
Dagster's ``freeze_time`` mocks for its tests. ``time.monotonic`` and sleeps stay real, so timeouts and intervals keep their real
lengths however far the clock jumps.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import os
import sys
import time
from datetime import UTC, datetime
from types import ModuleType
from typing import Any

_FILE = os.environ.get("AIOPS_SOAK_CLOCK", "")
_real_time = time.time
_real_time_ns = time.time_ns
_cache = {"offset": 0.0, "read_at": -1.0}


def _offset() -> float:
    now = time.monotonic()
    if now - _cache["read_at"] > 0.2:
        try:
            with open(_FILE, encoding="utf-8") as handle:
                _cache["offset"] = float(handle.read().strip() or 0)
        except (OSError, ValueError):
            pass  # a half-written file: keep the last offset
        _cache["read_at"] = now
    return _cache["offset"]


def _real_caller() -> bool:
    """gRPC hands ``time.time() + timeout`` to its C core, which compares it with the real
    clock: its deadlines must stay real, or every call would expire before it starts."""
    return sys._getframe(2).f_globals.get("__name__", "").startswith("grpc")


def fake_time() -> float:
    if _real_caller():
        return _real_time()
    return _real_time() + _offset()


def fake_time_ns() -> int:
    if _real_caller():
        return _real_time_ns()
    return _real_time_ns() + int(_offset() * 1e9)


def _dagster_time() -> float:
    return _real_time() + _offset()


def _patch_dagster(module: ModuleType) -> None:
    module._mockable_get_current_timestamp = _dagster_time  # type: ignore[attr-defined]
    module._mockable_get_current_datetime = lambda: datetime.fromtimestamp(_dagster_time(), UTC)  # type: ignore[attr-defined]


class _PatchOnImport(importlib.abc.MetaPathFinder):
    """Patches ``dagster._time`` right after it is first imported."""

    def find_spec(self, name: str, path: Any, target: Any = None) -> Any:
        if name != "dagster._time":
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is None or spec.loader is None:
            return spec
        loader = spec.loader
        original = loader.exec_module

        def exec_module(module: ModuleType) -> None:
            original(module)
            _patch_dagster(module)

        loader.exec_module = exec_module  # type: ignore[method-assign]
        return spec


if _FILE:
    time.time = fake_time
    time.time_ns = fake_time_ns
    sys.meta_path.insert(0, _PatchOnImport())
