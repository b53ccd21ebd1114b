# The two commands a new user needs: `make demo` and `make test`. Both set up .venv first.
SHELL := bash
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin
# Set-up is redone only when pyproject.toml or the constraints change.
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml constraints.txt | sha1sum | cut -c1-16)
PIP := $(BIN)/pip install --quiet --constraint constraints.txt
export OMP_NUM_THREADS ?= 1
export OPENBLAS_NUM_THREADS ?= 1
export MKL_NUM_THREADS ?= 1

.PHONY: setup services demo test test-fast bench bench-quick lint clean

setup: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@echo "installing torch (CPU build) and athanor into $(VENV) ..."
	@$(PIP) torch==2.13.0 2> >(grep -v "is ignored: it is neither" >&2)
	@$(PIP) -e '.[dev]' 2> >(grep -v "is ignored: it is neither" >&2)
	@rm -f $(VENV)/.installed-*
	@touch $@

# The demo campaign on the simulated lab: 40 experiments on 4 furnaces, then the report.
demo: $(STAMP)
	@rm -rf runs/demo runs/sim
	$(BIN)/athanor run lab_configs/campaigns/demo.yaml --db runs/demo/athanor.db
	$(BIN)/athanor report batio3-demo --db runs/demo/athanor.db --out runs/demo/report.html

# The programs of the services the tests start for themselves (tests/services.py):
# PostgreSQL's server, Debian's package, installed as root when missing.
PG_CTL ?= $(wildcard /usr/lib/postgresql/*/bin/pg_ctl)
services:
	@if [ -z "$(PG_CTL)" ] && ! command -v pg_ctl >/dev/null; then \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
			echo "installing PostgreSQL (Debian's postgresql) for the store's tests ..."; \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
				apt-get install -y -qq --no-install-recommends postgresql >/dev/null; \
		else \
			echo "PostgreSQL's server is missing (apt-get install postgresql as root):" \
				"the store's PostgreSQL tests will fail" >&2; \
		fi; \
	fi

# pytest's exit code 5 (no tests ran) counts as a failure.
test: $(STAMP) services
	@$(BIN)/python -m pytest; rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "no tests ran: failing" >&2; exit 1; fi; exit $$rc

test-fast: $(STAMP) services
	$(BIN)/python -m pytest -m "not slow"

bench: $(STAMP)
	$(BIN)/python -m benchmarks

bench-quick: $(STAMP)
	$(BIN)/python -m benchmarks --quick

# Layer rules: import-linter reads one package tree, so athanor.drivers, .protocols and
# .simulators (installed from their own folders) are linked into one under build/layers.
LAYERS := build/layers/athanor
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy src
	@rm -rf $(LAYERS) && mkdir -p $(LAYERS)
	@for f in src/athanor/*; do ln -s "$(CURDIR)/$$f" $(LAYERS)/; done
	@for p in drivers protocols simulators; do ln -s "$(CURDIR)/$$p" $(LAYERS)/$$p; done
	cd $(LAYERS)/.. && PYTHONPATH=. $(CURDIR)/$(BIN)/lint-imports --config $(CURDIR)/pyproject.toml

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache .mypy_cache
