# The two set-up commands of the README are `make demo` and `make test`; both bootstrap the
# environment from uv.lock when it is missing or stale, installing uv with pip if it is absent.

VENV := .venv
BIN := $(VENV)/bin
UV := $(shell command -v uv 2>/dev/null)
ifeq ($(UV),)
UV := python3 -m uv
endif
AIOPS_HOME ?= $(CURDIR)/.aiops
export DAGSTER_HOME := $(AIOPS_HOME)/dagster_home
export AIOPS_HOME
# Never fetch a Python build at run time: use one that is installed.
export UV_PYTHON_DOWNLOADS := never
DEMO_ARGS ?=
PYTEST_ARGS ?=
PORT ?= 3000
# The UI's address, for the links in incident reports and alerts: the port `make dev` serves on.
export AIOPS_UI_URL ?= http://127.0.0.1:$(PORT)

.PHONY: demo test test-fast lint typecheck pytest dev env clean

env: $(VENV)/.synced

# Every extra (postgres, celery, plots, ui): the demo, the tests and `make dev` use them all.
$(VENV)/.synced: pyproject.toml uv.lock
	@$(UV) --version >/dev/null 2>&1 || python3 -m pip install --quiet uv
	$(UV) sync --frozen --all-extras
	@touch $@

demo: env
	$(BIN)/aiops demo $(DEMO_ARGS)

test: lint typecheck pytest

lint: env
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: env
	$(BIN)/mypy

# Two workers: much of the suite waits on subprocesses (dagster dev, Celery workers, PostgreSQL),
# so two cores run it in little more than half the time. A test file stays on one worker, so
# module-scoped fixtures (a demo, a server) are built once.
PYTEST_WORKERS ?= 2

pytest: env
	$(BIN)/pytest -n $(PYTEST_WORKERS) --dist loadfile $(PYTEST_ARGS)

# The lane to run while editing: no services (PostgreSQL, Redis, RabbitMQ, MLflow, Prometheus,
# Alertmanager), no browser, no fresh processes (subprocess demos, dagster dev, Celery workers),
# nothing marked slow. `make test` (CI) still runs everything; the markers live in pyproject.toml.
FAST_LANE := not services and not browser and not subprocess and not slow

test-fast: env
	$(BIN)/pytest -n $(PYTEST_WORKERS) --dist loadfile -m "$(FAST_LANE)" $(PYTEST_ARGS)

dev: env
	@mkdir -p "$(DAGSTER_HOME)"
	@cp dagster.yaml "$(DAGSTER_HOME)/dagster.yaml"
	$(BIN)/dagster dev -h 127.0.0.1 -p $(PORT) -w workspace.yaml

clean:
	rm -rf "$(AIOPS_HOME)" .pytest_cache .mypy_cache .ruff_cache
