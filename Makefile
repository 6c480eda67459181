# Every target sets up .venv itself; it is reinstalled only when pyproject.toml changes.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo test lint bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)  ## create or refresh .venv

demo: $(STAMP)  ## build .greenops/demo and run one reconcile on it
	$(BIN)/greenops demo

test: $(STAMP)  ## lint, type-check and run the whole test suite
	$(BIN)/ruff check controller tests bench
	$(BIN)/mypy
	$(BIN)/pytest

bench: $(STAMP)  ## benchmarks recorded in BENCHMARKS.md
	$(BIN)/python bench/validate_speed.py
	$(BIN)/python bench/backtests.py

clean:
	rm -rf $(VENV) .greenops .mypy_cache .ruff_cache .pytest_cache
