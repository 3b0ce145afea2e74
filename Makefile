# jit-node-access: `make dev` runs the whole system locally, `make test` runs every test.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
MOTO_VERSION := 5.2.5
CFN_LINT_VERSION := 1.58.0
PARLIAMENT_VERSION := 1.6.4
POLICIES ?= policies
SEED ?= local/seed.yaml
CARGO ?= cargo
# Deploy tooling, pinned. SAM CLI validates the template in `make test`; cargo-lambda and zig
# (the ziglang package, which cargo-lambda runs as `python3 -m ziglang`) only build the Lambda
# artifacts, so `make test` never installs them.
SAM_CLI_VERSION := 1.170.0
CARGO_LAMBDA_VERSION := 1.9.2
ZIGLANG_VERSION := 0.15.2
LAMBDA_TARGET := aarch64-unknown-linux-gnu
LAMBDA_FUNCTIONS := submit-request evaluate-request approve-request notify sweeper lifecycle publish-events issue-credentials
# The venv's bin first on PATH: cargo-lambda looks up `python3 -m ziglang` and SAM looks up
# `cargo lambda` there.
VENV_PATH := $(abspath $(VENV))/bin:$(PATH)
# SAM never reaches AWS from validation: no telemetry, a region and dummy credentials.
SAM_OFFLINE_ENV := SAM_CLI_TELEMETRY=0 AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1 \
	AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_EC2_METADATA_DISABLED=true
# A guided deploy the first time on this machine (it writes the answers to samconfig.toml),
# a plain one afterwards; `make deploy GUIDED=1` forces the guided one.
DEPLOY_MARKER := .aws-sam/.deployed

.PHONY: browser selenium iam-lint help venv sam-tools lambda-tools bench chaos test test-unit test-integration lint asl-validate policy-validate least-privilege sam-validate build sam-build deploy dev demo clean

help:
	@echo "make dev     - run the whole system on 127.0.0.1 (moto emulator, no AWS account)"
	@echo "make demo    - four decision outcomes, a two-level approval through mail links, a Slack click, against 'make dev'"
	@echo "make test    - unit, policy and integration tests, clippy, rustfmt, cfn-lint, asl-validator, sam validate"
	@echo "make build   - arm64 Lambda zips, one per function: target/lambda/<function>/bootstrap.zip"
	@echo "make bench   - one table: Cedar decision time, cold start and RSS vs Python boto3, zip sizes, API calls and cost per lifecycle, end-to-end time"
	@echo "make chaos   - the fault campaign: faults at every external call of grant, revoke, expire and sweep; one table (docs/reliability.md)"
	@echo "make deploy  - sam build + sam deploy (guided the first time); needs AWS credentials"

# The emulator and linters, pinned, in a project-local venv. Idempotent: re-runs only when the
# pins change.
$(VENV)/.installed-$(MOTO_VERSION)-$(CFN_LINT_VERSION):
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet 'moto[server]==$(MOTO_VERSION)' 'cfn-lint==$(CFN_LINT_VERSION)'
	touch $@

# The AWS CLI (v1, which carries its own botocore) and boto3, pinned, for the service model in
# clients/aws-cli (docs/aws-cli.md; tests/aws_cli.rs drives both against the local stack). boto3 is
# the version the SAM CLI pins, so neither install moves the other. Idempotent like the above.
AWSCLI_VERSION := 1.46.3
BOTO3_VERSION := 1.43.108
AWSCLI_STAMP := $(VENV)/.awscli-$(AWSCLI_VERSION)-$(BOTO3_VERSION)

$(AWSCLI_STAMP): $(VENV)/.installed-$(MOTO_VERSION)-$(CFN_LINT_VERSION)
	$(VENV)/bin/pip install --quiet 'awscli==$(AWSCLI_VERSION)' 'boto3==$(BOTO3_VERSION)'
	touch $@

venv: $(VENV)/.installed-$(MOTO_VERSION)-$(CFN_LINT_VERSION) $(AWSCLI_STAMP)

# parliament (IAM policy linter) beside the emulator and cfn-lint, idempotent.
PARLIAMENT_STAMP := $(VENV)/.parliament-$(PARLIAMENT_VERSION)
$(PARLIAMENT_STAMP): $(VENV)/.installed-$(MOTO_VERSION)-$(CFN_LINT_VERSION)
	$(VENV)/bin/pip install --quiet 'parliament==$(PARLIAMENT_VERSION)'
	touch $@

# SAM CLI in the same venv, installed together with the emulator and linter pins so that pip keeps
# them. Idempotent like the above.
SAM_STAMP := $(VENV)/.sam-$(SAM_CLI_VERSION)-$(MOTO_VERSION)-$(CFN_LINT_VERSION)

