"""A materialized demo served by `dagster dev`, as `make demo` followed by `make dev` leaves it.

Both run as subprocesses with the project's settings environment pointed at a temporary home, so the
browser sees exactly what a user would, and nothing in the working tree is touched. `dagster dev`
ignores a plain SIGTERM from a non-interactive parent, so every subprocess gets its own session and
its whole process group is ended afterwards, whatever happened; otherwise the webserver, daemon and
code servers would outlive the test run.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import pytest

from aiops_assets.reference.settings import PipelineSettings

PROJECT_ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = PROJECT_ROOT / "test-artifacts" / "ui"
# Debian's Chromium as installed (no browser download): no sandbox (CI runs as root), no GPU, and
# nothing that would phone out from an offline machine.
CHROMIUM_ARGS = (
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
)
# Bounds, not expectations: on an idle 2-core machine the demo takes ~35 s and `dagster dev`
# answers after ~20 s, but the CI machine is shared.
DEMO_TIMEOUT = 420.0
SERVE_TIMEOUT = 300.0
STOP_TIMEOUT = 20.0
# The demo's progress line for its first step: from then on it has moved any earlier instance
# aside, so `dagster dev` may start creating its own files in the instance folder.
_FIRST_STEP = re.compile(r"^\[\s*1/\d+\]", re.MULTILINE)


@dataclass(frozen=True)
class ServedDemo:
    """The UI's base URL, the settings both processes ran with, and `aiops demo --json`'s result."""

    url: str
    settings: PipelineSettings
    demo: dict[str, Any]


def chromium_or_fail() -> str:
    """The installed Chromium; a missing one fails in CI (where .ci/run installs it), else skips."""
    path = shutil.which("chromium")
    if path is None:
        message = "Debian's chromium is not installed (apt-get install chromium)"
        if os.environ.get("CI"):
            pytest.fail(message + " (required in CI: .ci/run installs it)")
        print(message)
        pytest.skip(message)
    return path


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def console_script(name: str) -> str:
    """A console script of the environment running the tests (the project's .venv)."""
    beside_python = Path(sys.executable).parent / name
    if beside_python.is_file():
        return str(beside_python)
    found = shutil.which(name)
    if found is None:
        raise RuntimeError(f"{name} is neither beside {sys.executable} nor on PATH")
    return found


def project_environment(settings: PipelineSettings, url: str) -> dict[str, str]:
    """The caller's environment with the project's settings pointing at the temporary home only.

    Any ``AIOPS_*`` variable of the caller (another test's ledger URL, say) is dropped, so the demo
    and the served code location agree on the defaults.
    """
    environment = {
        name: value for name, value in os.environ.items() if not name.startswith("AIOPS_")
    }
    environment.update(
        AIOPS_HOME=str(settings.home),
        DAGSTER_HOME=str(settings.dagster_home),
        AIOPS_UI_URL=url,
    )
    return environment


@contextmanager
def serve_demo(workdir: Path) -> Iterator[ServedDemo]:
    """Run `aiops demo` into a fresh home and serve its instance with `dagster dev`.

    The two overlap: `dagster dev` starts once the demo's first step has begun, which saves most of
    the server's start-up time. Logs and the demo's JSON go to ``test-artifacts/ui/``.
    """
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    settings = PipelineSettings(home=(workdir / "aiops").absolute())
    environment = project_environment(settings, url)
    # `dagster dev` reads the instance settings (telemetry off: the machine is offline) at start;
    # the demo would copy the same file, so it finds it in place and leaves it.
    settings.dagster_home.mkdir(parents=True)
    shutil.copyfile(PROJECT_ROOT / "dagster.yaml", settings.dagster_home / "dagster.yaml")
    demo_log = ARTIFACTS / "demo.log"
    demo_output = ARTIFACTS / "demo.json"
    server_log = ARTIFACTS / "dagster-dev.log"
    with ExitStack() as stack:
        demo = stack.enter_context(
            process_group(
                [console_script("aiops"), "demo", "--home", str(settings.home), "--json"],
                environment,
                stdout=stack.enter_context(demo_output.open("wb")),
                stderr=stack.enter_context(demo_log.open("wb")),
            )
        )
        deadline = time.monotonic() + DEMO_TIMEOUT
        _wait_for_first_step(demo, demo_log, deadline)
        server_output = stack.enter_context(server_log.open("wb"))
        serve = [console_script("dagster"), "dev", "-w", "workspace.yaml", "-h", "127.0.0.1"]
        server = stack.enter_context(
            process_group(
                [*serve, "-p", str(port)],
                environment,
                stdout=server_output,
                stderr=server_output,
            )
        )
        result = _demo_result(demo, demo_log, demo_output, deadline)
        _wait_until_serving(url, server, server_log, time.monotonic() + SERVE_TIMEOUT)
        yield ServedDemo(url=url, settings=settings, demo=result)


@contextmanager
def process_group(
    args: Sequence[str], environment: dict[str, str], *, stdout: IO[bytes], stderr: IO[bytes]
) -> Iterator[subprocess.Popen[bytes]]:
    """A subprocess leading its own process group, ended with all of its descendants."""
    with _interruptible_children():
        process = subprocess.Popen(
            list(args),
            cwd=PROJECT_ROOT,
            env=environment,
            stdin=subprocess.DEVNULL,
            stdout=stdout,
            stderr=stderr,
            start_new_session=True,
        )
    try:
        yield process
    finally:
        end_process_group(process)


@contextmanager
def _interruptible_children() -> Iterator[None]:
    """Let children see SIGINT even when this process ignores it.

    A background job of a non-interactive shell starts with SIGINT ignored and its children
    inherit that; `dagster dev` gives SIGTERM the same disposition as SIGINT, so it would then
    ignore both and never shut down its webserver, daemon and code servers in order. A handled
    signal, unlike an ignored one, is reset to the default in a child at exec.
    """
    ignored = signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    if ignored:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        if ignored:
            signal.signal(signal.SIGINT, signal.SIG_IGN)


def end_process_group(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the leader, which stops its own children, then SIGKILL to any left in the group
    (a run the daemon launched, or everything if the leader did not stop in time)."""
    if process.poll() is None:
        process.terminate()
        with suppress(subprocess.TimeoutExpired):
            process.wait(timeout=STOP_TIMEOUT)
    group = process.pid  # a session leader's pid is its process group's id
    try:
        os.killpg(group, signal.SIGKILL)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + STOP_TIMEOUT
    while time.monotonic() < deadline:
        process.poll()  # reap the leader, or the group never empties
        try:
            os.killpg(group, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)


def _wait_for_first_step(demo: subprocess.Popen[bytes], demo_log: Path, deadline: float) -> None:
    """Until the demo's pipeline has begun, or the demo has ended (its result says how)."""
    while time.monotonic() < deadline and demo.poll() is None:
        if _FIRST_STEP.search(demo_log.read_text(errors="replace")):
            return
        time.sleep(0.5)


def _demo_result(
    demo: subprocess.Popen[bytes], demo_log: Path, demo_output: Path, deadline: float
) -> dict[str, Any]:
    try:
        code = demo.wait(timeout=max(deadline - time.monotonic(), 0.0))
    except subprocess.TimeoutExpired:
        pytest.fail(
            f"`aiops demo` did not finish within {DEMO_TIMEOUT:.0f}s; its log ends:\n"
            + _tail(demo_log)
        )
    if code != 0:
        pytest.fail(f"`aiops demo` exited with {code}; its log ends:\n" + _tail(demo_log))
    lines = demo_output.read_text().strip().splitlines()
    if not lines:
        pytest.fail("`aiops demo --json` printed nothing on stdout")
    result: dict[str, Any] = json.loads(lines[-1])
    return result


def _wait_until_serving(
    url: str, server: subprocess.Popen[bytes], server_log: Path, deadline: float
) -> None:
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(
                f"`dagster dev` exited with {server.returncode}; its log ends:\n"
                + _tail(server_log)
            )
        try:
            with urllib.request.urlopen(f"{url}/server_info", timeout=5) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.5)
    pytest.fail(
        f"`dagster dev` did not answer on {url}/server_info within {SERVE_TIMEOUT:.0f}s; "
        "its log ends:\n" + _tail(server_log)
    )


def _tail(log: Path, lines: int = 30) -> str:
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
