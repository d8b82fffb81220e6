# Spendwise: `make run` (demo data + one full refresh) and `make test` work on a fresh machine.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
export DAGSTER_HOME ?= $(CURDIR)/.dagster_home
export PATH := $(CURDIR)/$(BIN):$(PATH)
MANIFEST := dbt_project/target/manifest.json
STAMP := $(VENV)/.installed
# pyspark + dbt-spark (~460 MB) for the Spark tests only: requirements-spark.txt says why.
SPARK_STAMP := $(VENV)/.installed-spark
# pytest-xdist workers for `make test`: one per core here (2); tests of one file stay on one worker, the
# long files first (tests/conftest.py LONG_FILES_FIRST; --no-loadscope-reorder keeps that order)
TEST_WORKERS ?= 2

.DEFAULT_GOAL := help
.PHONY: help install manifest run refresh demo test test-fast browser dev serve bench lock clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F ':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(STAMP): requirements.lock pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip uv
	$(BIN)/uv pip install --quiet --python $(BIN)/python -r requirements.lock
	$(BIN)/uv pip install --quiet --python $(BIN)/python --no-deps -e .
	@touch $@

$(SPARK_STAMP): requirements-spark.txt $(STAMP)
	$(BIN)/uv pip install --quiet --python $(BIN)/python -r requirements-spark.txt -c requirements.lock
	@touch $@

install: $(STAMP) ## create .venv and install the pinned dependencies (+ the test tools)

$(DAGSTER_HOME)/dagster.yaml: deploy/dagster.local.yaml
	@mkdir -p $(DAGSTER_HOME)
	cp deploy/dagster.local.yaml $@

$(MANIFEST): $(STAMP) $(shell find dbt_project/models dbt_project/macros dbt_project/seeds dbt_project/tests -type f 2>/dev/null) dbt_project/dbt_project.yml
	cd dbt_project && ../$(BIN)/dbt parse --quiet --profiles-dir .
	@touch $@

manifest: $(MANIFEST) ## prepare the dbt manifest that the Dagster definitions load

run: $(STAMP) $(MANIFEST) $(DAGSTER_HOME)/dagster.yaml ## demo data + one full refresh through Dagster + summary
	$(BIN)/spendwise run

demo: $(STAMP) ## (re)write the demo data set into the raw schema
	$(BIN)/spendwise demo

refresh: $(STAMP) $(MANIFEST) $(DAGSTER_HOME)/dagster.yaml ## materialize the whole graph once on the current raw data
	$(BIN)/spendwise refresh

browser: ## Debian's chromium for the browser test (apt-get as root; otherwise says how)
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing chromium for the browser test"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else \
	    echo "chromium not found: the browser test will be skipped (sudo apt-get install chromium)"; \
	  fi; }

test: $(STAMP) $(SPARK_STAMP) $(MANIFEST) browser ## the whole test suite, PostgreSQL, Spark and browser tests included
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder --durations=25

test-fast: $(STAMP) $(MANIFEST) ## the suite without tests marked slow
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder -m "not slow"

dev: $(STAMP) $(MANIFEST) $(DAGSTER_HOME)/dagster.yaml ## Dagster UI + daemon (schedules, landing sensor on data/landing) on http://127.0.0.1:3000
	@landing="$${SPENDWISE_LANDING_DIR:-$(CURDIR)/data/landing}"; mkdir -p "$$landing"; \
	  echo "landing folder: $$landing (drops: a sub-folder with the raw files, then _READY)"; \
	  SPENDWISE_LANDING_DIR="$$landing" $(BIN)/dagster dev -w workspace.yaml -h 127.0.0.1 -p 3000

serve: $(STAMP) ## chart and data HTTP service on http://127.0.0.1:8000
	$(BIN)/spendwise serve

bench: $(STAMP) $(MANIFEST) ## speed and memory benchmarks (figures printed, nothing asserted)
	@for b in benchmarks/bench_*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

lock: ## re-pin requirements.lock from requirements.in (name==version only)
	$(BIN)/uv pip compile requirements.in --python-version 3.11 --no-header --no-annotate -o requirements.lock

clean: ## remove generated data, charts, dbt target and the local Dagster instance
	rm -rf data dbt_project/target dbt_project/logs .dagster_home
