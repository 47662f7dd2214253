"""NetworkAttachmentDefinitions and pod-range reservations, rendered from the config (pure functions)."""

from __future__ import annotations

import dataclasses
import ipaddress
import json

import pytest
from cni_checks import address_pool, check_cni_config, ipam_gateway

from eks_multus_cdk import naming
from eks_multus_cdk.config import AppConfig, parse_config
from eks_multus_cdk.nads import (
    CNI_VERSION,
    nad_configs,
    network_attachment_definitions,
    subnet_cidr_reservations,
    usable_pod_addresses,
)

THREE_NETWORKS = {
    "availabilityZones": ["us-west-2a", "us-west-2b", "us-west-2c"],
    "publicSubnetCidrs": ["10.0.0.0/24", "10.0.1.0/24", "10.0.2.0/24"],
    "privateSubnetCidrs": ["10.0.4.0/24", "10.0.5.0/24", "10.0.6.0/24"],
    "nodeGroups": [{"name": "ng1", "instanceType": "c5.xlarge"}],
    "multusNetworks": [
        {"name": "sig", "subnetCidrs": ["10.0.16.0/24", "10.0.17.0/24", "10.0.18.0/24"], "ipvlanMode": "l3",
         "routes": ["192.168.50.0/24", "172.31.0.0/16"]},
        {"name": "media", "subnetCidrs": ["10.0.32.0/20", "10.0.48.0/20", "10.0.64.0/20"],
         "podRangePrefixLength": 22},
        {"name": "dpdk", "subnetCidrs": ["10.0.80.0/27", "10.0.80.32/27", "10.0.80.64/27"], "plugin": "host-device",
         "podRangePrefixLength": 28},
    ],
}


def variants() -> dict[str, AppConfig]:
    default = parse_config(None)
    three = parse_config(THREE_NETWORKS)
    # host-device needs crossNodeTraffic (config refuses it with host-local): the host-local variant runs ipvlan.
    three_host_local = parse_config(THREE_NETWORKS, {"crossNodeTraffic": False, "multusNetworks.2.plugin": "ipvlan"})
    return {
        "default": default,
        "host-local": dataclasses.replace(default, cross_node_traffic=False),
        "three-networks": three,
        "three-networks-host-local": three_host_local,
    }


@pytest.fixture(params=list(variants()), scope="module")
def config(request: pytest.FixtureRequest) -> AppConfig:
    return variants()[request.param]


def test_one_nad_per_network_and_az(config: AppConfig) -> None:
    nads = network_attachment_definitions(config)
    expected = [
        naming.nad_name(n.name, az) for n in config.multus_networks for az in config.availability_zones
    ]
    assert [nad["metadata"]["name"] for nad in nads] == expected
    assert len(set(expected)) == len(expected)
    for nad in nads:
        assert nad["apiVersion"] == "k8s.cni.cncf.io/v1" and nad["kind"] == "NetworkAttachmentDefinition"
        assert nad["metadata"]["namespace"] == naming.NAD_NAMESPACE
        assert isinstance(nad["spec"]["config"], str)


def test_every_cni_config_is_complete_and_consistent(config: AppConfig) -> None:
    configs = nad_configs(network_attachment_definitions(config))
    seen = 0
    for position, network in enumerate(config.multus_networks):
        for az_index, az in enumerate(config.availability_zones):
            name = naming.nad_name(network.name, az)
            check_cni_config(
                configs[name],
                name=name,
                interface=naming.interface_name(position),
                subnet=network.subnet_cidrs[az_index],
                pod_range=str(network.pod_range(az_index)),
                plugin=network.plugin,
                ipvlan_mode=network.ipvlan_mode if network.plugin == "ipvlan" else None,
                cross_node=config.cross_node_traffic,
                routes=[*(c for i, c in enumerate(network.subnet_cidrs) if i != az_index), *network.routes],
            )
            assert configs[name]["cniVersion"] == CNI_VERSION
            seen += 1
    assert seen == len(configs)


def test_nad_labels_name_the_az(config: AppConfig) -> None:
    for nad in network_attachment_definitions(config):
        zone = nad["metadata"]["labels"]["topology.kubernetes.io/zone"]
        assert zone in config.availability_zones and nad["metadata"]["name"].endswith(f"-{zone}")


def test_default_nads_exactly() -> None:
    """net1 gets the whole subnet's prefix (10.0.4.x/24) with an address from the reserved pod range, the VPC
    router as gateway, and the network's other AZ routed through it; ipvlan in l2 mode."""
    configs = nad_configs(network_attachment_definitions(parse_config(None)))
    assert configs["multus1-us-west-2a"] == {
        "cniVersion": "0.3.1", "name": "multus1-us-west-2a", "type": "ipvlan", "master": "multus1", "mode": "l2",
        "ipam": {"type": "whereabouts", "range": "10.0.4.0/24", "range_start": "10.0.4.129",
                 "range_end": "10.0.4.254", "gateway": "10.0.4.1",
                 "routes": [{"dst": "10.0.5.0/24", "gw": "10.0.4.1"}]},
    }
    assert configs["multus2-us-west-2b"]["master"] == "multus2"
    assert configs["multus2-us-west-2b"]["ipam"]["range"] == "10.0.7.0/24"
    assert configs["multus2-us-west-2b"]["ipam"]["routes"] == [{"dst": "10.0.6.0/24", "gw": "10.0.7.1"}]


