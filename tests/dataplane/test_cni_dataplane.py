"""The synthesized NADs through the real CNI plugins: addresses, routes, pings, release (see conftest.py)."""

from __future__ import annotations

import dataclasses
import json
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cni_harness import (
    CNI_BIN,
    Attachment,
    ip_json,
    join_parents,
    nad_gateway,
    note,
    ping,
    reserved_addresses,
    role,
    runnable,
    sh,
    template_nad_configs,
    template_pod_attachments,
)
from multus_test_app import synthesized_template

from eks_multus_cdk.config import parse_config


def parents_of(configs: list[dict[str, Any]]) -> list[str]:
    """The node interfaces (ENI stand-ins) the configs name as master/device, in first-use order."""
    names: list[str] = []
    for config in configs:
        name = config.get("master") or config["device"]
        if name not in names:
            names.append(name)
    return names


def attach(pod: str, node: str, wanted: list[tuple[str, str]], configs: dict[str, Any], data_dir: Path,
           ipvlan: bool) -> list[Attachment]:
    atts = [Attachment(pod=pod, node=node, nad=nad, ifname=ifname, nad_config=configs[nad],
                       config=runnable(configs[nad], data_dir, ipvlan)) for nad, ifname in wanted]
    for att in atts:
        address = att.add()
        parent = att.config.get("master") or att.config.get("device")
        print(f"[dataplane] {role(pod)} {att.ifname} ({att.nad}, {att.config['type']} on {parent}): "
              f"{address} gw {nad_gateway(att.nad_config)}")
    return atts


def vpc_neighbours(a: Attachment, b: Attachment) -> None:
    """ipvlan L3 across nodes: the node parents resolve the other pod's address like the VPC does for an ENI.

    ipvlan L3 slaves answer no ARP; on AWS the VPC answers for addresses assigned to an ENI (the pod address
    controller assigns them). Static neighbour entries on the two 'ENIs' stand in for that. macvlan needs none.
    """
    if a.config["type"] != "ipvlan":
        return
    for here, there in ((a, b), (b, a)):
        master = here.config["master"]
        (link,) = ip_json(there.node, "link", "show", "dev", there.config["master"])
        sh("ip", "-n", here.node, "neigh", "replace", str(there.address.ip), "lladdr", link["address"],
           "dev", master, "nud", "permanent")
    note("ipvlan across nodes: static neighbour entries on the node parents stand in for the VPC's ARP answers")


def detach_all(atts: list[Attachment]) -> None:
    for att in reversed(atts):
        att.delete()


def test_plugins_support_the_nads_cni_version(multus_template: dict[str, Any], kernel_has_ipvlan: bool) -> None:
    """Every plugin a NAD (or its stand-in here) uses speaks the NAD's cniVersion."""
    for name, config in template_nad_configs(multus_template).items():
        plugins = {config["type"], "macvlan", "host-local"}
        for plugin in sorted(plugins):
            proc = subprocess.run([str(CNI_BIN / plugin)], env={"CNI_COMMAND": "VERSION"}, input="",
                                  capture_output=True, text=True, timeout=10)
            versions = json.loads(proc.stdout)["supportedVersions"]
            assert config["cniVersion"] in versions, f"{plugin} does not support {config['cniVersion']} ({name})"


def test_sample_pods_on_one_node(multus_template: dict[str, Any], netns: Callable[[str], str], data_dir: Path,
                                 kernel_has_ipvlan: bool) -> None:
    configs = template_nad_configs(multus_template)
    pods = template_pod_attachments(multus_template)
    assert {"sample-single", "sample-dual"} <= set(pods), "the template should carry both sample pods"
    assert [i for _, i in pods["sample-dual"]] == ["net1", "net2"]

    node, vpc = netns("node"), netns("vpc")
    for parent in parents_of([configs[nad] for wanted in pods.values() for nad, _ in wanted]):
        join_parents(node, vpc, parent)  # the ENI; its peer in "vpc" stands in for the subnet
    attached = {name: attach(netns(name), node, wanted, configs, data_dir, kernel_has_ipvlan)
                for name, wanted in pods.items()}
    try:
        single, dual = attached["sample-single"], attached["sample-dual"]
        assert {link["ifname"] for link in ip_json(dual[0].pod, "link", "show")} >= {"net1", "net2"}
        # Same NAD on both pods: distinct addresses of one pod range.
        assert single[0].nad == dual[0].nad
        assert single[0].address != dual[0].address
        ping(single[0].pod, "net1", dual[0].address)
        ping(dual[0].pod, "net1", single[0].address)
        in_use = reserved_addresses(data_dir)
        assert len(in_use) == sum(len(a) for a in attached.values()), in_use
    finally:
        for atts in attached.values():
            detach_all(atts)
    assert reserved_addresses(data_dir) == [], "CNI DEL must release every address"
    for atts in attached.values():
        for att in atts:
            assert sh("ip", "-n", att.pod, "link", "show", att.ifname, check=False).returncode != 0
    print(f"[dataplane] after DEL the host-local dataDir holds no reservation "
          f"(left: {sorted(p.name for p in data_dir.rglob('*') if p.is_file())})")


