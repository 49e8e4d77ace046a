"""The code fingerprint tells a relabelled deploy from a changed computation."""

from __future__ import annotations

import os
import subprocess
import sys
import types
from typing import Any
from unittest import mock

from aiops_assets.core import features as core_features
from aiops_assets.core.code_fingerprint import code_fingerprint


def _module(source: str) -> types.ModuleType:
    module = types.ModuleType("planted")
    exec(compile(source, "<planted>", "exec"), module.__dict__)
    return module


def test_the_same_functions_give_the_same_fingerprint_and_a_constant_bump_does_not_count() -> None:
    before = _module("CODE_VERSION = 'features-2'\ndef ratio(a, b):\n    return a / b\n")
    after = _module("CODE_VERSION = 'features-2.7'\ndef ratio(a, b):\n    return a / b\n")
    assert code_fingerprint([before]) == code_fingerprint([after])


def test_a_changed_body_constant_or_default_changes_it() -> None:
    base = code_fingerprint([_module("def ratio(a, b):\n    return a / b\n")])
    for source in (
        "def ratio(a, b):\n    return b / a\n",
        "def ratio(a, b):\n    return a / b * 100\n",
        "def ratio(a, b=1):\n    return a / b\n",
    ):
        assert code_fingerprint([_module(source)]) != base, source


def test_a_function_patched_at_run_time_changes_it() -> None:
    # What a hot-fix or a wrapper installed at import does: the function bound in the module
    # is another one, with its own closure.
    before = code_fingerprint([core_features])
    original = core_features._service_features

    def clipped(*args: Any, **kwargs: Any) -> Any:
        return original(*args, **kwargs)

    with mock.patch.object(core_features, "_service_features", clipped):
        assert code_fingerprint([core_features]) != before
    assert code_fingerprint([core_features]) == before


def test_it_does_not_depend_on_the_process() -> None:
    # Sets of strings iterate in a per-process order; the fingerprint must not.
    script = (
        "from aiops_assets.core import features, models\n"
        "from aiops_assets.core.code_fingerprint import code_fingerprint\n"
        "print(code_fingerprint([features, models]))"
    )
    runs = {
        subprocess.run(
            [sys.executable, "-c", script],
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ, "PYTHONHASHSEED": seed},
        ).stdout.strip()
        for seed in ("1", "2")
    }
    assert len(runs) == 1 and len(next(iter(runs))) == 16
