"""The docker deployment files agree with each other and with Dagster.

Docker itself is not needed: the compose file, the instance yaml, the workspace and the
Dockerfile are parsed and cross-checked, and the instance yaml is opened for real against the
local PostgreSQL (skipped locally without a server, failed in CI, like test_ledger_postgres.py).
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
import sqlalchemy as sa
import yaml

from aiops_assets_tests.postgres import SERVER_URL, throwaway_database

ROOT = Path(__file__).resolve().parents[1]
DOCKER = ROOT / "docker"
COMPOSE = DOCKER / "compose.yaml"
INSTANCE_YAML = DOCKER / "dagster.postgres.yaml"
WORKSPACE = DOCKER / "workspace.yaml"
DOCKERFILE = DOCKER / "Dockerfile"
DAGSTER_SERVICES = ("code_location", "webserver", "daemon")


def _load(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def _services() -> dict[str, Any]:
    services = _load(COMPOSE)["services"]
    assert isinstance(services, dict)
    return services


def _environment(service: dict[str, Any]) -> dict[str, str]:
    """A service's environment as a mapping, whichever of the two compose forms it uses."""
    env = service.get("environment") or {}
    if isinstance(env, list):
        return dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {str(key): "" if value is None else str(value) for key, value in env.items()}


def _env_keys(node: Any) -> set[str]:
    """Every ``{env: NAME}`` the instance yaml reads."""
    if isinstance(node, dict):
        found = {node["env"]} if set(node) == {"env"} else set()
        for value in node.values():
            found |= _env_keys(value)
        return found
    if isinstance(node, list):
        return set().union(*(_env_keys(item) for item in node)) if node else set()
    return set()


def _code_server_command() -> list[str]:
    """The exec-form CMD of the Dockerfile (the code server)."""
    commands = re.findall(r"^CMD\s+(\[.*\])\s*$", DOCKERFILE.read_text(encoding="utf-8"), re.M)
    assert len(commands) == 1, f"expected one exec-form CMD in {DOCKERFILE}, got {commands}"
    command = json.loads(commands[0])
    assert command[:3] == ["dagster", "code-server", "start"], command
    return command


def _option(command: list[str], *names: str) -> str:
    for index, arg in enumerate(command[:-1]):
        if arg in names:
            return command[index + 1]
    raise AssertionError(f"{names} not in {command}")


def test_compose_has_the_services() -> None:
    services = _services()
    assert {"postgres", *DAGSTER_SERVICES} <= set(services)
    assert str(services["postgres"]["image"]).startswith("postgres:16")
    assert "pg_isready" in " ".join(services["postgres"]["healthcheck"]["test"])
    assert services["webserver"]["command"][0] == "dagster-webserver"
    assert services["daemon"]["command"][:2] == ["dagster-daemon", "run"]
    for name in DAGSTER_SERVICES:
        assert services[name]["build"]["dockerfile"] == "docker/Dockerfile", name
        assert (COMPOSE.parent / services[name]["build"]["context"] / "docker/Dockerfile").is_file()
        condition = services[name]["depends_on"]["postgres"]["condition"]
        assert condition == "service_healthy", name


def test_every_instance_env_var_is_set_where_the_instance_is_opened() -> None:
    needed = _env_keys(_load(INSTANCE_YAML))
    assert {"DAGSTER_PG_USERNAME", "DAGSTER_PG_PASSWORD", "DAGSTER_PG_HOST", "DAGSTER_PG_DB"} <= (
        needed
    )
    services = _services()
    for name in DAGSTER_SERVICES:
        missing = needed - set(_environment(services[name]))
        assert not missing, f"{name} does not set {sorted(missing)}"
        assert _environment(services[name])["DAGSTER_PG_HOST"] == "postgres", name


def test_the_code_location_has_the_pipeline_settings() -> None:
    env = _environment(_services()["code_location"])
    assert env["AIOPS_LEDGER_URL"].startswith("postgresql+psycopg2://")
    assert "@postgres:5432/" in env["AIOPS_LEDGER_URL"]
    assert env["AIOPS_STORE_ROOT"] == "/data/store"


