# The two commands a newcomer needs: `make run` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed


.PHONY: run stop test lint shellcheck tools venv services docker browser clean

$(STAMP): pyproject.toml cli/pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "slipway: $(PYTHON) is required (install Python 3.11)"; exit 1; }
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]' -e ./cli
	@touch $(STAMP)

venv: $(STAMP)

services:
	@bash platform/scripts/ensure-services.sh

# Image builds need a Docker engine; the browser tests need Chromium. Both are installed when missing.
docker:
	@bash platform/scripts/ensure-docker.sh

browser:
	@bash platform/scripts/ensure-chromium.sh

# Shell scripts are checked like the Python: Debian's shellcheck, installed when missing.
SHELL_SCRIPTS := platform/scripts/*.sh platform/entrypoint.sh .ci/run
shellcheck:
	@bash platform/scripts/ensure-commands.sh shellcheck:shellcheck
	shellcheck $(SHELL_SCRIPTS)

# What the packaging tests drive: docker-compose validates docker-compose.yml; the README's
# examples are run with curl and jq.
tools:
	@bash platform/scripts/ensure-commands.sh docker-compose:docker-compose jq:jq curl:curl

test: lint services docker browser tools
	SLIPWAY_BASE_IMAGE=$$(bash platform/scripts/base-image.sh) $(BIN)/python -m pytest -q

# Style, formatting, the import contracts of pyproject.toml, types and shell scripts: what
# .pre-commit-config.yaml runs too.
lint: venv shellcheck
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports
	$(BIN)/mypy

run: venv
	@bash platform/scripts/run.sh

# Ends what `make run` leaves running on purpose: its registry and the demo's model containers.
stop:
	@bash platform/scripts/stop.sh

clean:
	rm -rf $(VENV) var
