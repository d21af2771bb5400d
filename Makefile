# seqlm: set-up and the everyday commands. `make help` lists them.
#
# Everything runs in a virtual environment at $(VENV), created from the pinned lock files on first use.

VENV    ?= .venv
PYTHON  ?= python3
BIN     := $(abspath $(VENV))/bin
export PATH := $(BIN):$(PATH)
export PYTHONHASHSEED := 0

.PHONY: help setup setup-dev repro test test-fast bench clean-venv

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/:.*## /\t/'

$(VENV)/.runtime: requirements.lock pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements.lock
	$(BIN)/pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	touch $@

$(VENV)/.dev: $(VENV)/.runtime requirements-dev.lock
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements-dev.lock
	touch $@

setup: $(VENV)/.runtime  ## create the environment for running the pipeline

setup-dev: $(VENV)/.dev  ## ... plus the test and benchmark tools

repro: setup  ## run the whole pipeline on the default params (dvc repro)
	dvc repro

test: setup-dev  ## run the full test suite
	pytest

test-fast: setup-dev  ## the tests without the end-to-end dvc runs
	pytest -m "not slow"

clean-venv:  ## remove the environment
	rm -rf $(VENV)