$(SAM_STAMP): $(VENV)/.installed-$(MOTO_VERSION)-$(CFN_LINT_VERSION)
	$(VENV)/bin/pip install --quiet 'aws-sam-cli==$(SAM_CLI_VERSION)' 'moto[server]==$(MOTO_VERSION)' 'cfn-lint==$(CFN_LINT_VERSION)'
	touch $@

sam-tools: $(SAM_STAMP)

# cargo-lambda and zig, for `make build` and `make deploy` only.
LAMBDA_STAMP := $(VENV)/.lambda-$(CARGO_LAMBDA_VERSION)-$(ZIGLANG_VERSION)

$(LAMBDA_STAMP): $(VENV)/.installed-$(MOTO_VERSION)-$(CFN_LINT_VERSION)
	$(VENV)/bin/pip install --quiet 'cargo-lambda==$(CARGO_LAMBDA_VERSION)' 'ziglang==$(ZIGLANG_VERSION)'
	touch $@

lambda-tools: $(LAMBDA_STAMP)
	rustup target add $(LAMBDA_TARGET)

# The console test (tests/console.rs, tests/python/console_test.py) drives `jit console` in headless
# Chromium through its WebDriver: Debian's chromium and chromium-driver, installed only when either
# is missing (as root, or through sudo), and Selenium, pinned, in the venv. Idempotent.
CHROMIUM := /usr/bin/chromium
CHROMEDRIVER := /usr/bin/chromedriver
# 4.52.0 requires a certifi release newer than the registry has.
SELENIUM_VERSION := 4.51.0
SELENIUM_STAMP := $(VENV)/.selenium-$(SELENIUM_VERSION)
SUDO := $(shell [ "$$(id -u)" -eq 0 ] || echo sudo)

browser:
	@if [ ! -x $(CHROMIUM) ] || [ ! -x $(CHROMEDRIVER) ]; then \
		echo "installing Debian's chromium and chromium-driver"; \
		$(SUDO) apt-get update && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y --no-install-recommends chromium chromium-driver; \
	fi

$(SELENIUM_STAMP): $(VENV)/.installed-$(MOTO_VERSION)-$(CFN_LINT_VERSION)
	$(VENV)/bin/pip install --quiet 'selenium==$(SELENIUM_VERSION)'
	touch $@

selenium: $(SELENIUM_STAMP)

# The Step Functions definition validator, pinned in package.json / package-lock.json. Idempotent:
# re-installs only when either file changes (npm ci recreates node_modules, stamp included).
NODE_STAMP := node_modules/.installed
ASL_VALIDATOR := node_modules/.bin/asl-validator

$(NODE_STAMP): package.json package-lock.json
	npm ci --no-audit --no-fund
	touch $@

asl-validate: $(NODE_STAMP)
	$(ASL_VALIDATOR) --json-path statemachine/lifecycle.asl.json

test: venv lint asl-validate policy-validate least-privilege iam-lint sam-validate browser selenium
	JIT_MOTO_SERVER=$(abspath $(VENV))/bin/moto_server $(CARGO) test --workspace --all-targets

lint: venv
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	$(VENV)/bin/cfn-lint template.yaml
	$(VENV)/bin/cfn-lint member-account.yaml

# The IAM documents the code generates (grants, session policies, a revoke's deny), then every
# policy of the two templates (resolved to concrete values by tools/template_iam_documents.py, after
# its own tests; both branches of each !If), through parliament; see tools/iam_lint.py for the
# findings its database and checks get wrong.
iam-lint: $(PARLIAMENT_STAMP) $(SAM_STAMP)
	$(CARGO) run --quiet -p jit -- policy iam-documents --out target/iam-documents
	$(PY) tools/iam_lint.py target/iam-documents
	$(PY) -m unittest tools/test_template_iam_documents.py
	$(PY) tools/template_iam_documents.py template.yaml member-account.yaml --out target/iam-documents-template
	$(PY) tools/iam_lint.py target/iam-documents-template

policy-validate:
	$(CARGO) run --quiet -p jit -- policy validate $(POLICIES)

# Every IAM permission in template.yaml must be listed in tools/least-privilege.yaml (and in
# member-account.yaml in tools/least-privilege-member.yaml), so a widened policy fails here; then
# the checker's own tests.
least-privilege: venv
	$(PY) tools/least_privilege.py template.yaml tools/least-privilege.yaml && $(PY) tools/least_privilege.py member-account.yaml tools/least-privilege-member.yaml && $(PY) -m unittest tools/test_least_privilege.py -v && $(PY) tools/template_checks.py template.yaml && $(PY) -m unittest tools/test_template_checks.py -v

