"""A capsule must name its content exactly, refuse tampering, and say what changed between runs."""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import shutil
import subprocess
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import aiops_assets.core.capsule as capsule_module
from aiops_assets.core.capsule import (
    CAPSULE_SCHEMA,
    Capsule,
    CapsuleError,
    EnvironmentDiff,
    build_capsule,
    capture_environment,
    diff_capsules,
    diff_environments,
    find_project_root,
)

PROJECT_ROOT = Path(__file__).resolve().parents[2]
WHEN = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)
ENVIRONMENT: dict[str, Any] = {
    "python": "3.11.7",
    "implementation": "CPython",
    "platform": "Linux-6.1-x86_64",
    "machine": "x86_64",
    "processor": "x86_64",
    "cpu_count": 8,
    "packages": {"numpy": "2.1.0", "pandas": "3.0.0", "scikit-learn": "1.6.1"},
    "uv_lock_sha256": "a" * 64,
    "git_commit": "b" * 40,
    "git_dirty": False,
    "env": {"PYTHONHASHSEED": "0"},
}


def _kwargs(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "kind": "model",
        "asset": "candidate_model",
        "run_id": "run-1",
        "seeds": {"candidate_model": 7},
        "config": {"candidate_model": {"seed": 7, "contamination": 0.01}, "training_set": {}},
        "inputs": {"features[2026-01-04]": "c" * 64},
        "code_versions": {"candidate_model": "v3"},
        "outputs": {"model": "d" * 64},
        "metrics": {"pr_auc": 0.75},
        "parent": None,
        "environment": ENVIRONMENT,
        "created_at": WHEN,
    }
    base.update(overrides)
    return base


def _capsule(**overrides: Any) -> Capsule:
    return build_capsule(**_kwargs(**overrides))


# --- identity ---------------------------------------------------------------------------------


def test_capsule_id_is_stable_and_independent_of_key_order() -> None:
    first = _capsule()
    reordered = _capsule(
        config={"training_set": {}, "candidate_model": {"contamination": 0.01, "seed": 7}},
        environment=dict(reversed(list(ENVIRONMENT.items()))),
    )
    assert first.capsule_id == _capsule().capsule_id == reordered.capsule_id
    assert len(first.capsule_id) == 64 and int(first.capsule_id, 16) >= 0
    canonical = json.dumps(
        first.body, sort_keys=True, separators=(",", ":"), ensure_ascii=False
    ).encode()
    assert first.capsule_id == hashlib.sha256(canonical).hexdigest()
    assert first == reordered and hash(first) == hash(reordered)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("kind", "training_set"),
        ("asset", "other_model"),
        ("run_id", "run-2"),
        ("run_id", None),
        ("seeds", {"candidate_model": 8}),
        ("config", {"candidate_model": {"seed": 7, "contamination": 0.02}, "training_set": {}}),
        ("inputs", {"features[2026-01-04]": "e" * 64}),
        ("code_versions", {"candidate_model": "v4"}),
        ("outputs", {"model": "f" * 64}),
        ("metrics", {"pr_auc": 0.76}),
        ("parent", "0" * 64),
        ("environment", {**ENVIRONMENT, "packages": {"numpy": "2.2.0"}}),
        ("created_at", WHEN + timedelta(seconds=1)),
    ],
)
def test_capsule_id_changes_with_every_field(field: str, value: Any) -> None:
    assert _capsule(**{field: value}).capsule_id != _capsule().capsule_id


def test_body_is_plain_json_with_the_documented_fields() -> None:
    capsule = _capsule(
        created_at=datetime(2026, 1, 5, 10, 0, tzinfo=timezone(timedelta(hours=2))),
        metrics={"pr_auc": 1, "np": np.float32(0.5)},
        seeds={"a": np.int64(3)},
        config={"threshold": np.float64(0.25), "layers": (1, 2), "n": np.int64(4)},
    )
    body = capsule.body
    assert set(body) == {
        "schema",
        "kind",
        "asset",
        "run_id",
        "created_at",
        "environment",
        "seeds",
        "config",
        "config_hash",
        "inputs",
        "code_versions",
        "outputs",
        "metrics",
        "parent",
    }
    assert body["schema"] == CAPSULE_SCHEMA
    assert body["created_at"] == "2026-01-05T08:00:00+00:00"
    assert capsule.created_at == WHEN
    assert body["metrics"] == {"pr_auc": 1.0, "np": 0.5}
    assert all(type(v) is float for v in body["metrics"].values())
    assert body["seeds"] == {"a": 3} and type(body["seeds"]["a"]) is int
    assert body["config"] == {"threshold": 0.25, "layers": [1, 2], "n": 4}
    expected_hash = hashlib.sha256(
        json.dumps(body["config"], sort_keys=True, separators=(",", ":")).encode()
    ).hexdigest()
    assert body["config_hash"] == capsule.config_hash == expected_hash
    assert (capsule.kind, capsule.asset, capsule.run_id, capsule.parent) == (
        "model",
        "candidate_model",
        "run-1",
        None,
    )
    assert capsule.inputs == {"features[2026-01-04]": "c" * 64}
    assert capsule.outputs == {"model": "d" * 64}
    assert capsule.code_versions == {"candidate_model": "v3"}
    assert capsule.environment == ENVIRONMENT


