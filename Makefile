# ordergraph: `make run` starts the app on its embedded default; `make test` runs every check.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)

.PHONY: run test lint unit bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[local,dev]'
	rm -f $(VENV)/.installed-*
	touch $@

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
