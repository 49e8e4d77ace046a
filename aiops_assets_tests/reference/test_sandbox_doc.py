"""docs/sandbox.md's worked example runs as written, and leaves production untouched."""

from __future__ import annotations

import contextlib
import hashlib
import io
import re
import shutil
from pathlib import Path

import pytest

from aiops_assets.reference.settings import PipelineSettings
from aiops_assets_tests.paths import DOCS

DOC = DOCS / "sandbox.md"


def _code_blocks(text: str) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", text, flags=re.DOTALL | re.MULTILINE)


def _fingerprint(folder: Path) -> dict[str, str]:
    return {
        str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


def test_the_worked_example_runs_end_to_end(
    trained_home: PipelineSettings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocks = _code_blocks(DOC.read_text(encoding="utf-8"))
    assert len(blocks) >= 6
    home = tmp_path / ".aiops"
    shutil.copytree(trained_home.home / "store", home / "store")
    before = _fingerprint(home / "store")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("AIOPS_AUDIT_KEY", raising=False)
    namespace: dict[str, object] = {}
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        for block in blocks:
            exec(compile(block, str(DOC), "exec"), namespace)
    output = printed.getvalue()

    assert "refused: the sandbox environment cannot promote anything" in output
    assert "quality          pass" in output
    assert "criterion met:" in output
    # Everything written went into the sandbox's namespace; production's store is as it was.
    assert _fingerprint(home / "store") == before
    assert (home / "sandbox" / "ledger.db").is_file()
    assert any((home / "sandbox" / "store" / "objects").rglob("*"))
