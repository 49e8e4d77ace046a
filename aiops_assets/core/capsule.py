"""Run capsules: one self-verifying JSON record of everything a training step needs to be re-run.

A model hash proves *what* was produced; it says nothing about *how*. A capsule pins the how:
the interpreter and every installed package, the lock file, the code commit, the seeds, the
configs, the content hashes of the inputs, and what came out. Its id is the SHA-256 of its
canonical JSON, so a capsule cannot be edited after the fact without changing its name, and two
capsules with the same id are the same record wherever they were written.

Only allow-listed environment variables are recorded: the environment routinely carries secrets
(tokens, passwords), and a capsule is meant to be shared.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.metadata
import json
import math
import os
import platform
import re
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

CAPSULE_SCHEMA = 1
ENV_ALLOWLIST = (
    "PYTHONHASHSEED",
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "TZ",
    "AIOPS_SEED",
    "AIOPS_START",
    "AIOPS_DAYS",
    "AIOPS_SOURCE_KIND",
    "AIOPS_STORE_ROOT",
)
LOCK_FILE = "uv.lock"
_GIT_TIMEOUT_S = 5


class CapsuleError(ValueError):
    """A capsule that cannot be built or trusted (non-JSON content, an id that does not match)."""


# --- canonical encoding -----------------------------------------------------------------------


def canonical_json(value: Any) -> str:
    """The one byte spelling of a JSON value that the capsule id is computed over.

    No ``default=``: anything that is not already plain JSON must be rejected (or converted by
    ``build_capsule``) before it gets here, or the id would depend on how a repr looks today.
    """
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    )


def _sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _json_safe(value: Any, path: str) -> Any:
    """Plain JSON types, or a ``CapsuleError`` naming where the offending value sits.

    Tuples become lists and numpy scalars their Python values, because that is what a reader
    gets back from the JSON: building and re-reading a capsule must give equal bodies.
    """
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise CapsuleError(f"{path} is {value!r}; a capsule holds finite numbers only")
        return float(value)
    if isinstance(value, Mapping):
        result: dict[str, Any] = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise CapsuleError(f"{path} has the key {key!r}; JSON object keys must be strings")
            result[key] = _json_safe(item, f"{path}.{key}" if path else key)
        return result
    if isinstance(value, list | tuple):
        return [_json_safe(item, f"{path}[{index}]") for index, item in enumerate(value)]
    item_method = getattr(value, "item", None)
    if callable(item_method) and getattr(value, "shape", None) == ():
        # numpy scalars (np.int64, np.float32, np.bool_) are numbers in all but type.
        return _json_safe(item_method(), path)
    raise CapsuleError(
        f"{path} is a {type(value).__name__} ({value!r:.80}), which is not JSON; record a "
        "string, number, boolean, null, list or mapping instead"
    )


# --- environment ------------------------------------------------------------------------------


def find_project_root(start: Path | None = None) -> Path | None:
    """The nearest directory holding ``uv.lock``: the project whose lock pins the packages.

    Searching from the working directory first finds the project being run; falling back to
    this package's own location still finds it when a scheduler starts us from elsewhere.
    """
    origins = [Path.cwd() if start is None else Path(start), Path(__file__).parent]
    for origin in origins:
        origin = origin.resolve()
        for directory in (origin, *origin.parents):
            if (directory / LOCK_FILE).is_file():
                return directory
    return None


def _normalize_name(name: str) -> str:
    # PEP 503: "Scikit_Learn" and "scikit-learn" are one package.
    return re.sub(r"[-_.]+", "-", name).lower()


@functools.lru_cache(maxsize=1)
def _installed_packages() -> tuple[tuple[str, str], ...]:
    """Every installed distribution, scanned once per process: it is read per materialization,
    and walking site-packages costs far more than the training steps it describes."""
    found: dict[str, str] = {}
    for distribution in importlib.metadata.distributions():
        name = distribution.metadata["Name"] if distribution.metadata else None
        if not name:
            continue
        # sys.path order: the first distribution found is the one an import would load.
        found.setdefault(_normalize_name(name), distribution.version)
    return tuple(sorted(found.items()))


@functools.lru_cache(maxsize=1)
def _platform_facts() -> tuple[tuple[str, Any], ...]:
    # platform.processor() may shell out to ``uname``; none of these change within a process.
    return (
        ("python", platform.python_version()),
        ("implementation", platform.python_implementation()),
        ("platform", platform.platform()),
        ("machine", platform.machine()),
        ("processor", platform.processor()),
        ("cpu_count", os.cpu_count()),
    )


def _git(root: Path, *args: str) -> str | None:
    try:
        completed = subprocess.run(
            ["git", "-C", str(root), *args],
            capture_output=True,
            text=True,
            timeout=_GIT_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if completed.returncode != 0:
        return None
    return completed.stdout


def _git_state(root: Path | None) -> tuple[str | None, bool | None]:
    """The commit and whether the tree has changes: unknown (None), not guessed, without git."""
    if root is None:
        return None, None
    head = _git(root, "rev-parse", "HEAD")
    if head is None or not head.strip():
        return None, None
    status = _git(root, "status", "--porcelain")
    return head.strip(), (None if status is None else bool(status.strip()))


def _file_sha256(path: Path) -> str | None:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None


def capture_environment(
    *, project_root: Path | None = None, environ: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """What, besides code and data, can change a result: interpreter, packages, lock, commit.

    Git state is re-read on every call (a working tree changes between runs); the package scan
    is cached for the process, since the installed packages of a running process do not.
    """
    root = find_project_root() if project_root is None else Path(project_root)
    env = os.environ if environ is None else environ
    commit, dirty = _git_state(root)
    return {
        **dict(_platform_facts()),
        "packages": dict(_installed_packages()),
        "uv_lock_sha256": None if root is None else _file_sha256(root / LOCK_FILE),
        "git_commit": commit,
        "git_dirty": dirty,
        "env": {name: str(env[name]) for name in ENV_ALLOWLIST if name in env},
    }


# --- the capsule ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Capsule:
    """A capsule body and the id derived from it; the id is never stored apart from the body."""

    body: dict[str, Any]

    # Identity is the id: {"x": 1} and {"x": 1.0} are equal dicts but different JSON, and so
    # different capsules.
    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Capsule):
            return NotImplemented
        return self.capsule_id == other.capsule_id

    def __hash__(self) -> int:
        return hash(self.capsule_id)

    @property
    def capsule_id(self) -> str:
        return _sha256_text(canonical_json(self.body))

    @property
    def schema(self) -> int:
        return int(self.body.get("schema", CAPSULE_SCHEMA))

    @property
    def kind(self) -> str:
        return str(self.body.get("kind", ""))

    @property
    def asset(self) -> str:
        return str(self.body.get("asset", ""))

    @property
    def run_id(self) -> str | None:
        run_id = self.body.get("run_id")
        return None if run_id is None else str(run_id)

    @property
    def parent(self) -> str | None:
        parent = self.body.get("parent")
        return None if parent is None else str(parent)

    @property
    def created_at(self) -> datetime | None:
        text = self.body.get("created_at")
        if not isinstance(text, str):
            return None
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            return None
        return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)

    @property
    def config_hash(self) -> str | None:
        value = self.body.get("config_hash")
        return None if value is None else str(value)

    @property
    def inputs(self) -> dict[str, str]:
        return dict(self.body.get("inputs") or {})

    @property
    def outputs(self) -> dict[str, str]:
        return dict(self.body.get("outputs") or {})

    @property
    def metrics(self) -> dict[str, float]:
        return {name: float(value) for name, value in (self.body.get("metrics") or {}).items()}

    @property
    def config(self) -> dict[str, Any]:
        return dict(self.body.get("config") or {})

    @property
    def seeds(self) -> dict[str, int]:
        return {name: int(value) for name, value in (self.body.get("seeds") or {}).items()}

    @property
    def code_versions(self) -> dict[str, str]:
        return dict(self.body.get("code_versions") or {})

    @property
    def environment(self) -> dict[str, Any]:
        return dict(self.body.get("environment") or {})

    def to_json(self) -> str:
        """Indented for people and diffs; the id is recomputed from the body when read back."""
        return json.dumps(
            {"capsule_id": self.capsule_id, **self.body},
            indent=2,
            sort_keys=True,
            ensure_ascii=False,
            allow_nan=False,
        )

    @classmethod
    def from_json(cls, text: str) -> Capsule:
        """A capsule read back from text, refused if the id it claims is not its content's."""
        try:
            data = json.loads(text)
        except ValueError as error:
            raise CapsuleError(f"a capsule must be JSON: {error}") from error
        if not isinstance(data, dict):
            raise CapsuleError("a capsule must be a JSON object")
        claimed = data.pop("capsule_id", None)
        schema = data.get("schema", CAPSULE_SCHEMA)
        if isinstance(schema, int) and schema > CAPSULE_SCHEMA:
            raise CapsuleError(
                f"the capsule has schema {schema}, newer than this code's {CAPSULE_SCHEMA}; "
                "upgrade aiops_assets to read it"
            )
        try:
            capsule = cls(_json_safe(data, ""))
        except CapsuleError as error:
            raise CapsuleError(f"the capsule is not plain JSON: {error}") from error
        if claimed is not None and claimed != capsule.capsule_id:
            raise CapsuleError(f"capsule {claimed} does not match its content")
        return capsule


