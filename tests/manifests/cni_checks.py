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
    """(prefix the pod's address carries, first, last address the IPAM may hand out) for whereabouts/host-local.

    whereabouts gives every address the mask of `range` and hands out `range_start`..`range_end` (inclusive) when
    they are set, else the hosts of `range`; host-local gives the mask of `subnet` and hands out
    `rangeStart`..`rangeEnd`.
    """
    if ipam["type"] == "whereabouts":
        network = ipaddress.IPv4Network(ipam["range"], strict=True)
        first = ipaddress.IPv4Address(ipam["range_start"]) if "range_start" in ipam else network.network_address + 1
        last = ipaddress.IPv4Address(ipam["range_end"]) if "range_end" in ipam else network.broadcast_address - 1
        return network, first, last
    if ipam["type"] == "host-local":
        (range_set,) = ipam["ranges"]
        (r,) = range_set
        network = ipaddress.IPv4Network(r["subnet"], strict=True)
        return network, ipaddress.IPv4Address(r["rangeStart"]), ipaddress.IPv4Address(r["rangeEnd"])
    raise AssertionError(f"unexpected IPAM type {ipam['type']!r}")


def ipam_gateway(ipam: dict[str, Any]) -> str:
    return ipam["gateway"] if ipam["type"] == "whereabouts" else ipam["ranges"][0][0]["gateway"]


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
    routes: list[str] | None = None,
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
    gateway = ipaddress.IPv4Address(ipam_gateway(ipam))
    assert gateway == net.network_address + 1, "the gateway is the VPC router, the subnet's first host"
    if cross_node is not None:
        assert ipam["type"] == ("whereabouts" if cross_node else "host-local")
    if ipam["type"] == "whereabouts":
        assert set(ipam) == {"type", "range", "range_start", "range_end", "gateway", "routes"}, ipam
    else:
        assert set(ipam) == {"type", "ranges", "routes"}, ipam
        (range_set,) = ipam["ranges"]
        (r,) = range_set
        assert set(r) == {"subnet", "rangeStart", "rangeEnd", "gateway"}, r
    network, first, last = address_pool(ipam)
    assert network == net, f"{name}: the pod's interface must carry the whole subnet's prefix, not {network}"
    assert first <= last
    # The usable hosts of the pod range: its first address, its last and AWS's reserved ones are never handed out.
    assert (first, last) == (max(pods.network_address + 1, net.network_address + 4),
                             min(pods.broadcast_address - 1, net.broadcast_address - 1)), (first, last)
    assert not first <= gateway <= last
    assert [r["gw"] for r in ipam["routes"]] == [str(gateway)] * len(ipam["routes"])
    if routes is not None:
        assert [r["dst"] for r in ipam["routes"]] == list(routes), ipam["routes"]
    for route in ipam["routes"]:
        assert not ipaddress.IPv4Network(route["dst"]).overlaps(net), f"{route} covers the pod's own subnet"
