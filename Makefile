# One entry point for people and CI. `make serve` and `make test` are the README's two commands.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: setup test lint serve bench-train clean

setup: $(STAMP)

# (Re)create the virtual environment whenever the pinned dependencies change.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

test: $(STAMP)
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check .

serve: $(STAMP)
	@echo "serving is not yet available: the service lands with issue 4"; exit 1

# Library training speed beside the reference implementations (see docs/BENCHMARKS.md).
bench-train: $(STAMP)
	$(BIN)/python bench/train_speed.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
