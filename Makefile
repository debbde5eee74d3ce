# One entry point for people and CI. `make serve` and `make test` are the README's two commands.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: setup test lint models k8s-validate container-test serve bench-train bench-serve \
        bench-batch clean

setup: $(STAMP)

# (Re)create the virtual environment whenever the pinned dependencies change.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,spark]'
	touch $(STAMP)

test: $(STAMP)
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/hadolint Dockerfile

# deploy/k8s/ against Kubernetes' schemas (strict, offline), KServe's types and each other.
k8s-validate: $(STAMP)
	$(BIN)/python deploy/validate_k8s.py

# Build the image with podman and check it end to end on 127.0.0.1 (needs root and the
# default models in artifacts/; see deploy/container_test.py). About 15 s once built.
container-test: $(STAMP)
	$(BIN)/python deploy/container_test.py

# The default models, trained on the bundled data only if artifacts/ lacks them (the
# committed ones are these commands' output).
models: $(STAMP) artifacts/housing artifacts/mnist

artifacts/housing:
	$(BIN)/python -m training housing --data data/housing/housing.data --out artifacts

artifacts/mnist:
	$(BIN)/python -m training mnist --data data/mnist-train-10k --out artifacts

# Serve artifacts/ on :8000 (PORT, WEB_CONCURRENCY, SERVICE_* variables: see README).
serve: models
	$(BIN)/python -m gunicorn -c service/gunicorn.conf.py "service.app:create_app()"

# Library training speed beside the reference implementations (see docs/BENCHMARKS.md).
bench-train: $(STAMP)
	$(BIN)/python bench/train_speed.py

# Serving load (wrk, loopback, bounded) beside the minimal Flask baseline; needs `wrk`.
bench-serve: $(STAMP)
	$(BIN)/python bench/serve_load.py

# Batch scoring: the MNIST test set (IDX) and a generated 1,000,000-row housing CSV, locally;
# then Parquet (10,000,000 housing rows, 70,000 digits): local vs Spark local[2] vs a
# two-worker standalone cluster on 127.0.0.1 (needs Java 17+).
bench-batch: $(STAMP)
	$(BIN)/python bench/batch_speed.py
	$(BIN)/python bench/spark_speed.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
