# Every target sets up .venv itself; it is reinstalled only when pyproject.toml or constraints.txt changes.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo test lint bench lock clean

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet --constraint constraints.txt -e '.[dev]'
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

lock:  ## pin constraints.txt to what pyproject.toml resolves to today (a fresh virtualenv, then pip freeze)
	rm -rf build/lock-venv
	$(PYTHON) -m venv build/lock-venv
	build/lock-venv/bin/python -m pip install --quiet .
	{ sed -n '1,2p' constraints.txt; build/lock-venv/bin/python -m pip freeze --exclude greenops-controller; } > constraints.txt.new
	mv constraints.txt.new constraints.txt
	rm -rf build/lock-venv

clean:
	rm -rf $(VENV) .greenops .mypy_cache .ruff_cache .pytest_cache
