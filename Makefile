# Two commands on a fresh machine: `make run` and `make test`.
# Everything is installed from uv.lock (exact versions, hashes); uv itself from tools/uv.txt.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
TOOLS := .tools
UV := $(TOOLS)/bin/uv
STAMP := $(VENV)/.synced
# uv never downloads an interpreter here: it uses $(PYTHON), as the README says.
export UV_PYTHON_DOWNLOADS := never
export UV_PROJECT_ENVIRONMENT := $(VENV)

.PHONY: run test lint typecheck lock-check lock upgrade unit integration clean

$(UV): tools/uv.txt
	test -x $(TOOLS)/bin/python || $(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/python -m pip install --quiet --require-hashes --no-deps -r tools/uv.txt
	touch $(UV)

$(STAMP): $(UV) uv.lock pyproject.toml
	$(UV) sync --quiet --frozen --extra dev --extra bench --python $(PYTHON)
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/journeys up --demo

# Fails when uv.lock no longer matches pyproject.toml (run `make lock` and commit uv.lock).
lock-check: $(UV)
	$(UV) lock --check --python $(PYTHON)

# Refresh uv.lock after editing pyproject.toml, keeping every other version as it is.
lock: $(UV)
	$(UV) lock --python $(PYTHON)

# Upgrade one dependency to its newest allowed release: `make upgrade PACKAGE=pydantic`.
upgrade: $(UV)
	test -n "$(PACKAGE)" || (echo "usage: make upgrade PACKAGE=name" >&2; exit 2)
	$(UV) lock --upgrade-package "$(PACKAGE)" --python $(PYTHON)

lint: $(STAMP)
	$(BIN)/ruff check schemas projections streams journeys tests
	$(BIN)/ruff format --check schemas projections streams journeys tests

typecheck: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP)
	$(BIN)/pytest tests/unit

integration: $(STAMP)
	$(BIN)/pytest tests/integration

test: lock-check lint typecheck
	$(BIN)/pytest

clean:
	rm -rf $(VENV) $(TOOLS) build *.egg-info .mypy_cache .pytest_cache .ruff_cache
