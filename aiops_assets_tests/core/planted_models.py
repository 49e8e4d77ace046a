"""Model files an attacker could plant, each of which writes a marker file if it is ever built.

Every payload is live: ``assert_payload_is_live`` loads it the unsafe way (trusting the planted
type) and sees the marker appear, so a test asserting the marker is absent cannot pass merely
because the payload was broken.
"""

from __future__ import annotations

import contextlib
import io
import json
import pickle
import shlex
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import skops.io as sio

from aiops_assets.core.model_codec import TRUSTED_TYPES, dump_detector
from aiops_assets.core.models import AnomalyDetector, DetectorConfig, train_detector

OS_SYSTEM = "os.system"
PLANTED_CLASS = f"{__name__}.PlantedObject"


def small_detector(seed: int = 3) -> AnomalyDetector:
    """A real fitted detector, small enough to train in milliseconds."""
    rng = np.random.default_rng(0)
    rows = 300
    frame = pd.DataFrame(
        {
            "timestamp": pd.date_range("2026-01-05", periods=rows, freq="5min"),
            "service": ["api"] * rows,
            "latency__z_12": rng.normal(size=rows),
            "ratio__errors": rng.random(rows),
        }
    )
    return train_detector(frame, DetectorConfig(n_estimators=5, max_samples=64, seed=seed))


class PlantedObject:
    """A class of the attacker's own: building it (``__setstate__``) writes the marker."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __setstate__(self, state: dict[str, Any]) -> None:
        Path(state["marker"]).write_text("executed")
        self.__dict__.update(state)


class _PicklePayload:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[Path, str]]:
        return (Path.write_text, (self.marker, "executed"))


def planted_pickle(marker: Path) -> bytes:
    return pickle.dumps(_PicklePayload(marker))


def planted_class(marker: Path) -> bytes:
    """A real detector whose config is a :class:`PlantedObject` (in our normalized skops form)."""
    detector = small_detector()
    detector.config = PlantedObject(marker)  # type: ignore[assignment]
    return dump_detector(detector)


def planted_os_system(marker: Path) -> bytes:
    """A real detector whose threshold is ``os.system("touch <marker>")``."""
    data = dump_detector(small_detector())
    with zipfile.ZipFile(io.BytesIO(data)) as source:
        entries = {name: source.read(name) for name in source.namelist()}
    schema = json.loads(entries["schema.json"])
    command = json.dumps(f"touch {shlex.quote(str(marker))}")
    schema["content"]["content"]["threshold"] = {
        "__class__": "system",
        "__module__": "os",
        "__loader__": "ConstructorFromReduceNode",
        "content": {
            "__class__": "tuple",
            "__module__": "builtins",
            "__loader__": "TupleNode",
            "content": [
                {
                    "__class__": "str",
                    "__module__": "builtins",
                    "__loader__": "JsonNode",
                    "content": command,
                    "is_json": True,
                }
            ],
        },
    }
    entries["schema.json"] = json.dumps(schema).encode()
    sink = io.BytesIO()
    with zipfile.ZipFile(sink, "w") as target:
        for name, content in entries.items():
            target.writestr(name, content)
    return sink.getvalue()


def assert_payload_is_live(data: bytes, planted_type: str, marker: Path) -> None:
    """Loading with the planted type trusted does run it (then the marker is removed again)."""
    assert not marker.exists()
    # The load may fail after the payload ran (a threshold that is an exit code): only the
    # side effect matters here.
    with contextlib.suppress(Exception):
        sio.loads(data, trusted=[*TRUSTED_TYPES, planted_type])
    assert marker.exists(), f"the planted {planted_type} payload did not run when trusted"
    marker.unlink()
