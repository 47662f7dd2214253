"""Run the NAD configs a synthesized template carries through the real CNI plugins, in network namespaces.

EKS nodes run the upstream containernetworking plugins (the VPC CNI installs them in /opt/cni/bin); Debian's
`containernetworking-plugins` packages the same code in /usr/lib/cni. Every plugin runs the way Multus runs it
on a node: `ip netns exec <node> <plugin>` with CNI_COMMAND/CNI_CONTAINERID/CNI_NETNS/CNI_IFNAME/CNI_PATH in the
environment and the config on stdin. A "node" namespace holds veth links named like the NAD's master (multus1,
multus2) standing in for the ENIs; "pod" namespaces stand in for pods.

Where this machine cannot run a config as rendered, the test runs the closest equivalent and says so in the
output (the "CNI data plane" section of the terminal summary, and print lines shown with -rA or -s):
- no ipvlan in the kernel: `type` ipvlan becomes macvlan (mode bridge), same master and IPAM;
- whereabouts is not packaged (and nothing may be downloaded): IPAM becomes host-local over the same pod range,
  handing out the same addresses with the same prefix (the hosts of the range).

Needs root and /usr/lib/cni; a missing capability makes the tests fail, never skip. Everything is created in
namespaces and a temporary directory named with this run's prefix, and removed even when a test fails.
"""

from __future__ import annotations

import copy
import ipaddress
import json
import os
import secrets
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# The template helpers live in tests/manifests (shared with the construct tests).
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "manifests"))

from cni_checks import address_pool  # noqa: E402
from multus_test_app import objects_of_kind  # noqa: E402

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
        network, first, last = address_pool(ipam)
        config["ipam"] = {
            "type": "host-local",
            "ranges": [[{"subnet": str(network), "rangeStart": str(first), "rangeEnd": str(last),
                         "gateway": ipam["gateway"]}]],
        }
        note(f"{nad_config['name']}: whereabouts range {ipam['range']} ran as host-local {first}-{last} "
             f"(whereabouts is not installable here)")
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
    """The plugin's result and the pod namespace agree with the NAD: address in the pod range, gateway, routes."""
    nad = att.nad_config
    network, first, last = address_pool(nad["ipam"])
    gateway = nad_gateway(nad)
    assert result["cniVersion"] == nad["cniVersion"]
    (ip,) = result["ips"]
    address = ipaddress.IPv4Interface(ip["address"])
    assert address.network == network, f"{address} is not in {network}"
    assert first <= address.ip <= last, f"{address.ip} is outside {first}-{last}"
    assert ip["gateway"] == gateway
    iface = result["interfaces"][ip["interface"]]
    assert iface["name"] == att.ifname and iface["sandbox"] == str(NETNS_DIR / att.pod)
    assert result.get("routes", []) == [], "the NAD adds no routes: eth0 keeps the pod's default route"

    (link,) = ip_json(att.pod, "addr", "show", "dev", att.ifname)
    inet = [a for a in link["addr_info"] if a["family"] == "inet"]
    assert [(a["local"], a["prefixlen"]) for a in inet] == [(str(address.ip), network.prefixlen)]
    routes = ip_json(att.pod, "route", "show", "dev", att.ifname)
    assert [(r["dst"], r.get("scope"), r.get("prefsrc")) for r in routes] == [
        (str(network), "link", str(address.ip))
    ], routes
    return address


def nad_gateway(nad_config: dict[str, Any]) -> str:
    ipam = nad_config["ipam"]
    return ipam["gateway"] if ipam["type"] == "whereabouts" else ipam["ranges"][0][0]["gateway"]


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


def ping(pod: str, ifname: str, address: ipaddress.IPv4Interface) -> None:
    proc = sh("ip", "netns", "exec", pod, "ping", "-c", "2", "-i", "0.2", "-W", "1", "-I", ifname, str(address.ip),
              check=False)
    assert proc.returncode == 0, f"ping {address.ip} from {pod} over {ifname} failed: {proc.stdout}{proc.stderr}"
    summary = next(line for line in proc.stdout.splitlines() if "packets transmitted" in line)
    print(f"[dataplane] ping {role(pod)} -> {address.ip} over {ifname}: {summary}")


def role(ns: str) -> str:
    """The role part of a namespace name made by the `netns` fixture (`<run>-<test>-<role>`)."""
    return ns.split("-", 2)[-1]

