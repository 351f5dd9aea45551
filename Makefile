# secretwatch — every target creates what it needs (virtual environments, packages) by itself.
# Three virtual environments, because SAM CLI and checkov pin their own dependencies:
#   .venv          the project, its tests and linters (Python 3.12, like the Lambda runtime)
#   .venv-sam      SAM CLI only
#   .venv-checkov  checkov only
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

# Looked up on first use only (then kept), so that `make help` works on a machine without
# Python 3.12; the targets that create a venv stop with a message instead.
PY312 = $(eval PY312 := $(shell ./scripts/find-python.sh 3.12 2>/dev/null))$(PY312)
NEED_PY312 = test -n "$(PY312)" || { echo "Python 3.12 is required (the Lambda runtime and the test venvs): none found on PATH or in pyenv" >&2; exit 1; }

export AWS_DEFAULT_REGION ?= us-east-1
export SAM_CLI_TELEMETRY = 0
export UV_PYTHON_DOWNLOADS = never
export PIP_DISABLE_PIP_VERSION_CHECK = 1

VENV := .venv
PY := $(VENV)/bin/python
UV := $(VENV)/bin/uv
UV_VERSION := 0.13.9

.PHONY: help dev lint typecheck unit integration validate build test demo bench events member-template clean

help:
	@echo "make demo    run the whole pipeline locally against a moto server (no AWS account)"
	@echo "make test    lint, type-check, validate the template and run every test"
	@echo "make bench   measure parsing, rule evaluation and pipeline cost"
	@echo "make events  regenerate the CloudWatch Logs payloads in events/ from the EventBridge ones"
	@echo "make build   sam build (installs SAM CLI in .venv-sam; deploy: docs/deploy.md)"
	@echo "make member-template  build/secretwatch-member.json, the member stack for StackSets (docs/stacksets.md)"
	@echo "the command alone, on Python 3.12 or 3.13: pipx install .   (or .venv/bin/secretwatch after make dev)"

$(VENV)/.stamp: pyproject.toml requirements/dev.lock
	@$(NEED_PY312)
	test -x $(PY) || $(PY312) -m venv $(VENV)
	$(PY) -m pip install -q uv==$(UV_VERSION)
	$(UV) pip install -q -p $(PY) -r requirements/dev.lock
	$(UV) pip install -q -p $(PY) --no-deps -e .
	touch $@

.venv-sam/.stamp: requirements/sam.lock $(VENV)/.stamp
	test -x .venv-sam/bin/python || $(UV) venv -q -p $(PY312) .venv-sam
	$(UV) pip install -q -p .venv-sam/bin/python -r requirements/sam.lock
	touch $@

.venv-checkov/.stamp: requirements/checkov.lock $(VENV)/.stamp
	test -x .venv-checkov/bin/python || $(UV) venv -q -p $(PY312) .venv-checkov
	$(UV) pip install -q -p .venv-checkov/bin/python -r requirements/checkov.lock
	touch $@

dev: $(VENV)/.stamp

lint: $(VENV)/.stamp
	$(VENV)/bin/ruff check src tests scripts
	$(VENV)/bin/ruff format --check src tests scripts

typecheck: $(VENV)/.stamp
	$(VENV)/bin/mypy

unit: $(VENV)/.stamp
	$(PY) -m pytest -q tests/unit

integration: $(VENV)/.stamp
	$(PY) -m pytest -q tests/integration

events: $(VENV)/.stamp
	$(PY) scripts/make_events.py

# Service-managed StackSets refuse the SAM transform; the member stack needs none.
member-template: $(VENV)/.stamp
	$(PY) scripts/member_template.py template.yaml build/secretwatch-member.json

# src/Makefile builds each function (Metadata BuildMethod: makefile). SAM CLI tells it nothing but
# ARTIFACTS_DIR, so the architecture and Python version of each function are read here from the
# template being built, and the project venv's pip downloads the wheels that fit them.
TEMPLATE := template.yaml
build: .venv-sam/.stamp
	build_env="$$($(PY) scripts/lambda_build_env.py $(TEMPLATE))"; \
	env $$build_env LAMBDA_PIP="$(abspath $(PY)) -m pip" LAMBDA_PYTHON_BIN="$(abspath $(PY))" \
	  .venv-sam/bin/sam build --template-file $(TEMPLATE)

# The template tests run sam validate --lint, cfn-lint and checkov from their venvs.
test: lint typecheck build .venv-checkov/.stamp
	$(PY) -m pytest -q --cov --cov-report=term

demo: $(VENV)/.stamp
	$(VENV)/bin/secretwatch demo

# The replay figure in the README is for REPLAY_RECORDS=100000 (about 12 minutes against moto).
REPLAY_RECORDS ?= 20000
bench: $(VENV)/.stamp build
	$(PY) scripts/bench.py
	$(PY) scripts/bench_replay.py --records $(REPLAY_RECORDS)

clean:
	rm -rf .venv .venv-sam .venv-checkov .aws-sam .pytest_cache .mypy_cache .ruff_cache .coverage
