# The README's commands. `make run` serves the demo; `make test` runs every test.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
FLASK := $(BIN)/flask --app wsgi
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | sha1sum | cut -c1-12)
HOST ?= 127.0.0.1
PORT ?= 5000
LOCALSTRIPE_PORT ?= 8420

.PHONY: run test lint bench install db-upgrade clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/pip install --quiet -e '.[dev]'
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

install: $(STAMP)

db-upgrade: install
	$(FLASK) db upgrade

# Migrates, seeds the demo, starts localstripe and the app; links in emails use BASE_URL, by default
# http://$(HOST):$(PORT) (scripts/run-dev.sh). `make run RUN_FLAGS=--dry-run` shows what it would use.
run: install
	@BIN=$(BIN) bash scripts/run-dev.sh $(RUN_FLAGS) $(HOST) $(PORT) $(LOCALSTRIPE_PORT)

test: install
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check retreat tests bench
	$(BIN)/lint-imports

bench: install
	$(BIN)/python -m bench $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache
