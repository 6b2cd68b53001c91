# Two commands for a fresh clone: `make demo` and `make test`.
# Each creates .venv (Python 3.11 or 3.12) and installs what it needs first.

PYTHON ?= $(shell command -v python3.11 || command -v python3.12 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
SOURCES := $(shell find app engine rules adapters simulations service -type f \( -name '*.py' -o -name '*.yaml' -o -name '*.jsonl' \) 2>/dev/null)

.PHONY: demo test lint typecheck unit bench clean

$(STAMP): pyproject.toml $(SOURCES)
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -c 'import sys; assert (3, 11) <= sys.version_info[:2] < (3, 13), "pumpguard needs Python 3.11 or 3.12 (durable-rules 2.0.28 does not load on 3.13)"'
	$(BIN)/python -m pip install -q --upgrade pip setuptools wheel
	$(BIN)/python -m pip install -q -e '.[dev]' --config-settings editable_mode=strict
	@touch $(STAMP)

demo: $(STAMP)
	$(BIN)/pumpguard demo

test: lint typecheck unit

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy -p pumpguard

unit: $(STAMP)
	$(BIN)/pytest -q

bench: $(STAMP)
	$(BIN)/python benchmarks/replay_throughput.py

clean:
	rm -rf $(VENV) build *.egg-info
