# Quick start: `make demo`, then `make test`.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
export DAGSTER_HOME := $(CURDIR)/.dagster_home

.PHONY: install demo ui test emulator clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e ".[test]"
	touch $@

install: $(VENV)/.installed

$(DAGSTER_HOME)/dagster.yaml: dagster.yaml
	mkdir -p $(DAGSTER_HOME)
	cp dagster.yaml $@

## Serve the bundled emulator, run sync_all into DuckDB, print what landed, stop the emulator.
## ARGS passes the emulator's API-habit switches to demo, ui and emulator, e.g.
## `make demo ARGS="--rate-limit 40 --rate-window 240 --fixed-window --rate-headers --no-retry-after"`.
demo: install $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/python -m synchroteam_emulator.demo run $(ARGS)

## The Dagster UI (http://127.0.0.1:3000) on the bundled emulator.
ui: install $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/python -m synchroteam_emulator.demo ui $(ARGS)

## The emulator alone, for pointing other tools at it.
emulator: install
	$(BIN)/python -m synchroteam_emulator --port 8765 $(ARGS)

test: install
	$(BIN)/python -m pytest

clean:
	rm -rf data .dagster_home

## Benchmarks against the emulator (about 40 min on 2 cores; not part of `make test` or CI): rewrites the
## tables of BENCHMARKS.md. `make bench ARGS=--quick` is a smoke run of every phase at 1/20 of the scale.
.PHONY: bench
bench: install
	$(BIN)/python -m bench.run $(ARGS)
