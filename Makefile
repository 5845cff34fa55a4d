# creditflow: every target a user or CI needs. `make help` lists them.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.DEFAULT_GOAL := help

help:  ## list the targets
	@grep -E '^[a-z-]+:.*?## ' $(MAKEFILE_LIST) | awk -F':.*?## ' '{printf "  %-12s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)  ## create .venv and install creditflow with its dev tools

# promtool checks and unit-tests the alerting rules (deploy/prometheus/); prometheus itself
# scrapes the embedded stack in tests/integration/test_dashboard.py, which checks that every
# panel of the Grafana dashboard has data. Unless each is on PATH or in .venv/bin already, it
# comes from Debian's prometheus package: downloaded once (no root needed; apt checks it
# against the signed package lists, as the user who runs make) and unpacked in a temporary
# directory, from which only the missing binaries are copied into .venv/bin. Nothing is
# installed system-wide and no service starts.
PROMETHEUS_TOOLS := promtool prometheus

prometheus: $(STAMP)  ## put prometheus and promtool in .venv/bin (Debian's prometheus package) unless on PATH
	@missing=""; \
	for tool in $(PROMETHEUS_TOOLS); do \
	    command -v $$tool >/dev/null || [ -x $(BIN)/$$tool ] || missing="$$missing $$tool"; \
	done; \
	if [ -n "$$missing" ]; then \
	    set -eu; \
	    command -v apt-get >/dev/null || { \
	        echo "prometheus:$$missing not on PATH and no apt-get to fetch them; put Prometheus's$$missing on PATH" >&2; \
	        exit 1; }; \
	    tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT; \
	    (cd "$$tmp" && apt-get download -q -o APT::Sandbox::User="$$(id -un)" prometheus); \
	    dpkg-deb -x "$$tmp"/prometheus_*.deb "$$tmp/root"; \
	    for tool in $$missing; do \
	        install -m 755 "$$tmp/root/usr/bin/$$tool" $(BIN)/$$tool; \
	        $(BIN)/$$tool --version 2>&1 | head -n 1; \
	    done; \
	fi

promtool: prometheus  ## the same as `make prometheus` (its former name)

demo: $(STAMP)  ## run the embedded stack with generated bank data, print products, stop
	$(BIN)/creditflow demo

up: $(STAMP)  ## run the embedded stack until Ctrl-C
	$(BIN)/creditflow up

bench: $(STAMP)  ## benchmark the embedded stack; writes loadtest/results/latest.json
	$(BIN)/creditflow bench

backtest: $(STAMP)  ## the signal rules over labelled histories; writes loadtest/results/backtest.json
	$(BIN)/python -m loadtest.backtest
	$(BIN)/creditflow docs

test: $(STAMP) prometheus  ## run the whole test suite (starts its own broker; Redis if needed)
	$(BIN)/python -m pytest -q -m 'not faults and not loadtools'

test-fast: $(STAMP) prometheus  ## only the tests that need no service
	$(BIN)/python -m pytest -q -m 'not integration and not faults'

faults: $(STAMP) prometheus  ## the long fault scenarios (tests/faults/), each ending in exact products
	$(BIN)/python -m pytest -q -m faults tests/faults

loadtools: $(STAMP) prometheus  ## smoke runs of the load-test tools make test leaves out (loadtest.memory)
	$(BIN)/python -m pytest -q -m loadtools tests

lint: $(STAMP)  ## ruff and mypy --strict
	$(BIN)/ruff check engine agents state loadtest tests
	$(BIN)/ruff format --check engine agents state loadtest tests
	$(BIN)/mypy

fmt: $(STAMP)  ## format the code
	$(BIN)/ruff format engine agents state loadtest tests
	$(BIN)/ruff check --fix engine agents state loadtest tests

clean:  ## remove the venv, caches and local state
	rm -rf $(VENV) .creditflow .pytest_cache .mypy_cache .ruff_cache .hypothesis

.PHONY: help install prometheus promtool demo up bench backtest test test-fast faults lint fmt clean