# The template as SAM sees it, with cfn-lint; offline (see SAM_OFFLINE_ENV).
sam-validate: $(SAM_STAMP)
	$(SAM_OFFLINE_ENV) $(VENV)/bin/sam validate --lint --template-file template.yaml

# The Lambda artifacts: an arm64 release build (profile.release: fat LTO, codegen-units=1, opt-level s, strip;
# cargo-lambda adds panic=abort and target-cpu=neoverse-n1)
# of every function crate, zipped by cargo-lambda as target/lambda/<function>/bootstrap.zip. The
# same command as `sam build` runs for each function (BuildMethod rust-cargolambda, CodeUri .:
# `cargo lambda build --release --arm64 --bin <function>` from the workspace root), so the zips hold
# exactly the binaries `make deploy` uploads and `sam build` reuses target/ without recompiling.
build: lambda-tools
	PATH="$(VENV_PATH)" cargo lambda build --release --arm64 --output-format zip $(addprefix --bin ,$(LAMBDA_FUNCTIONS))
	@ls -l $(foreach f,$(LAMBDA_FUNCTIONS),target/lambda/$(f)/bootstrap.zip)

# The numbers in docs/performance.md, as one table (also written to $(BENCH_OUT)). Host release
# binaries (same profile as the zips, less cargo-lambda's panic=abort and target-cpu) for the cold-start and
# Cedar rows, since arm64 binaries cannot run here; the zips come from `make build`. The functions
# are built on their own, as `make build` builds them, so the bench tools' extra dependencies do
# not change their feature set. The first
# run compiles both targets (about 25 minutes on 2 cores); after that the bench takes about 5.
BENCH_OUT := target/bench/results.md
BENCH_RUNS ?= 20

bench: venv build
	$(CARGO) build --release $(addprefix -p ,$(LAMBDA_FUNCTIONS))
	$(CARGO) build --release -p jit-bench
	@mkdir -p $(dir $(BENCH_OUT))
	@set -o pipefail; { \
		echo "Measured $$(date -u +%Y-%m-%d) on $$(uname -srm), $$(nproc) CPUs ($$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)), $$(free -g | awk '/Mem:/{print $$2}') GB RAM, $$(rustc --version)"; \
		echo; \
		echo "| measurement | result | goal | command |"; \
		echo "|---|---|---|---|"; \
		target/release/bench-cedar && \
		target/release/bench-coldstart target/release $(PY) $(BENCH_RUNS) && \
		target/release/bench-zips target/lambda $(LAMBDA_FUNCTIONS) && \
		JIT_MOTO_SERVER=$(abspath $(VENV))/bin/moto_server target/release/bench-lifecycle; \
	} | tee $(BENCH_OUT)

# The fault campaign of docs/reliability.md (shared/tests/chaos.rs): every external call of
# grant, revoke, expire and the sweep failed once, always, or right after its effect, then
# CHAOS_CASES random combinations of two or three faults; prints the call census and the table
# (also written to $(CHAOS_OUT)). `make test` runs the same test bounded (debug, 1,000
# combinations). The first run compiles the release test binary (about 6 minutes on 2 cores).
CHAOS_CASES ?= 200000
CHAOS_SEED ?= 17
CHAOS_OUT := target/chaos/results.md

chaos:
	JIT_CHAOS_CASES=$(CHAOS_CASES) JIT_CHAOS_SEED=$(CHAOS_SEED) JIT_CHAOS_OUT=$(abspath $(CHAOS_OUT)) \
		$(CARGO) test -p jit-shared --test chaos --release -- --nocapture

# What `sam deploy` uploads: .aws-sam/build, one bootstrap per function.
sam-build: sam-tools lambda-tools
	PATH="$(VENV_PATH)" SAM_CLI_TELEMETRY=0 sam build

# Never part of `make test`: this creates or updates the stack in the AWS account of the current
# credentials (settings in samconfig.toml).
deploy: sam-build
	@if [ -z "$(GUIDED)" ] && [ -f $(DEPLOY_MARKER) ]; then \
		echo "PATH=... sam deploy"; PATH="$(VENV_PATH)" SAM_CLI_TELEMETRY=0 sam deploy; \
	else \
		echo "PATH=... sam deploy --guided"; PATH="$(VENV_PATH)" SAM_CLI_TELEMETRY=0 sam deploy --guided && touch $(DEPLOY_MARKER); \
	fi

dev: venv
	JIT_MOTO_SERVER=$(abspath $(VENV))/bin/moto_server $(CARGO) run --quiet -p jit -- dev --policies $(POLICIES) --seed $(SEED)

demo:
	$(CARGO) run --quiet -p jit -- demo

clean:
	rm -rf .jit target node_modules
