# jit-node-access: `make dev` runs the whole system locally, `make test` runs every test.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
MOTO_VERSION := 5.2.5
CFN_LINT_VERSION := 1.58.0
POLICIES ?= policies
SEED ?= local/seed.yaml
CARGO ?= cargo

.PHONY: help venv test test-unit test-integration lint asl-validate policy-validate least-privilege dev demo clean

help:
	@echo "make dev     - run the whole system on 127.0.0.1 (moto emulator, no AWS account)"
	@echo "make demo    - four decision outcomes, then a two-level approval through mail links, against 'make dev'"
	@echo "make test    - unit, policy and integration tests, clippy, rustfmt, cfn-lint, asl-validator"

# The emulator and linters, pinned, in a project-local venv. Idempotent: re-runs only when the
# pins change.
$(VENV)/.installed-$(MOTO_VERSION)-$(CFN_LINT_VERSION):
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet 'moto[server]==$(MOTO_VERSION)' 'cfn-lint==$(CFN_LINT_VERSION)'
	touch $@

venv: $(VENV)/.installed-$(MOTO_VERSION)-$(CFN_LINT_VERSION)

# The Step Functions definition validator, pinned in package.json / package-lock.json. Idempotent:
# re-installs only when either file changes (npm ci recreates node_modules, stamp included).
NODE_STAMP := node_modules/.installed
ASL_VALIDATOR := node_modules/.bin/asl-validator

$(NODE_STAMP): package.json package-lock.json
	npm ci --no-audit --no-fund
	touch $@

asl-validate: $(NODE_STAMP)
	$(ASL_VALIDATOR) --json-path statemachine/lifecycle.asl.json

test: venv lint asl-validate policy-validate least-privilege
	JIT_MOTO_SERVER=$(abspath $(VENV))/bin/moto_server $(CARGO) test --workspace --all-targets

lint: venv
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	$(VENV)/bin/cfn-lint template.yaml

policy-validate:
	$(CARGO) run --quiet -p jit -- policy validate $(POLICIES)

# Every IAM permission in template.yaml must be listed in tools/least-privilege.yaml, so a widened
# policy fails here; then the checker's own tests.
least-privilege: venv
	$(PY) tools/least_privilege.py template.yaml tools/least-privilege.yaml && $(PY) -m unittest tools/test_least_privilege.py -v

dev: venv
	JIT_MOTO_SERVER=$(abspath $(VENV))/bin/moto_server $(CARGO) run --quiet -p jit -- dev --policies $(POLICIES) --seed $(SEED)

demo:
	$(CARGO) run --quiet -p jit -- demo

clean:
	rm -rf .jit target node_modules
