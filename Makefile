# The one source of truth for commands: CI (.ci/run) and humans call these targets.
# `make demo` and `make test` bootstrap .venv themselves; a stamp keyed on pyproject.toml
# makes the install step a no-op when nothing changed.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
PY     := $(BIN)/python
HASH   := $(shell cat pyproject.toml | cksum | cut -d' ' -f1)
STAMP_RUN := $(VENV)/.installed-run-$(HASH)
STAMP_DEV := $(VENV)/.installed-dev-$(HASH)
# Two test processes (pytest-xdist): each has its own database and Redis db (tests/conftest.py); most tests wait
# on servers, so two halve the run even on two cores. `make test PYTEST_ARGS=-n0` runs them in one process.
PYTEST_ARGS ?= -n 2

.DEFAULT_GOAL := help
.PHONY: help demo test lint fmt bench clean venv

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-8s %s\n", $$1, $$2}'

$(PY):
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Mirage needs Python 3.11+ (set PYTHON=...)")'
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(STAMP_RUN): | $(PY)
	$(PY) -m pip install --quiet -e .
	@rm -f $(VENV)/.installed-run-* && touch $@

$(STAMP_DEV): | $(PY)
	$(PY) -m pip install --quiet -e '.[dev]'
	@rm -f $(VENV)/.installed-dev-* $(VENV)/.installed-run-* && touch $@ $(STAMP_RUN)

venv: $(STAMP_DEV)  ## create .venv with the dev extra

demo: $(STAMP_RUN)  ## run the demo: embedded Postgres + Redis, simulator, plan/apply, webhooks
	$(BIN)/mirage demo

test: $(STAMP_DEV)  ## run the test suite against real Postgres and Redis
	$(PY) -m pytest $(PYTEST_ARGS)

lint: $(STAMP_DEV)  ## ruff, mypy and the import-layer contracts
	$(BIN)/ruff check mirage tests bench
	$(BIN)/ruff format --check mirage tests bench
	$(BIN)/mypy mirage
	$(BIN)/lint-imports
	$(BIN)/mirage schema export --check

fmt: $(STAMP_DEV)  ## format and autofix
	$(BIN)/ruff format mirage tests bench
	$(BIN)/ruff check --fix mirage tests bench

bench: $(STAMP_DEV)  ## run the benchmarks; they print figures next to their targets
	@for b in bench/*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

clean:  ## stop embedded servers and remove .venv and state folders
	-$(BIN)/mirage down 2>/dev/null
	-MIRAGE_STATE_DIR=.mirage-test $(BIN)/mirage down 2>/dev/null
	rm -rf $(VENV) .mirage .mirage-test .pytest_cache .mypy_cache .ruff_cache