def _string_map(values: Mapping[str, Any], what: str) -> dict[str, str]:
    result: dict[str, str] = {}
    for name, value in values.items():
        if not isinstance(name, str) or not isinstance(value, str):
            raise CapsuleError(f"{what} maps names to strings; {name!r} -> {value!r} is not")
        result[name] = value
    return result


def build_capsule(
    *,
    kind: str,
    asset: str,
    run_id: str | None,
    seeds: Mapping[str, int],
    config: Mapping[str, Any],
    inputs: Mapping[str, str],
    code_versions: Mapping[str, str],
    outputs: Mapping[str, str],
    metrics: Mapping[str, float],
    parent: str | None = None,
    environment: Mapping[str, Any] | None = None,
    created_at: datetime | None = None,
) -> Capsule:
    """A capsule whose body is plain JSON, so its id is the same on every machine that reads it.

    Values that JSON cannot carry faithfully (NaN, infinities, objects) are refused here rather
    than silently stringified: a capsule that cannot be re-read exactly cannot be re-run.
    """
    clean_seeds: dict[str, int] = {}
    for name, seed in seeds.items():
        if isinstance(seed, bool) or not hasattr(seed, "__index__"):
            raise CapsuleError(f"seed {name!r} is {seed!r}; seeds are integers")
        clean_seeds[str(name)] = int(seed.__index__())
    clean_metrics: dict[str, float] = {}
    for name, metric in metrics.items():
        try:
            number = float(metric)
        except (TypeError, ValueError) as error:
            raise CapsuleError(f"metric {name!r} is {metric!r}, not a number") from error
        if not math.isfinite(number):
            raise CapsuleError(f"metric {name!r} is {number!r}; a capsule holds finite numbers")
        clean_metrics[str(name)] = number
    clean_config = _json_safe(dict(config), "config")
    moment = datetime.now(UTC) if created_at is None else created_at
    moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    body = {
        "schema": CAPSULE_SCHEMA,
        "kind": str(kind),
        "asset": str(asset),
        "run_id": None if run_id is None else str(run_id),
        "created_at": moment.isoformat(),
        "environment": _json_safe(
            dict(capture_environment() if environment is None else environment), "environment"
        ),
        "seeds": clean_seeds,
        "config": clean_config,
        "config_hash": _sha256_text(canonical_json(clean_config)),
        "inputs": _string_map(inputs, "inputs"),
        "code_versions": _string_map(code_versions, "code_versions"),
        "outputs": _string_map(outputs, "outputs"),
        "metrics": clean_metrics,
        "parent": None if parent is None else str(parent),
    }
    return Capsule(body)


