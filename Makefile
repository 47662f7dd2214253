# eks-multus-cdk: every target installs what it needs first (.venv from requirements-dev.txt, the pinned CDK CLI).
SHELL := /bin/bash
.DEFAULT_GOAL := synth
VENV := .venv
PY := $(VENV)/bin/python
CDK := node_modules/.bin/cdk
CDK_FLAGS := --no-notices
# The CDK CLI and jsii run on the Node pinned in package.json (npm package `node`, a supported release), not on
# whatever Node the machine has: its bin folder goes first on PATH, and jsii is pointed at it explicitly.
export PATH := $(CURDIR)/node_modules/.bin:$(PATH)
export JSII_NODE := $(CURDIR)/node_modules/.bin/node
export CDK_DISABLE_CLI_TELEMETRY := true

.PHONY: deps system-deps system-deps-test synth test lint bench deploy destroy verify clean controller-lock

# Debian/Ubuntu packages (.ci/debian-packages): installed when missing and run as root, else the command is printed.
system-deps:
	@.ci/system-deps synth

system-deps-test:
	@.ci/system-deps test

$(VENV)/.installed: requirements.txt requirements-dev.txt pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $@

# checkov pins boto3 1.35, which the app cannot use: the scanner gets its own venv.
.venv-scan/.installed: requirements-scan.txt
	test -x .venv-scan/bin/python || python3 -m venv .venv-scan
	.venv-scan/bin/python -m pip install --quiet --disable-pip-version-check -r requirements-scan.txt
	touch $@

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

deps: system-deps $(VENV)/.installed .venv-scan/.installed node_modules/.installed

synth: deps  ## write the cloud assembly to cdk.out/ (no AWS account needed)
	$(CDK) synth $(CDK_FLAGS) --quiet

test: system-deps-test deps  ## every test: config, constructs, snapshots, cfn-lint, cdk-nag, Lambda (moto), node script, CNI data plane
	$(PY) -m pytest

lint: deps  ## ruff, shellcheck, cfn-lint, cdk-nag and checkov over the synthesized app and its manifests
	$(PY) -m ruff check .
	shellcheck userdata/*.sh .ci/run .ci/system-deps
	$(PY) -m pytest -q tests/test_compliance.py tests/test_checkov.py

bench: deps  ## synth time against a bare aws_eks_v2 app, the ENI Lambda's and the pod-address controller's figures
	@# Every benchmark runs and prints its figures; the target fails at the end if any missed its target.
	@status=0; \
	$(PY) bench/synth_bench.py || status=1; \
	$(PY) bench/lambda_bench.py || status=1; \
	$(PY) bench/controller_bench.py || status=1; \
	exit $$status

deploy: deps  ## needs AWS credentials and a bootstrapped account (cdk bootstrap)
	$(CDK) deploy $(CDK_FLAGS) --all --require-approval broadening

destroy: deps  ## the CLI asks before deleting; FORCE=1 deletes without asking
	$(CDK) destroy $(CDK_FLAGS) --all $(if $(filter 1,$(FORCE)),--force)

verify: deps  ## checks a deployed cluster (kubeconfig, or --cluster-name/--region via ARGS)
	$(PY) -m eks_multus_cdk.verify $(ARGS)

controller-lock: deps  ## re-pin the controller image: every transitive dependency, with hashes (after editing its requirements.txt)
	PIP_CONSTRAINT= $(VENV)/bin/pip-compile --quiet --generate-hashes --allow-unsafe --strip-extras \
		--no-emit-index-url --no-emit-find-links --output-file controller/requirements.lock controller/requirements.txt

clean:
	rm -rf cdk.out .pytest_cache
