# The README's commands. `make demo` and `make test` work on a fresh machine (Python 3.11, pip).
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
OMNIWATCH_HOME ?= .omniwatch
export OMNIWATCH_HOME
# The embedded Dagster instance lives in $OMNIWATCH_HOME/dagster (its DAGSTER_HOME, holding a copy
# of omniwatch/dagster.yaml): `make ui` writes nothing into the checkout.
OMNIWATCH_DAGSTER_DIR := $(abspath $(OMNIWATCH_HOME))/dagster
export OMNIWATCH_DAGSTER_DIR
# LightGBM/OpenMP spin-waits under CPU contention (see shared ENVIRONMENT.md).
export OMP_WAIT_POLICY ?= passive
# Two workers (this machine and CI have two cores). worksteal: the long tests (the e2e demo goes
# first) do not leave one worker idle while the other still holds a queue. Not loadfile/loadgroup:
# schemathesis' generated tests share one node id and then silently never run (35 of them,
# checked 2026-12-07).
PYTEST_ARGS ?= -n 2 --dist worksteal --durations=25
# Ports of the local UIs: `make ui DAGSTER_PORT=3001`, `make mlflow-ui MLFLOW_PORT=5001`.
DAGSTER_PORT ?= 3000
MLFLOW_PORT ?= 5000

.PHONY: demo test lint ui serve mlflow-ui bench db-upgrade clean check-defs

# torch first: `pip install torch==2.13.0` takes the local CPU build, so nothing later pulls CUDA.
$(BIN)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e .
	touch $@

$(BIN)/.dev-installed: $(BIN)/.installed
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $@

demo: $(BIN)/.installed
	$(BIN)/omniwatch demo

test: $(BIN)/.dev-installed
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# Ruff (rules in pyproject's [tool.ruff]) and mypy (the packages in [tool.mypy] files).
lint: $(BIN)/.dev-installed
	$(BIN)/ruff check .
	$(BIN)/mypy

db-upgrade: $(BIN)/.installed
	$(BIN)/omniwatch db upgrade

# Ctrl-C stops the webserver, the daemon and the code server (dagster dev's process group).
ui: $(BIN)/.installed
	mkdir -p $(OMNIWATCH_DAGSTER_DIR)
	cp omniwatch/dagster.yaml $(OMNIWATCH_DAGSTER_DIR)/dagster.yaml
	DAGSTER_HOME=$(OMNIWATCH_DAGSTER_DIR) $(BIN)/dagster dev -h 127.0.0.1 -p $(DAGSTER_PORT) -w workspace.yaml

# The serving API (uvicorn, one worker) on 127.0.0.1:$${OMNIWATCH_API_PORT:-8000}; OpenAPI at /docs.
serve: $(BIN)/.installed
	$(BIN)/python -m omniwatch.serving.app

mlflow-ui: $(BIN)/.installed
	mkdir -p $(OMNIWATCH_HOME)/mlartifacts
	@echo "Open the experiments' training runs (MLflow's own default view is GenAI traces):"
	@$(BIN)/omniwatch mlflow-links --ui-url http://127.0.0.1:$(MLFLOW_PORT)
	MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false $(BIN)/mlflow server --workers 1 \
		--host 127.0.0.1 --port $(MLFLOW_PORT) \
		--backend-store-uri sqlite:///$(abspath $(OMNIWATCH_HOME))/mlflow.db \
		--default-artifact-root $(abspath $(OMNIWATCH_HOME))/mlartifacts

bench: $(BIN)/.dev-installed
	$(BIN)/python bench/warehouse_bench.py
	$(BIN)/python bench/train_bench.py --device $${OMNIWATCH_TRAINING_DEVICE:-cpu}
	$(BIN)/python bench/serve_bench.py
	$(BIN)/python bench/exec_bench.py
	$(BIN)/python bench/exec_cost.py
	$(BIN)/python bench/demo_bench.py --rerun

clean:
	rm -rf $(OMNIWATCH_HOME)

check-defs: $(BIN)/.dev-installed
	$(BIN)/dg check defs
