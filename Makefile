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

.PHONY: install synth deploy run test bench clean

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

test: install
	$(PY) -m pytest

# Cold starts on Lambda's Python as deployed (the bytecode the build ships), without that bytecode, and with
# active tracing, in one run (see README, "Measured"); then messages per second through the local runtime, as
# a steady stream of bursts of 10.
bench: synth
	$(PY) -m benchmarks
	$(PY) -m benchmarks.local_runtime --burst 10

clean:
	rm -rf cdk.out build .pytest_cache .hypothesis
