# Two commands do all the set-up on a fresh machine:
#   make run   - virtualenv, install mailproc, create/upgrade the SQLite database, load the
#                sample data and run the main job with the embedded defaults
#   make test  - install the development and test dependencies, then run the whole suite
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: run test lint bench corpus-check clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

run: $(BIN)/python
	$(BIN)/pip install -q .
	$(BIN)/mailproc init --sample-data
	$(BIN)/mailproc ingest --sample
	$(BIN)/mailproc tickets list
	$(BIN)/mailproc deliver --once
	$(BIN)/mailproc serve

test: $(BIN)/python
	bash scripts/install-test-deps.sh
	$(BIN)/pip install -q -e '.[dev]'
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/pytest

corpus-check: $(BIN)/python
	$(BIN)/python scripts/corpus_check.py ../shared/corpora

bench: $(BIN)/python
	$(BIN)/python benchmarks/bench_ingest.py

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .ruff_cache .mypy_cache
