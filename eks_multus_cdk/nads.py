"""NetworkAttachmentDefinitions: one per Multus network and availability zone, and the pod address blocks.

Each Multus network has one subnet per AZ, and every node has one ENI per network in its own AZ, renamed on the
node to `naming.interface_name(position)` (multus1, multus2...). A NAD therefore belongs to one (network, AZ):
its `master`/`device` is that stable interface name and its addresses come from that AZ's subnet. A pod may only
name the NADs of its node's AZ (the sample pods pin themselves to AZ 1 with a nodeSelector).

Addressing (one plan, `address_plan`, renders both IPAM types, so switching `crossNodeTraffic` never changes the
mask, the range or the gateway):
- the pod's Multus interface carries the prefix of the whole Multus subnet (e.g. 10.0.4.x/24): every host of
  the subnet (other instances' ENIs, telco peers, the VPC router at .1) is on-link through that interface;
- the addresses pods may get are the usable hosts of the subnet's *pod range* (`MultusNetworkConfig.pod_range`,
  the last block of the subnet), which EC2 never assigns to an ENI itself: the construct reserves it with an
  explicit subnet CIDR reservation (see `subnet_cidr_reservations`);
- the gateway is the subnet's VPC router (its first host).
whereabouts returns every address with the mask of its `range` (its allocator builds the result from the
range's mask), so `range` is the whole subnet and the pod range goes into `range_start`/`range_end`; host-local
gets the same numbers as `subnet`/`rangeStart`/`rangeEnd`.

Routes (`multus_routes`): the network's subnets in the other AZs (its "other half") and the network's configured
`routes` (telco peers behind a transit gateway or VPN...) are reached through the local subnet's router, on the
Multus interface, with the pod's Multus address as source. Everything else keeps using eth0.

IPAM:
- `crossNodeTraffic: true` (default): `whereabouts`, cluster-wide IPAM: addresses are unique across nodes, so
  pods on different nodes can talk (the VPC must also know the addresses: that is the pod address controller's
  job).
- `crossNodeTraffic: false`: `host-local` over the same addresses. host-local keeps its state on each node, so
  two nodes can give the same address to two pods: such pods may only talk to pods of their own node.

Plugins:
- `ipvlan` (default): `master` = the ENI's interface; any number of pods per node share it (`ipvlanMode`, l2 by
  default: the pod's packets leave through the ENI with the pod's own routes and source address; see the README
  for l3/l3s and what they need on the node).
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
from collections.abc import Sequence
from dataclasses import dataclass
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


@dataclass(frozen=True)
class AddressPlan:
    """The numbers both IPAM renderings are made from, for one network in one AZ."""

    subnet: ipaddress.IPv4Network  # the prefix the pod's interface carries
    first: ipaddress.IPv4Address  # first address a pod may get (inclusive)
    last: ipaddress.IPv4Address  # last address a pod may get (inclusive)
    gateway: ipaddress.IPv4Address  # the subnet's VPC router


def address_plan(network: MultusNetworkConfig, az_index: int) -> AddressPlan:
    """Subnet, usable pod addresses and router of the network in one AZ.

    The usable addresses are the pod range's hosts (not its first and last address), minus any address AWS
    reserves in the subnet (the subnet's last address is also the pod range's last).
    """
    net = subnet(network, az_index)
    pod_range = network.pod_range(az_index)
    first = max(pod_range.network_address + 1, net.network_address + AWS_RESERVED_FIRST)
    last = min(pod_range.broadcast_address - 1, net.broadcast_address - AWS_RESERVED_LAST)
    if first > last:
        raise ValueError(f"pod range {pod_range} of subnet {net} leaves no usable address")
    return AddressPlan(subnet=net, first=first, last=last, gateway=gateway(network, az_index))


def usable_pod_addresses(
    network: MultusNetworkConfig, az_index: int
) -> tuple[ipaddress.IPv4Address, ipaddress.IPv4Address]:
    """First and last address pods may get (see `address_plan`)."""
    plan = address_plan(network, az_index)
    return plan.first, plan.last


def multus_routes(network: MultusNetworkConfig, az_index: int) -> list[str]:
    """CIDRs the pod reaches through this network's router: the network's other AZs, then its `routes`."""
    others = [cidr for i, cidr in enumerate(network.subnet_cidrs) if i != az_index]
    return [*others, *network.routes]


def ipam_config(config: AppConfig, network: MultusNetworkConfig, az_index: int) -> dict[str, Any]:
    """whereabouts when pods talk across nodes, else host-local: both from the same `address_plan`."""
    return network_ipam(network, az_index, whereabouts=config.cross_node_traffic)


def network_ipam(network: Any, az_index: int, *, whereabouts: bool) -> dict[str, Any]:
    """The IPAM section of a network's NAD in one AZ (`network`: a MultusNetwork or MultusNetworkConfig)."""
    plan = address_plan(network, az_index)
    gw = str(plan.gateway)
    routes = [{"dst": cidr, "gw": gw} for cidr in multus_routes(network, az_index)]
    if whereabouts:
        return {
            "type": "whereabouts",
            "range": str(plan.subnet),
            "range_start": str(plan.first),
            "range_end": str(plan.last),
            "gateway": gw,
            "routes": routes,
        }
    return {
        "type": "host-local",
        "ranges": [[{"subnet": str(plan.subnet), "rangeStart": str(plan.first), "rangeEnd": str(plan.last),
                     "gateway": gw}]],
        "routes": routes,
    }


