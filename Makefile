# Two commands for a new user: `make serve` and `make test`. Both create .venv and install what they need.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: serve test install bench lint

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

install: $(BIN)/python
	$(BIN)/pip install --quiet -e '.[test]'

serve: install
	$(BIN)/cds-service serve

test: install
	$(BIN)/ruff check .
	$(BIN)/pytest

# wrk (Debian package) drives the load; without it (not root, no apt) the benchmark falls back to a Python load generator.
bench: install
	$(BIN)/pip install --quiet -e '.[test,bench]'
	@command -v wrk >/dev/null 2>&1 || apt-get install -y -qq wrk >/dev/null 2>&1 || \
		(apt-get update -qq && apt-get install -y -qq wrk) >/dev/null 2>&1 || \
		echo "wrk could not be installed: using the Python load generator (see benchmarks/loadgen.py)"
	$(BIN)/python -m benchmarks.run