@pytest.mark.parametrize(
    "overrides",
    [
        {"metrics": {"pr_auc": float("nan")}},
        {"metrics": {"pr_auc": float("inf")}},
        {"metrics": {"pr_auc": "high"}},
        {"config": {"threshold": float("nan")}},
        {"config": {"nested": {"deep": [1, float("-inf")]}}},
        {"config": {"path": Path("/tmp")}},
        {"config": {"when": WHEN}},
        {"config": {1: "int key"}},
        {"seeds": {"a": 1.5}},
        {"seeds": {"a": True}},
        {"inputs": {"features": 3}},
        {"environment": {**ENVIRONMENT, "cpu_count": object()}},
    ],
)
def test_values_json_cannot_carry_exactly_are_refused(overrides: dict[str, Any]) -> None:
    with pytest.raises(CapsuleError):
        _capsule(**overrides)


def test_the_error_names_where_the_bad_value_is() -> None:
    with pytest.raises(CapsuleError, match=r"config\.nested\.deep\[1\]"):
        _capsule(config={"nested": {"deep": [1, float("nan")]}})


def test_default_environment_is_captured() -> None:
    capsule = build_capsule(**{**_kwargs(), "environment": None})
    assert capsule.environment["python"] and "numpy" in capsule.environment["packages"]


# --- JSON round trip --------------------------------------------------------------------------


def test_to_json_round_trips_to_an_equal_capsule() -> None:
    capsule = _capsule(config={"a": (1, 2), "b": {"c": "ünïcode"}}, parent="9" * 64)
    text = capsule.to_json()
    data = json.loads(text)
    assert data["capsule_id"] == capsule.capsule_id
    assert "\n  " in text  # indented for people
    again = Capsule.from_json(text)
    assert again == capsule and again.body == capsule.body
    assert again.capsule_id == capsule.capsule_id
    # Without a claimed id the content still loads (and gets its id computed).
    del data["capsule_id"]
    assert Capsule.from_json(json.dumps(data)).capsule_id == capsule.capsule_id


@pytest.mark.parametrize(
    "tamper",
    [
        lambda d: d["metrics"].__setitem__("pr_auc", 0.99),
        lambda d: d["config"]["candidate_model"].__setitem__("seed", 8),
        lambda d: d["environment"]["packages"].__setitem__("numpy", "9.9.9"),
        lambda d: d.__setitem__("extra", 1),
        lambda d: d.__setitem__("capsule_id", "0" * 64),
    ],
)
def test_a_tampered_capsule_is_refused(tamper: Any) -> None:
    capsule = _capsule()
    data = json.loads(capsule.to_json())
    tamper(data)
    with pytest.raises(CapsuleError, match="does not match its content"):
        Capsule.from_json(json.dumps(data))


def test_malformed_or_newer_capsules_are_refused() -> None:
    with pytest.raises(CapsuleError):
        Capsule.from_json("not json")
    with pytest.raises(CapsuleError):
        Capsule.from_json("[1, 2]")
    with pytest.raises(CapsuleError, match="newer"):
        Capsule.from_json(json.dumps({**_capsule().body, "schema": CAPSULE_SCHEMA + 1}))


# --- environment ------------------------------------------------------------------------------


def test_environment_records_installed_packages_with_their_versions() -> None:
    env = capture_environment(project_root=PROJECT_ROOT, environ={})
    packages = env["packages"]
    assert packages["numpy"] == importlib.metadata.version("numpy") == np.__version__
    import pandas as pd

    assert packages["pandas"] == pd.__version__
    assert packages["scikit-learn"] == importlib.metadata.version("scikit-learn")
    assert list(packages) == sorted(packages)
    assert all(name == name.lower() and "_" not in name for name in packages)
    assert env["cpu_count"] and env["python"].count(".") == 2
    assert {"implementation", "platform", "machine", "processor"} <= set(env)
    json.dumps(env, allow_nan=False)


