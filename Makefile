# Every target installs what it needs first; nothing is installed outside this folder.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
CDK := node_modules/.bin/cdk

# jsii's end-of-life banner for Node 20; CDK CLI telemetry, version check and instance metadata lookups off.
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION := 20
export CDK_DISABLE_CLI_TELEMETRY := true
export CDK_DISABLE_VERSION_CHECK := 1
export AWS_EC2_METADATA_DISABLED := true

.PHONY: install synth deploy run test test-clock-ahead bench clean

install: $(VENV)/.installed node_modules/.installed

$(VENV)/.installed: requirements.txt requirements-dev.txt functions/requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $@

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

synth: install
	$(CDK) synth --quiet

deploy: install
	$(CDK) deploy DeviceBackend

run: synth
	$(PY) -m local_runtime scenario events/scenarios/fleet_morning.json

# The suite on two workers (pytest-xdist), a test file per worker at a time; ARGS narrows or adds to it
# (make test-clock-ahead ARGS=tests/e2e).
PYTEST := $(PY) -m pytest -n 2 --dist loadfile $(ARGS)
CLOCK_A_YEAR_AHEAD := $(PY) -m tests.moved_clock +365d --

# The whole suite, then the whole suite again with the clock a year ahead: nothing may depend on today's date.
test: install
	$(PYTEST)
	$(CLOCK_A_YEAR_AHEAD) $(PYTEST)

test-clock-ahead: install
	$(CLOCK_A_YEAR_AHEAD) $(PYTEST)

# Cold starts as a fresh process has them (bytecode cached), then as Lambda has them today (code and layer
# compiled from source at every cold start: see README, "Measured"); then messages per second through the
# local runtime, as a steady stream of bursts of 10.
bench: synth
	$(PY) -m benchmarks --bytecode cached
	$(PY) -m benchmarks --bytecode lambda
	$(PY) -m benchmarks.local_runtime --burst 10

clean:
	rm -rf cdk.out build .pytest_cache .hypothesis