# --- diffs ------------------------------------------------------------------------------------


def _short(value: Any) -> str:
    if value is None:
        return "(none)"
    text = str(value)
    return f"{text[:12]}…" if len(text) > 12 else text


def _pair(recorded: Any, current: Any) -> tuple[Any, Any] | None:
    return None if recorded == current else (recorded, current)


@dataclass(frozen=True)
class EnvironmentDiff:
    """How the environment now differs from a recorded one; empty means "same as recorded"."""

    python: tuple[str, str] | None = None
    platform: tuple[str, str] | None = None
    packages_added: dict[str, str] = field(default_factory=dict)
    packages_removed: dict[str, str] = field(default_factory=dict)
    packages_changed: dict[str, tuple[str, str]] = field(default_factory=dict)
    uv_lock: tuple[str | None, str | None] | None = None
    git_commit: tuple[str | None, str | None] | None = None
    git_dirty: tuple[bool | None, bool | None] | None = None
    env_changed: dict[str, tuple[str | None, str | None]] = field(default_factory=dict)

    @property
    def is_empty(self) -> bool:
        return not (
            self.python
            or self.platform
            or self.packages_added
            or self.packages_removed
            or self.packages_changed
            or self.uv_lock
            or self.git_commit
            or self.git_dirty
            or self.env_changed
        )

    def lines(self) -> list[str]:
        """One line per difference, most likely culprits (interpreter, packages) first."""
        lines: list[str] = []
        if self.python:
            lines.append(f"python {self.python[0]} -> {self.python[1]}")
        if self.platform:
            lines.append(f"platform {self.platform[0]} -> {self.platform[1]}")
        lines += [
            f"package {name} {old} -> {new}"
            for name, (old, new) in sorted(self.packages_changed.items())
        ]
        lines += [f"+ package {name} {v}" for name, v in sorted(self.packages_added.items())]
        lines += [f"- package {name} {v}" for name, v in sorted(self.packages_removed.items())]
        if self.uv_lock:
            lines.append(f"uv.lock {_short(self.uv_lock[0])} -> {_short(self.uv_lock[1])}")
        if self.git_commit:
            lines.append(f"git commit {_short(self.git_commit[0])} -> {_short(self.git_commit[1])}")
        if self.git_dirty:
            lines.append(f"git dirty {self.git_dirty[0]} -> {self.git_dirty[1]}")
        lines += [
            f"env {name} {_short(old) if old is None else old} -> "
            f"{_short(new) if new is None else new}"
            for name, (old, new) in sorted(self.env_changed.items())
        ]
        return lines

    def to_dict(self) -> dict[str, Any]:
        def pair(value: tuple[Any, Any] | None) -> list[Any] | None:
            return None if value is None else list(value)

        return {
            "python": pair(self.python),
            "platform": pair(self.platform),
            "packages_added": dict(sorted(self.packages_added.items())),
            "packages_removed": dict(sorted(self.packages_removed.items())),
            "packages_changed": {
                name: list(versions) for name, versions in sorted(self.packages_changed.items())
            },
            "uv_lock": pair(self.uv_lock),
            "git_commit": pair(self.git_commit),
            "git_dirty": pair(self.git_dirty),
            "env_changed": {
                name: list(values) for name, values in sorted(self.env_changed.items())
            },
        }


