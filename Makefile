# Developer tasks; everything runs from the project's own virtual environment.
# `make install` once, then any target. CI runs .ci/run (the same checks, from scratch).

PYTHON ?= python3
VENV ?= .venv
EXTRAS ?= dev,local
BIN := $(VENV)/bin

.PHONY: install format lint typecheck test test-fast bench example all

all: lint typecheck test

install:  ## create .venv (if missing) and install tiered editable with its extras
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -e '.[$(EXTRAS)]'

format:  ## rewrite the code into the house style
	$(BIN)/ruff format
	$(BIN)/ruff check --fix

lint:  ## ruff's rules and formatting, checked only
	$(BIN)/ruff check
	$(BIN)/ruff format --check

typecheck:  ## mypy --strict over src/tiered and tests (config in pyproject.toml)
	$(BIN)/mypy

test:  ## the whole suite, as CI runs it
	$(BIN)/pytest

test-fast:  ## skip the embedded local model and the wheel build
	$(BIN)/pytest -m "not local_model and not slow"

bench:  ## routing and cost benchmarks
	$(BIN)/python -m bench

example:  ## the README's example workflow (offline, on the embedded local model)
	$(BIN)/tiered run examples/triage.py
