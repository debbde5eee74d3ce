# One entry point for people and CI. `make serve` and `make test` are the README's two commands.
# The first of python3, python3.14 ... python3.11 that is Python 3.11 or newer; override
# with `make PYTHON=/path/to/python3.x ...`.
PYTHON ?= $(shell for p in python3 python3.14 python3.13 python3.12 python3.11; do \
	$$p -c 'import sys; sys.exit(sys.version_info < (3, 11))' >/dev/null 2>&1 \
	&& { command -v $$p; break; }; done)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: setup test screenshots test-kernels check-wheels lint models k8s-validate \
        container-test serve bench-train bench-serve bench-batch bench-onnx bench-images \
        bench-robustness bench-grpc grpc-stubs clean

setup: $(STAMP)

# (Re)create the virtual environment whenever the pinned dependencies change.
$(STAMP): pyproject.toml
	@"$(PYTHON)" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null || { echo \
	"make: needs Python 3.11 or newer as python3 (or python3.11 ... python3.14) on PATH, found: \
	$$($(or $(PYTHON),python3) --version 2>&1 | tail -1); install one, or run make \
	PYTHON=/path/to/python3.x" >&2; exit 1; }
	@"$(PYTHON)" -c 'import ensurepip, venv' 2>/dev/null || { echo "make: $(PYTHON) cannot \
	create virtual environments (no ensurepip); on Debian or Ubuntu: apt-get install \
	python3-venv" >&2; exit 1; }
	"$(PYTHON)" -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,spark]'
	touch $(STAMP)

test: $(STAMP)
	$(BIN)/python -m pytest

# The web page's screenshots (README, docs/screenshots/) from its browser tests (Chromium).
screenshots: $(STAMP)
	SCREENSHOT_DIR=docs/screenshots $(BIN)/python -m pytest -q tests/service/http/test_web_page.py

# The README replay and the model/service tests again under other OpenBLAS kernels
# (SkylakeX, Sandybridge): outputs computed elsewhere must hold on any CPU (.ci/run).
test-kernels: $(STAMP)
	$(BIN)/python tests/kernel_matrix.py

# pip resolves every pin from wheels for CPython 3.11-3.14 on Linux x86_64 and aarch64.
check-wheels: $(STAMP)
	$(BIN)/python tests/wheel_matrix.py

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
# committed ones are these recipes' output).
models: $(STAMP) artifacts/housing artifacts/mnist

artifacts/housing:
	$(BIN)/python -m training housing --data data/housing/housing.data --out artifacts

artifacts/mnist:
	$(BIN)/python -m training mnist --data data/mnist-train-10k --extra-data data/typeset-digits \
		--out artifacts

# Serve artifacts/ over HTTP on :8000 and gRPC on :8001 as one unit (gunicorn.conf.py starts
# and stops `python -m service.grpc`; PORT, GRPC_PORT, WEB_CONCURRENCY, SERVICE_*: see README).
serve: models
	$(BIN)/python -m gunicorn -c service/gunicorn.conf.py "service.app:create_app()"

# Library training speed beside the reference implementations (see docs/BENCHMARKS.md).
bench-train: $(STAMP)
	$(BIN)/python bench/train_speed.py

# Serving load (wrk, loopback, bounded) beside the minimal Flask baseline; needs `wrk`.
bench-serve: $(STAMP)
	$(BIN)/python bench/serve_load.py

# gRPC beside HTTP V2 (binary), same tritonclient client threads, 1- and 256-row MNIST, loopback.
bench-grpc: $(STAMP)
	$(BIN)/python bench/grpc_load.py

# Batch scoring: the MNIST test set (IDX) and a generated 1,000,000-row housing CSV, locally;
# then Parquet (10,000,000 housing rows, 70,000 digits): local vs Spark local[2] vs a
# two-worker standalone cluster on 127.0.0.1 (needs Java 17+).
bench-batch: $(STAMP)
	$(BIN)/python bench/batch_speed.py
	$(BIN)/python bench/spark_speed.py

# Inference beside onnxruntime on the exported graphs (one thread each), both models.
bench-onnx: $(STAMP)
	$(BIN)/python bench/onnx_speed.py

# Digit pictures (typeset in the machine's fonts, re-rendered MNIST test digits): plain
# resize vs model/digit_image preprocessing, on artifacts/mnist/1 (see docs/IMAGES.md).
bench-images: $(STAMP)
	$(BIN)/python bench/image_accuracy.py --by-font

# The long robustness runs: 1,000 slow connections, 3x overload, a 50,000-request soak,
# schemathesis with 200 examples per operation (docs/ROBUSTNESS.md; minutes).
bench-robustness: $(STAMP)
	$(BIN)/python bench/robustness.py

# Regenerate the committed gRPC stubs from the protocol's definition (after changing it or the
# grpcio-tools pin); the generated files are never edited by hand.
grpc-stubs: $(STAMP)
	$(BIN)/python -m grpc_tools.protoc -I. --python_out=. --grpc_python_out=. \
		service/grpc/proto/grpc_predict_v2.proto

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
