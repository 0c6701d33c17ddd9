# The project's commands. `make synth` and `make test` set everything up on a fresh machine.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
# The project's tools first: the venv's Python and the pinned CDK CLI and Node 22 from node_modules.
export PATH := $(CURDIR)/$(VENV)/bin:$(CURDIR)/node_modules/.bin:$(PATH)
# Synth talks to no one: no telemetry, no notices (see also cdk.json).
export CDK_DISABLE_CLI_TELEMETRY := 1
CDK := cdk --no-notices
# Extra CDK context, e.g. CONTEXT="-c pinpoint=true".
CONTEXT ?=
EMAIL ?=
DEPLOY_CONTEXT := $(CONTEXT) $(if $(EMAIL),-c email=$(EMAIL))
TEMPLATES = cdk.out/*.template.json

.PHONY: setup synth test lint typecheck unit snapshot-update bootstrap deploy diff destroy clean diagrams demo

setup: $(VENV)/.installed node_modules/.installed

$(VENV)/.installed: requirements.txt requirements-dev.txt pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11 or newer is needed (set PYTHON=python3.x)")'
	$(PYTHON) -m venv $(VENV)
	# One pip run for everything: moto and aws-cdk-lib must agree on python-dateutil.
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	# The package itself, editable: puts the `contextual-targeting` command into .venv/bin.
	$(VENV)/bin/pip install --quiet --disable-pip-version-check --no-deps -e .
	touch $@

node_modules/.installed: package.json package-lock.json
	@command -v npm >/dev/null || { echo "npm (Node.js) is needed: install Node.js 20 or newer"; exit 1; }
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

synth: setup
	$(CDK) synth --quiet $(CONTEXT)
	cfn-lint --ignore-checks W3005 -- $(TEMPLATES)

lint: setup
	ruff check .
	ruff format --check .

typecheck: setup
	mypy
	# Every Lambda folder on its own (each has a handler.py), with the shared layer on the path as in Lambda.
	for folder in $$(find lambda -name handler.py -not -path '*/__pycache__/*' -printf '%h\n' | sort); do \
	  MYPYPATH=lambda/shared/python mypy --strict --no-namespace-packages "$$folder" || exit 1; \
	done
	MYPYPATH=lambda/shared/python mypy --strict lambda/shared/python

unit: setup
	pytest

test: lint typecheck unit

snapshot-update: setup
	pytest tests/test_stack_snapshot.py --snapshot-update

# The default stack's workflows end to end on this machine, AWS replaced by local stand-ins (no account
# needed): DATA=<folder laid out like data/>, OUT=<output folder, default demo-output/>.
demo: setup
	contextual-targeting demo $(if $(DATA),--data $(DATA)) $(if $(OUT),--out $(OUT))

# Redraw docs/diagrams/ from the synthesized workflows (both stack configurations).
diagrams: setup
	python -m contextual_targeting.diagrams

bootstrap: setup
	$(CDK) bootstrap

diff: setup
	$(CDK) diff $(DEPLOY_CONTEXT)

deploy: setup
	$(CDK) deploy $(DEPLOY_CONTEXT)

destroy: setup
	$(CDK) destroy $(CONTEXT)

clean:
	rm -rf cdk.out .pytest_cache .mypy_cache .ruff_cache
