"""Network-interface limits of the EC2 instance types this library knows.

The numbers are EC2's published "maximum network interfaces" and "IPv4 addresses per interface" per
instance type. They are used at synth time (no AWS call) to reject a node group that cannot take one ENI per
Multus network, and to document how many pod addresses fit on one Multus ENI. An instance type missing here
can still be used: set `maxNetworkInterfaces` (and `ipv4PerInterface`) on the node group in cdk.json.
"""

from __future__ import annotations

from typing import NamedTuple


class EniLimits(NamedTuple):
    max_interfaces: int
    ipv4_per_interface: int


# Families whose sizes share the same limits (EC2 documentation, "Maximum IP addresses per network interface").
_NITRO_GENERAL = {
    "large": EniLimits(3, 10),
    "xlarge": EniLimits(4, 15),
    "2xlarge": EniLimits(4, 15),
    "4xlarge": EniLimits(8, 30),
    "8xlarge": EniLimits(8, 30),
    "9xlarge": EniLimits(8, 30),
    "12xlarge": EniLimits(8, 30),
    "16xlarge": EniLimits(15, 50),
    "18xlarge": EniLimits(15, 50),
    "24xlarge": EniLimits(15, 50),
    "32xlarge": EniLimits(15, 50),
    "metal": EniLimits(15, 50),
}
_FAMILIES = ("c5", "c5n", "c6i", "c6in", "c7i", "m5", "m5n", "m6i", "m7i", "r5", "r6i", "r7i")

_T3 = {
    "t3.micro": EniLimits(2, 2),
    "t3.small": EniLimits(3, 4),
    "t3.medium": EniLimits(3, 6),
    "t3.large": EniLimits(3, 12),
    "t3.xlarge": EniLimits(4, 15),
    "t3.2xlarge": EniLimits(4, 15),
}

ENI_LIMITS: dict[str, EniLimits] = {
    **{f"{family}.{size}": limits for family in _FAMILIES for size, limits in _NITRO_GENERAL.items()},
    **_T3,
}


def eni_limits(instance_type: str) -> EniLimits | None:
    """The limits of a known instance type, or None."""
    return ENI_LIMITS.get(instance_type)


def vpc_cni_pod_addresses(max_interfaces: int, ipv4_per_interface: int, multus_networks: int) -> int:
    """Pod addresses the VPC CNI can hand out on a node: it skips the Multus ENIs (tagged `no_manage`) and uses
    every address but the primary one of each remaining ENI: (ENIs - Multus ENIs) x (IPv4 per ENI - 1)."""
    return max(0, max_interfaces - multus_networks) * max(0, ipv4_per_interface - 1)


def max_pods(max_interfaces: int, ipv4_per_interface: int, multus_networks: int, host_network_pods: int) -> int:
    """kubelet's max pods for such a node: the VPC CNI's addresses plus the pods that need none (aws-node and
    kube-proxy, the +2 of EKS's own formula, plus `host_network_pods` more). nodeadm evaluates the same formula
    at boot as `node_group.max_pods_expression` with the instance's real limits."""
    return vpc_cni_pod_addresses(max_interfaces, ipv4_per_interface, multus_networks) + 2 + host_network_pods
