"""The reference graph materialized through two real Celery workers, chosen by configuration.

The workers are started with the documented command (``dagster-celery worker start``) and the
deployment's settings file (docker/celery.yaml), on a queue of their own, against the local
RabbitMQ. They share the test's SQLite instance, artifact store and ledger through the
filesystem, as workers on one host would. The runs are started here with
``AIOPS_EXECUTOR=celery``: no code names Celery.

Without the broker the test fails when CI is set and is skipped otherwise, like the PostgreSQL
tests (aiops_assets_tests/postgres.py).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dagster as dg
import kombu
import pytest

from aiops_assets.core.ledger import Ledger
from aiops_assets.core.registry import CHAMPION, MODEL_NAME
from aiops_assets.core.store import ArtifactStore
from aiops_assets.reference.definitions import (
    INGEST_ASSETS,
    TRAIN_JOB,
    TRAINING_ASSETS,
    build_definitions,
    build_executor,
    daily_partitions,
    ingest_selection,
)
from aiops_assets.reference.settings import PipelineSettings
from aiops_assets.resources import close_ledgers
from aiops_assets.runner import materialize_selection

ROOT = Path(__file__).resolve().parents[1]
# The deployment's own worker settings (docker/compose.yaml mounts it into celery_worker).
WORKER_CONFIG = ROOT / "docker" / "celery.yaml"
BROKER_URL = os.environ.get("AIOPS_TEST_BROKER_URL", "amqp://guest:guest@127.0.0.1:5672//")
INGEST_JOB = "celery_ingest_job"
# The smallest honest graph: two days ingested, one trained on, the other held out.
DAYS = 2
TRAINING_RUN_CONFIG = {"ops": {"training_set": {"config": {"holdout_days": 1}}}}
WORKERS = ("alpha", "beta")
CELERY_WORKER_MARKER = "Celery worker"

# dagster-celery registers its task again for every step it submits; Celery warns each time.
pytestmark = pytest.mark.filterwarnings("ignore::celery.exceptions.DuplicateTaskNameWarning")


def _resolved_executor_config(executor: dg.ExecutorDefinition) -> dict[str, object]:
    """The config a run would give the executor, with environment variables read now."""
    schema: Any = executor.config_schema  # a configured schema: it resolves without input
    resolved = schema.resolve_config({})
    assert resolved.success, resolved.errors
    assert isinstance(resolved.value, dict)
    return dict(resolved.value["config"])


def test_the_executor_is_in_process_unless_configured() -> None:
    settings = PipelineSettings.from_env({})
    assert settings.executor == "in_process"
    assert build_executor(settings) is dg.in_process_executor
    multiprocess = PipelineSettings.from_env({"AIOPS_EXECUTOR": "multiprocess"})
    assert build_executor(multiprocess) is dg.multiprocess_executor
    with pytest.raises(ValueError, match="executor must be one of"):
        PipelineSettings.from_env({"AIOPS_EXECUTOR": "k8s"})


def test_the_celery_executor_reads_broker_and_backend_when_a_run_starts(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = PipelineSettings.from_env({"AIOPS_EXECUTOR": "celery", "AIOPS_CELERY_QUEUE": "q1"})
    monkeypatch.delenv("AIOPS_CELERY_BROKER", raising=False)
    monkeypatch.delenv("AIOPS_CELERY_BACKEND", raising=False)
    with pytest.raises(ValueError, match="AIOPS_CELERY_BROKER"):
        build_executor(settings)

    monkeypatch.setenv("AIOPS_CELERY_BROKER", "amqp://u:secret@broker-a:5672//")
    executor = build_executor(settings)
    assert executor.name == "celery"
    config = _resolved_executor_config(executor)
    assert config["broker"] == "amqp://u:secret@broker-a:5672//"
    assert config["backend"] == "rpc://"  # dagster-celery's default
    assert config["config_source"] == {"task_default_queue": "q1"}
    # The password is not baked into the definition: a changed variable is what a run sees.
    monkeypatch.setenv("AIOPS_CELERY_BROKER", "amqp://u:other@broker-b:5672//")
    assert _resolved_executor_config(executor)["broker"] == "amqp://u:other@broker-b:5672//"

    monkeypatch.setenv("AIOPS_CELERY_BACKEND", "redis://127.0.0.1:6379/1")
    backend_config = _resolved_executor_config(build_executor(settings))
    assert backend_config["backend"] == "redis://127.0.0.1:6379/1"


def test_every_project_job_uses_the_configured_executor(
    monkeypatch: pytest.MonkeyPatch, small_settings: PipelineSettings
) -> None:
    monkeypatch.setenv("AIOPS_CELERY_BROKER", BROKER_URL)
    for kind, name in (("in_process", "in_process"), ("celery", "celery")):
        definitions = build_definitions(small_settings.with_overrides(executor=kind))
        jobs = definitions.resolve_all_job_defs()
        assert jobs
        assert {job.executor_def.name for job in jobs} == {name}, kind


def broker_or_fail() -> None:
    try:
        with kombu.Connection(BROKER_URL, connect_timeout=3) as connection:
            connection.ensure_connection(max_retries=1)
    except Exception as error:
        message = f"the Celery broker at {BROKER_URL} is not reachable: {error}"
        if os.environ.get("CI"):
            pytest.fail(message + " (required in CI: .ci/run starts RabbitMQ)")
        print(message)
        pytest.skip(message)


def reference_job(name: str) -> dg.JobDefinition:
    """Rebuilt from the environment in every worker, as the code location builds it.

    The project's daily job also scores (which needs a champion), so the first stage is the
    demo's ingest selection as a job of its own, with the executor the settings choose.
    """
    settings = PipelineSettings.from_env()
    definitions = build_definitions(settings)
    if name == TRAIN_JOB:
        return definitions.resolve_job_def(TRAIN_JOB)
    ingest = dg.define_asset_job(
        INGEST_JOB, selection=ingest_selection(), executor_def=build_executor(settings)
    )
    return dg.Definitions(
        assets=definitions.assets,
        asset_checks=definitions.asset_checks,
        resources=definitions.resources,
        jobs=[ingest],
    ).resolve_job_def(INGEST_JOB)


def reconstructable_reference_job(name: str) -> dg.ReconstructableJob:
    return dg.build_reconstructable_job(
        __name__, reference_job.__name__, reconstructable_args=(name,)
    )


@dataclass
class Cluster:
    settings: PipelineSettings
    instance: dg.DagsterInstance
    worker_nodes: dict[int, str]  # a worker's process group -> its Celery node name


@pytest.fixture
def cluster(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Cluster]:
    broker_or_fail()
    queue = f"aiops_test_{uuid.uuid4().hex[:12]}"
    dagster_home = tmp_path / "dagster_home"
    dagster_home.mkdir()
    (dagster_home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    env = {
        "DAGSTER_HOME": str(dagster_home),
        "AIOPS_HOME": str(tmp_path / "aiops"),
        "AIOPS_DAYS": str(DAYS),
        "AIOPS_AUDIT_KEY": uuid.uuid4().hex,
        "AIOPS_EXECUTOR": "celery",
        "AIOPS_CELERY_BROKER": BROKER_URL,
        "AIOPS_CELERY_BACKEND": "rpc://",
        "AIOPS_CELERY_QUEUE": queue,
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    bin_dir = Path(sys.executable).parent
    worker_env = {
        **os.environ,
        "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
        "PYTHONPATH": str(ROOT),
    }
    workers: list[subprocess.Popen[bytes]] = []
    nodes: dict[int, str] = {}
    try:
        for label in WORKERS:
            name = f"{label}-{queue}"
            log = (tmp_path / f"{label}.log").open("wb")
            worker = subprocess.Popen(
                [
                    *(str(bin_dir / "dagster-celery"), "worker", "start"),
                    *("-A", "dagster_celery.app", "-y", str(WORKER_CONFIG)),
                    *("-q", queue, "-n", name, "--loglevel", "INFO"),
                    # Import the project while the test sets up, not during the first step.
                    *("-i", "aiops_assets.reference.definitions"),
                    # One step at a time per worker, in the worker process itself.
                    *("--", "--pool=solo", "--without-gossip", "--without-mingle"),
                ],
                cwd=ROOT,
                env=worker_env,
                stdout=log,
                stderr=subprocess.STDOUT,
                # The CLI starts `celery` as its child: a group of their own ends both.
                start_new_session=True,
            )
            log.close()
            workers.append(worker)
            # Celery names a node after `%h`, the host name.
            nodes[worker.pid] = f"{name}@{socket.gethostname()}"
        settings = PipelineSettings.from_env()
        with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
            yield Cluster(settings=settings, instance=instance, worker_nodes=nodes)
    finally:
        for worker in workers:
            _end_group(worker)
        _delete_queue(queue)
        for label in WORKERS:
            log_path = tmp_path / f"{label}.log"
            if log_path.exists():
                print(f"--- worker {label} log (tail)\n{log_path.read_text()[-3000:]}")


def _end_group(worker: subprocess.Popen[bytes]) -> None:
    for sig, wait in ((signal.SIGTERM, 20), (signal.SIGKILL, 10)):
        try:
            os.killpg(worker.pid, sig)
        except ProcessLookupError:
            return
        try:
            worker.wait(wait)
            return
        except subprocess.TimeoutExpired:
            continue


def _delete_queue(queue: str) -> None:
    try:
        with kombu.Connection(BROKER_URL, connect_timeout=3) as connection:
            connection.default_channel.queue_delete(queue)
    except Exception as error:  # the workers' own cleanup matters more than a stray queue
        print(f"could not delete the test queue {queue}: {error}")


def _run(cluster: Cluster, name: str, **kwargs: object) -> dg.JobExecutionResult:
    result = dg.execute_job(
        reconstructable_reference_job(name),
        cluster.instance,
        raise_on_error=False,
        **kwargs,  # type: ignore[arg-type]
    )
    assert result.success, _failure_summary(cluster.instance, result.run_id)
    return result


def _materialize_in_process(
    settings: PipelineSettings, partition_keys: Sequence[str]
) -> dict[str, str]:
    definitions = build_definitions(settings)
    versions: dict[str, str] = {}
    with dg.DagsterInstance.ephemeral() as instance:
        runs = [
            materialize_selection(definitions, instance, ingest_selection(), partition_key=key)
            for key in partition_keys
        ]
        runs.append(
            materialize_selection(
                definitions,
                instance,
                dg.AssetSelection.assets(*TRAINING_ASSETS),
                run_config=TRAINING_RUN_CONFIG,
            )
        )
    for result in runs:
        for event in result.get_asset_materialization_events():
            materialization = event.step_materialization_data.materialization
            versions[_label(materialization)] = str(materialization.metadata["sha256"].value)
    close_ledgers()
    return versions


def _label(materialization: dg.AssetMaterialization) -> str:
    name = materialization.asset_key.to_user_string()
    return f"{name}[{materialization.partition}]" if materialization.partition else name


def _failure_summary(instance: dg.DagsterInstance, run_id: str) -> str:
    failures = [
        f"{event.dagster_event.step_key}: {event.dagster_event.event_specific_data}"
        for event in instance.all_logs(run_id)
        if event.dagster_event and event.dagster_event.is_failure
    ]
    return f"run {run_id} failed:\n" + "\n".join(failures)


def _step_pids(instance: dg.DagsterInstance, run_id: str) -> dict[str, set[int]]:
    pids: dict[str, set[int]] = {}
    for event in instance.all_logs(run_id):
        dagster_event = event.dagster_event
        # Start and success are emitted by the step itself; the orchestrator's own step-scoped
        # engine events (task submitted) come from this process.
        if dagster_event and (dagster_event.is_step_start or dagster_event.is_step_success):
            assert dagster_event.step_key is not None and dagster_event.pid is not None
            pids.setdefault(dagster_event.step_key, set()).add(dagster_event.pid)
    return pids


def _celery_nodes(instance: dg.DagsterInstance, run_id: str) -> dict[str, str]:
    """Step key -> the Celery node that reported executing it."""
    nodes: dict[str, str] = {}
    for event in instance.all_logs(run_id):
        dagster_event = event.dagster_event
        if dagster_event is None or not dagster_event.is_engine_event or not event.step_key:
            continue
        metadata = dagster_event.engine_event_data.metadata
        if CELERY_WORKER_MARKER in metadata:
            nodes[event.step_key] = str(metadata[CELERY_WORKER_MARKER].value)
    return nodes


@pytest.mark.services  # RabbitMQ
@pytest.mark.subprocess  # two real Celery workers
def test_the_graph_materializes_through_two_celery_workers(
    cluster: Cluster, tmp_path: Path
) -> None:
    assert reference_job(TRAIN_JOB).executor_def.name == "celery"  # what the workers rebuild
    partition_keys = daily_partitions(cluster.settings).get_partition_keys()
    assert len(partition_keys) == DAYS
    # The same graph in-process in another home, while the workers start: the reference bytes.
    in_process = _materialize_in_process(
        cluster.settings.with_overrides(executor="in_process", home=tmp_path / "in_process"),
        partition_keys,
    )

    runs = [_run(cluster, INGEST_JOB, tags={"dagster/partition": key}) for key in partition_keys]
    runs.append(_run(cluster, TRAIN_JOB, run_config=TRAINING_RUN_CONFIG))

    executed_by: dict[int, set[str]] = {group: set() for group in cluster.worker_nodes}
    for result in runs:
        pids = _step_pids(cluster.instance, result.run_id)
        nodes = _celery_nodes(cluster.instance, result.run_id)
        assert pids and set(nodes) == set(pids), (sorted(pids), nodes)
        for step_key, step_pids in pids.items():
            assert os.getpid() not in step_pids, f"{step_key} ran in the test process"
            assert len(step_pids) == 1, f"{step_key} ran in several processes: {step_pids}"
            (pid,) = step_pids
            # The worker is alive until the fixture ends: its process group is still known.
            group = os.getpgid(pid)
            assert group in cluster.worker_nodes, f"{step_key} ran in {pid}, not a worker"
            assert nodes[step_key] == cluster.worker_nodes[group], step_key
            executed_by[group].add(f"{result.run_id[:8]}:{step_key}")
    assert all(executed_by.values()), f"a worker executed no step: {executed_by}"

    store = ArtifactStore(cluster.settings.store_root)
    materialized: dict[str, str] = {}
    for result in runs:
        for event in result.get_asset_materialization_events():
            materialization = event.step_materialization_data.materialization
            label = _label(materialization)
            sha256 = str(materialization.metadata["sha256"].value)
            assert materialization.tags is not None
            assert materialization.tags["dagster/data_version"] == sha256, label
            assert store.verify(sha256), label
            materialized[label] = sha256
    expected = {f"{name}[{key}]" for name in INGEST_ASSETS for key in partition_keys}
    assert set(materialized) == expected | set(TRAINING_ASSETS)
    # Seeded and content-addressed: where a step runs changes no byte of what it makes.
    assert materialized == in_process

    ledger = Ledger.from_env(cluster.settings.ledger_url)
    try:
        champion = ledger.get_alias(MODEL_NAME, CHAMPION)
        assert champion is not None
        assert champion.sha256 == materialized["champion_model"]
        assert ledger.verify_audit().ok
    finally:
        ledger.dispose()
