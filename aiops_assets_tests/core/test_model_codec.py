"""The model codec: the same model gives the same bytes in any process, and nothing untrusted is built."""

from __future__ import annotations

import hashlib
import io
import json
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from aiops_assets.core.model_codec import (
    ModelFormatError,
    dump_detector,
    load_detector,
)
from aiops_assets_tests.core.planted_models import (
    OS_SYSTEM,
    PLANTED_CLASS,
    assert_payload_is_live,
    planted_class,
    planted_os_system,
    planted_pickle,
    small_detector,
)
from aiops_assets_tests.paths import REPO


def _frame() -> pd.DataFrame:
    rng = np.random.default_rng(1)
    return pd.DataFrame({"latency__z_12": rng.normal(size=50), "ratio__errors": rng.random(50)})


def test_two_processes_give_the_same_bytes_for_the_same_training() -> None:
    # A fresh interpreter has other memory addresses and another clock: what skops writes raw.
    code = (
        "import hashlib; from aiops_assets.core.model_codec import dump_detector; "
        "from aiops_assets_tests.core.planted_models import small_detector; "
        "print(hashlib.sha256(dump_detector(small_detector())).hexdigest())"
    )
    other = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True
    )
    here = dump_detector(small_detector())
    assert other.stdout.strip() == hashlib.sha256(here).hexdigest()
    assert dump_detector(small_detector()) == here
    assert dump_detector(small_detector(seed=4)) != here


def test_the_archive_has_no_dates_addresses_or_compression() -> None:
    with zipfile.ZipFile(io.BytesIO(dump_detector(small_detector()))) as archive:
        infos = archive.infolist()
        schema = json.loads(archive.read("schema.json"))
    assert [info.filename for info in infos] == sorted(info.filename for info in infos)
    assert {info.date_time for info in infos} == {(1980, 1, 1, 0, 0, 0)}
    assert {info.compress_type for info in infos} == {zipfile.ZIP_STORED}
    ids = [int(str(node)) for node in _ids(schema)]
    assert ids and max(ids) <= len(set(ids)), "ids are renumbered 1..n, not memory addresses"


def _ids(value: object) -> list[object]:
    if isinstance(value, dict):
        own = [value["__id__"]] if "__id__" in value else []
        return own + [found for child in value.values() for found in _ids(child)]
    if isinstance(value, list):
        return [found for child in value for found in _ids(child)]
    return []


def test_a_loaded_detector_scores_the_same_and_dumps_to_the_same_bytes() -> None:
    detector = small_detector()
    data = dump_detector(detector)
    loaded = load_detector(data)
    np.testing.assert_array_equal(loaded.score(_frame()), detector.score(_frame()))
    assert loaded.threshold == detector.threshold
    assert loaded.config == detector.config
    assert dump_detector(loaded) == data


@pytest.mark.parametrize(
    ("plant", "planted_type"),
    [(planted_os_system, OS_SYSTEM), (planted_class, PLANTED_CLASS)],
    ids=["os.system", "own-class"],
)
def test_a_skops_file_naming_an_untrusted_type_is_refused_unexecuted(
    tmp_path: Path, plant: object, planted_type: str
) -> None:
    marker = tmp_path / "pwned"
    data = plant(marker)  # type: ignore[operator]
    assert_payload_is_live(data, planted_type, marker)
    with pytest.raises(ModelFormatError, match=rf"outside the trusted list: \['{planted_type}'\]"):
        load_detector(data)
    assert not marker.exists()


def test_a_pickle_is_refused_unexecuted(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    with pytest.raises(ModelFormatError, match="is a Python pickle; pickled models are no longer"):
        load_detector(planted_pickle(marker))
    assert not marker.exists()


def test_a_tree_with_out_of_range_children_is_refused() -> None:
    data = dump_detector(small_detector())
    detector = load_detector(data)
    tree = detector.pipeline.named_steps["forest"].estimators_[0].tree_
    state = tree.__getstate__()
    state["nodes"]["left_child"][0] = tree.node_count + 5
    tree.__setstate__(state)
    with pytest.raises(ModelFormatError, match="node indices are out of range"):
        load_detector(dump_detector(detector))


def test_only_detectors_are_dumped_and_garbage_is_refused() -> None:
    with pytest.raises(TypeError, match="only an AnomalyDetector"):
        dump_detector({"threshold": 0.5})  # type: ignore[arg-type]
    with pytest.raises(ModelFormatError, match="not a skops file"):
        load_detector(b"not a model")
    with pytest.raises(ModelFormatError, match="not a readable skops file"):
        load_detector(b"PK\x03\x04" + b"\x00" * 40)
