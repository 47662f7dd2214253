"""Recorded API objects of a healthy deployment (default config) and a fake cluster serving them.

(A module of its own, not conftest.py: other test folders have a conftest module too.)

fixtures/ holds objects as the API server returns them (kubectl get -o json, which is also what the client's
`sanitize_for_serialization` gives): two Ready c5.large nodes in us-west-2a, the Multus daemonset, the NADs,
and the sample pods with the network-status annotation Multus 4.1 writes (the default network is the VPC CNI's
`aws-cni`, net1/net2 ipvlan over the node's multus1/multus2 ENIs, addresses from the whereabouts pod range).

The NADs' `spec.config` served by the fake cluster is rendered by `eks_multus_cdk.nads` for the config under
test (the cluster runs what this checkout deploys); the recording supplies everything the API server adds.
"""

from __future__ import annotations

import copy
import ipaddress
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from eks_multus_cdk.config import AppConfig, default_config_json, parse_config
from eks_multus_cdk.nads import network_attachment_definitions
from eks_multus_cdk.verify.checks import ExecResult

FIXTURES = Path(__file__).parent / "fixtures"
NODE_A = "ip-10-0-2-45.us-west-2.compute.internal"
NODE_B = "ip-10-0-2-173.us-west-2.compute.internal"
NETWORK_STATUS = "k8s.v1.cni.cncf.io/network-status"


def load(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())


def ping_output(source_ip: str, target: str, received: int = 3) -> str:
    """What netshoot's iputils ping prints for `ping -c 3 -W 2 <target>`."""
    lines = [f"PING {target} ({target}) from {source_ip} net1: 56(84) bytes of data."]
    lines += [f"64 bytes from {target}: icmp_seq={i} ttl=64 time=0.0{50 + i} ms" for i in range(1, received + 1)]
    loss = round(100 * (3 - received) / 3)
    lines += ["", f"--- {target} ping statistics ---",
              f"3 packets transmitted, {received} received, {loss}% packet loss, time 2043ms"]
    if received:
        lines.append("rtt min/avg/max/mdev = 0.051/0.052/0.053/0.001 ms")
    return "\n".join(lines) + "\n"


def served_nads(config: AppConfig) -> list[dict[str, Any]]:
    recorded = {item["metadata"]["name"]: item for item in load("nad-list.json")["items"]}
    rendered = network_attachment_definitions(config)
    assert {n["metadata"]["name"] for n in rendered} == set(recorded), "re-record fixtures/nad-list.json"
    served = []
    for nad in rendered:
        item = copy.deepcopy(recorded[nad["metadata"]["name"]])
        item["spec"] = nad["spec"]
        served.append(item)
    return served


def set_network_status(pod: dict[str, Any], mutate: Callable[[list[dict[str, Any]]], None]) -> None:
    """Edit a pod's network-status entries, written back the way Multus formats them."""
    annotations = pod["metadata"]["annotations"]
    entries = json.loads(annotations[NETWORK_STATUS])
    mutate(entries)
    annotations[NETWORK_STATUS] = "[" + ",".join(json.dumps(e, indent=4) for e in entries) + "]"


def net1_ip(pod: dict[str, Any]) -> str:
    entries = json.loads(pod["metadata"]["annotations"][NETWORK_STATUS])
    return next(e["ips"][0] for e in entries if e["interface"] == "net1")