def test_crossnodetraffic_changes_only_the_ipam_type() -> None:
    """Same prefix, same addresses, same gateway and routes whichever IPAM renders them."""
    default = parse_config(None)
    for name, cross in nad_configs(network_attachment_definitions(default)).items():
        local = nad_configs(network_attachment_definitions(dataclasses.replace(default, cross_node_traffic=False)))
        a, b = cross["ipam"], local[name]["ipam"]
        assert (a["type"], b["type"]) == ("whereabouts", "host-local")
        assert address_pool(a) == address_pool(b)
        assert ipam_gateway(a) == ipam_gateway(b) and a["routes"] == b["routes"]
        assert {k: v for k, v in cross.items() if k != "ipam"} == {k: v for k, v in local[name].items() if k != "ipam"}


def test_host_local_avoids_the_aws_reserved_last_address() -> None:
    config = dataclasses.replace(parse_config(None), cross_node_traffic=False)
    cni = nad_configs(network_attachment_definitions(config))["multus1-us-west-2a"]
    assert cni["ipam"] == {
        "type": "host-local",
        "ranges": [[{"subnet": "10.0.4.0/24", "rangeStart": "10.0.4.129", "rangeEnd": "10.0.4.254",
                     "gateway": "10.0.4.1"}]],
        "routes": [{"dst": "10.0.5.0/24", "gw": "10.0.4.1"}],
    }


def test_one_config_line_routes_a_telco_cidr() -> None:
    config = parse_config(None, {"multusNetworks.0.routes": ["192.168.100.0/24"]})
    cni = nad_configs(network_attachment_definitions(config))["multus1-us-west-2b"]
    assert cni["ipam"]["routes"] == [{"dst": "10.0.4.0/24", "gw": "10.0.5.1"},
                                     {"dst": "192.168.100.0/24", "gw": "10.0.5.1"}]
    other = nad_configs(network_attachment_definitions(config))["multus2-us-west-2b"]
    assert other["ipam"]["routes"] == [{"dst": "10.0.6.0/24", "gw": "10.0.7.1"}], "only the network that lists it"


def test_host_device_names_the_device() -> None:
    config = parse_config(THREE_NETWORKS)
    cni = nad_configs(network_attachment_definitions(config))["dpdk-us-west-2c"]
    assert cni["type"] == "host-device" and cni["device"] == "multus3"
    assert cni["ipam"]["range"] == "10.0.80.64/27"
    assert usable_pod_addresses(config.multus_networks[2], 2) == (
        ipaddress.IPv4Address("10.0.80.81"), ipaddress.IPv4Address("10.0.80.94"))
    assert (cni["ipam"]["range_start"], cni["ipam"]["range_end"]) == ("10.0.80.81", "10.0.80.94")


def test_config_is_json_not_a_template() -> None:
    for nad in network_attachment_definitions(parse_config(THREE_NETWORKS)):
        text = nad["spec"]["config"]
        assert json.loads(text) and "{{" not in text and "${" not in text


def test_reservations_are_the_pod_ranges(config: AppConfig) -> None:
    reservations = subnet_cidr_reservations(config)
    assert len(reservations) == len(config.multus_networks) * len(config.availability_zones)
    for r in reservations:
        network = config.multus_networks[r["position"]]
        assert r["network"] == network.name
        assert r["availability_zone"] == config.availability_zones[r["az_index"]]
        assert r["cidr"] == str(network.pod_range(r["az_index"]))
        assert ipaddress.IPv4Network(r["cidr"]).subnet_of(ipaddress.IPv4Network(network.subnet_cidrs[r["az_index"]]))
        assert r["type"] == "explicit"
        assert network.name in r["description"] and r["availability_zone"] in r["description"]
    # every NAD hands out addresses only from a reserved block
    blocks = [ipaddress.IPv4Network(r["cidr"]) for r in reservations]
    for network in config.multus_networks:
        for az_index in range(len(config.availability_zones)):
            first, last = usable_pod_addresses(network, az_index)
            assert any(first in b and last in b for b in blocks)


def test_nad_configs_reads_only_nads_and_rejects_duplicates() -> None:
    nads = network_attachment_definitions(parse_config(None))
    other = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}, "data": {}}
    assert set(nad_configs([other, *nads])) == {nad["metadata"]["name"] for nad in nads}
    with pytest.raises(ValueError, match="multus1-us-west-2a"):
        nad_configs([nads[0], nads[0]])


def test_nads_samples_and_their_namespace_follow_network_namespace(make_config):
    from eks_multus_cdk.multus import network_namespace
    from eks_multus_cdk.sample_pods import NETWORKS_ANNOTATION, sample_pod_manifests

    config = make_config(networkNamespace="team-a")
    assert network_namespace(config.network_namespace)["metadata"]["name"] == "team-a"
    assert {n["metadata"]["namespace"] for n in network_attachment_definitions(config)} == {"team-a"}
    pods = sample_pod_manifests(config)
    assert pods and {p["metadata"]["namespace"] for p in pods} == {"team-a"}
    # namespaceIsolation: the samples name NADs of their own namespace
    assert {a["namespace"] for p in pods for a in json.loads(p["metadata"]["annotations"][NETWORKS_ANNOTATION])} \
        == {"team-a"}
