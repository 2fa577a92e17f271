# Quick start: `make demo`, then `make test`.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
DBT_VENV := $(VENV)/dbt
export DAGSTER_HOME := $(CURDIR)/.dagster_home

.PHONY: install demo ui sql test test-fast lint typecheck lock emulator clean docs docs-serve analytics-sources

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -qq --upgrade pip

# -qq: pip's errors only (a machine's pip configuration can add a warning per package to every install)
$(VENV)/.installed: pyproject.toml requirements.lock | $(BIN)/python
	$(BIN)/pip install -qq -c requirements.lock -e ".[test]"
	touch $@

# dbt in a virtualenv of its own, beside ours (analytics/requirements.txt says why)
$(DBT_VENV)/.installed: analytics/requirements.txt requirements-dbt.lock | $(BIN)/python
	$(PYTHON) -m venv $(DBT_VENV)
	$(DBT_VENV)/bin/pip install -qq --upgrade pip
	$(DBT_VENV)/bin/pip install -qq -c requirements-dbt.lock -r analytics/requirements.txt
	touch $@

install: $(VENV)/.installed $(DBT_VENV)/.installed

## The instance's settings: dagster.yaml, plus a PostgreSQL storage block when SYNC_DAGSTER_POSTGRES_URL is set
## (written every time: the variable may have changed).
.PHONY: $(DAGSTER_HOME)/dagster.yaml
$(DAGSTER_HOME)/dagster.yaml: install
	$(BIN)/python -m sync_pipelines.instance dagster.yaml $(DAGSTER_HOME)

## Serve the bundled emulator, run sync_all into DuckDB, print what landed, stop the emulator.
## ARGS passes the emulator's API-habit switches to demo, ui and emulator, e.g.
## `make demo ARGS="--rate-limit 40 --rate-window 240 --fixed-window --rate-headers --no-retry-after"`.
demo: install $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/python -m synchroteam_emulator.demo run $(ARGS)

## An SQL shell on the analysts' read copy, read-only, with the project's DuckDB (`duckdb` from PyPI cannot open
## it); SQL on standard input runs as a script: `echo "select count(*) from analytics.invoices" | make sql`.
sql: install
	@$(BIN)/python -m sync_pipelines.warehouse.shell $(ARGS)

## The Dagster UI (http://127.0.0.1:$(UI_PORT), default 3000) on the bundled emulator; the emulator's variables
## are printed and written to $(DAGSTER_HOME)/emulator.env.
UI_PORT ?= 3000
ui: install $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/python -m synchroteam_emulator.demo ui --port $(UI_PORT) $(ARGS)

## The emulator alone, for pointing other tools at it.
emulator: install
	$(BIN)/python -m synchroteam_emulator --port 8765 $(ARGS)

## Tests run on TEST_WORKERS processes (pytest-xdist; default 2, the cores CI has): a test that starts a server
## for its module keeps its tests on one worker (`xdist_group`). `make test TEST_WORKERS=0` runs them in this process.
TEST_WORKERS ?= 2
PYTEST := $(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadgroup

## Every test (what CI runs, after lint and typecheck): unit, integration and end to end.
test: install
	$(PYTEST)

## The edit-test loop: unit and in-process integration tests; no process started, no PostgreSQL, no UI (the
## `slow` ones: sync_pipelines_tests/end_to_end/ and every test that needs PostgreSQL).
test-fast: install
	$(PYTEST) -m "not slow"

## ruff: lint, and the formatter's check.
lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

## mypy over the product and the emulator (configured in pyproject.toml).
typecheck: install
	$(BIN)/mypy

## Pin every installed package again (after changing a dependency in pyproject.toml).
lock: install
	( sed -n '1,2p' requirements.lock; $(BIN)/pip freeze --exclude-editable ) > requirements.lock.new
	mv requirements.lock.new requirements.lock
	( sed -n '1,2p' requirements-dbt.lock; $(DBT_VENV)/bin/pip freeze ) > requirements-dbt.lock.new
	mv requirements-dbt.lock.new requirements-dbt.lock

## dbt's docs site of the analytics schema (the data dictionary): analytics/target/docs/index.html, built from the
## configured warehouse (on DuckDB, from a scratch copy of the read copy: no sync is disturbed).
docs: install
	$(BIN)/python -m sync_pipelines.warehouse.analytics docs

## Serve it on http://127.0.0.1:$(DOCS_PORT) (default 8080).
DOCS_PORT ?= 8080
docs-serve: docs
	cd analytics/target/docs && ../../../$(BIN)/python -m http.server $(DOCS_PORT) --bind 127.0.0.1

## After adding a tenant or an entity to the catalogue: the dbt sources and tenant list follow it.
analytics-sources: install
	$(BIN)/python -m sync_pipelines.warehouse.analytics sources

clean:
	rm -rf data .dagster_home

## Benchmarks against the emulator (1.5-2.5 h on 2 cores; not part of `make test` or CI): rewrites the
## tables of BENCHMARKS.md. `make bench ARGS=--quick` is a smoke run of every phase at 1/20 of the scale.
.PHONY: bench
bench: install
	$(BIN)/python -m bench.run $(ARGS)