def _opt_str(value: Any) -> str | None:
    return None if value is None else str(value)


def diff_environments(recorded: Mapping[str, Any], current: Mapping[str, Any]) -> EnvironmentDiff:
    """Recorded against current; keys missing on either side (an older capsule) count as unknown."""
    old_packages = {str(k): str(v) for k, v in (recorded.get("packages") or {}).items()}
    new_packages = {str(k): str(v) for k, v in (current.get("packages") or {}).items()}
    old_env = {str(k): str(v) for k, v in (recorded.get("env") or {}).items()}
    new_env = {str(k): str(v) for k, v in (current.get("env") or {}).items()}
    python = _pair(str(recorded.get("python", "")), str(current.get("python", "")))
    platform_pair = _pair(str(recorded.get("platform", "")), str(current.get("platform", "")))
    return EnvironmentDiff(
        python=python,
        platform=platform_pair,
        packages_added={
            name: version
            for name, version in sorted(new_packages.items())
            if name not in old_packages
        },
        packages_removed={
            name: version
            for name, version in sorted(old_packages.items())
            if name not in new_packages
        },
        packages_changed={
            name: (old_packages[name], new_packages[name])
            for name in sorted(old_packages.keys() & new_packages.keys())
            if old_packages[name] != new_packages[name]
        },
        uv_lock=_pair(
            _opt_str(recorded.get("uv_lock_sha256")), _opt_str(current.get("uv_lock_sha256"))
        ),
        git_commit=_pair(_opt_str(recorded.get("git_commit")), _opt_str(current.get("git_commit"))),
        git_dirty=_pair(recorded.get("git_dirty"), current.get("git_dirty")),
        env_changed={
            name: (old_env.get(name), new_env.get(name))
            for name in sorted(old_env.keys() | new_env.keys())
            if old_env.get(name) != new_env.get(name)
        },
    )


