# Two entry points, each self-contained on a fresh Debian 12 machine:
#   make demo   set up, back up a sample directory, restore it, verify
#   make test   set up with test dependencies and run lint, layer contract and the test suite
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PYTEST_ARGS ?=

.PHONY: demo test lint venv venv-test clean bench

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

venv: $(BIN)/python
	$(BIN)/pip install --quiet -e .

venv-test: $(BIN)/python
	$(BIN)/pip install --quiet -e '.[test]'

demo: venv
	bash scripts/demo.sh

lint: venv-test
	$(BIN)/ruff check src tests bench
	$(BIN)/lint-imports

test: lint
	$(BIN)/python -m pytest $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) build src/*.egg-info .pytest_cache .ruff_cache
