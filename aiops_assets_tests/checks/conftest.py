from __future__ import annotations

from pathlib import Path

import pytest

from aiops_assets.io import ArtifactRefIOManager
from aiops_assets.resources import ArtifactStoreResource


@pytest.fixture
def resources(tmp_path: Path) -> dict[str, object]:
    """The store and IO manager a check's assets need, over one fresh store."""
    root = str(tmp_path / "store")
    return {
        "artifact_store": ArtifactStoreResource(root=root),
        "artifact_io_manager": ArtifactRefIOManager(root=root),
    }
