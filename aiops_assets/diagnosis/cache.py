"""A repeated ``aiops incident`` with nothing new to read answers from its last answer.

Replays are cached one by one (``replay.py``), but collecting the change log, characterizing the
data and re-measuring label health still cost seconds on every query. When nothing they read
has changed, the report cannot change either, so the rendered answer is stored under a key made
of everything it depends on:

- the Dagster event log's last record id (every materialization, check result and observation,
  hence every partition's data and verdict);
- the ledger's audit head (every registry fact: versions, aliases, flags, feature sets,
  rollouts, thresholds, each written with an audit entry);
- the plugin's own source and the libraries that compute the evidence (a new engine answers
  anew);
- the query (model, window, metric, replays, output form) and the ``AIOPS_*`` settings that
  shape the definitions (secrets excluded: they do not change the answer).

The look-back window's start enters by the hour, so an answer may ignore for up to an hour a
change that has just aged out of the window. ``--no-cache`` always recomputes.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any

from aiops_assets.core.store import ArtifactStore, canonical_json_bytes, sha256_hex
from aiops_assets.metadata import package_versions

_CACHE_PREFIX = "diagnoses"
_LIBRARIES = ("dagster", "pandas", "numpy", "scikit-learn", "scipy")
_PACKAGE = Path(__file__).resolve().parents[1]
# Settings that are secrets or say only where a secret is: they never change a report.
_SECRET_SETTINGS = frozenset({"AIOPS_AUDIT_KEY", "AIOPS_AUDIT_KEY_COMMAND", "AIOPS_AUDIT_OLD_KEYS"})


@cache
def _engine_fingerprint() -> str:
    """The plugin's source, file by file: any edit of the engine is a new engine."""
    digest = hashlib.sha256()
    for path in sorted(_PACKAGE.rglob("*.py")):
        digest.update(str(path.relative_to(_PACKAGE)).encode())
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def _settings_fingerprint(environ: Mapping[str, str]) -> dict[str, str]:
    return {
        name: value
        for name, value in sorted(environ.items())
        if name.startswith("AIOPS_") and name not in _SECRET_SETTINGS
    }


def report_key(
    *,
    event_log_cursor: int | None,
    audit_head: tuple[int, str],
    query: Mapping[str, Any],
    environ: Mapping[str, str] | None = None,
) -> str:
    """The content address of one answer: what it read, what computed it, what was asked."""
    identity = {
        "event_log_cursor": event_log_cursor,
        "audit_head": list(audit_head),
        "engine": _engine_fingerprint(),
        "libraries": package_versions(_LIBRARIES),
        "settings": _settings_fingerprint(os.environ if environ is None else environ),
        "query": dict(query),
    }
    return sha256_hex(canonical_json_bytes(identity))


def cached_answer(store: ArtifactStore, key: str) -> str | None:
    """The stored answer, or None when there is none or it cannot be read (then recompute)."""
    ref = store.get_ref(f"{_CACHE_PREFIX}/{key}")
    if ref is None:
        return None
    try:
        text = store.get_json(ref).get("answer")
    except (OSError, ValueError, AttributeError):
        return None
    return text if isinstance(text, str) else None


def store_answer(store: ArtifactStore, key: str, answer: str) -> None:
    store.set_ref(f"{_CACHE_PREFIX}/{key}", store.put_json({"answer": answer}))
