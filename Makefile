# workbench: `make demo` sets everything up and runs the demo; `make test` runs every check.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3.11
UV_VERSION := 0.13.8
VENVS := .venvs
UV := $(VENVS)/tools/bin/uv
LAB := $(VENVS)/lab/bin
EXTRAS := lab airflow flink
PYTEST_ARGS ?=

export UV_PYTHON_DOWNLOADS := never
export MLFLOW_DISABLE_TELEMETRY ?= true
export BENTOML_DO_NOT_TRACK ?= true

.PHONY: help envs jars chromium wrk up airflow lab down status demo test bench check lint typecheck pytest clean

help:
	@echo "make demo    set up everything (uv, environments, jars), start the stack, run the demo"
	@echo "make test    lint, type checks and the whole test suite (starts its own services)"
	@echo "make up / make down / make status   the local stack"
	@echo "make airflow Airflow 3 (api-server, scheduler, dag-processor) on 127.0.0.1:8080"
	@echo "make envs    sync the lab, airflow and flink environments from uv.lock"
	@echo "make jars    fetch the Kafka broker and Flink connector from Maven Central"
	@echo "make lab     JupyterLab on 127.0.0.1:8888 (token printed by make status)"
	@echo "make bench   the benchmarks (features, serving, stream, batch), each against its peer"
	@echo "make chromium  Debian's Chromium for the browser tests (Playwright never downloads one)"

# uv itself comes from PyPI, pinned, into a tools environment of its own.
$(UV):
	@command -v $(PYTHON) >/dev/null || { echo "$(PYTHON) not found: install Python 3.11"; exit 1; }
	$(PYTHON) -m venv $(VENVS)/tools
	$(VENVS)/tools/bin/pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

# $(call apt,COMMAND,PACKAGE): install Debian's PACKAGE when COMMAND is missing (as root).
apt = @if command -v $(1) >/dev/null; then :; \
	elif [ "$$(id -u)" = 0 ]; then \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(2) >/dev/null \
		|| { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(2) >/dev/null; }; \
	else echo "$(1) is missing: sudo apt-get install -y $(2)"; exit 1; fi

# One environment per extra, all from the same lock. Bytecode is compiled at install:
# where PYTHONDONTWRITEBYTECODE is set, every import would compile its sources again.
$(VENVS)/%/.synced: pyproject.toml uv.lock | $(UV)
	UV_PROJECT_ENVIRONMENT=$(VENVS)/$* $(UV) sync --frozen --extra $* --python $(PYTHON) --compile-bytecode --quiet
	@touch $@

# The lab environment's kernel, under a name the notebooks use and Papermill finds.
$(VENVS)/lab/.kernel: $(VENVS)/lab/.synced
	$(LAB)/python -m ipykernel install --sys-prefix --name workbench --display-name "workbench (lab)" >/dev/null
	@touch $@

envs: $(foreach extra,$(EXTRAS),$(VENVS)/$(extra)/.synced) $(VENVS)/lab/.kernel

jars: $(VENVS)/lab/.synced
	$(LAB)/wb jars

up: envs jars
	$(LAB)/wb up

airflow: envs
	$(LAB)/wb up airflow

lab: envs
	$(LAB)/wb up lab

# The browser tests drive Debian's Chromium through Playwright; no browser is downloaded.
chromium:
	$(call apt,/usr/bin/chromium,chromium)

down:
	@if [ -x $(LAB)/wb ]; then $(LAB)/wb down; else echo "nothing to stop"; fi

status: $(VENVS)/lab/.synced
	$(LAB)/wb status

demo: up
	$(LAB)/wb demo

lint: $(VENVS)/lab/.synced
	$(LAB)/ruff check .
	$(LAB)/ruff format --check .

typecheck: $(VENVS)/lab/.synced
	$(LAB)/mypy

pytest: envs chromium
	$(LAB)/python -m pytest $(PYTEST_ARGS)

check: lint typecheck

# wrk drives the serving benchmark from a process of its own (Debian's package).
wrk:
	$(call apt,wrk,wrk)

bench: envs jars wrk
	$(LAB)/python benchmarks/features.py
	$(LAB)/python benchmarks/serving.py
	$(LAB)/python benchmarks/stream.py
	$(LAB)/python benchmarks/batch.py

test: envs jars chromium check pytest

clean: down
	rm -rf $(VENVS) images/target
