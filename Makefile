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

.PHONY: demo test fuzz check lint bench build validate sam clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

$(NODE_STAMP): package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $(NODE_STAMP)

## make demo: every scenario end to end on the embedded emulation, with a readable report.
demo: $(STAMP)
	@echo "== health-abuse: a DoS abuse report arrives through EventBridge; shop-web-1 serves in an Auto Scaling group behind load balancers (Standby, deregistered and drained, protected, then isolated) =="
	$(OPSFLOW) trigger events/health-abuse/dos-report-arn.json
	@echo
	@echo "== health-abuse: the same report while EC2 throttles StopInstances 4 times (the SDK retries twice, the state machine once) =="
	$(OPSFLOW) run health-abuse --event events/health-abuse/dos-report-bare-ids.json --fault ec2:StopInstances=RequestLimitExceeded*4
	@echo
	@echo "== health-abuse: dry run of the first report (every change checked with EC2 DryRun) =="
	$(OPSFLOW) trigger events/health-abuse/dos-report-arn.json --dry-run
	@echo
	@echo "== region-failover: game day: +300 ms on us-east-1 -> anomaly alarm -> failover =="
	$(OPSFLOW) chaos latency --region us-east-1 --delay-ms 300 --minutes 15
	@echo
	@echo "== region-failover: the same alarm with Global Accelerator, approved by a person =="
	$(OPSFLOW) trigger events/region-failover/alarm-primary.json --param TrafficMechanism=globalaccelerator --param RequireApproval=true --approve
	@echo
	@echo "== ebs-quota-forecast: the daily schedule fires =="
	$(OPSFLOW) trigger events/ebs-quota-forecast/daily-schedule.json
	@echo
	@echo "== ebs-quota-forecast: eu-west-1 denies access; the other regions are still counted =="
	$(OPSFLOW) trigger events/ebs-quota-forecast/health-threshold-breach.json --fault ec2@eu-west-1:DescribeVolumes=UnauthorizedOperation

## make test: build drift, validators, SAM checks, lint, types, and the test suite.
test: $(STAMP) $(NODE_STAMP)
	$(OPSFLOW) build --check
	$(OPSFLOW) validate
	$(MAKE) --no-print-directory sam
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy
	export HYPOTHESIS_PROFILE=ci OPSFLOW_FUZZ_RUN=test-$$$$; $(PY) -m pytest -q -n 2; \
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

bench: $(STAMP)
	$(PY) -m bench

build: $(STAMP)
	$(OPSFLOW) build

validate: $(STAMP) $(NODE_STAMP)
	$(OPSFLOW) validate

clean:
	rm -rf $(VENV) node_modules .aws-sam .aws-sam-build.log .opsflow .pytest_cache
