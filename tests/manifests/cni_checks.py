"""What a NAD's CNI config must hold, per the CNI spec and the plugin's documented fields.

Used by the NAD tests (every rendered config) and the data-plane tests (the configs a template carries).
"""

from __future__ import annotations

import ipaddress
from typing import Any

# Versions the CNI spec defines (SPEC.md "Version" / the libcni version list).
CNI_SPEC_VERSIONS = ("0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0")
IPVLAN_MODES = ("l2", "l3", "l3s")


def address_pool(ipam: dict[str, Any]) -> tuple[ipaddress.IPv4Network, ipaddress.IPv4Address, ipaddress.IPv4Address]:
    """(network the pod's address is in, first, last address the IPAM may hand out) for whereabouts/host-local."""
    if ipam["type"] == "whereabouts":
        network = ipaddress.IPv4Network(ipam["range"], strict=True)
        return network, network.network_address + 1, network.broadcast_address - 1
    if ipam["type"] == "host-local":
        (range_set,) = ipam["ranges"]
        (r,) = range_set
        network = ipaddress.IPv4Network(r["subnet"], strict=True)
        return network, ipaddress.IPv4Address(r["rangeStart"]), ipaddress.IPv4Address(r["rangeEnd"])
    raise AssertionError(f"unexpected IPAM type {ipam['type']!r}")


def check_cni_config(
    cni: dict[str, Any],
    *,
    name: str,
    interface: str,
    subnet: str,
    pod_range: str,
    plugin: str,
    ipvlan_mode: str | None = None,
    cross_node: bool | None = None,
) -> None:
    """Assert `cni` is a complete, consistent single-plugin config for one Multus network in one AZ."""
    net = ipaddress.IPv4Network(subnet)
    pods = ipaddress.IPv4Network(pod_range)
    for key in ("cniVersion", "name", "type", "ipam"):
        assert key in cni, f"{name}: CNI config lacks {key!r}"
    assert cni["cniVersion"] in CNI_SPEC_VERSIONS, cni["cniVersion"]
    assert cni["name"] == name
    assert cni["type"] == plugin
    if plugin == "ipvlan":
        assert cni["master"] == interface
        assert cni["mode"] in IPVLAN_MODES
        if ipvlan_mode is not None:
            assert cni["mode"] == ipvlan_mode
        assert "device" not in cni
    elif plugin == "host-device":
        assert cni["device"] == interface
        assert "master" not in cni and "mode" not in cni
    else:
        raise AssertionError(f"unexpected plugin {plugin}")

    ipam = cni["ipam"]
    raw_gateway = ipam["gateway"] if ipam["type"] == "whereabouts" else ipam["ranges"][0][0]["gateway"]
    gateway = ipaddress.IPv4Address(raw_gateway)
    assert gateway == net.network_address + 1, "the gateway is the VPC router, the subnet's first host"
    if cross_node is not None:
        assert ipam["type"] == ("whereabouts" if cross_node else "host-local")
    if ipam["type"] == "whereabouts":
        assert set(ipam) == {"type", "range", "gateway"}, ipam
        assert ipaddress.IPv4Network(ipam["range"]) == pods
    else:
        assert set(ipam) == {"type", "ranges"}, ipam
        (range_set,) = ipam["ranges"]
        (r,) = range_set
        assert set(r) == {"subnet", "rangeStart", "rangeEnd", "gateway"}, r
        assert ipaddress.IPv4Network(r["subnet"]) == net
    network, first, last = address_pool(ipam)
    assert network.subnet_of(net)
    assert first <= last
    for address in (first, last):
        assert address in pods, f"{address} outside the pod range {pods}"
        assert address in net
        # AWS reserves the subnet's first four addresses and its last one.
        assert net.network_address + 4 <= address < net.broadcast_address, f"{address} is reserved by AWS"
    assert not first <= gateway <= last
