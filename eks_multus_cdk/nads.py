"""NetworkAttachmentDefinitions: one per Multus network and availability zone, and the pod address blocks.

Each Multus network has one subnet per AZ, and every node has one ENI per network in its own AZ, renamed on the
node to `naming.interface_name(position)` (multus1, multus2...). A NAD therefore belongs to one (network, AZ):
its `master`/`device` is that stable interface name and its addresses come from that AZ's subnet. A pod may only
name the NADs of its node's AZ (the sample pods pin themselves to AZ 1 with a nodeSelector).

Pod addresses come from the *pod range* of the subnet (`MultusNetworkConfig.pod_range`, the last block of the
subnet), which the network construct reserves with an explicit AWS::EC2::SubnetCidrReservation so EC2 never
gives those addresses to an ENI (see `subnet_cidr_reservations`).

IPAM:
- `crossNodeTraffic: true` (default): `whereabouts`, cluster-wide IPAM, over the pod range: addresses are unique
  across nodes, so pods on different nodes can talk (the VPC must also know the addresses: that is the pod
  address controller's job). whereabouts hands out the hosts of the range, never its first and last address, so
  AWS's reserved last address of the subnet is never used.
- `crossNodeTraffic: false`: `host-local` over the same usable addresses. host-local keeps its state on each
  node, so two nodes can give the same address to two pods: such pods may only talk to pods of their own node.

Plugins:
- `ipvlan` (default): `master` = the ENI's interface; any number of pods per node share it (`ipvlanMode`).
- `host-device`: `device` = the ENI's interface, moved into the pod (DPDK-style, the pod owns the ENI). Only
  ONE pod per network per node can have it; further pods that name the NAD on that node fail to start until it
  is released. Scale such workloads with more nodes (or more networks), not more pods per node.

CNI version "0.3.1": the version every component on the path supports: Multus 4.1 (its own daemon config says
0.3.1), the upstream plugins the VPC CNI installs on nodes and Debian's 1.1.1 build (VERSION reports 0.1.0 to
1.0.0), and whereabouts releases of every age. Nothing here needs a newer result format (no CHECK, no STATUS).
"""

from __future__ import annotations

import ipaddress
import json
from typing import Any

from eks_multus_cdk import naming
from eks_multus_cdk.config import AppConfig, MultusNetworkConfig

CNI_VERSION = "0.3.1"
NAD_API_VERSION = "k8s.cni.cncf.io/v1"
NAD_KIND = "NetworkAttachmentDefinition"

# AWS reserves the first four addresses of every subnet (network, VPC router, DNS, future use) and the last one.
AWS_RESERVED_FIRST = 4
AWS_RESERVED_LAST = 1


def subnet(network: MultusNetworkConfig, az_index: int) -> ipaddress.IPv4Network:
    return ipaddress.IPv4Network(network.subnet_cidrs[az_index])


def gateway(network: MultusNetworkConfig, az_index: int) -> ipaddress.IPv4Address:
    """The VPC router of the subnet: its first host address."""
    return subnet(network, az_index).network_address + 1


def usable_pod_addresses(
    network: MultusNetworkConfig, az_index: int
) -> tuple[ipaddress.IPv4Address, ipaddress.IPv4Address]:
    """First and last address pods may get: the pod range's hosts, minus any address AWS reserves in the subnet.

    The hosts of the range (not its first and last address) are exactly what whereabouts hands out over it, so
    switching `crossNodeTraffic` never changes which addresses pods can get; the subnet's last address (reserved
    by AWS, and the last address of the pod range) is excluded either way.
    """
    net = subnet(network, az_index)
    pod_range = network.pod_range(az_index)
    first = max(pod_range.network_address + 1, net.network_address + AWS_RESERVED_FIRST)
    last = min(pod_range.broadcast_address - 1, net.broadcast_address - AWS_RESERVED_LAST)
    if first > last:
        raise ValueError(f"pod range {pod_range} of subnet {net} leaves no usable address")
    return first, last


def ipam_config(config: AppConfig, network: MultusNetworkConfig, az_index: int) -> dict[str, Any]:
    """whereabouts over the pod range when pods talk across nodes, else host-local over the same addresses."""
    gw = str(gateway(network, az_index))
    if config.cross_node_traffic:
        return {"type": "whereabouts", "range": str(network.pod_range(az_index)), "gateway": gw}
    first, last = usable_pod_addresses(network, az_index)
    return {
        "type": "host-local",
        "ranges": [[{
            "subnet": str(subnet(network, az_index)),
            "rangeStart": str(first),
            "rangeEnd": str(last),
            "gateway": gw,
        }]],
    }


def cni_config(config: AppConfig, position: int, az_index: int) -> dict[str, Any]:
    """The CNI network configuration of the network at `position` in the AZ at `az_index`."""
    network = config.multus_networks[position]
    interface = naming.interface_name(position)
    cni: dict[str, Any] = {
        "cniVersion": CNI_VERSION,
        "name": naming.nad_name(network.name, config.availability_zones[az_index]),
        "type": network.plugin,
    }
    if network.plugin == "ipvlan":
        cni["master"] = interface
        cni["mode"] = network.ipvlan_mode
    elif network.plugin == "host-device":
        cni["device"] = interface
    else:  # config validation rejects other plugins; keep the renderer honest if that list grows
        raise ValueError(f"Multus network {network.name}: no NAD rendering for plugin {network.plugin!r}")
    cni["ipam"] = ipam_config(config, network, az_index)
    return cni


def network_attachment_definitions(config: AppConfig) -> list[dict[str, Any]]:
    """One NetworkAttachmentDefinition per (network, AZ), networks in config order, AZs in config order."""
    nads = []
    for position, network in enumerate(config.multus_networks):
        for az_index, az in enumerate(config.availability_zones):
            nads.append({
                "apiVersion": NAD_API_VERSION,
                "kind": NAD_KIND,
                "metadata": {
                    "name": naming.nad_name(network.name, az),
                    "namespace": config.network_namespace,
                    "labels": {
                        "app.kubernetes.io/part-of": "eks-multus",
                        "topology.kubernetes.io/zone": az,
                    },
                },
                "spec": {"config": json.dumps(cni_config(config, position, az_index), separators=(",", ":"))},
            })
    return nads


def subnet_cidr_reservations(config: AppConfig) -> list[dict[str, Any]]:
    """The pod ranges, as plain data for AWS::EC2::SubnetCidrReservation (explicit: EC2 never assigns them itself).

    Keys: network (name), position (in the config), az_index, availability_zone, cidr, type, description.
    """
    return [
        {
            "network": network.name,
            "position": position,
            "az_index": az_index,
            "availability_zone": az,
            "cidr": str(network.pod_range(az_index)),
            "type": "explicit",
            "description": f"Multus pod addresses of network {network.name} in {az}",
        }
        for position, network in enumerate(config.multus_networks)
        for az_index, az in enumerate(config.availability_zones)
    ]


def nad_configs(manifests: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """NAD name -> its parsed CNI config, for every NetworkAttachmentDefinition among `manifests`."""
    configs: dict[str, dict[str, Any]] = {}
    for obj in manifests:
        if obj.get("kind") != NAD_KIND:
            continue
        name = obj["metadata"]["name"]
        if name in configs:
            raise ValueError(f"two NetworkAttachmentDefinitions are named {name}")
        configs[name] = json.loads(obj["spec"]["config"])
    return configs
