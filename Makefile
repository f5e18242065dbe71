# Market Spine: `make run` (embedded demo) and `make test` (lint, architecture, tests).
# Both bootstrap .venv from constraints.txt on first use; nothing else needs installing.

PYTHON ?= $(shell command -v python3.11 2>/dev/null || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
HOST   ?= 127.0.0.1
PORT   ?= 8000
PYTEST_ARGS ?=

.DEFAULT_GOAL := help
.PHONY: help venv run test lint types arch security pytest bench clean manifests

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-8s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml constraints.txt
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else "Market Spine needs Python 3.11 (set PYTHON=/path/to/python3.11)")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev]'
	@touch $(STAMP)

venv: $(STAMP) ## create .venv and install pinned dependencies

run: $(STAMP) ## set up the embedded database, load sample data, serve on $(HOST):$(PORT)
	DJANGO_DEBUG=$${DJANGO_DEBUG:-1} $(BIN)/python manage.py spine_demo --host $(HOST) --port $(PORT)

test: lint types arch security pytest ## lint, types, architecture checks, security gates and the tests

lint: $(STAMP) ## ruff
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

types: $(STAMP) ## mypy (strict on the ledger's core modules: pyproject.toml [tool.mypy])
	DJANGO_DEBUG=$${DJANGO_DEBUG:-1} $(BIN)/mypy executions dlq otc spine_project

arch: $(STAMP) ## import-linter layering contracts (the AST rules run with pytest)
	$(BIN)/lint-imports

# --- security gates (issue 8): bandit fails on any high-severity finding; pip-audit is opt-in
# (SPINE_PIP_AUDIT=1) and skips itself when its service is unreachable.
security: $(STAMP) ## bandit (no high findings) and, where reachable, pip-audit
	$(BIN)/bandit -q -c pyproject.toml -r executions dlq otc spine_project scripts manage.py --severity-level high
	$(BIN)/python scripts/pip_audit_gate.py

pytest: $(STAMP)
	DJANGO_DEBUG=$${DJANGO_DEBUG:-1} $(BIN)/pytest $(PYTEST_ARGS)

bench: $(STAMP) ## benchmarks (tests/benchmarks), printed and written to bench-results/
	DJANGO_DEBUG=$${DJANGO_DEBUG:-1} SPINE_LOG_LEVEL=$${SPINE_LOG_LEVEL:-WARNING} $(BIN)/python -m pytest tests/benchmarks -p no:cacheprovider -o addopts="" -s $(PYTEST_ARGS)

manifests: $(STAMP) ## re-render deploy/k8s/ from the Helm chart
	$(BIN)/python scripts/render_manifests.py

clean: ## remove the virtualenv and the embedded database
	rm -rf $(VENV) var .pytest_cache .ruff_cache .mypy_cache
