"""Config: walkthrough defaults, -c overrides, and one clear error per kind of bad input."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import subprocess
import sys

import pytest

from eks_multus_cdk.config import AppConfig, ConfigError, default_config_json, parse_config
from tests.conftest import REPO, cdk_json_context


def test_defaults_reproduce_the_walkthrough():
    c = parse_config({})
    assert c.vpc_cidr == "10.0.0.0/16"
    assert len(c.availability_zones) == 2
    assert c.public_subnet_cidrs == ("10.0.0.0/24", "10.0.1.0/24")
    assert c.private_subnet_cidrs == ("10.0.2.0/24", "10.0.3.0/24")
    assert [(n.name, n.subnet_cidrs) for n in c.multus_networks] == [
        ("multus1", ("10.0.4.0/24", "10.0.5.0/24")),
        ("multus2", ("10.0.6.0/24", "10.0.7.0/24")),
    ]
    (group,) = c.node_groups
    assert (group.instance_type, group.volume_size, group.min_size, group.max_size) == ("c5.large", 20, 1, 2)
    assert c.nat_gateway_count == 2
    assert c.kubernetes_version == "1.35"


def test_cdk_json_carries_the_defaults_with_the_demo_node_in_the_first_az():
    # The walkthrough's single node goes where the sample pods run (AZ 1); everything else is the default.
    shipped = parse_config(cdk_json_context()["eksMultus"])
    (group,) = shipped.node_groups
    assert group.availability_zones == (shipped.availability_zones[0],)
    assert dataclasses.replace(shipped, node_groups=(dataclasses.replace(group, availability_zones=()),)) == AppConfig()


def test_every_key_is_documented_in_the_readme_config_table():
    readme = (REPO / "README.md").read_text()
    table_keys = set(re.findall(r"^\| `([A-Za-z0-9.\[\]]+)`", readme, re.M))

    def keys(obj, prefix=""):
        for k, v in obj.items():
            yield prefix + k
            if isinstance(v, list) and v and isinstance(v[0], dict):
                yield from keys(v[0], f"{prefix}{k}[].")

    missing = set(keys(default_config_json())) - table_keys
    optional = ("labels", "taints", "maxNetworkInterfaces", "ipv4PerInterface")
    missing |= {f"nodeGroups[].{k}" for k in optional} - table_keys
    assert not missing, f"README config table lacks {sorted(missing)}"


def test_sovereign_and_china_regions_are_accepted():
    for region in ("eusc-de-east-1", "cn-north-1"):
        assert parse_config({"region": region, "availabilityZones": [f"{region}a", f"{region}b"]}).region == region


def test_a_telco_route_is_one_config_line():
    c = parse_config({}, {"multusNetworks.1.routes": '["192.168.100.0/24"]'})
    assert c.multus_networks[1].routes == ("192.168.100.0/24",)
    assert c.multus_networks[0].routes == ()


def test_dotted_overrides_reach_into_lists_and_parse_json_values():
    c = parse_config({}, {"nodeGroups.0.instanceType": "c5.xlarge", "natGateways": "1", "samplePods": "false"})
    assert c.node_groups[0].instance_type == "c5.xlarge"
    assert c.nat_gateway_count == 1
    assert c.sample_pods is False


BAD = [
    ({"vpcCidr": "10.0.0.0/33"}, {}, 'eksMultus.vpcCidr = "10.0.0.0/33"'),
    ({"privateSubnetCidrs": ["10.0.2.0/24", "10.0.0.128/25"]}, {}, "eksMultus.privateSubnetCidrs[1]"),
    ({"publicSubnetCidrs": ["10.0.0.0/24", "10.9.1.0/24"]}, {}, "is outside vpcCidr"),
    ({}, {"multusNetworks.1.subnetCidrs": '["10.0.6.0/24", "10.0.4.0/24"]'},
     "overlaps eksMultus.multusNetworks[0]"),
    ({}, {"nodeGroups.0.instanceType": "t3.micro"},
     'eksMultus.nodeGroups[0].instanceType = "t3.micro": takes at most 2'),
    ({"unknownKey": 1}, {}, "eksMultus.unknownKey = 1: unknown key"),
    ({}, {"nodeGroups.0.volumeSize": '"big"'}, 'eksMultus.nodeGroups[0].volumeSize = "big": expected an integer'),
    ({}, {"samplePods": "1"}, "eksMultus.samplePods = 1: expected a boolean"),
    ({"availabilityZones": ["us-west-2a", "us-west-2b", "us-west-2c"]}, {}, "eksMultus.publicSubnetCidrs"),
    ({"availabilityZones": ["us-east-1a", "us-east-1b"]}, {}, "eksMultus.availabilityZones[0]"),
    ({}, {"multusNetworks.0.plugin": "sriov"}, 'eksMultus.multusNetworks[0].plugin = "sriov"'),
    ({}, {"telcoPeerCidrs": '["0.0.0.0/0"]'}, "eksMultus.telcoPeerCidrs[0]"),
    ({}, {"telcoPeerCidrs": '["198.51.100.0/24", "64.0.0.0/2"]'},
     'eksMultus.telcoPeerCidrs[1] = "64.0.0.0/2": wider than /8'),
    ({}, {"endpointPublicAccessCidrs": '["0.0.0.0/0"]'},
     'eksMultus.endpointPublicAccessCidrs[0] = "0.0.0.0/0": opening the Kubernetes API to the whole internet'),
    ({}, {"endpointPublicAccessCidrs": '["10.0.0.0/7"]'}, 'eksMultus.endpointPublicAccessCidrs[0] = "10.0.0.0/7"'),
    ({}, {"endpointPublicAccessCidrs": '["203.0.113.0/33"]'}, "eksMultus.endpointPublicAccessCidrs[0]"),
    ({}, {"nodeSsm": '"yes"'}, 'eksMultus.nodeSsm = "yes": expected a boolean'),
    ({}, {"networkNamespace": "kube-system"}, 'eksMultus.networkNamespace = "kube-system": a namespace name'),
    ({}, {"networkNamespace": "Team_A"}, 'eksMultus.networkNamespace = "Team_A"'),
    ({}, {"nodeGroups.0.minSize": "3"}, "eksMultus.nodeGroups[0].minSize = 3: needs 0 <= minSize <= maxSize (2)"),
    ({}, {"nodeGroups.0.desiredCapacity": "1"}, "eksMultus.nodeGroups[0].desiredCapacity = 1: removed in 0.2.0"),
    ({}, {"nodeGroups.0.instanceType": "x9.large"}, "set maxNetworkInterfaces"),
    ({}, {"kubernetesVersion": '"1.29"'}, 'eksMultus.kubernetesVersion = "1.29"'),
    ({}, {"serviceCidr": "10.0.0.0/16"}, "eksMultus.serviceCidr"),
    ({}, {"nodeGroups.5.name": "x"}, "eksMultus.nodeGroups.5"),
    ({"nodeGroups": [{"instanceType": "c5.large"}]}, {},
     "eksMultus.nodeGroups[0].name = null: required key is missing"),
    ({}, {"samplePodImage": "busybox"}, "pin the image"),
    ({}, {"nodeGroups.0.availabilityZones": '["us-west-2c"]'},
     'eksMultus.nodeGroups[0].availabilityZones[0] = "us-west-2c"'),
    ({"region": "xx-west-9", "availabilityZones": ["xx-west-9a", "xx-west-9b"]}, {},
     'eksMultus.region = "xx-west-9": no EKS image registry'),
    # Multus routes: CIDR syntax, no default route, nothing that pulls cluster or other-network traffic off eth0.
    ({}, {"multusNetworks.0.routes": '["192.168.7.1/24"]'},
     'eksMultus.multusNetworks[0].routes[0] = "192.168.7.1/24": not an IPv4 CIDR block'),
    ({}, {"multusNetworks.0.routes": '["0.0.0.0/0"]'},
     'eksMultus.multusNetworks[0].routes[0] = "0.0.0.0/0": a default route through a Multus network'),
    ({}, {"multusNetworks.0.routes": '["10.0.4.128/25"]'},
     "overlaps this network's own subnet eksMultus.multusNetworks[0].subnetCidrs[0] = 10.0.4.0/24"),
    ({}, {"multusNetworks.1.routes": '["10.0.4.0/22"]'},
     'eksMultus.multusNetworks[1].routes[0] = "10.0.4.0/22": overlaps eksMultus.multusNetworks[0].subnetCidrs[0]'),
    ({}, {"multusNetworks.0.routes": '["10.0.0.0/8"]'}, "overlaps eksMultus.publicSubnetCidrs[0] = 10.0.0.0/24"),
    ({}, {"multusNetworks.0.routes": '["172.20.128.0/17"]'}, "overlaps serviceCidr 172.20.0.0/16"),
    ({}, {"multusNetworks.0.routes": '["192.168.0.0/16", "192.168.9.0/24"]'},
     'routes[1] = "192.168.9.0/24": overlaps eksMultus.multusNetworks[0].routes[0] = 192.168.0.0/16'),
    ({}, {"multusNetworks.0.routes": '["169.254.170.0/24"]'},
     'routes[0] = "169.254.170.0/24": overlaps 169.254.0.0/16 (link-local: instance metadata, the Pod Identity'),
    ({"serviceCidr": "10.100.0.0/16"}, {"multusNetworks.0.routes": '["160.0.0.0/3"]'}, "overlaps 169.254.0.0/16"),
    ({}, {"multusNetworks.0.routes": '["127.0.0.0/8"]'}, "overlaps 127.0.0.0/8 (loopback)"),
    ({}, {"multusNetworks.0.routes": '["224.0.0.0/4"]'}, "overlaps 224.0.0.0/4 (multicast)"),
    ({}, {"multusNetworks.0.plugin": "host-device", "crossNodeTraffic": "false"},
     'eksMultus.multusNetworks[0].plugin = "host-device": host-device needs crossNodeTraffic: true'),
]


@pytest.mark.parametrize(("raw", "overrides", "message"), BAD, ids=[b[2][:40] for b in BAD])
def test_bad_config_names_the_key_and_value(raw, overrides, message):
    with pytest.raises(ConfigError) as err:
        parse_config(raw, overrides)
    assert message in str(err.value)


def test_widest_accepted_peer_range_is_a_slash_8():
    c = parse_config({}, {"endpointPublicAccessCidrs": '["10.0.0.0/8"]', "telcoPeerCidrs": '["11.0.0.0/8"]'})
    assert c.endpoint_public_access_cidrs == ("10.0.0.0/8",) and c.telco_peer_cidrs == ("11.0.0.0/8",)


def test_app_exits_with_one_line_and_creates_nothing_on_bad_config(tmp_path):
    outdir = tmp_path / "out"
    env = {
        **os.environ,
        "CDK_CONTEXT_JSON": json.dumps({**cdk_json_context(), "eksMultus.nodeGroups.0.instanceType": "t3.micro"}),
        "CDK_OUTDIR": str(outdir),
    }
    run = subprocess.run([sys.executable, "app.py"], cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode == 1
    assert "Traceback" not in run.stderr
    assert run.stderr.strip().splitlines()[-1].startswith("cdk.json config error: eksMultus.nodeGroups[0].instanceType")
    assert not outdir.exists() or not any(outdir.iterdir()), "a partial cloud assembly was written"
