"""The docker deployment files agree with each other and with Dagster.

Docker itself is not needed: the compose file, the instance yaml, the workspace, the Celery
worker settings and the Dockerfile are parsed and cross-checked (the executor the code location
builds from its compose environment against the worker's queue, broker and backend), and the
instance yaml is opened for real against the local PostgreSQL (skipped locally without a
server, failed in CI, like test_ledger_postgres.py).
"""

from __future__ import annotations

import json
import re
import shutil
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import dagster as dg
import pytest
import sqlalchemy as sa
import yaml

from aiops_assets.reference.definitions import build_executor
from aiops_assets.reference.settings import PipelineSettings
from aiops_assets_tests.postgres import SERVER_URL, throwaway_database

ROOT = Path(__file__).resolve().parents[1]
DOCKER = ROOT / "docker"
COMPOSE = DOCKER / "compose.yaml"
INSTANCE_YAML = DOCKER / "dagster.postgres.yaml"
WORKSPACE = DOCKER / "workspace.yaml"
DOCKERFILE = DOCKER / "Dockerfile"
CELERY_YAML = DOCKER / "celery.yaml"
# Every service that opens the Dagster instance.
DAGSTER_SERVICES = ("code_location", "webserver", "daemon", "celery_worker")
# The services where steps run (the code location's run workers, or Celery's workers).
STEP_SERVICES = ("code_location", "celery_worker")


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