Change = tuple[str, Any, Any]


def _nested_diff(a: Any, b: Any, path: str = "") -> list[Change]:
    """Differences by dotted path, descending only where both sides are mappings.

    A key present on one side only is reported with ``None`` for the missing side.
    """
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        changes: list[Change] = []
        for key in sorted(set(a) | set(b), key=str):
            child = f"{path}.{key}" if path else str(key)
            if key not in a:
                changes.append((child, None, b[key]))
            elif key not in b:
                changes.append((child, a[key], None))
            else:
                changes += _nested_diff(a[key], b[key], child)
        return changes
    # 1 == 1.0 == True in Python, but not in a config file: compare type as well as value.
    if a == b and type(a) is type(b):
        return []
    return [(path, a, b)]


def _render(value: Any) -> str:
    try:
        return json.dumps(value, sort_keys=True, ensure_ascii=False)
    except (TypeError, ValueError):
        return repr(value)


@dataclass(frozen=True)
class CapsuleDiff:
    """What differs between two capsules: why two runs of "the same" step disagree."""

    config: list[Change] = field(default_factory=list)
    seeds: list[Change] = field(default_factory=list)
    inputs: list[Change] = field(default_factory=list)
    code_versions: list[Change] = field(default_factory=list)
    outputs: list[Change] = field(default_factory=list)
    metrics: list[tuple[str, float | None, float | None]] = field(default_factory=list)
    environment: EnvironmentDiff = field(default_factory=EnvironmentDiff)

    @property
    def is_empty(self) -> bool:
        return not (
            self.config
            or self.seeds
            or self.inputs
            or self.code_versions
            or self.outputs
            or self.metrics
        ) and (self.environment.is_empty)

    def lines(self) -> list[str]:
        """Causes (config, seeds, inputs, code) before effects (outputs, metrics)."""
        lines: list[str] = []
        for section, changes in (
            ("config", self.config),
            ("seed", self.seeds),
            ("input", self.inputs),
            ("code", self.code_versions),
        ):
            lines += [f"{section} {p}: {_render(a)} -> {_render(b)}" for p, a, b in changes]
        lines += [f"environment: {line}" for line in self.environment.lines()]
        lines += [f"output {p}: {_render(a)} -> {_render(b)}" for p, a, b in self.outputs]
        lines += [f"metric {p}: {_render(a)} -> {_render(b)}" for p, a, b in self.metrics]
        return lines

    def to_dict(self) -> dict[str, Any]:
        def rows(changes: list[Change]) -> list[dict[str, Any]]:
            return [{"path": path, "a": a, "b": b} for path, a, b in changes]

        return {
            "config": rows(self.config),
            "seeds": rows(self.seeds),
            "inputs": rows(self.inputs),
            "code_versions": rows(self.code_versions),
            "outputs": rows(self.outputs),
            "metrics": rows(list(self.metrics)),
            "environment": self.environment.to_dict(),
        }


def diff_capsules(a: Capsule, b: Capsule) -> CapsuleDiff:
    """``a`` is the reference (the recorded run), ``b`` the one being explained against it."""
    metric_changes: list[tuple[str, float | None, float | None]] = []
    a_metrics, b_metrics = a.metrics, b.metrics
    for name in sorted(a_metrics.keys() | b_metrics.keys()):
        old, new = a_metrics.get(name), b_metrics.get(name)
        if old != new:
            metric_changes.append((name, old, new))
    return CapsuleDiff(
        config=_nested_diff(a.config, b.config),
        seeds=_nested_diff(a.seeds, b.seeds),
        inputs=_nested_diff(a.inputs, b.inputs),
        code_versions=_nested_diff(a.code_versions, b.code_versions),
        outputs=_nested_diff(a.outputs, b.outputs),
        metrics=metric_changes,
        environment=diff_environments(a.environment, b.environment),
    )


__all__ = [
    "CAPSULE_SCHEMA",
    "ENV_ALLOWLIST",
    "Capsule",
    "CapsuleDiff",
    "CapsuleError",
    "EnvironmentDiff",
    "build_capsule",
    "canonical_json",
    "capture_environment",
    "diff_capsules",
    "diff_environments",
    "find_project_root",
]
