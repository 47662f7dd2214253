"""Issue 12's validation gaps: each bad input fails with one line naming the key and the value.

Each case here passed (or failed with a traceback or a misleading key) on 0.1.0.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from aws_cdk import App
from aws_cdk import aws_ec2 as ec2

from eks_multus_cdk.config import ConfigError, parse_config
from tests.conftest import REPO, cdk_json_context


def shipped(**overrides):
    return parse_config(cdk_json_context()["eksMultus"], overrides)


FIVE_NETWORKS = json.dumps([{"name": f"m{i}", "subnetCidrs": [f"10.0.{10 + 2 * i}.0/24", f"10.0.{11 + 2 * i}.0/24"]}
                            for i in range(5)])
GAPS = [
    ("mixed architectures",
     {"nodeGroups": json.dumps([{"name": "ng1", "instanceType": "c5.large"},
                                {"name": "ng2", "instanceType": "c6g.large",
                                 "maxNetworkInterfaces": 3, "ipv4PerInterface": 10}])},
     'eksMultus.nodeGroups[1].instanceType = "c6g.large": is arm64 but nodeGroups[0].instanceType c5.large is x86_64'),
    ("version as a number", {"kubernetesVersion": "1.36"},
     "eksMultus.kubernetesVersion = 1.36: expected a string: write \"1.36\""),
    ("more networks than the instance type takes", {"multusNetworks": FIVE_NETWORKS},
     'eksMultus.nodeGroups[0].instanceType = "c5.large": takes at most 3 network interfaces, but the primary ENI '
     "plus 5 Multus networks need 6"),
    ("maxNetworkInterfaces above the table", {"nodeGroups.0.maxNetworkInterfaces": "8"},
     "eksMultus.nodeGroups[0].maxNetworkInterfaces = 8: c5.large has at most 3"),
    ("ipv4PerInterface above the table", {"nodeGroups.0.ipv4PerInterface": "50"},
     "eksMultus.nodeGroups[0].ipv4PerInterface = 50: c5.large has at most 10"),
    ("a type that does not exist", {"nodeGroups.0.instanceType": "m5.9xlarge"},
     'eksMultus.nodeGroups[0].instanceType = "m5.9xlarge": no such EC2 instance type'),
    ("a type the region does not offer", {"region": "ap-east-2", "availabilityZones": '["ap-east-2a", "ap-east-2b"]',
                                          "nodeGroups.0.availabilityZones": '["ap-east-2a"]'},
     'eksMultus.nodeGroups[0].instanceType = "c5.large": EC2 does not offer this instance type in ap-east-2'),
    ("unknown type with only maxNetworkInterfaces", {"nodeGroups.0.instanceType": "x9.large",
                                                     "nodeGroups.0.maxNetworkInterfaces": "4"},
     "eksMultus.nodeGroups[0].ipv4PerInterface = null: x9.large is not in the built-in table: set both"),
    ("maxNetworkInterfaces -1", {"nodeGroups.0.maxNetworkInterfaces": "-1"},
     "eksMultus.nodeGroups[0].maxNetworkInterfaces = -1: must be at least 2"),
    ("maxNetworkInterfaces 0", {"nodeGroups.0.maxNetworkInterfaces": "0"},
     "eksMultus.nodeGroups[0].maxNetworkInterfaces = 0: must be at least 2"),
    ("log retention", {"logRetentionDays": "31"},
     "eksMultus.logRetentionDays = 31: not a CloudWatch Logs retention period; use one of 1, 3, 5, 7, 14, 30"),
]


@pytest.mark.parametrize(("overrides", "message"), [g[1:] for g in GAPS], ids=[g[0] for g in GAPS])
def test_gap_fails_with_one_line_naming_key_and_value(overrides, message):
    with pytest.raises(ConfigError) as err:
        shipped(**overrides)
    assert message in str(err.value)
    assert "\n" not in str(err.value)


def test_unknown_type_with_both_limits_is_accepted():
    group = shipped(**{"nodeGroups.0.instanceType": "x9.large", "nodeGroups.0.maxNetworkInterfaces": "4",
                       "nodeGroups.0.ipv4PerInterface": "15"}).node_groups[0]
    assert (group.max_network_interfaces, group.ipv4_per_interface) == (4, 15)


def test_lower_limits_than_the_table_are_accepted():
    assert shipped(**{"nodeGroups.0.maxNetworkInterfaces": "3"}).node_groups[0].max_network_interfaces == 3


def test_four_networks_and_graviton_only_groups_are_accepted():
    four = json.dumps([{"name": f"m{i}", "subnetCidrs": [f"10.0.{10 + 2 * i}.0/24", f"10.0.{11 + 2 * i}.0/24"]}
                       for i in range(4)])
    assert len(shipped(multusNetworks=four, **{"nodeGroups.0.instanceType": "c5.4xlarge"}).multus_networks) == 4
    limits = {"maxNetworkInterfaces": 3, "ipv4PerInterface": 10}  # until the ENI table knows Graviton types
    arm = shipped(nodeGroups=json.dumps([{"name": "ng1", "instanceType": "c6g.large", **limits},
                                         {"name": "ng2", "instanceType": "m7g.large", **limits}]))
    assert [g.instance_type for g in arm.node_groups] == ["c6g.large", "m7g.large"]


def test_a_graviton_bastion_gets_an_arm64_image_and_kubectl(tmp_path):
    from eks_multus_cdk.bastion import Bastion
    from eks_multus_cdk.cluster import Cluster
    from eks_multus_cdk.network import Network
    from stacks.base import PinnedAzStack
    from stacks.props import network_props

    config = shipped(bastionInstanceType="t4g.small")
    stack = PinnedAzStack(App(outdir=str(tmp_path)), "Arm", config=config, env={"region": config.region})
    net = Network(stack, "Net", **network_props(config))
    eks = Cluster(stack, "Eks", cluster_name=config.stack_prefix, vpc=net.vpc, private_subnets=net.private_subnets)
    Bastion(stack, "Bastion", vpc=net.vpc, subnets=net.private_subnets, cluster=eks.cluster,
            instance_type=config.bastion_instance_type)
    template = json.dumps(_template(stack))
    assert "al2023-ami-kernel-6.1-arm64" in template and "x86_64" not in template
    assert "/bin/linux/arm64/kubectl" in template and "/bin/linux/amd64/" not in template
    assert ec2.InstanceType("t4g.small").architecture == ec2.InstanceArchitecture.ARM_64


def _template(stack) -> dict:
    from aws_cdk.assertions import Template

    return Template.from_stack(stack).to_json()


@pytest.mark.parametrize("override", [
    {"eksMultus.nodeGroups": json.dumps([{"name": "ng1", "instanceType": "c5.large"},
                                          {"name": "ng2", "instanceType": "c6g.large",
                                           "maxNetworkInterfaces": 3, "ipv4PerInterface": 10}])},
    {"eksMultus.kubernetesVersion": "1.36"},
])
def test_app_exits_1_with_one_line_and_writes_nothing(tmp_path, override):
    outdir = tmp_path / "out"
    # The CLI hands -c values to the app as strings; 1.36 arrives as "1.36" and the config reads it as JSON.
    env = {**os.environ, "CDK_CONTEXT_JSON": json.dumps({**cdk_json_context(), **override}),
           "CDK_OUTDIR": str(outdir)}
    run = subprocess.run([sys.executable, "app.py"], cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode == 1
    lines = [line for line in run.stderr.strip().splitlines() if line.strip()]
    assert lines[-1].startswith("cdk.json config error: eksMultus.") and "Traceback" not in run.stderr
    assert not outdir.exists() or not any(outdir.iterdir()), "nothing may be written to the cloud assembly"
