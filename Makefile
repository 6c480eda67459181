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

LOCK_HEADER := \# The versions greenops is tested and shipped with (the image installs exactly these).\n\# Regenerate after changing dependencies in pyproject.toml: make lock

lock:  ## pin constraints.txt to what pyproject.toml resolves to today, on Python 3.11 like the image
	$(PYTHON) -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' || { echo "make lock needs Python 3.11 (PYTHON=python3.11)"; exit 1; }
	rm -rf build/lock-venv
	$(PYTHON) -m venv build/lock-venv
	build/lock-venv/bin/python -m pip install --quiet .
	{ printf '$(LOCK_HEADER)\n'; build/lock-venv/bin/python -m pip freeze --exclude greenops-controller; } > build/constraints.txt
	mv build/constraints.txt constraints.txt
	rm -rf build/lock-venv

clean:
	rm -rf $(VENV) .greenops .mypy_cache .ruff_cache .pytest_cache