def cni_config(config: AppConfig, position: int, az_index: int) -> dict[str, Any]:
    """The CNI network configuration of the network at `position` in the AZ at `az_index`."""
    return network_cni_config(config.multus_networks[position], position, config.availability_zones[az_index],
                              az_index, whereabouts=config.cross_node_traffic)


def network_cni_config(
    network: Any, position: int, availability_zone: str, az_index: int, *, whereabouts: bool
) -> dict[str, Any]:
    """The CNI configuration of `network`, whose ENI is the node's `position`-th Multus ENI (device index
    position + 1, interface `naming.interface_name(position)`), in one AZ."""
    interface = naming.interface_name(position)
    cni: dict[str, Any] = {
        "cniVersion": CNI_VERSION,
        "name": naming.nad_name(network.name, availability_zone),
        "type": network.plugin,
    }
    if network.plugin == "ipvlan":
        cni["master"] = interface
        cni["mode"] = network.ipvlan_mode
    elif network.plugin == "host-device":
        cni["device"] = interface
    else:  # validation rejects other plugins; keep the renderer honest if that list grows
        raise ValueError(f"Multus network {network.name}: no NAD rendering for plugin {network.plugin!r}")
    cni["ipam"] = network_ipam(network, az_index, whereabouts=whereabouts)
    return cni


def network_attachment_definitions(config: AppConfig) -> list[dict[str, Any]]:
    """One NetworkAttachmentDefinition per (network, AZ), networks in config order, AZs in config order."""
    return render_nads([(net, pos, tuple(config.availability_zones)) for pos, net in
                        enumerate(config.multus_networks)],
                       namespace=config.network_namespace, whereabouts=config.cross_node_traffic)


def render_nads(
    networks: Sequence[tuple[Any, int, Sequence[str]]], *, namespace: str, whereabouts: bool
) -> list[dict[str, Any]]:
    """One NetworkAttachmentDefinition per (network, AZ), for (network, position, AZ names in subnet order)."""
    nads = []
    for network, position, azs in networks:
        for az_index, az in enumerate(azs):
            nads.append({
                "apiVersion": NAD_API_VERSION,
                "kind": NAD_KIND,
                "metadata": {
                    "name": naming.nad_name(network.name, az),
                    "namespace": namespace,
                    "labels": {
                        "app.kubernetes.io/part-of": "eks-multus",
                        "topology.kubernetes.io/zone": az,
                    },
                },
                "spec": {"config": json.dumps(network_cni_config(network, position, az, az_index,
                                                                 whereabouts=whereabouts), separators=(",", ":"))},
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
