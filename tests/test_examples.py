"""examples/ are complete CDK apps that run from the installed wheel, outside the repo.

The wheel is built from the checkout and installed (--no-deps) into a fresh venv made from the base interpreter;
that venv reuses the project venv's already-installed dependencies through a .pth file (aws-cdk-lib and friends,
no download), but not the checkout: the repo is never on its path. Each example directory is copied out of the
repo and synthesized with the pinned CDK CLI, which runs the example's own cdk.json `app` with the fresh venv's
python3 first on PATH.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from tests.conftest import REPO

EXAMPLES = REPO / "examples"


@pytest.fixture(scope="module")
def fresh_venv(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("installed")
    wheel_dir, venv = root / "wheel", root / "venv"
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", str(wheel_dir), str(REPO)],
                   check=True, timeout=300)
    (wheel,) = wheel_dir.glob("eks_multus_cdk-*.whl")
    subprocess.run([sys._base_executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    site = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               check=True, capture_output=True, text=True).stdout.strip())
    (site / "project-deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run([*pip, "--python", str(python), "install", "--no-deps", "--no-index", str(wheel)], check=True,
                   timeout=300)
    return venv


def _env(venv: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["PATH"] = os.pathsep.join([str(venv / "bin"), str(REPO / "node_modules" / ".bin"), env.get("PATH", "")])
    env["JSII_NODE"] = str(REPO / "node_modules" / ".bin" / "node")
    env["CDK_DISABLE_CLI_TELEMETRY"] = "true"
    return env


def synth_example(name: str, venv: Path, workdir: Path) -> dict:
    app_dir = workdir / name
    shutil.copytree(EXAMPLES / name, app_dir)
    env = _env(venv)
    where = subprocess.run(["python3", "-c", "import eks_multus_cdk; print(eks_multus_cdk.__file__)"], cwd=app_dir,
                           env=env, capture_output=True, text=True, check=True).stdout.strip()
    assert where.startswith(str(venv)), f"the example must import the installed wheel, got {where}"
    run = subprocess.run([str(REPO / "node_modules" / ".bin" / "cdk"), "synth", "--no-notices", "--quiet", "-o",
                          "out"], cwd=app_dir, env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    (template,) = (app_dir / "out").glob("*.template.json")
    return json.loads(template.read_text())


def nad_masters(template: dict) -> dict[str, str]:
    """NAD name -> master interface, from the kubectl manifests of the template."""
    masters = {}
    for res in template["Resources"].values():
        if res["Type"] != "Custom::AWSCDK-EKS-KubernetesResource":
            continue
        manifest = res["Properties"]["Manifest"]
        text = manifest if isinstance(manifest, str) else json.dumps(manifest)
        for obj in json.loads(text) if isinstance(manifest, str) else []:
            if obj.get("kind") == "NetworkAttachmentDefinition":
                masters[obj["metadata"]["name"]] = json.loads(obj["spec"]["config"])["master"]
    return masters


@pytest.mark.slow
def test_examples_are_outside_the_package_and_complete():
    for name in ("existing_cluster", "two_node_groups"):
        assert (EXAMPLES / name / "app.py").is_file() and (EXAMPLES / name / "cdk.json").is_file()
        source = (EXAMPLES / name / "app.py").read_text()
        imports = set(re.findall(r"^from (\S+) import|^import (\S+)", source, re.M))
        modules = {m for pair in imports for m in pair if m}
        assert modules <= {"aws_cdk", "aws_cdk.aws_ec2", "aws_cdk.aws_eks_v2", "aws_cdk.aws_iam",
                           "aws_cdk.lambda_layer_kubectl_v35", "eks_multus_cdk"}, modules


@pytest.mark.slow
def test_existing_cluster_example_adds_only_the_multus_parts(fresh_venv, tmp_path):
    template = synth_example("existing_cluster", fresh_venv, tmp_path)
    types = {r["Type"] for r in template["Resources"].values()}
    assert "AWS::AutoScaling::AutoScalingGroup" in types and "AWS::Lambda::Function" in types
    assert not types & {"AWS::EC2::VPC", "AWS::EC2::Subnet", "AWS::EKS::Cluster", "AWS::EC2::NatGateway"}
    assert nad_masters(template) == {"media-eu-west-1a": "multus1", "media-eu-west-1b": "multus1"}
    assert "100.64.11.0/24" in json.dumps(template), "the secondary-CIDR Multus subnet reaches the NADs"
    reserved = sorted(r["Properties"]["Cidr"] for r in template["Resources"].values()
                      if r["Type"] == "Custom::SubnetCidrReservation")
    assert reserved == ["100.64.10.128/25", "100.64.11.128/25"], "imported subnets keep their pod-range reservations"


@pytest.mark.slow
def test_two_node_groups_example_renders_each_network_at_its_device_index(fresh_venv, tmp_path):
    template = synth_example("two_node_groups", fresh_venv, tmp_path)
    asgs = [r for r in template["Resources"].values() if r["Type"] == "AWS::AutoScaling::AutoScalingGroup"]
    assert len(asgs) == 2
    assert nad_masters(template) == {
        f"{net}-eu-west-1{az}": iface for net, iface in (("signalling", "multus1"), ("media", "multus2"),
                                                         ("oam", "multus3")) for az in "ab"}


@pytest.mark.slow
def test_installed_package_is_typed_with_ranges_and_a_verify_extra(fresh_venv):
    code = ("import importlib.metadata as m, importlib.resources as r, json; "
            "print(json.dumps({'requires': m.requires('eks-multus-cdk'), "
            "'typed': r.files('eks_multus_cdk').joinpath('py.typed').is_file()}))")
    run = subprocess.run([str(fresh_venv / "bin" / "python"), "-c", code], capture_output=True, text=True,
                         check=True, cwd=fresh_venv)
    found = json.loads(run.stdout)
    assert found["typed"]
    requires = found["requires"]
    assert "aws-cdk-lib<3,>=2.275" in requires and "constructs<11,>=10" in requires
    plain = [r for r in requires if "extra ==" not in r]
    assert not [r for r in plain if r.startswith(("boto3", "kubernetes"))], "verify's deps only in the extra"
    assert {r.split(";")[0].split("<")[0].split(">")[0] for r in requires if "extra == 'verify'" in r} == {
        "boto3", "kubernetes"}
