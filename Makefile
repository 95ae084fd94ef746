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

# The environment: `make deploy STAGE=prod` deploys DeviceBackend-prod (-c deviceBackend.stage=prod); none, the
# single environment's DeviceBackend.
STAGE ?=
STAGE_CONTEXT := $(if $(STAGE),-c deviceBackend.stage=$(STAGE))

.PHONY: install synth deploy run serve test test-clock-ahead bench authorize-demo clean

install: $(VENV)/.installed node_modules/.installed

$(VENV)/.installed: requirements.txt requirements-dev.txt functions/requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $@

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

synth: install
	$(CDK) synth --quiet $(STAGE_CONTEXT)

deploy: install
	$(CDK) deploy $(STAGE_CONTEXT)

run: synth
	$(PY) -m local_runtime scenario events/scenarios/fleet_morning.json

# The app with a device endpoint on loopback (MQTT over TLS: certificates on 8883, custom auth on 8443; WebSocket
# on 8444) until Ctrl-C; see README, "Devices on the local endpoint". SERVE_ARGS adds options
# (make serve SERVE_ARGS="--crl pki/ca.crl").
serve: synth
	$(PY) -m local_runtime serve $(SERVE_ARGS)

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

# Cold starts on Lambda's Python as deployed (the bytecode the build ships), without that bytecode, and with
# active tracing, in one run (see README, "Measured"); then messages per second through the local runtime, as
# a steady stream of bursts of 10.
bench: synth
	$(PY) -m benchmarks
	$(PY) -m benchmarks.local_runtime --burst 10

# The custom authorizer on the local runtime, no AWS account: development token keys (made once, in an ignored
# folder), the app synthesized with the authorizer on into its own assembly, a token for DEMO_CLIENT_ID, and
# IoT's decision on it through the authorizer (ALLOWED or DENIED, exit status 1 when denied).
AUTHORIZER_DEMO ?= build/authorizer-demo
DEMO_CLIENT_ID ?= sensor-1
AUTHORIZER_DEMO_CONTEXT := -c deviceBackend.authorizer.enabled=true \
	-c deviceBackend.authorizer.jwtKeys=$(AUTHORIZER_DEMO)/keys/jwks.json \
	-c 'deviceBackend.authorizer.tokenSigningPublicKeys={"demo": "$(AUTHORIZER_DEMO)/keys/token-signing-public.pem"}'

authorize-demo: install
	test -f $(AUTHORIZER_DEMO)/keys/jwks.json || $(PY) -m device_tokens keys --out $(AUTHORIZER_DEMO)/keys > /dev/null
	$(CDK) synth --quiet --output $(AUTHORIZER_DEMO)/cdk.out $(STAGE_CONTEXT) $(AUTHORIZER_DEMO_CONTEXT)
	@# mint prints the shell variables its sample commands use; the local runtime connects with them.
	minted="$$($(PY) -m device_tokens mint --keys $(AUTHORIZER_DEMO)/keys --client-id $(DEMO_CLIENT_ID) $(STAGE_CONTEXT))" && \
	eval "$$(grep -E '^  (AUTHORIZER|TOKEN|SIGNATURE_URL|MQTT_USERNAME)=' <<< "$$minted")" && \
	$(PY) -m local_runtime authorize --assembly $(AUTHORIZER_DEMO)/cdk.out "$$AUTHORIZER" \
		--client-id $(DEMO_CLIENT_ID) --username "$$MQTT_USERNAME"

clean:
	rm -rf cdk.out build .pytest_cache .hypothesis
