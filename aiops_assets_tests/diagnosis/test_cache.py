"""The stored answer's key: anything the report reads, computes it or asks for is in it."""

from __future__ import annotations

from pathlib import Path

from aiops_assets.core.store import ArtifactStore
from aiops_assets.diagnosis.cache import cached_answer, report_key, store_answer

QUERY = {"model": "anomaly_detector", "metric": "f1", "replays": 5, "json": True}
ENVIRON = {"AIOPS_HOME": "/srv/aiops", "AIOPS_AUDIT_KEY": "secret", "PATH": "/bin"}


def _key(**changes: object) -> str:
    arguments: dict[str, object] = {
        "event_log_cursor": 41,
        "audit_head": (7, "ab" * 32),
        "query": QUERY,
        "environ": ENVIRON,
    }
    return report_key(**(arguments | changes))  # type: ignore[arg-type]


def test_the_same_history_and_question_give_the_same_key() -> None:
    assert _key() == _key()


def test_new_events_a_new_audit_entry_another_question_or_setting_give_another_key() -> None:
    others = [
        _key(event_log_cursor=42),
        _key(audit_head=(8, "cd" * 32)),
        _key(query={**QUERY, "metric": "false_alarm_rate"}),
        _key(environ={**ENVIRON, "AIOPS_HOME": "/srv/other"}),
    ]
    assert len({_key(), *others}) == 1 + len(others)


def test_secrets_and_foreign_variables_do_not_change_the_key() -> None:
    assert _key(environ={**ENVIRON, "AIOPS_AUDIT_KEY": "rotated", "PATH": "/usr/bin"}) == _key()


def test_an_answer_is_read_back_and_a_missing_one_is_none(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path / "store")
    assert cached_answer(store, _key()) is None
    store_answer(store, _key(), '{"verdict": "x"}')
    assert cached_answer(store, _key()) == '{"verdict": "x"}'
    assert cached_answer(store, _key(event_log_cursor=99)) is None