def test_package_scan_is_done_once_per_process() -> None:
    capture_environment(project_root=PROJECT_ROOT, environ={})
    before = capsule_module._installed_packages.cache_info()
    capture_environment(project_root=PROJECT_ROOT, environ={})
    after = capsule_module._installed_packages.cache_info()
    assert after.misses == before.misses and after.hits == before.hits + 1


def test_uv_lock_hash_is_found_from_the_project_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(PROJECT_ROOT)
    expected = hashlib.sha256((PROJECT_ROOT / "uv.lock").read_bytes()).hexdigest()
    assert find_project_root() == PROJECT_ROOT
    assert capture_environment()["uv_lock_sha256"] == expected


def test_project_root_is_the_nearest_lock_else_this_package(tmp_path: Path) -> None:
    project = tmp_path / "project"
    (project / "src" / "deep").mkdir(parents=True)
    (project / "uv.lock").write_text("version = 1\n")
    assert find_project_root(project / "src" / "deep") == project
    # No lock above tmp_path: fall back to the project this package is installed from.
    assert find_project_root(tmp_path) == PROJECT_ROOT
    env = capture_environment(project_root=project, environ={})
    assert env["uv_lock_sha256"] == hashlib.sha256(b"version = 1\n").hexdigest()
    assert capture_environment(project_root=tmp_path, environ={})["uv_lock_sha256"] is None


@pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")
def test_git_state_of_a_checkout(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", "-C", str(repo), *args], capture_output=True, text=True, check=True
        ).stdout.strip()

    git("init", "-q")
    git("config", "user.email", "t@example.com")
    git("config", "user.name", "t")
    (repo / "a.txt").write_text("a")
    git("add", "a.txt")
    git("commit", "-q", "-m", "one")
    env = capture_environment(project_root=repo, environ={})
    assert env["git_commit"] == git("rev-parse", "HEAD")
    assert env["git_dirty"] is False
    (repo / "a.txt").write_text("b")
    assert capture_environment(project_root=repo, environ={})["git_dirty"] is True


