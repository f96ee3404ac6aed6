# ordergraph: `make run` starts the app on its embedded default; `make test` runs every check.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
UV := $(BIN)/uv
# The uv that installs from uv.lock; the same pin as pyproject.toml's dev extra (a test checks).
UV_VERSION := 0.13.8
# Re-install whenever the declared dependencies or their lock change.
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml uv.lock | cksum | cut -d' ' -f1)
# uv uses the interpreter it is given and never downloads one.
export UV_PYTHON_DOWNLOADS := never
export UV_LINK_MODE := copy

.PHONY: run test lint unit bench clean lock

$(UV):
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet 'uv==$(UV_VERSION)'

# Exactly what uv.lock says, hashes checked; --locked fails if pyproject.toml has moved on.
$(STAMP): pyproject.toml uv.lock | $(UV)
	$(UV) sync --quiet --locked --extra local --extra dev --extra otel --python $(BIN)/python
	rm -f $(VENV)/.installed-*
	touch $@

# After changing pyproject.toml's dependencies: re-resolve what changed, keep every other pin.
# `make lock LOCK_ARGS=--upgrade` moves everything to the newest allowed versions.
lock: | $(UV)
	$(UV) lock $(LOCK_ARGS)

# Migrate, seed and serve on SQLite with the local Stripe emulator: http://127.0.0.1:8000
run: $(STAMP)
	$(BIN)/ordergraph migrate
	$(BIN)/ordergraph seed
	$(BIN)/ordergraph serve

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/lint-imports

# Everything CI runs: lint, architecture contracts, and the whole test suite (PostgreSQL at
# TEST_DATABASE_URL, default postgresql+psycopg://postgres@127.0.0.1:5432/postgres).
test: lint
	$(BIN)/pytest

unit: $(STAMP)
	$(BIN)/pytest tests/unit

# The standard benchmark set (PostgreSQL on this machine; see bench/README.md). Not a test.
bench: $(STAMP)
	$(BIN)/python -m bench.run

clean:
	rm -rf $(VENV) ordergraph.db ordergraph.db-* .pytest_cache

# The chaos suite's long soak (issue 10): >= 2,000 steps with races, webhook and provider
# faults, on a random seed it prints; replay one with `make chaos CHAOS_SEED=<seed>`.
.PHONY: chaos
chaos: $(STAMP)
	CHAOS_SOAK=1 $(BIN)/pytest tests/chaos/test_model.py -p no:cacheprovider -s -q