def _interpolate(value: str, shell: dict[str, str] | None = None) -> str:
    """What compose makes of ``${NAME}``, ``${NAME:-default}`` and ``$$`` for a given shell."""
    shell = shell or {}

    def substitute(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name, default = match.group(1), match.group(3) or ""
        return shell.get(name) or default

    return re.sub(r"\$\$|\$\{(\w+)(:-([^}]*))?\}", substitute, value)


def _resolved_environment(name: str) -> dict[str, str]:
    """A service's environment as its container sees it when nothing is overridden."""
    return {key: _interpolate(value) for key, value in _environment(_services()[name]).items()}


def _mounts(service: dict[str, Any]) -> dict[str, str]:
    """Target -> source of a service's volumes (bind mounts and named volumes)."""
    return {str(v).split(":")[1]: str(v).split(":")[0] for v in service.get("volumes", [])}


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
    assert {"postgres", "rabbitmq", *DAGSTER_SERVICES} <= set(services)
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


def test_steps_see_the_same_ledger_store_and_executor_wherever_they_run() -> None:
    services = _services()
    code_location, worker = (_environment(services[name]) for name in STEP_SERVICES)
    aiops = {key: value for key, value in code_location.items() if key.startswith("AIOPS_")}
    assert {"AIOPS_LEDGER_URL", "AIOPS_STORE_ROOT", "AIOPS_HOME", "AIOPS_EXECUTOR"} <= set(aiops)
    assert {key: worker.get(key) for key in aiops} == aiops
    for name in STEP_SERVICES:
        # The store lives on the one volume both mount; the audit key on another one.
        mounted = _mounts(services[name])
        assert mounted["/data"] == "aiops_data", name
        assert _interpolate(aiops["AIOPS_STORE_ROOT"]).startswith("/data/"), name
        assert mounted[aiops["AIOPS_KEY_DIR"]] == "aiops_keys", name
        assert not aiops["AIOPS_KEY_DIR"].startswith("/data"), name
        assert {"aiops_data", "aiops_keys"} <= set(_load(COMPOSE)["volumes"])


def test_the_broker_is_the_rabbitmq_service_with_its_credentials() -> None:
    services = _services()
    rabbitmq = services["rabbitmq"]
    assert str(rabbitmq["image"]).startswith("rabbitmq:3")
    assert "rabbitmq-diagnostics" in rabbitmq["healthcheck"]["test"]
    credentials = {key: _interpolate(value) for key, value in _environment(rabbitmq).items()}
    for name in STEP_SERVICES:
        broker = urlsplit(_resolved_environment(name)["AIOPS_CELERY_BROKER"])
        assert broker.scheme in {"amqp", "pyamqp"}, name
        assert (broker.hostname, broker.port) == ("rabbitmq", 5672), name
        # RabbitMQ refuses its guest user from other hosts: the service's own user it is.
        assert broker.username == credentials["RABBITMQ_DEFAULT_USER"] != "guest", name
        assert broker.password == credentials["RABBITMQ_DEFAULT_PASS"], name
        assert services[name]["depends_on"]["rabbitmq"]["condition"] == "service_healthy", name


def test_the_worker_serves_the_queue_and_broker_the_executor_uses(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from dagster_celery.cli import get_validated_config

    services = _services()
    worker = services["celery_worker"]
    command = worker["command"]
    assert command[:3] == ["dagster-celery", "worker", "start"]
    assert _option(command, "-A", "--app") == "dagster_celery.app"
    assert _option(command, "-i", "--includes") == _option(_code_server_command(), "-m")
    config_path = _option(command, "-y", "--config-yaml")
    assert (COMPOSE.parent / _mounts(worker)[config_path]).resolve() == CELERY_YAML

    # The executor of the code location's jobs, built from its environment as the run builds it.
    code_location_env = _resolved_environment("code_location")
    for key, value in code_location_env.items():
        monkeypatch.setenv(key, value)
    settings = PipelineSettings.from_env(code_location_env)
    assert settings.executor == "celery"
    executor = build_executor(settings)
    assert executor.name == "celery"
    # What a run gives the executor: the configured values, variables read from the environment.
    schema: Any = executor.config_schema
    resolved = schema.resolve_config({})
    assert resolved.success, resolved.errors
    executor_config = resolved.value["config"]
    assert _option(command, "-q", "--queue") == settings.celery_queue
    assert executor_config["config_source"]["task_default_queue"] == settings.celery_queue

    # The worker's settings file, read with the worker's own environment, as the CLI reads it.
    worker_env = _resolved_environment("celery_worker")
    assert _env_keys(_load(CELERY_YAML)) <= set(worker_env)
    for key, value in worker_env.items():
        monkeypatch.setenv(key, value)
    worker_config = get_validated_config(str(CELERY_YAML))
    assert worker_config["broker"] == executor_config["broker"]
    assert worker_config["backend"] == executor_config["backend"]


def test_the_image_installs_what_the_commands_run() -> None:
    """The webserver, PostgreSQL and Celery are extras of the plugin; the image installs them all."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    extras = project["optional-dependencies"]
    dependencies = [
        *project["dependencies"],
        *(item for group in extras.values() for item in group),
    ]
    names = {re.split(r"[<>=!~ \[]", dependency)[0] for dependency in dependencies}
    assert {"dagster", "dagster-webserver", "dagster-postgres", "dagster-celery"} <= names
    syncs = re.findall(r"uv sync[^\n]*", DOCKERFILE.read_text(encoding="utf-8"))
    assert syncs and all("--all-extras" in sync for sync in syncs), syncs
    services = _services()
    assert services["webserver"]["command"][0] in names
    assert services["celery_worker"]["command"][0] in names


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
    for name in ("webserver", "daemon", "celery_worker"):
        env = _environment(services[name])
        assert env["DAGSTER_HOME"] == "/opt/dagster/dagster_home", name
    for name in ("webserver", "daemon"):
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
    assert _option(command, "-m", "--module-name") == "aiops_assets.reference.definitions"
    assert grpc["location_name"] == _option(command, "--location-name")
    health = " ".join(_services()["code_location"]["healthcheck"]["test"])
    assert f"-p {grpc['port']}" in health


def _published(port: Any, shell: dict[str, str] | None = None) -> tuple[str, str]:
    """(host address, container port) of one ``ports`` entry, short or long syntax."""
    if isinstance(port, dict):
        host_ip = _interpolate(str(port.get("host_ip", "")), shell)
        return host_ip, str(port["target"])
    parts = _interpolate(str(port), shell).rsplit(":", 2)
    # "3000" and "3000:3000" publish on every interface, like host_ip "".
    return (parts[0] if len(parts) == 3 else ""), parts[-1]


def test_every_published_port_is_on_the_loopback_unless_told_otherwise() -> None:
    """The UI has no login: by default only the host itself reaches it; AIOPS_UI_BIND opens it."""
    services = _services()
    published = {
        name: service.get("ports", []) for name, service in services.items() if "ports" in service
    }
    assert published.get("webserver"), "the webserver publishes no port"
    for name, ports in published.items():
        for port in ports:
            assert _published(port)[0] == "127.0.0.1", f"{name} publishes {port} beyond localhost"
    ui = published["webserver"]
    assert [_published(port, {"AIOPS_UI_BIND": "0.0.0.0"}) for port in ui] == [("0.0.0.0", "3000")]
    documented = (DOCKER / "README.md").read_text(encoding="utf-8")
    assert "AIOPS_UI_BIND" in documented
    assert "AIOPS_UI_BIND" in (ROOT / "docs" / "deploy.md").read_text(encoding="utf-8")


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


@pytest.mark.services
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
