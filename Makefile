# feedbackloop — `make demo` and `make test` set everything up themselves.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip
PYTEST_WORKERS ?= 2

.PHONY: demo test bench serve lint format clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(PIP) install --quiet -e .
	touch $@

# torch first, pinned to the CPU build this machine carries: the embeddings extra would
# otherwise pull a multi-GB CUDA build.
$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(PIP) install --quiet torch==2.13.0
	$(PIP) install --quiet -e '.[test,dev]'
	touch $@

demo: $(VENV)/.installed ## set up and run the main job on the embedded SQLite default
	$(BIN)/feedbackloop demo

test: $(VENV)/.installed-test ## set up and run the whole suite (SQLite + throwaway PostgreSQL)
	$(BIN)/python scripts/with_postgres.py -- $(BIN)/python -m pytest -n $(PYTEST_WORKERS) -p no:cacheprovider --durations=20

bench: $(VENV)/.installed-test ## run the benchmarks and write benchmarks/README.md
	$(BIN)/python scripts/with_postgres.py -- $(BIN)/python -m benchmarks

serve: $(VENV)/.installed ## serve the web app and API on http://127.0.0.1:8000
	$(BIN)/feedbackloop serve

lint: $(VENV)/.installed-test ## ruff and mypy
	$(BIN)/ruff check src tests benchmarks scripts
	$(BIN)/mypy src

format: $(VENV)/.installed-test
	$(BIN)/ruff format src tests benchmarks scripts
	$(BIN)/ruff check --fix src tests benchmarks scripts

clean:
	rm -rf $(VENV) .feedbackloop
