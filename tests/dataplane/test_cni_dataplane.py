"""The synthesized NADs through the real CNI plugins, in a world that routes like a node and its subnet.

See cni_harness.py for the world (nodes, Multus subnets with a router and peers, pods with a VPC-CNI-style eth0)
and for what the stand-ins cannot show (ipvlan's shared MAC and the l3 path through the node; whereabouts'
cluster-wide store).
"""

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
    MultusWorld,
    assert_leaves_by_multus,
    cni,
    ip_json,
    note,
    ping,
    reserved_addresses,
    role,
    runnable,
    sh,
    subnets_of,
    template_nad_configs,
    template_pod_attachments,
)
from multus_test_app import synthesized_template

from eks_multus_cdk.config import parse_config

TELCO_CIDR = "192.168.100.0/24"  # outside the VPC: a peer behind a transit gateway or VPN


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


def test_sample_pods_reach_their_subnet_and_its_other_half(multus_template: dict[str, Any], default_config,
                                                           netns: Callable[[str], str], data_dir: Path,
                                                           kernel_has_ipvlan: bool) -> None:
    """The default app's sample pods on one node: each Multus interface carries the subnet's prefix, reaches
    another instance's ENI outside the pod range and the subnet router on-link, and the network's other-AZ subnet
    through the router, each by the Multus path with the pod's Multus source, and is reached back; eth0 keeps
    the default route; pods sharing a NAD get distinct addresses; DEL releases everything."""
    configs = template_nad_configs(multus_template)
    pods = template_pod_attachments(multus_template)
    assert {"sample-single", "sample-dual"} <= set(pods), "the template should carry both sample pods"
    assert [i for _, i in pods["sample-dual"]] == ["net1", "net2"]
    world = MultusWorld(netns, configs, subnets_of(default_config))
    attached: dict[str, list[Attachment]] = {}
    try:
        for name, wanted in pods.items():
            attached[name] = []
            attached[name] = world.attach(world.pod(name), "node", wanted, data_dir, kernel_has_ipvlan)
        single, dual = attached["sample-single"], attached["sample-dual"]
        assert {link["ifname"] for link in ip_json(dual[0].pod, "link", "show")} >= {"eth0", "net1", "net2"}
        assert single[0].nad == dual[0].nad and single[0].address != dual[0].address
        for att in (*single, *dual):
            assert world.segments[att.config["master"]].far, "the other AZ's half sits behind the router"
            world.check_reaches_its_subnet_and_routes(att)
        ping(single[0].pod, dual[0].address.ip, what="(another pod on the same node)")
        in_use = reserved_addresses(data_dir)
        assert len(in_use) == sum(len(a) for a in attached.values()), in_use
    finally:
        for atts in attached.values():
            detach_all(atts)
    assert reserved_addresses(data_dir) == [], "CNI DEL must release every address"
    for atts in attached.values():
        for att in atts:
            assert sh("ip", "-n", att.pod, "link", "show", att.ifname, check=False).returncode != 0


def test_pods_on_two_nodes_talk_over_the_multus_subnet(multus_template: dict[str, Any], default_config,
                                                       netns: Callable[[str], str],
                                                       data_dir: Path, kernel_has_ipvlan: bool) -> None:
    """sample-cross-a on node A, sample-cross-b on node B, their ENIs on one subnet: distinct addresses (one
    shared store stands in for whereabouts), plain pings both ways, each pod still reaching the subnet's hosts."""
    configs = template_nad_configs(multus_template)
    pods = template_pod_attachments(multus_template)
    assert configs[pods["sample-cross-a"][0][0]]["ipam"]["type"] == "whereabouts"
    note("two nodes: one host-local dataDir shared by both nodes stands in for whereabouts' cluster-wide IPAM")
    world = MultusWorld(netns, configs, subnets_of(default_config), nodes=("node-a", "node-b"))
    a: list[Attachment] = []
    b: list[Attachment] = []
    try:
        a = world.attach(world.pod("cross-a", "node-a"), "node-a", pods["sample-cross-a"], data_dir, kernel_has_ipvlan)
        b = world.attach(world.pod("cross-b", "node-b"), "node-b", pods["sample-cross-b"], data_dir, kernel_has_ipvlan)
        assert a[0].address != b[0].address
        assert_leaves_by_multus(a[0], b[0].address.ip, via=None)
        ping(a[0].pod, b[0].address.ip, what="(pod on the other node)")
        ping(b[0].pod, a[0].address.ip, what="(pod on the other node)")
        world.check_reaches_its_subnet_and_routes(b[0])
    finally:
        detach_all(b)
        detach_all(a)
    assert reserved_addresses(data_dir) == []


def test_a_configured_route_reaches_a_peer_outside_the_vpc(netns: Callable[[str], str], data_dir: Path,
                                                          kernel_has_ipvlan: bool) -> None:
    """One config line (`multusNetworks[0].routes`) and a pod reaches a telco peer behind the subnet router, with
    its Multus address as source, and the peer reaches the pod back; network 2 does not get the route."""
    config = parse_config(None, {"multusNetworks.0.routes": json.dumps([TELCO_CIDR])})
    template = synthesized_template(config)
    configs = template_nad_configs(template)
    pods = template_pod_attachments(template)
    world = MultusWorld(netns, configs, subnets_of(config))
    atts: list[Attachment] = []
    try:
        atts = world.attach(world.pod("dual"), "node", pods["sample-dual"], data_dir, kernel_has_ipvlan)
        net1, net2 = atts
        assert TELCO_CIDR in world.segments["multus1"].far
        world.check_reaches_its_subnet_and_routes(net1)
        peer = world.segments["multus1"].far_peer(TELCO_CIDR)
        assert net1.address.ip != peer
        assert TELCO_CIDR not in [r["dst"] for r in net2.nad_config["ipam"]["routes"]]
        world.check_reaches_its_subnet_and_routes(net2)
    finally:
        detach_all(atts)
    assert reserved_addresses(data_dir) == []