def test_sample_pods_on_two_nodes(multus_template: dict[str, Any], netns: Callable[[str], str], data_dir: Path,
                                  kernel_has_ipvlan: bool) -> None:
    """sample-single on node A, sample-dual on node B, their ENIs on one wire.

    whereabouts (crossNodeTraffic true): addresses unique across nodes and the pods ping each other. host-local
    (crossNodeTraffic false): each node keeps its own state, so both pods get the same address; the test shows
    that instead (such pods may only talk within their node).
    """
    configs = template_nad_configs(multus_template)
    pods = template_pod_attachments(multus_template)
    node_a, node_b = netns("node-a"), netns("node-b")
    for parent in parents_of([configs[nad] for wanted in pods.values() for nad, _ in wanted]):
        join_parents(node_a, node_b, parent)  # node A's ENI and node B's ENI on one wire
    cluster_wide = configs[pods["sample-single"][0][0]]["ipam"]["type"] == "whereabouts"
    if cluster_wide:
        note("two nodes: one host-local dataDir shared by both nodes stands in for whereabouts' cluster-wide IPAM")
        dirs = (data_dir, data_dir)
    else:
        dirs = (data_dir / "node-a", data_dir / "node-b")
        for d in dirs:
            d.mkdir()
    single = attach(netns("sample-single"), node_a, pods["sample-single"], configs, dirs[0], kernel_has_ipvlan)
    dual = attach(netns("sample-dual"), node_b, pods["sample-dual"], configs, dirs[1], kernel_has_ipvlan)
    try:
        if cluster_wide:
            assert single[0].address != dual[0].address
            vpc_neighbours(single[0], dual[0])
            ping(single[0].pod, "net1", dual[0].address)
            ping(dual[0].pod, "net1", single[0].address)
        else:
            assert single[0].address == dual[0].address
            note(f"crossNodeTraffic=false (host-local, state per node): both nodes gave {single[0].address}")
    finally:
        detach_all(dual)
        detach_all(single)
    assert reserved_addresses(data_dir) == []


def test_host_local_state_is_per_node(netns: Callable[[str], str], data_dir: Path, kernel_has_ipvlan: bool) -> None:
    """The crossNodeTraffic=false render on two nodes: the same first address on both (why whereabouts is default)."""
    config = dataclasses.replace(parse_config(None), cross_node_traffic=False)
    configs = template_nad_configs(synthesized_template(config))
    nad = "multus1-us-west-2a"
    assert configs[nad]["ipam"]["type"] == "host-local"
    node_a, node_b = netns("node-a"), netns("node-b")
    join_parents(node_a, node_b, configs[nad]["master"])
    atts = []
    for node, pod in ((node_a, "pod-a"), (node_b, "pod-b")):
        (data_dir / role(node)).mkdir()
        atts += attach(netns(pod), node, [(nad, "net1")], configs, data_dir / role(node), kernel_has_ipvlan)
    try:
        assert atts[0].address == atts[1].address
        note(f"crossNodeTraffic=false (host-local, state per node): both nodes gave {atts[0].address}")
    finally:
        detach_all(atts)
    assert reserved_addresses(data_dir) == []


def test_host_device_moves_the_eni_into_the_pod(netns: Callable[[str], str], data_dir: Path) -> None:
    config = parse_config(None, {"multusNetworks.0.plugin": "host-device"})
    configs = template_nad_configs(synthesized_template(config))
    nad = "multus1-us-west-2a"
    assert configs[nad]["type"] == "host-device" and configs[nad]["device"] == "multus1"
    node, vpc, pod = netns("node"), netns("vpc"), netns("dpdk-pod")
    join_parents(node, vpc, "multus1")
    (att,) = attach(pod, node, [(nad, "net1")], configs, data_dir, ipvlan=True)
    try:
        assert sh("ip", "-n", node, "link", "show", "multus1", check=False).returncode != 0, "the ENI left the node"
        # Something else on the subnet: an address of the pod range on the far end of the wire.
        peer = att.address.network.broadcast_address - 1
        assert peer != att.address.ip
        sh("ip", "-n", vpc, "addr", "add", f"{peer}/{att.address.network.prefixlen}", "dev", "multus1")
        ping(pod, "net1", type(att.address)(f"{peer}/{att.address.network.prefixlen}"))
    finally:
        att.delete()
    (link,) = ip_json(node, "addr", "show", "dev", "multus1")
    assert not [a for a in link["addr_info"] if a["family"] == "inet"], "the ENI comes back without the pod address"
    assert sh("ip", "-n", pod, "link", "show", "net1", check=False).returncode != 0
    assert reserved_addresses(data_dir) == []
    note("host-device: ADD moved multus1 into the pod as net1 with a pod-range address; DEL gave it back")