@dataclass
class FakeCluster:
    """`ClusterReader` over in-memory objects. `ping_fails` holds (source pod, target address) pairs whose ping
    loses every packet; `errors` maps a method name to the exception it raises."""

    nodes: list[dict[str, Any]]
    daemonsets: dict[tuple[str, str], dict[str, Any]]
    nads: dict[str, list[dict[str, Any]] | None]
    pods: dict[tuple[str, str], dict[str, Any]]
    ping_fails: set[tuple[str, str]] = field(default_factory=set)
    errors: dict[str, Exception] = field(default_factory=dict)
    execs: list[tuple[str, str, list[str]]] = field(default_factory=list)

    def _maybe_raise(self, method: str) -> None:
        if method in self.errors:
            raise self.errors[method]

    def describe(self) -> str:
        return "https://0123456789ABCDEF0123456789ABCDEF.gr7.us-west-2.eks.amazonaws.com"

    def list_nodes(self) -> list[dict[str, Any]]:
        self._maybe_raise("list_nodes")
        return copy.deepcopy(self.nodes)

    def read_daemonset(self, namespace: str, name: str) -> dict[str, Any] | None:
        self._maybe_raise("read_daemonset")
        return copy.deepcopy(self.daemonsets.get((namespace, name)))

    def list_nads(self, namespace: str) -> list[dict[str, Any]] | None:
        self._maybe_raise("list_nads")
        if namespace not in self.nads:
            return []
        items = self.nads[namespace]
        return None if items is None else copy.deepcopy(items)

    def read_pod(self, namespace: str, name: str) -> dict[str, Any] | None:
        self._maybe_raise("read_pod")
        return copy.deepcopy(self.pods.get((namespace, name)))

    def exec(self, namespace: str, pod: str, command: list[str]) -> ExecResult:
        self._maybe_raise("exec")
        self.execs.append((namespace, pod, command))
        target = command[-1]
        if command[:-1] == ["ip", "-o", "route", "get"]:
            return ExecResult(0, self.route_get(namespace, pod, target) + "\n")
        assert command[:-1] == ["ping", "-c", "3", "-W", "2"], command
        source_ip = net1_ip(self.pods[(namespace, pod)])
        if (pod, target) in self.ping_fails:
            return ExecResult(1, ping_output(source_ip, target, received=0))
        return ExecResult(0, ping_output(source_ip, target))

    def route_get(self, namespace: str, pod: str, target: str) -> str:
        """What `ip -o route get` prints in the pod, from the NAD the cluster serves: net1 carries the prefix of
        the NAD's `ipam.range` and its `routes`; everything else goes by eth0 (the VPC CNI's default route)."""
        obj = self.pods[(namespace, pod)]
        entries = json.loads(obj["metadata"]["annotations"][NETWORK_STATUS])
        net1 = next(e for e in entries if e["interface"] == "net1")
        eth0_ip = next(e["ips"][0] for e in entries if e.get("default"))
        nad_namespace, nad_name = net1["name"].split("/")
        served = next(n for n in self.nads[nad_namespace] or [] if n["metadata"]["name"] == nad_name)
        ipam = json.loads(served["spec"]["config"])["ipam"]
        address, ip = ipaddress.IPv4Address(target), net1["ips"][0]
        if address in ipaddress.IPv4Network(ipam.get("range") or ipam["ranges"][0][0]["subnet"]):
            return f"{target} dev net1 src {ip} uid 0 \\    cache "
        for route in ipam.get("routes", []):
            if address in ipaddress.IPv4Network(route["dst"]):
                return f"{target} via {route['gw']} dev net1 src {ip} uid 0 \\    cache "
        return f"{target} via 169.254.1.1 dev eth0 src {eth0_ip} uid 0 \\    cache "

    def subnet_hosts(self, network: str, availability_zone: str, owners) -> list[tuple[str, str]]:
        """The in-use Multus ENIs EC2 would list: one per node of the network's AZ, primary address .20 + n."""
        self._maybe_raise("subnet_hosts")
        hosts = []
        for n, node in enumerate(self.nodes):
            labels = node["metadata"].get("labels") or {}
            if labels.get("topology.kubernetes.io/zone") != availability_zone:
                continue
            subnet = {"multus1": "10.0.4", "multus2": "10.0.6"}[network]
            hosts.append((f"{subnet}.{20 + n}", node["spec"]["providerID"].rsplit("/", 1)[-1]))
        return hosts

    def pod(self, name: str) -> dict[str, Any]:
        return self.pods[("multus-networks", name)]

    def node(self, name: str) -> dict[str, Any]:
        return next(n for n in self.nodes if n["metadata"]["name"] == name)


def healthy_cluster(config: AppConfig) -> FakeCluster:
    pods = {}
    for name in ("sample-single", "sample-dual", "sample-cross-a", "sample-cross-b"):
        pod = load(f"pod-{name}.json")
        pods[(pod["metadata"]["namespace"], name)] = pod
    ds = load("daemonset-kube-multus-ds.json")
    return FakeCluster(
        nodes=load("nodes.json")["items"],
        daemonsets={(ds["metadata"]["namespace"], ds["metadata"]["name"]): ds},
        nads={"multus-networks": served_nads(config)},
        pods=pods,
    )


def make_config(**overrides: Any) -> AppConfig:
    """The default config with some top-level camelCase keys replaced."""
    return parse_config({**default_config_json(), **overrides})


@dataclass
class CliRun:
    code: int
    output: str
    connect_kwargs: dict[str, Any] = field(default_factory=dict)

    def row(self, check: str) -> str:
        """The table row whose check column is exactly `check` (the table follows the blank line)."""
        table = self.output.split("\n\n", 1)[1]
        rows = [line for line in table.splitlines() if re.match(rf"{re.escape(check)}\s{{2}}", line)]
        assert len(rows) == 1, f"no single row {check!r} in:\n{self.output}"
        return rows[0]

    def status(self, check: str) -> str:
        return self.row(check)[len(check):].split()[0]
