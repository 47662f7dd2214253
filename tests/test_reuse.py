"""The library works outside this repo: from an installed wheel, in another directory, with the pinned CLI."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap

import pytest

from tests.conftest import REPO

CONSUMER_APP = textwrap.dedent('''
    import json, sys
    from pathlib import Path
    from aws_cdk import App, Stack
    import eks_multus_cdk
    from eks_multus_cdk.config import parse_config
    from eks_multus_cdk.network import MultusSubnetLayout, Network
    from eks_multus_cdk.cluster import Cluster
    from eks_multus_cdk.node_group import MultusNodeGroup
    from eks_multus_cdk.network import log_retention
    from eks_multus_cdk.model import MultusNetwork

    class MyStack(Stack):
        @property
        def availability_zones(self):
            return ["eu-west-1a", "eu-west-1b"]

    config = parse_config({"region": "eu-west-1", "availabilityZones": ["eu-west-1a", "eu-west-1b"]})
    app = App(outdir="out")
    stack = MyStack(app, "Consumer", env={"region": "eu-west-1"})
    net = Network(stack, "Net", vpc_cidr=config.vpc_cidr, availability_zones=config.availability_zones,
                  public_subnet_cidrs=config.public_subnet_cidrs, private_subnet_cidrs=config.private_subnet_cidrs,
                  multus=[MultusSubnetLayout(name=n.name, subnet_cidrs=n.subnet_cidrs) for n in config.multus_networks])
    cluster = Cluster(stack, "Eks", cluster_name="consumer", vpc=net.vpc, private_subnets=net.private_subnets)
    networks = [MultusNetwork(name=n.name, subnets=s) for n, s in zip(config.multus_networks, net.multus_subnets)]
    MultusNodeGroup(stack, "Workers", cluster=cluster.cluster, vpc=net.vpc, subnets=net.private_subnets,
                    networks=networks, multus_security_group=net.multus_security_group,
                    kubernetes_version=config.kubernetes_version, log_retention=log_retention(config))
    app.synth()
    print(json.dumps({"library": eks_multus_cdk.__file__}))
''')


@pytest.mark.slow
def test_installed_wheel_synthesizes_an_app_in_another_directory(tmp_path):
    wheel_dir, site, consumer = tmp_path / "wheel", tmp_path / "site", tmp_path / "consumer"
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", str(wheel_dir), str(REPO)],
                   check=True, timeout=300)
    (wheel,) = wheel_dir.glob("eks_multus_cdk-*.whl")
    subprocess.run([*pip, "install", "--no-deps", "--target", str(site), str(wheel)], check=True, timeout=300)
    consumer.mkdir()
    (consumer / "app.py").write_text(CONSUMER_APP)
    env = {**os.environ, "PYTHONPATH": str(site)}
    run = subprocess.run([sys.executable, "app.py"], cwd=consumer, env=env, capture_output=True, text=True,
                         timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    library = json.loads(run.stdout.strip().splitlines()[-1])["library"]
    assert library.startswith(str(site)), "the app must use the installed wheel, not the checkout"
    template = json.loads((consumer / "out" / "Consumer.template.json").read_text())
    user_data = json.dumps(template)
    assert "export MULTUS_INTERFACE_COUNT=2" in user_data, "the node script ships in the wheel"
    asset_dirs = [p for p in (consumer / "out").iterdir() if p.is_dir() and p.name.startswith("asset.")]
    handlers = [p for d in asset_dirs for p in d.rglob("handler.py") if p.parent.name == "eni_attacher"]
    assert handlers, "the ENI Lambda code ships in the wheel and becomes the function's asset"


@pytest.mark.slow
def test_pinned_cdk_cli_synthesizes_the_app(tmp_path):
    cdk = REPO / "node_modules" / ".bin" / "cdk"
    assert cdk.exists(), "run `make deps` (npm ci) first: the pinned CLI is part of the toolchain"
    env = {**os.environ, "CDK_DISABLE_CLI_TELEMETRY": "true"}
    run = subprocess.run([str(cdk), "synth", "--no-notices", "--quiet", "-o", str(tmp_path / "out")], cwd=REPO,
                         env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["version"].startswith("55.")
    assert {"eks-multus-cluster", "eks-multus-workers"} <= set(manifest["artifacts"])
    assert shutil.which("node")
