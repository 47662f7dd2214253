"""Shared fixtures: the app is synthesized once per session (jsii start costs seconds)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]
# jsii runs on the Node pinned in package.json (as under `make`), also when pytest is started directly.
PINNED_NODE = REPO / "node_modules" / ".bin" / "node"
if PINNED_NODE.exists():
    os.environ.setdefault("JSII_NODE", str(PINNED_NODE))
    os.environ["PATH"] = f"{PINNED_NODE.parent}{os.pathsep}{os.environ.get('PATH', '')}"
CDK_JSON = json.loads((REPO / "cdk.json").read_text())


def cdk_json_context() -> dict[str, Any]:
    """The context the CDK CLI hands the app from cdk.json (feature flags and the eksMultus object)."""
    return json.loads(json.dumps(CDK_JSON["context"]))


@pytest.fixture(scope="session")
def default_config():
    from eks_multus_cdk.config import parse_config

    return parse_config(cdk_json_context()["eksMultus"])


class SynthesizedApp:
    """The whole app built from cdk.json, synthesized once, with its stacks and templates."""

    def __init__(self, config, outdir: Path, context: dict[str, Any] | None = None) -> None:
        from aws_cdk import App
        from aws_cdk.assertions import Template

        from stacks import build_app

        self.app = App(context=context or cdk_json_context(), outdir=str(outdir))
        self.cluster_stack, self.workers_stack = build_app(self.app, config)
        self.assembly = self.app.synth()
        self.templates: dict[str, dict] = {s.stack_name: s.template for s in self.assembly.stacks}
        self.cluster = Template.from_json(self.templates[self.cluster_stack.stack_name])
        self.workers = Template.from_json(self.templates[self.workers_stack.stack_name])


@pytest.fixture(scope="session")
def synthesized(default_config, tmp_path_factory) -> SynthesizedApp:
    return SynthesizedApp(default_config, tmp_path_factory.mktemp("cdk.out"))


@pytest.fixture(scope="session")
def synth_templates(synthesized) -> dict[str, dict]:
    """Stack name -> CloudFormation template (dict) of the app exactly as `cdk synth` writes it."""
    return synthesized.templates


@pytest.fixture(scope="session")
def make_config():
    """Build a validated AppConfig from the cdk.json object plus dotted overrides."""
    from eks_multus_cdk.config import parse_config

    def make(**overrides: Any):
        return parse_config(cdk_json_context()["eksMultus"], {k.replace("__", "."): v for k, v in overrides.items()})

    return make


def resources(template: dict, cfn_type: str) -> dict[str, dict]:
    return {k: v for k, v in template["Resources"].items() if v["Type"] == cfn_type}
