"""The library's domain model: a Multus network as the constructs see it (no app config involved).

A `MultusNetwork` is one L2 segment of the VPC a node reaches through one extra ENI: a subnet per AZ (any
`ec2.ISubnet`, created or imported, from the VPC's primary or a secondary CIDR), the CNI plugin the pods use on
it, the block of each subnet reserved for pod addresses and the CIDRs routed through it. Node groups list the
networks they carry in device order (`MultusNodeGroup(networks=...)`); `MultusCni` renders one
NetworkAttachmentDefinition per network and AZ from those groups, so a NAD's `master` is always the interface
the ENI gets on the node.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from aws_cdk import Token
from aws_cdk import aws_ec2 as ec2

PLUGINS = ("ipvlan", "host-device")
IPVLAN_MODES = ("l2", "l3", "l3s")


@dataclass(frozen=True, kw_only=True)
class MultusNetwork:
    """One Multus network: a subnet per AZ, one ENI per node, one NetworkAttachmentDefinition per AZ.

    `subnet_cidrs` (same order as `subnets`) may be left out when every subnet knows its CIDR (subnets the stack
    creates, or imported with `ipv4_cidr_block`). The AZs are read from the subnets and must be concrete names.
    """

    name: str
    subnets: Sequence[ec2.ISubnet]
    subnet_cidrs: Sequence[str] = ()
    plugin: str = "ipvlan"
    ipvlan_mode: str = "l2"
    pod_range_prefix_length: int = 25
    routes: Sequence[str] = ()
    availability_zones: tuple[str, ...] = field(init=False)

    def __post_init__(self) -> None:
        where = f"MultusNetwork {self.name!r}"
        if not self.subnets:
            raise ValueError(f"{where}: subnets is empty (one subnet per AZ)")
        azs = tuple(s.availability_zone for s in self.subnets)
        if any(Token.is_unresolved(az) for az in azs):
            raise ValueError(f"{where}: the subnets' availability zones must be concrete names (import them with "
                             "availability_zone=...), not tokens")
        if len(set(azs)) != len(azs):
            raise ValueError(f"{where}: two subnets in one AZ ({', '.join(azs)}): one subnet per AZ")
        cidrs = tuple(self.subnet_cidrs) or tuple(_subnet_cidr(where, s) for s in self.subnets)
        if len(cidrs) != len(self.subnets):
            raise ValueError(f"{where}: subnet_cidrs has {len(cidrs)} entries for {len(self.subnets)} subnets")
        for cidr in cidrs:
            try:
                net = ipaddress.IPv4Network(cidr)
            except ValueError as err:
                raise ValueError(f"{where}: subnet CIDR {cidr!r} is not an IPv4 network ({err})") from None
            if not net.prefixlen <= self.pod_range_prefix_length <= 28:
                raise ValueError(f"{where}: pod_range_prefix_length {self.pod_range_prefix_length} must lie between "
                                 f"the subnet's /{net.prefixlen} and /28")
        for route in self.routes:
            try:
                ipaddress.IPv4Network(route)
            except ValueError as err:
                raise ValueError(f"{where}: route {route!r} is not an IPv4 network ({err})") from None
        if self.plugin not in PLUGINS:
            raise ValueError(f"{where}: plugin {self.plugin!r} is not one of {', '.join(PLUGINS)}")
        if self.ipvlan_mode not in IPVLAN_MODES:
            raise ValueError(f"{where}: ipvlan_mode {self.ipvlan_mode!r} is not one of {', '.join(IPVLAN_MODES)}")
        object.__setattr__(self, "subnet_cidrs", cidrs)
        object.__setattr__(self, "subnets", tuple(self.subnets))
        object.__setattr__(self, "routes", tuple(self.routes))
        object.__setattr__(self, "availability_zones", azs)

    def pod_range(self, az_index: int) -> ipaddress.IPv4Network:
        """The block reserved for pod addresses: the last `/pod_range_prefix_length` of the AZ's subnet."""
        return last_block(self.subnet_cidrs[az_index], self.pod_range_prefix_length)


def last_block(cidr: str, prefix_length: int) -> ipaddress.IPv4Network:
    """The last /prefix_length block of `cidr` (a subnet's pod range)."""
    subnet = ipaddress.IPv4Network(cidr)
    return ipaddress.IPv4Network((int(subnet.broadcast_address) + 1 - 2 ** (32 - prefix_length), prefix_length))


def _subnet_cidr(where: str, subnet: ec2.ISubnet) -> str:
    try:
        cidr = subnet.ipv4_cidr_block
    except Exception:  # noqa: BLE001 - jsii raises a plain Error for an imported subnet without its CIDR
        cidr = None
    if not cidr or Token.is_unresolved(cidr):
        raise ValueError(f"{where}: subnet {subnet.node.path} has no concrete CIDR: pass subnet_cidrs")
    return cidr


def device_indexes(groups: Iterable[tuple[str, Sequence[MultusNetwork]]]) -> dict[str, tuple[MultusNetwork, int]]:
    """Network name -> (network, EC2 device index) over node groups given as (group name, networks in device
    order). A network must sit at the same device index in every group that carries it (its NADs name one
    interface), and one name must mean one network; else ValueError naming the network, the groups and indexes."""
    seen: dict[str, tuple[MultusNetwork, int, str]] = {}
    for group, networks in groups:
        for position, network in enumerate(networks):
            index = position + 1
            if network.name not in seen:
                seen[network.name] = (network, index, group)
                continue
            first, first_index, first_group = seen[network.name]
            if first_index != index:
                raise ValueError(
                    f"Multus network {network.name!r} is at device index {first_index} in node group {first_group!r} "
                    f"but at device index {index} in node group {group!r}: its NADs name one interface "
                    f"(multus{first_index} or multus{index}), so list it at the same position in every group")
            if first is not network and first != network:
                raise ValueError(f"Multus network {network.name!r}: node groups {first_group!r} and {group!r} carry "
                                 "two different networks of that name")
    return {name: (net, index) for name, (net, index, _) in seen.items()}
