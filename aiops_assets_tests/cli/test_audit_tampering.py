"""Issue 19's tampering by SQL, tried on a trained home: ``aiops audit verify`` names each one.

The attacker can write ``ledger.db`` but does not hold the audit key. Each case edits the registry
around the ledger, as ``sqlite3 ledger.db`` would, and expects verify to exit 1 naming the table,
the row's key and the kind of tampering; the truncation case expects the witness to catch what
the chain alone cannot.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from aiops_assets_tests.cli.conftest import Aiops


def _sql(home: Path, *statements: str) -> None:
    with sqlite3.connect(home / "ledger.db") as conn:
        for statement in statements:
            conn.execute(statement)


def _verify(aiops: Aiops, home: Path) -> tuple[int, dict[str, Any]]:
    code, out, err = aiops("audit", "verify", "--json", "--home", str(home))
    assert out, err
    return code, json.loads(out)


@pytest.mark.parametrize(
    ("statement", "table", "kind"),
    [
        (
            "UPDATE model_versions SET sha256 = '" + "f" * 64 + "' WHERE version = 1",
            "model_versions",
            "registry edited",
        ),
        (
            # The home has one version, so "moving" the champion is rewriting who moved it.
            "UPDATE model_aliases SET updated_by = 'sensor:rollback' WHERE alias = 'champion'",
            "model_aliases",
            "registry edited",
        ),
        (
            "DELETE FROM alias_history WHERE id = (SELECT MAX(id) FROM alias_history)",
            "alias_history",
            "registry deleted",
        ),
        ("UPDATE promotions SET reason = 'signed off'", "promotions", "registry edited"),
    ],
    ids=["version-hash", "champion-row", "history-row-deleted", "promotion-reason"],
)
def test_verify_names_the_table_key_and_kind_of_every_registry_edit(
    aiops: Aiops, copied_home: Path, statement: str, table: str, kind: str
) -> None:
    assert _verify(aiops, copied_home)[0] == 0
    _sql(copied_home, statement)
    code, verdict = _verify(aiops, copied_home)
    assert code == 1 and not verdict["ok"], verdict
    named = {(p["table"], p["kind"]) for p in verdict["problems"]}
    assert (table, kind) in named, verdict
    assert all(p["key"] for p in verdict["problems"] if p["table"]), verdict


def test_a_truncated_chain_with_a_rewound_head_is_caught_by_the_witness(
    aiops: Aiops, copied_home: Path
) -> None:
    code, before = _verify(aiops, copied_home)
    assert code == 0 and before["entries"] > 2, before
    keep = before["entries"] - 2
    # Only audit-only entries may go, or the registry binding would speak first.
    _sql(
        copied_home,
        f"DELETE FROM audit_log WHERE seq > {keep}",
        "UPDATE audit_head SET last_seq = (SELECT MAX(seq) FROM audit_log),"
        " last_hash = (SELECT entry_hash FROM audit_log ORDER BY seq DESC LIMIT 1)",
    )
    code, verdict = _verify(aiops, copied_home)
    assert code == 1, verdict
    assert any(p["kind"] == "truncated" for p in verdict["problems"]), verdict