def test_before_the_fix_the_subnet_was_unreachable(netns: Callable[[str], str], data_dir: Path,
                                                   kernel_has_ipvlan: bool) -> None:
    """The world can see the old defect: a whereabouts `range` of only the pod block (/25) puts the rest of the
    subnet off-link, so the pod's packets to another instance's ENI go out eth0 and are lost."""
    configs = template_nad_configs(synthesized_template(parse_config(None)))
    nad = "multus1-us-west-2a"
    broken = json.loads(json.dumps(configs[nad]))
    broken["ipam"] = {"type": "whereabouts", "range": "10.0.4.128/25", "gateway": "10.0.4.1"}
    world = MultusWorld(netns, {nad: configs[nad]}, subnets_of(parse_config(None)))
    seg = world.segment(nad)
    pod = world.pod("old")
    att = Attachment(pod=pod, node=world.nodes["node"], nad=nad, ifname="net1", nad_config=broken,
                     config=runnable(broken, data_dir, kernel_has_ipvlan))
    try:
        added = cni("ADD", att.config, node=att.node, pod=pod, ifname="net1", container_id=att.container_id)
        assert added["ips"][0]["address"].endswith("/25")
        route = ip_json(pod, "route", "get", str(seg.other_eni_address))[0]
        assert route["dev"] == "eth0", route
        proc = sh("ip", "netns", "exec", pod, "ping", "-n", "-c", "1", "-W", "1", str(seg.other_eni_address),
                  check=False)
        assert proc.returncode != 0, "the dead-end eth0 must lose what the old config sent the wrong way"
    finally:
        att.delete()


def test_host_local_state_is_per_node(netns: Callable[[str], str], data_dir: Path, kernel_has_ipvlan: bool) -> None:
    """The crossNodeTraffic=false render on two nodes: the same first address on both (why whereabouts is default)."""
    config = dataclasses.replace(parse_config(None), cross_node_traffic=False)
    configs = template_nad_configs(synthesized_template(config))
    nad = "multus1-us-west-2a"
    assert configs[nad]["ipam"]["type"] == "host-local"
    world = MultusWorld(netns, configs, subnets_of(config), nodes=("node-a", "node-b"))
    atts: list[Attachment] = []
    try:
        for node, pod in (("node-a", "pod-a"), ("node-b", "pod-b")):
            (data_dir / node).mkdir()
            atts += world.attach(world.pod(pod, node), node, [(nad, "net1")], data_dir / node, kernel_has_ipvlan)
        assert atts[0].address == atts[1].address
        note(f"crossNodeTraffic=false (host-local, state per node): both nodes gave {atts[0].address}")
    finally:
        detach_all(atts)
    assert reserved_addresses(data_dir) == []


def test_host_device_round_trip_gives_the_eni_back(netns: Callable[[str], str], data_dir: Path) -> None:
    """host-device moves the node's ENI (carrying an address and a route, as a real ENI may) into the pod, where
    it carries a pod-range address with the subnet's prefix and reaches the subnet and its other half; DEL gives
    it back to the node under its stable name, DOWN, without addresses or routes (the upstream plugin's
    behaviour), and the next pod's ADD takes it again.

    Not shown here: a pod namespace deleted without DEL. The kernel then returns a physical NIC to the host
    under its pod-side name (net1); a veth stand-in is destroyed instead. The node script's relink handling
    (tests/node) covers that case."""
    config = parse_config(None, {"multusNetworks.0.plugin": "host-device"})
    configs = template_nad_configs(synthesized_template(config))
    nad = "multus1-us-west-2a"
    assert configs[nad]["type"] == "host-device" and configs[nad]["device"] == "multus1"
    world = MultusWorld(netns, {nad: configs[nad]}, subnets_of(config))
    seg = world.segment(nad)
    node = world.nodes["node"]
    # The ENI as the node may hold it: its own primary address and a route in the device's table.
    sh("ip", "-n", node, "addr", "add", f"{seg.subnet.network_address + 30}/{seg.subnet.prefixlen}", "dev", "multus1")
    sh("ip", "-n", node, "route", "add", "default", "via", str(seg.gateway), "dev", "multus1", "table", "10001")
    for turn in ("first pod", "next pod"):
        pod = world.pod(f"dpdk-{turn.split()[0]}")
        (att,) = world.attach(pod, "node", [(nad, "net1")], data_dir, ipvlan=True)
        try:
            assert sh("ip", "-n", node, "link", "show", "multus1", check=False).returncode != 0, "the ENI left"
            world.check_reaches_its_subnet_and_routes(att)
        finally:
            att.delete()
        (link,) = ip_json(node, "addr", "show", "dev", "multus1")
        assert "UP" not in link["flags"], link["flags"]
        assert not [a for a in link["addr_info"] if a["family"] == "inet"], "no address comes back with the ENI"
        assert ip_json(node, "route", "show", "table", "all", "dev", "multus1") == []
        assert sh("ip", "-n", pod, "link", "show", "net1", check=False).returncode != 0
        assert reserved_addresses(data_dir) == []
        note(f"host-device ({turn}): ADD moved multus1 into the pod as net1; DEL gave it back as multus1, DOWN, "
             "without addresses or routes")
    print(f"[dataplane] {role(node)}: multus1 is back under its stable name and was taken by the next pod")
