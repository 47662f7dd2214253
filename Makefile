# eks-multus-cdk: every target installs what it needs first (.venv from requirements-dev.txt, the pinned CDK CLI).
SHELL := /bin/bash
.DEFAULT_GOAL := synth
VENV := .venv
PY := $(VENV)/bin/python
CDK := node_modules/.bin/cdk
CDK_FLAGS := --no-notices
# jsii prints a banner on Node 20 (end of life); the CLI and library work with it (measured).
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION := 20
export CDK_DISABLE_CLI_TELEMETRY := true

.PHONY: deps synth test lint bench deploy destroy verify clean

$(VENV)/.installed: requirements.txt requirements-dev.txt pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $@

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

deps: $(VENV)/.installed node_modules/.installed

synth: deps  ## write the cloud assembly to cdk.out/ (no AWS account needed)
	$(CDK) synth $(CDK_FLAGS) --quiet

test: deps  ## every test: config, constructs, snapshots, cfn-lint, cdk-nag, Lambda (moto), node script, CNI data plane
	$(PY) -m pytest

lint: deps  ## ruff, shellcheck, cfn-lint and cdk-nag over the synthesized app
	$(PY) -m ruff check .
	shellcheck userdata/*.sh .ci/run
	$(PY) -m pytest -q tests/test_compliance.py

bench: deps  ## synth time against a bare aws_eks_v2 app, the ENI Lambda's and the pod-address controller's figures
	$(PY) bench/synth_bench.py
	$(PY) bench/lambda_bench.py
	$(PY) bench/controller_bench.py

deploy: deps  ## needs AWS credentials and a bootstrapped account (cdk bootstrap)
	$(CDK) deploy $(CDK_FLAGS) --all --require-approval broadening

destroy: deps
	$(CDK) destroy $(CDK_FLAGS) --all --force

verify: deps  ## checks a deployed cluster (kubeconfig, or --cluster-name/--region via ARGS)
	$(PY) -m eks_multus_cdk.verify $(ARGS)

clean:
	rm -rf cdk.out .pytest_cache
