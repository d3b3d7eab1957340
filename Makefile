# Every target bootstraps what it needs: a fresh clone with Python 3.11, make and npm is enough.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
OPSFLOW := $(VENV)/bin/opsflow
STAMP := $(VENV)/.installed
NODE_STAMP := node_modules/.installed
export SAM_CLI_TELEMETRY := 0
export AWS_DEFAULT_REGION ?= us-east-1

.PHONY: demo test fuzz check lint bench bench-scale build validate sam clean screenshot

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

# Debian's Chromium, for the browser tests of opsflow view's page (installed once, like any
# other dependency; Playwright drives it and downloads no browser of its own).
CHROMIUM := /usr/bin/chromium
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)
$(CHROMIUM):
	$(SUDO) apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq chromium > /dev/null

$(NODE_STAMP): package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $(NODE_STAMP)

## make demo: every scenario end to end on the embedded emulation, with a readable report and
## the HTML view of each run (.opsflow/views/RUN_ID.html); the steps are opsflow/demo.py's.
demo: $(STAMP) $(NODE_STAMP)
	$(OPSFLOW) --view demo

## make test: build drift, validators, SAM checks, lint, types, and the test suite.
test: $(STAMP) $(NODE_STAMP) $(CHROMIUM)
	$(OPSFLOW) build --check
	$(OPSFLOW) validate
	$(MAKE) --no-print-directory sam
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy
	export HYPOTHESIS_PROFILE=ci OPSFLOW_FUZZ_RUN=test-$$$$; $(PY) -m pytest -q -n 2 --maxschedchunk 1; \
		status=$$?; $(PY) -m tests.property.harness; exit $$status

## make fuzz: the property tests with fresh randomness (profile fuzz: over 1,000 generated events
## across the runbooks) and every cell of the fault matrix; prints what was generated and seen.
fuzz: $(STAMP)
	export HYPOTHESIS_PROFILE=fuzz OPSFLOW_FUZZ_RUN=fuzz-$$$$; \
		$(PY) -m pytest -q -n 2 -m "fuzz or not fuzz" --durations=5 \
		tests/property tests/workflow/test_fault_matrix.py; \
		status=$$?; $(PY) -m tests.property.harness; exit $$status

sam: $(STAMP)
	$(VENV)/bin/sam validate --lint --region us-east-1
	$(VENV)/bin/sam build --build-dir .aws-sam/build --region us-east-1 > .aws-sam-build.log 2>&1 || (cat .aws-sam-build.log; exit 1)
	@echo "sam build: ok"

## make check: what CI runs, plus formatting of the whole tree.
check: test

## make screenshot: the README's picture of an opsflow view page (docs/view-health-abuse.png).
screenshot: $(STAMP) $(NODE_STAMP) $(CHROMIUM)
	$(PY) -m opsflow.screenshot

## make bench: speed, memory and cost of the local runbooks, and forecast accuracy (about a
## minute on 2 cores, warm caches); make bench-scale: the cost per instance and per volume up
## to 1,000 and 10,000.
bench: $(STAMP) $(NODE_STAMP) $(CHROMIUM)
	$(PY) -m bench

bench-scale: $(STAMP)
	$(PY) -m bench --scale

build: $(STAMP) $(NODE_STAMP)
	$(OPSFLOW) build

validate: $(STAMP) $(NODE_STAMP)
	$(OPSFLOW) validate

clean:
	rm -rf $(VENV) node_modules .aws-sam .aws-sam-build.log .opsflow .pytest_cache
