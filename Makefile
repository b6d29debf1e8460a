# ice_pipeline — the two-command start: `make demo` and `make test` (README).
SHELL  := /bin/bash
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# The Prisma drift check's CLI (tools/prisma-drift): node_modules under .venv, used by test_prisma_drift.py.
DRIFT_DIR   := $(VENV)/prisma-drift
DRIFT_STAMP := $(DRIFT_DIR)/.installed
ICE    := $(BIN)/ice-pipeline
export ICE_LOCAL_DIR ?= $(CURDIR)/.ice

.PHONY: install demo test lint ui down bench clean clean-data

install: $(STAMP) $(DRIFT_STAMP)

# Reinstall when the dependencies or the lock change; constraints.txt pins every package.
# `.[dev]` includes the extra `.[local]` (moto, the embedded S3 server).
$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip wheel
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[dev]"
	touch $(STAMP)

$(DRIFT_STAMP): tools/prisma-drift/package-lock.json
	tools/prisma-drift/install.sh $(DRIFT_DIR)
	if [ -d $(DRIFT_DIR)/node_modules/prisma ]; then touch $(DRIFT_STAMP); fi

demo: install
	$(ICE) local up
	$(ICE) db init
	$(ICE) demo-data --persons $${DEMO_PERSONS:-2000} --seed $${DEMO_SEED:-1}
	$(ICE) migrate
	$(ICE) report
	@echo
	@echo "Open the Dagster UI on http://127.0.0.1:3000 with: make ui"
	@echo "Stop the embedded services with: make down"

# One pytest worker per CPU (pytest-xdist): each worker starts its own embedded PostgreSQL and S3
# server, every test has its own databases. PYTEST_WORKERS=0 runs in one process.
PYTEST_WORKERS ?= logical
test: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python -m pytest -q -p no:cacheprovider -n $(PYTEST_WORKERS)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

ui: install
	$(ICE) local up
	$(ICE) db init
	. <($(ICE) local env) && $(BIN)/python -m ice_pipeline.dev.launcher dev -h 127.0.0.1 -p 3000 -w workspace.yaml

down:
	-$(ICE) local down

bench: install
	$(BIN)/python -m benchmarks.migration --persons $${BENCH_PERSONS:-100000}

# The embedded databases and S3 objects live in .ice/: `clean` keeps them, `clean-data` removes them.
clean: down
	rm -rf $(VENV)

clean-data: down
	rm -rf .ice