def test_mounted_files_exist_and_the_instance_is_mounted_as_dagster_yaml() -> None:
    services = _services()
    for name in DAGSTER_SERVICES:
        targets: dict[str, Path] = {}
        for volume in services[name].get("volumes", []):
            source, target, *_ = str(volume).split(":")
            if source.startswith((".", "/")):
                path = (COMPOSE.parent / source).resolve()
                assert path.is_file(), f"{name} mounts {source}, which is not in the repo"
                targets[target] = path
        assert targets.get("/opt/dagster/dagster_home/dagster.yaml") == INSTANCE_YAML, name
    for name in ("webserver", "daemon"):
        env = _environment(services[name])
        assert env["DAGSTER_HOME"] == "/opt/dagster/dagster_home", name
        workspace = _option(services[name]["command"], "-w", "--workspace")
        mounted = {str(v).split(":")[1]: str(v).split(":")[0] for v in services[name]["volumes"]}
        assert (COMPOSE.parent / mounted[workspace]).resolve() == WORKSPACE, name


def test_the_workspace_points_at_the_code_location_service_and_port() -> None:
    entries = _load(WORKSPACE)["load_from"]
    assert len(entries) == 1
    grpc = entries[0]["grpc_server"]
    command = _code_server_command()
    assert grpc["host"] == "code_location" and "code_location" in _services()
    assert int(grpc["port"]) == int(_option(command, "-p", "--port"))
    assert _option(command, "-h", "--host") == "0.0.0.0"
    assert _option(command, "-m", "--module-name") == "aiops_assets.definitions"
    assert grpc["location_name"] == _option(command, "--location-name")
    health = " ".join(_services()["code_location"]["healthcheck"]["test"])
    assert f"-p {grpc['port']}" in health


def test_the_dockerfile_installs_from_the_lock() -> None:
    text = DOCKERFILE.read_text(encoding="utf-8")
    assert re.search(r"^FROM python:3\.11-slim", text, re.M)
    assert re.search(r"^COPY --from=ghcr\.io/astral-sh/uv:[\w.]+ /uv", text, re.M)
    syncs = re.findall(r"uv sync[^\n]*", text)
    assert syncs and all("--frozen" in s and "--no-dev" in s for s in syncs), syncs


@pytest.fixture
def database() -> Iterator[sa.URL]:
    url = sa.make_url(SERVER_URL)
    if (url.port or 5432) != 5432:
        pytest.skip(f"docker/dagster.postgres.yaml uses port 5432, the test server is {url.port}")
    with throwaway_database("aiops_instance") as database_url:
        yield database_url


def test_the_instance_yaml_opens_a_postgres_instance(
    database: sa.URL, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dagster._core.run_coordinator import QueuedRunCoordinator
    from dagster_postgres import (
        PostgresEventLogStorage,
        PostgresRunStorage,
        PostgresScheduleStorage,
    )

    monkeypatch.setenv("DAGSTER_PG_USERNAME", database.username or "")
    monkeypatch.setenv("DAGSTER_PG_PASSWORD", database.password or "")
    monkeypatch.setenv("DAGSTER_PG_HOST", database.host or "127.0.0.1")
    monkeypatch.setenv("DAGSTER_PG_DB", database.database or "")
    shutil.copy(INSTANCE_YAML, tmp_path / "dagster.yaml")
    instance = dg.DagsterInstance.from_config(str(tmp_path))
    try:
        assert isinstance(instance.run_storage, PostgresRunStorage)
        assert isinstance(instance.event_log_storage, PostgresEventLogStorage)
        assert isinstance(instance.schedule_storage, PostgresScheduleStorage)
        assert isinstance(instance.run_coordinator, QueuedRunCoordinator)
        assert not instance.telemetry_enabled
        # The tables were made in the throwaway database: the connection really is that one.
        assert instance.get_runs_count() == 0
    finally:
        instance.dispose()
