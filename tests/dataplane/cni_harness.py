"""Run the NAD configs a synthesized template carries through the real CNI plugins, in network namespaces.

EKS nodes run the upstream containernetworking plugins (the VPC CNI installs them in /opt/cni/bin); Debian's
`containernetworking-plugins` packages the same code in /usr/lib/cni. Every plugin runs the way Multus runs it
on a node: `ip netns exec <node> <plugin>` with CNI_COMMAND/CNI_CONTAINERID/CNI_NETNS/CNI_IFNAME/CNI_PATH in the
environment and the config on stdin.

The world a test builds (`MultusWorld`) routes like a real node and subnet, so a test can see a pod that takes
the wrong path:
- "node" namespaces hold veth links named like the NAD's master (multus1, multus2) standing in for the ENIs;
- each Multus subnet of AZ 1 is one L2 segment (a bridge in a "lan" namespace) on which sit every node's ENI,
  another instance's ENI (a host of the subnet outside the pod range, at .20) and the VPC router stand-in at .1;
- the router forwards to one namespace per CIDR the NAD routes through it (the network's other-AZ subnet, the
  configured `routes`), each holding a peer at .10 whose only way back is the router;
- every pod namespace gets an eth0 the way the VPC CNI builds it (a /32 address, default route via 169.254.1.1,
  a static neighbour for it, a host route on the node side) *before* the Multus ADD. On AWS the node would
  forward eth0 traffic into the VPC (SNATed for destinations outside it); here the eth0 side ends at the node
  (no forwarding), and no peer or router has a route to an eth0 address, so a packet that leaves by the wrong
  interface, or with the eth0 source, is lost and the check fails. The checks use plain `ping` (never `-I`,
  which makes any target on-link) and `ip route get` from inside the pod.

Where this machine cannot run a config as rendered, the test runs the closest equivalent and says so in the
output (the "CNI data plane" section of the terminal summary, and print lines shown with -rA or -s):
- no ipvlan in the kernel: `type` ipvlan becomes macvlan (mode bridge), same master and IPAM. What that cannot
  show: ipvlan's slaves share the master's MAC (the VPC only ever sees the ENI's MAC; macvlan gives each pod its
  own), and ipvlan l3/l3s route the pod's packets in the node's namespace through the node's route tables and
  netfilter (the README's "ipvlan modes" gives those facts; the default l2 does not depend on them);
- whereabouts is not packaged (and nothing may be downloaded): its IPAM config is translated key by key into
  host-local (`range` -> subnet and mask, `range_start`/`range_end` -> rangeStart/rangeEnd, `gateway`,
  `routes`); a key the translation does not know fails the test. One dataDir shared by the nodes stands in for
  its cluster-wide allocation store.

Needs root and /usr/lib/cni; a missing capability makes the tests fail, never skip. Everything is created in
namespaces and a temporary directory named with this run's prefix, and removed even when a test fails. Traffic
goes only between namespaces the test created.
"""

from __future__ import annotations

import copy
import ipaddress
import json
import os
import secrets
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# The template helpers live in tests/manifests (shared with the construct tests).
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "manifests"))

from cni_checks import address_pool, ipam_gateway  # noqa: E402
from multus_test_app import objects_of_kind  # noqa: E402

from eks_multus_cdk import naming  # noqa: E402
from eks_multus_cdk.config import AppConfig  # noqa: E402
from eks_multus_cdk.nads import nad_configs  # noqa: E402
from eks_multus_cdk.sample_pods import NETWORKS_ANNOTATION  # noqa: E402

CNI_BIN = Path("/usr/lib/cni")
NETNS_DIR = Path("/var/run/netns")
RUN_ID = f"emc{os.getpid() % 100000}{secrets.token_hex(2)}"  # namespaces and dirs of this run start with it

NOTES: list[str] = []


def note(line: str) -> None:
    """A line for the 'CNI data plane' summary section (once) and the test's captured output."""
    print(f"[dataplane] {line}")
    if line not in NOTES:
        NOTES.append(line)


def sh(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(list(args), capture_output=True, text=True, timeout=30)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(args)} failed ({proc.returncode}): {proc.stderr.strip()}")
    return proc


def ip_json(ns: str, *args: str) -> Any:
    return json.loads(sh("ip", "-j", "-n", ns, *args).stdout or "[]")


def join_parents(a: str, b: str, name: str) -> None:
    """A veth pair with both ends named `name`, one in namespace a, one in b, both up (a wire between them)."""
    sh("ip", "-n", a, "link", "add", name, "type", "veth", "peer", "name", name, "netns", b)
    sh("ip", "-n", a, "link", "set", name, "up")
    sh("ip", "-n", b, "link", "set", name, "up")