def test_git_fields_are_unknown_outside_a_checkout_or_without_git(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = capture_environment(project_root=tmp_path, environ={})
    assert (env["git_commit"], env["git_dirty"]) == (None, None)
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    env = capture_environment(project_root=PROJECT_ROOT, environ={})
    assert (env["git_commit"], env["git_dirty"]) == (None, None)


def test_only_allow_listed_variables_are_recorded() -> None:
    env = capture_environment(
        project_root=PROJECT_ROOT,
        environ={"TZ": "UTC", "AIOPS_SEED": "7", "AIOPS_AUDIT_KEY": "secret", "HOME": "/root"},
    )
    assert env["env"] == {"TZ": "UTC", "AIOPS_SEED": "7"}


# --- environment diffs ------------------------------------------------------------------------


def test_diff_names_changed_added_and_removed_packages_and_python() -> None:
    current = {
        **ENVIRONMENT,
        "python": "3.12.1",
        "packages": {"numpy": "2.2.1", "pandas": "3.0.0", "foo": "1.0"},
        "uv_lock_sha256": "e" * 64,
        "git_dirty": True,
        "env": {"PYTHONHASHSEED": "1", "TZ": "UTC"},
    }
    diff = diff_environments(ENVIRONMENT, current)
    assert diff.python == ("3.11.7", "3.12.1")
    assert diff.packages_changed == {"numpy": ("2.1.0", "2.2.1")}
    assert diff.packages_added == {"foo": "1.0"}
    assert diff.packages_removed == {"scikit-learn": "1.6.1"}
    assert diff.git_commit is None and diff.git_dirty == (False, True)
    assert diff.env_changed == {"PYTHONHASHSEED": ("0", "1"), "TZ": (None, "UTC")}
    assert not diff.is_empty
    lines = diff.lines()
    assert "python 3.11.7 -> 3.12.1" in lines
    assert "package numpy 2.1.0 -> 2.2.1" in lines
    assert "+ package foo 1.0" in lines
    assert "- package scikit-learn 1.6.1" in lines
    assert f"uv.lock {'a' * 12}… -> {'e' * 12}…" in lines
    assert "git dirty False -> True" in lines
    assert diff.to_dict()["packages_changed"] == {"numpy": ["2.1.0", "2.2.1"]}
    json.dumps(diff.to_dict())


def test_diff_with_a_capsule_missing_fields_reports_unknowns() -> None:
    diff = diff_environments({}, ENVIRONMENT)
    assert diff.python == ("", "3.11.7")
    assert diff.packages_added == ENVIRONMENT["packages"]
    assert diff.git_commit == (None, "b" * 40)
    assert EnvironmentDiff().is_empty and EnvironmentDiff().lines() == []


_versions = st.text(alphabet="0123456789.", min_size=1, max_size=6)
_names = st.text(alphabet="abcdefghij-", min_size=1, max_size=6)


@settings(max_examples=60, deadline=None)
@given(
    packages_a=st.dictionaries(_names, _versions, max_size=8),
    packages_b=st.dictionaries(_names, _versions, max_size=8),
)
def test_package_diff_property(packages_a: dict[str, str], packages_b: dict[str, str]) -> None:
    a = {**ENVIRONMENT, "packages": packages_a}
    b = {**ENVIRONMENT, "packages": packages_b}
    assert diff_environments(a, a).is_empty
    assert diff_environments(b, b).lines() == []
    diff = diff_environments(a, b)
    both = packages_a.keys() & packages_b.keys()
    assert set(diff.packages_changed) == {k for k in both if packages_a[k] != packages_b[k]}
    assert set(diff.packages_added) == packages_b.keys() - packages_a.keys()
    assert set(diff.packages_removed) == packages_a.keys() - packages_b.keys()
    assert diff.is_empty == (packages_a == packages_b)


def test_the_live_environment_does_not_differ_from_itself() -> None:
    env = capture_environment(project_root=PROJECT_ROOT, environ={})
    assert diff_environments(env, env).is_empty


# --- capsule diffs ----------------------------------------------------------------------------


def test_capsule_diff_names_dotted_config_paths_and_every_section() -> None:
    a = _capsule()
    b = _capsule(
        config={
            "candidate_model": {"seed": 8, "contamination": 0.01},
            "training_set": {"days": 7},
        },
        seeds={"candidate_model": 8},
        inputs={"features[2026-01-04]": "e" * 64, "features[2026-01-05]": "f" * 64},
        code_versions={"candidate_model": "v4"},
        outputs={"model": "0" * 64},
        metrics={"pr_auc": 0.5, "f1": 0.4},
        environment={**ENVIRONMENT, "packages": {**ENVIRONMENT["packages"], "numpy": "2.2.1"}},
    )
    diff = diff_capsules(a, b)
    assert diff.config == [("candidate_model.seed", 7, 8), ("training_set.days", None, 7)]
    assert diff.seeds == [("candidate_model", 7, 8)]
    assert diff.inputs == [
        ("features[2026-01-04]", "c" * 64, "e" * 64),
        ("features[2026-01-05]", None, "f" * 64),
    ]
    assert diff.code_versions == [("candidate_model", "v3", "v4")]
    assert diff.outputs == [("model", "d" * 64, "0" * 64)]
    assert diff.metrics == [("f1", None, 0.4), ("pr_auc", 0.75, 0.5)]
    assert diff.environment.packages_changed == {"numpy": ("2.1.0", "2.2.1")}
    assert not diff.is_empty
    lines = diff.lines()
    assert "config candidate_model.seed: 7 -> 8" in lines
    assert "metric pr_auc: 0.75 -> 0.5" in lines
    assert "environment: package numpy 2.1.0 -> 2.2.1" in lines
    assert diff.to_dict()["config"][0] == {"path": "candidate_model.seed", "a": 7, "b": 8}
    json.dumps(diff.to_dict())


def test_capsule_diff_of_a_capsule_with_itself_is_empty_and_env_counts() -> None:
    a = _capsule()
    assert diff_capsules(a, a).is_empty and diff_capsules(a, a).lines() == []
    # Only the run id and time differ: nothing that explains a different result.
    assert diff_capsules(a, _capsule(run_id="run-2", created_at=WHEN + timedelta(1))).is_empty
    env_only = diff_capsules(a, _capsule(environment={**ENVIRONMENT, "python": "3.12.0"}))
    assert not env_only.is_empty
    assert env_only.lines() == ["environment: python 3.11.7 -> 3.12.0"]


def test_config_type_changes_are_differences() -> None:
    diff = diff_capsules(_capsule(config={"n": 1}), _capsule(config={"n": 1.0}))
    assert diff.config == [("n", 1, 1.0)]
    nested = diff_capsules(_capsule(config={"m": {"a": 1}}), _capsule(config={"m": [1]}))
    assert nested.config == [("m", {"a": 1}, [1])]
