# The two commands a newcomer needs: `make run` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

export TEST_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/slipway
export REDIS_URL ?= redis://127.0.0.1:6379/0

.PHONY: run test lint venv services clean

$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "slipway: $(PYTHON) is required (install Python 3.11)"; exit 1; }
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	@touch $(STAMP)

venv: $(STAMP)

services:
	@bash platform/scripts/ensure-services.sh

test: venv services
	$(BIN)/ruff check .
	DATABASE_URL=$(TEST_DATABASE_URL) $(BIN)/python -m pytest -q

lint: venv
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

run: venv
	@bash platform/scripts/run.sh

clean:
	rm -rf $(VENV) var