# ------------------------------------------------------------------------------------------------ templates
def template_nad_configs(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return nad_configs(objects_of_kind(template, "NetworkAttachmentDefinition"))


def template_pod_attachments(template: dict[str, Any]) -> dict[str, list[tuple[str, str]]]:
    """Sample pod name -> [(NAD name, pod interface name)] from its networks annotation."""
    nads = {(o["metadata"]["namespace"], o["metadata"]["name"])
            for o in objects_of_kind(template, "NetworkAttachmentDefinition")}
    pods = {}
    for pod in objects_of_kind(template, "Pod"):
        attachments = json.loads(pod["metadata"]["annotations"][NETWORKS_ANNOTATION])
        for a in attachments:
            assert (a["namespace"], a["name"]) in nads, f"{pod['metadata']['name']} names a NAD the template lacks"
        pods[pod["metadata"]["name"]] = [(a["name"], a["interface"]) for a in attachments]
    return pods


# ------------------------------------------------------------------------------------------------ running CNI
WHEREABOUTS_KEYS = {"type", "range", "range_start", "range_end", "gateway", "routes"}


def runnable(nad_config: dict[str, Any], data_dir: Path, ipvlan: bool) -> dict[str, Any]:
    """The NAD's config as this machine can run it (see the module docstring), host-local state in data_dir."""
    config = copy.deepcopy(nad_config)
    if config["type"] == "ipvlan" and not ipvlan:
        config["type"] = "macvlan"
        config["mode"] = "bridge"
        note(f"{nad_config['name']}: ipvlan (mode {nad_config['mode']}) ran as macvlan mode bridge on "
             f"{nad_config['master']}")
    ipam = config["ipam"]
    if ipam["type"] == "whereabouts":
        unknown = set(ipam) - WHEREABOUTS_KEYS
        assert not unknown, f"the whereabouts stand-in cannot translate {sorted(unknown)}"
        network, first, last = address_pool(ipam)
        config["ipam"] = {
            "type": "host-local",
            "ranges": [[{"subnet": str(network), "rangeStart": str(first), "rangeEnd": str(last),
                         "gateway": ipam["gateway"]}]],
            "routes": ipam.get("routes", []),
        }
        note(f"{nad_config['name']}: whereabouts range {ipam['range']} {first}-{last} ran as host-local over the "
             f"same subnet, range, gateway and routes (whereabouts is not installable here)")
    config["ipam"]["dataDir"] = str(data_dir)
    return config


def cni(command: str, config: dict[str, Any], *, node: str, pod: str, ifname: str, container_id: str) -> Any:
    """Run the config's plugin as Multus would on the node; the parsed result for ADD."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
        "CNI_COMMAND": command,
        "CNI_CONTAINERID": container_id,
        "CNI_NETNS": str(NETNS_DIR / pod),
        "CNI_IFNAME": ifname,
        "CNI_PATH": str(CNI_BIN),
    }
    proc = subprocess.run(
        ["ip", "netns", "exec", node, str(CNI_BIN / config["type"])],
        input=json.dumps(config), env=env, capture_output=True, text=True, timeout=30,
    )
    if proc.returncode != 0:
        raise AssertionError(f"CNI {command} {config['type']} {ifname} in {pod} failed: {proc.stdout} {proc.stderr}")
    return json.loads(proc.stdout) if command == "ADD" else None


@dataclass
class Attachment:
    pod: str  # pod namespace
    node: str  # node namespace
    nad: str
    ifname: str
    nad_config: dict[str, Any]
    config: dict[str, Any]  # as run
    address: ipaddress.IPv4Interface | None = None

    @property
    def container_id(self) -> str:
        return f"{self.pod}-{self.ifname}"

    def add(self) -> ipaddress.IPv4Interface:
        result = cni("ADD", self.config, node=self.node, pod=self.pod, ifname=self.ifname,
                     container_id=self.container_id)
        self.address = check_result(result, self)
        return self.address

    def delete(self) -> None:
        cni("DEL", self.config, node=self.node, pod=self.pod, ifname=self.ifname, container_id=self.container_id)


def check_result(result: dict[str, Any], att: Attachment) -> ipaddress.IPv4Interface:
    """The plugin's result and the pod namespace agree with the NAD: subnet prefix, pod range, gateway, routes."""
    nad = att.nad_config
    network, first, last = address_pool(nad["ipam"])
    gateway = nad_gateway(nad)
    assert result["cniVersion"] == nad["cniVersion"]
    (ip,) = result["ips"]
    address = ipaddress.IPv4Interface(ip["address"])
    assert address.network == network, f"{address} does not carry the subnet's prefix {network}"
    assert first <= address.ip <= last, f"{address.ip} is outside {first}-{last}"
    assert ip["gateway"] == gateway
    iface = result["interfaces"][ip["interface"]]
    assert iface["name"] == att.ifname and iface["sandbox"] == str(NETNS_DIR / att.pod)
    nad_routes = nad["ipam"].get("routes", [])
    assert [(r["dst"], r["gw"]) for r in result.get("routes", [])] == [(r["dst"], r["gw"]) for r in nad_routes]

    (link,) = ip_json(att.pod, "addr", "show", "dev", att.ifname)
    inet = [a for a in link["addr_info"] if a["family"] == "inet"]
    assert [(a["local"], a["prefixlen"]) for a in inet] == [(str(address.ip), network.prefixlen)]
    routes = ip_json(att.pod, "route", "show", "dev", att.ifname)
    assert sorted((r["dst"], r.get("gateway")) for r in routes) == sorted(
        [(str(network), None)] + [(r["dst"], r["gw"]) for r in nad_routes]), routes
    assert ip_json(att.pod, "route", "show", "default")[0]["dev"] == "eth0", "the pod's default route stays on eth0"
    return address


def nad_gateway(nad_config: dict[str, Any]) -> str:
    return ipam_gateway(nad_config["ipam"])


def reserved_addresses(data_dir: Path) -> list[str]:
    """host-local's reservation files (one per address in use); its lock and last_reserved_ip files excluded."""
    found = []
    for path in data_dir.rglob("*"):
        try:
            ipaddress.ip_address(path.name)
        except ValueError:
            continue
        found.append(f"{path.parent.name}/{path.name}")
    return sorted(found)


def ping(src_ns: str, target: ipaddress.IPv4Address | str, *, what: str = "") -> None:
    """Plain ping from a namespace: the kernel picks interface and source from the routes, as an application's
    traffic would (never `-I`, which makes any target on-link)."""
    proc = sh("ip", "netns", "exec", src_ns, "ping", "-n", "-c", "2", "-i", "0.2", "-W", "1", str(target),
              check=False)
    assert proc.returncode == 0, f"ping {role(src_ns)} -> {target} {what} failed: {proc.stdout}{proc.stderr}"
    summary = next(line for line in proc.stdout.splitlines() if "packets transmitted" in line)
    print(f"[dataplane] ping {role(src_ns)} -> {target} {what}: {summary}")


def route_get(ns: str, target: ipaddress.IPv4Address | str) -> dict[str, Any]:
    """The route the kernel of `ns` picks for `target` (`ip route get`: a lookup, no packet is sent)."""
    (route,) = ip_json(ns, "route", "get", str(target))
    return route


def assert_leaves_by_multus(att: Attachment, target: ipaddress.IPv4Address, via: str | None) -> dict[str, Any]:
    """From the pod, `target` is reached through the Multus interface with the pod's Multus address as source,
    on-link (via None) or through the subnet router `via`."""
    route = route_get(att.pod, target)
    assert route["dev"] == att.ifname, f"{target}: the pod would use {route['dev']}, not {att.ifname}: {route}"
    assert route.get("prefsrc") == str(att.address.ip), f"{target}: source {route.get('prefsrc')}: {route}"
    assert route.get("gateway") == via, f"{target}: next hop {route.get('gateway')}, expected {via}: {route}"
    print(f"[dataplane] {role(att.pod)}: ip route get {target} -> dev {route['dev']} src {route['prefsrc']}"
          f"{' via ' + via if via else ''}")
    return route


def role(ns: str) -> str:
    """The role part of a namespace name made by the `netns` fixture (`<run>-<test>-<role>`)."""
    return ns.split("-", 2)[-1]



# ------------------------------------------------------------------------------------------------ the world
OTHER_ENI_HOST = 20  # another instance's ENI: .20 of the Multus subnet, outside the pod range
FAR_PEER_HOST = 10  # the peer in each routed CIDR
POD_ETH0_BASE = ipaddress.IPv4Address("10.0.2.100")  # VPC CNI addresses of the pods (a private subnet)
VPC_CNI_GATEWAY = "169.254.1.1"  # the VPC CNI's fixed next hop inside every pod


@dataclass
class Segment:
    """One Multus subnet of AZ 1 and what sits on it."""

    ifname: str  # the ENI's stable name on every node (the NAD's master/device)
    subnet: ipaddress.IPv4Network
    router: str  # namespace of the VPC router stand-in (subnet .1)
    other_eni: str  # namespace of another instance's ENI (subnet .20)
    far: dict[str, str] = field(default_factory=dict)  # routed CIDR -> namespace of its peer (.10)

    @property
    def gateway(self) -> ipaddress.IPv4Address:
        return self.subnet.network_address + 1

    @property
    def other_eni_address(self) -> ipaddress.IPv4Address:
        return self.subnet.network_address + OTHER_ENI_HOST

    def far_peer(self, cidr: str) -> ipaddress.IPv4Address:
        return ipaddress.IPv4Network(cidr).network_address + FAR_PEER_HOST


@dataclass(frozen=True)
class SubnetTruth:
    """What the VPC holds for one Multus network in AZ 1, taken from the app config, never from the NADs (a world
    built from the rendered IPAM would bend to whatever the renderer gets wrong)."""

    subnet: ipaddress.IPv4Network
    routed: tuple[str, ...]  # CIDRs behind the subnet router: the network's other-AZ subnets and its `routes`


def subnets_of(config: AppConfig, az_index: int = 0) -> dict[str, SubnetTruth]:
    """ENI name (multus1...) -> the subnet and routed CIDRs of that network in the AZ."""
    return {
        naming.interface_name(position): SubnetTruth(
            subnet=ipaddress.IPv4Network(network.subnet_cidrs[az_index]),
            routed=(*(c for i, c in enumerate(network.subnet_cidrs) if i != az_index), *network.routes),
        )
        for position, network in enumerate(config.multus_networks)
    }


class MultusWorld:
    """Nodes, Multus subnets with their router and peers, and pods with an eth0, as described in the docstring."""

    def __init__(self, netns: Callable[[str], str], nad_configs_by_name: dict[str, dict[str, Any]],
                 truth: dict[str, SubnetTruth], nodes: tuple[str, ...] = ("node",)) -> None:
        self.netns = netns
        self.configs = nad_configs_by_name
        self.truth = truth
        self.lan = netns("lan")
        self.nodes = {name: netns(name) for name in nodes}
        self.segments: dict[str, Segment] = {}
        self._pods = 0
        self._links = 0

    def _link_name(self, prefix: str) -> str:
        self._links += 1
        return f"{prefix}{self._links}"

    def _to_lan(self, ns: str, inner: str, ifname: str) -> None:
        """A veth from namespace `ns` (named `inner` there) into the segment's bridge in the lan namespace."""
        outer = self._link_name("p")
        sh("ip", "-n", self.lan, "link", "add", outer, "type", "veth", "peer", "name", inner, "netns", ns)
        sh("ip", "-n", self.lan, "link", "set", outer, "master", f"br-{ifname}", "up")
        sh("ip", "-n", ns, "link", "set", inner, "up")

    def segment(self, nad: str) -> Segment:
        """The segment of the NAD's master/device, built on first use: bridge, every node's ENI, router, peers."""
        config = self.configs[nad]
        ifname = config.get("master") or config["device"]
        if ifname in self.segments:
            return self.segments[ifname]
        subnet = self.truth[ifname].subnet
        seg = Segment(ifname=ifname, subnet=subnet, router=self.netns(f"rt-{ifname}"),
                      other_eni=self.netns(f"eni-{ifname}"))
        sh("ip", "-n", self.lan, "link", "add", f"br-{ifname}", "type", "bridge")
        sh("ip", "-n", self.lan, "link", "set", f"br-{ifname}", "up")
        for node in self.nodes.values():
            self._to_lan(node, ifname, ifname)  # the node's ENI stand-in, named like the NAD's master
        prefix = subnet.prefixlen
        self._to_lan(seg.router, "lan0", ifname)
        sh("ip", "-n", seg.router, "addr", "add", f"{seg.gateway}/{prefix}", "dev", "lan0")
        sh("ip", "netns", "exec", seg.router, "sysctl", "-q", "-w", "net.ipv4.ip_forward=1")
        self._to_lan(seg.other_eni, "eth0", ifname)
        sh("ip", "-n", seg.other_eni, "addr", "add", f"{seg.other_eni_address}/{prefix}", "dev", "eth0")
        sh("ip", "-n", seg.other_eni, "route", "add", "default", "via", str(seg.gateway))
        for cidr in self.truth[ifname].routed:
            self._far(seg, cidr)
        self.segments[ifname] = seg
        return seg

    def _far(self, seg: Segment, cidr: str) -> None:
        """A namespace behind the router holding a peer of `cidr`; its only way back is the router."""
        net = ipaddress.IPv4Network(cidr)
        far = self.netns(f"far{len(seg.far)}-{seg.ifname}")
        link = self._link_name("r")
        sh("ip", "-n", seg.router, "link", "add", link, "type", "veth", "peer", "name", "eth0", "netns", far)
        sh("ip", "-n", seg.router, "addr", "add", f"{net.network_address + 1}/{net.prefixlen}", "dev", link)
        sh("ip", "-n", seg.router, "link", "set", link, "up")
        sh("ip", "-n", far, "addr", "add", f"{seg.far_peer(cidr)}/{net.prefixlen}", "dev", "eth0")
        sh("ip", "-n", far, "link", "set", "eth0", "up")
        sh("ip", "-n", far, "route", "add", "default", "via", str(net.network_address + 1))
        seg.far[cidr] = far

    def pod(self, name: str, node: str = "node") -> str:
        """A pod namespace on `node` with eth0 set up the way the VPC CNI does it, before any Multus ADD."""
        pod = self.netns(name)
        node_ns = self.nodes[node]
        address = POD_ETH0_BASE + self._pods
        host_side = f"eni{self._pods}"
        self._pods += 1
        sh("ip", "-n", node_ns, "link", "add", host_side, "type", "veth", "peer", "name", "eth0", "netns", pod)
        sh("ip", "-n", node_ns, "link", "set", host_side, "up")
        sh("ip", "-n", node_ns, "route", "add", f"{address}/32", "dev", host_side)
        (host_link,) = ip_json(node_ns, "link", "show", "dev", host_side)
        sh("ip", "-n", pod, "addr", "add", f"{address}/32", "dev", "eth0")
        sh("ip", "-n", pod, "link", "set", "eth0", "up")
        sh("ip", "-n", pod, "route", "add", VPC_CNI_GATEWAY, "dev", "eth0", "scope", "link")
        sh("ip", "-n", pod, "route", "add", "default", "via", VPC_CNI_GATEWAY, "dev", "eth0")
        sh("ip", "-n", pod, "neigh", "replace", VPC_CNI_GATEWAY, "lladdr", host_link["address"], "dev", "eth0",
           "nud", "permanent")
        return pod

    def attach(self, pod: str, node: str, wanted: list[tuple[str, str]], data_dir: Path,
               ipvlan: bool) -> list[Attachment]:
        """Multus ADD of each (NAD, interface) into the pod, in order, on `node`."""
        atts = []
        for nad, ifname in wanted:
            self.segment(nad)
            att = Attachment(pod=pod, node=self.nodes[node], nad=nad, ifname=ifname, nad_config=self.configs[nad],
                             config=runnable(self.configs[nad], data_dir, ipvlan))
            atts.append(att)
            address = att.add()
            parent = att.config.get("master") or att.config.get("device")
            print(f"[dataplane] {role(pod)} {ifname} ({nad}, {att.config['type']} on {parent}): {address} "
                  f"gw {nad_gateway(att.nad_config)}")
        return atts

    def check_reaches_its_subnet_and_routes(self, att: Attachment) -> None:
        """The pod's Multus interface reaches, by the Multus path and source, and is reached back from: another
        instance's ENI (on-link, outside the pod range), the subnet router, and a peer in every routed CIDR."""
        seg = self.segments[att.config.get("master") or att.config["device"]]
        _, first, last = address_pool(att.nad_config["ipam"])
        assert not first <= seg.other_eni_address <= last, "the other ENI must sit outside the pod range"
        assert_leaves_by_multus(att, seg.other_eni_address, via=None)
        ping(att.pod, seg.other_eni_address, what="(another instance's ENI, outside the pod range)")
        ping(seg.other_eni, att.address.ip, what="(to the pod's Multus address)")
        assert_leaves_by_multus(att, seg.gateway, via=None)
        ping(att.pod, seg.gateway, what="(the subnet router)")
        for cidr, far in seg.far.items():
            peer = seg.far_peer(cidr)
            assert_leaves_by_multus(att, peer, via=str(seg.gateway))
            ping(att.pod, peer, what=f"(peer in routed {cidr})")
            ping(far, att.address.ip, what=f"(from the peer in {cidr})")
        outside = route_get(att.pod, "198.51.100.7")  # anything not routed through Multus stays on eth0
        assert outside["dev"] == "eth0", outside
