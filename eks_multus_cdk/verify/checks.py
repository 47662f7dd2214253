"""The walkthrough's checks as pure functions: API objects (dicts, as the API server returns them) in, rows out.

Nothing here talks to a cluster. `runner.py` fetches the objects and calls these; tests call them with
recorded objects.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from eks_multus_cdk.verify.expected import ExpectedNad, ExpectedPod

NETWORK_STATUS_ANNOTATION = "k8s.v1.cni.cncf.io/network-status"
ZONE_LABELS = ("topology.kubernetes.io/zone", "failure-domain.beta.kubernetes.io/zone")

# Where to look when a check fails (shared by several checks).
HINT_MULTUS_LOGS = "kubectl -n kube-system logs ds/{ds}"
HINT_NODE_INTERFACES = (
    "on the node, /var/log/cloud-init-output.log (the multus-interfaces: lines) shows whether the ENIs arrived "
    "and were renamed; the ENI Lambda's log group shows whether it attached them"
)


class Status(StrEnum):
    PASS = "PASS"
    FAIL = "FAIL"
    SKIP = "SKIP"


@dataclass(frozen=True)
class CheckResult:
    name: str
    status: Status
    detail: str
    hint: str = ""


def passed(name: str, detail: str) -> CheckResult:
    return CheckResult(name, Status.PASS, detail)


def failed(name: str, detail: str, hint: str) -> CheckResult:
    return CheckResult(name, Status.FAIL, detail, hint)


def skipped(name: str, detail: str) -> CheckResult:
    return CheckResult(name, Status.SKIP, detail)


# --------------------------------------------------------------------------------------------- helpers


def node_zone(node: Mapping[str, Any]) -> str | None:
    labels = node.get("metadata", {}).get("labels") or {}
    return next((labels[k] for k in ZONE_LABELS if k in labels), None)


def _condition(obj: Mapping[str, Any], kind: str) -> Mapping[str, Any] | None:
    return next((c for c in obj.get("status", {}).get("conditions") or [] if c.get("type") == kind), None)


def _name(obj: Mapping[str, Any]) -> str:
    return obj.get("metadata", {}).get("name", "?")


def network_status(pod: Mapping[str, Any]) -> list[dict[str, Any]] | None:
    """The parsed network-status annotation Multus writes on a pod, or None when absent or unreadable."""
    raw = (pod.get("metadata", {}).get("annotations") or {}).get(NETWORK_STATUS_ANNOTATION)
    if raw is None:
        return None
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        return None
    return value if isinstance(value, list) else None


def interface_ips(pod: Mapping[str, Any]) -> dict[str, list[str]]:
    """Interface name -> addresses, from the network-status annotation."""
    return {e["interface"]: list(e.get("ips") or []) for e in network_status(pod) or [] if "interface" in e}


def json_differences(expected: Any, actual: Any, path: str = "") -> list[str]:
    """Where two parsed JSON values differ, as `path: expected X, got Y` lines."""
    if isinstance(expected, dict) and isinstance(actual, dict):
        out = []
        for key in sorted(set(expected) | set(actual), key=str):
            where = f"{path}.{key}" if path else str(key)
            if key not in actual:
                out.append(f"{where}: missing (expected {json.dumps(expected[key])})")
            elif key not in expected:
                out.append(f"{where}: unexpected {json.dumps(actual[key])}")
            else:
                out.extend(json_differences(expected[key], actual[key], where))
        return out
    if isinstance(expected, list) and isinstance(actual, list) and len(expected) == len(actual):
        pairs = enumerate(zip(expected, actual, strict=True))
        return [d for i, (e, a) in pairs for d in json_differences(e, a, f"{path}[{i}]")]
    if expected != actual or type(expected) is not type(actual):
        return [f"{path or '(root)'}: expected {json.dumps(expected)}, got {json.dumps(actual)}"]
    return []


# --------------------------------------------------------------------------------------------- 1. nodes


def check_nodes(nodes: Sequence[Mapping[str, Any]]) -> CheckResult:
    name = "nodes Ready"
    if not nodes:
        return failed(
            name,
            "the cluster has no nodes",
            "instances wait in Pending:Wait until the ENI Lambda completes the launch lifecycle action: check the "
            "Auto Scaling group's activity history and the ENI Lambda's log group",
        )
    not_ready = []
    for node in nodes:
        ready = _condition(node, "Ready")
        if not ready or ready.get("status") != "True":
            why = f"{ready.get('reason', '')}: {ready.get('message', '')}" if ready else "no Ready condition"
            not_ready.append(f"{_name(node)} ({why.strip(': ')})")
    zones = sorted({node_zone(n) or "no zone label" for n in nodes})
    if not_ready:
        return failed(
            name,
            f"{len(nodes) - len(not_ready)}/{len(nodes)} Ready; not Ready: {'; '.join(not_ready)}",
            "kubectl describe node <name>; on the node, journalctl -u kubelet and /var/log/cloud-init-output.log "
            "(nodeadm and the multus-interfaces: lines)",
        )
    return passed(name, f"{len(nodes)}/{len(nodes)} Ready in {', '.join(zones)}")


# --------------------------------------------------------------------------------------------- 2. daemonset


def check_daemonset(daemonset: Mapping[str, Any] | None, node_count: int, namespace: str, name: str) -> CheckResult:
    row = f"daemonset {namespace}/{name}"
    hint = f"kubectl -n {namespace} describe ds/{name}; " + HINT_MULTUS_LOGS.format(ds=name)
    if daemonset is None:
        return failed(row, "not found", f"was the Multus manifest applied? kubectl -n {namespace} get ds")
    status = daemonset.get("status") or {}
    ready = status.get("numberReady", 0)
    desired = status.get("desiredNumberScheduled", 0)
    counts = f"{ready} ready / {desired} desired / {node_count} nodes"
    if not ready == desired == node_count:
        return failed(row, counts, hint)
    return passed(row, counts)


# --------------------------------------------------------------------------------------------- 3. NADs


def check_nads(nads: Sequence[Mapping[str, Any]] | None, expected: Iterable[ExpectedNad]) -> list[CheckResult]:
    """One row per expected NetworkAttachmentDefinition; `nads` None means the CRD is not installed."""
    found = {
        (n.get("metadata", {}).get("namespace"), n.get("metadata", {}).get("name")): n for n in nads or []
    }
    rows = []
    for nad in expected:
        row = f"NAD {nad.namespace}/{nad.name}"
        if nads is None:
            rows.append(failed(
                row, "the NetworkAttachmentDefinition CRD is not installed",
                "the Multus manifests install it: kubectl get crd network-attachment-definitions.k8s.cni.cncf.io",
            ))
            continue
        actual = found.get((nad.namespace, nad.name))
        if actual is None:
            rows.append(failed(
                row, "not found",
                f"kubectl -n {nad.namespace} get network-attachment-definitions; was the workloads stack deployed "
                "with this cdk.json?",
            ))
            continue
        raw = (actual.get("spec") or {}).get("config", "")
        try:
            config = json.loads(raw)
        except (TypeError, json.JSONDecodeError) as err:
            rows.append(failed(row, f"spec.config is not JSON ({err})", _drift_hint(nad)))
            continue
        differences = json_differences(nad.config, config)
        if differences:
            rows.append(failed(row, "spec.config differs: " + "; ".join(differences), _drift_hint(nad)))
        else:
            rows.append(passed(row, f"{nad.config.get('type')} on {nad.config.get('master')}, as expected"))
    return rows


def _drift_hint(nad: ExpectedNad) -> str:
    return (
        f"kubectl -n {nad.namespace} get network-attachment-definitions {nad.name} -o yaml; edited in the cluster, "
        "or deployed from another cdk.json? re-run cdk deploy"
    )


# --------------------------------------------------------------------------------------------- 4. pods


def check_pod_running(pod: Mapping[str, Any] | None, expected: ExpectedPod, daemonset: str) -> CheckResult:
    row = f"pod {expected.name} Running"
    describe = f"kubectl -n {expected.namespace} describe pod {expected.name}"
    if pod is None:
        return failed(row, "not found", f"kubectl -n {expected.namespace} get pods; was samplePods deployed?")
    status = pod.get("status") or {}
    phase = status.get("phase", "Unknown")
    node = (pod.get("spec") or {}).get("nodeName")
    if phase == "Running":
        return passed(row, f"Running on {node}")
    reasons = []
    scheduled = _condition(pod, "PodScheduled")
    if scheduled and scheduled.get("status") != "True":
        reasons.append(f"unschedulable: {scheduled.get('message', scheduled.get('reason', ''))}")
    for cs in status.get("containerStatuses") or []:
        waiting = (cs.get("state") or {}).get("waiting")
        if waiting:
            reasons.append(f"{cs.get('name')}: {waiting.get('reason', '')} {waiting.get('message', '')}".strip())
    detail = f"{phase}" + (f" on {node}" if node else "") + (f" ({'; '.join(reasons)})" if reasons else "")
    if node:  # scheduled but not started: usually the sandbox (CNI/Multus) failed
        hint = f"{describe} (Multus and CNI errors show in the events); " + HINT_MULTUS_LOGS.format(ds=daemonset)
    else:
        hint = f"{describe}; its nodeSelector needs a Ready node in {expected.availability_zone or 'its AZ'}"
    return failed(row, detail, hint)


# --------------------------------------------------------------------------------------------- 5. network-status


def check_pod_networks(
    pod: Mapping[str, Any] | None,
    node: Mapping[str, Any] | None,
    expected: ExpectedPod,
    daemonset: str,
) -> CheckResult:
    """Each expected interface is in the network-status annotation, on the expected NAD, with an address inside
    the pod range of the node's AZ."""
    row = f"pod {expected.name} networks"
    describe = f"kubectl -n {expected.namespace} describe pod {expected.name}"
    if pod is None:
        return failed(row, "pod not found", f"kubectl -n {expected.namespace} get pods")
    statuses = network_status(pod)
    if statuses is None:
        return failed(
            row, f"no readable {NETWORK_STATUS_ANNOTATION} annotation: Multus did not attach this pod",
            f"{describe}; " + HINT_MULTUS_LOGS.format(ds=daemonset),
        )
    zone = node_zone(node) if node else None
    by_interface = {e.get("interface"): e for e in statuses}
    problems, found = [], []
    for att in expected.attachments:
        nad = att.nad
        if zone is not None and zone != nad.availability_zone:
            problems.append(
                f"{att.interface}: the pod's node is in {zone} but its NAD {nad.name} is for {nad.availability_zone}"
            )
            continue
        entry = by_interface.get(att.interface)
        if entry is None:
            problems.append(f"{att.interface} missing (interfaces: {', '.join(sorted(map(str, by_interface)))})")
            continue
        if entry.get("name") != nad.status_name:
            problems.append(f"{att.interface} is on {entry.get('name')!r}, expected {nad.status_name!r}")
            continue
        ips = entry.get("ips") or []
        if not ips:
            problems.append(f"{att.interface} has no address")
            continue
        outside = [ip for ip in ips if not _inside(ip, nad.pod_range)]
        if outside:
            problems.append(f"{att.interface} address {', '.join(outside)} is outside the pod range {nad.pod_range}")
            continue
        found.append(f"{att.interface}={','.join(ips)} ({nad.name})")
    if problems:
        hint = (
            f"{describe}; kubectl get network-attachment-definitions -A -o yaml (master, ipam range); "
            + HINT_NODE_INTERFACES
        )
        return failed(row, "; ".join(problems), hint)
    return passed(row, ", ".join(found))


def _inside(ip: str, network: ipaddress.IPv4Network) -> bool:
    try:
        return ipaddress.ip_interface(ip).ip in network
    except ValueError:
        return False


# --------------------------------------------------------------------------------------------- 6/7. ping

_LOSS = re.compile(r"(?<![\d.])(\d+(?:\.\d+)?)% packet loss")


@dataclass(frozen=True)
class ExecResult:
    """What a command run in a pod returned; `returncode` None when it did not finish."""

    returncode: int | None
    stdout: str = ""
    stderr: str = ""


def ping_command(address: str) -> list[str]:
    """A plain ping: the pod's routes pick interface and source, as for its applications (`-I` would make any
    target on-link and hide a wrong prefix or a missing route)."""
    return ["ping", "-c", "3", "-W", "2", address]


def route_command(address: str) -> list[str]:
    return ["ip", "-o", "route", "get", address]


_ROUTE_DEV = re.compile(r"\bdev (\S+)")
_ROUTE_SRC = re.compile(r"\bsrc (\S+)")


def check_route(interface: str, source: str, address: str, result: ExecResult) -> str | None:
    """None when the pod's route to `address` leaves by `interface` with `source`; else what is wrong."""
    line = " ".join(result.stdout.split())
    if result.returncode != 0 or not line:
        why = (result.stderr.strip().splitlines() or ["no output"])[-1]
        return f"`ip route get {address}` failed: {why}"
    dev, src = _ROUTE_DEV.search(line), _ROUTE_SRC.search(line)
    if not dev or dev.group(1) != interface or not src or src.group(1) != source:
        return f"the pod routes {address} as `{line}`, not by {interface} from {source}"
    return None


def check_subnet_ping(
    pod: str, interface: str, source: str, address: str, what: str, route: ExecResult, ping: ExecResult
) -> CheckResult:
    """The pod reaches `address` (a host of its Multus subnet outside the pod range, or the subnet router) by its
    Multus interface with its Multus address as source; the detail shows the route it used."""
    row = f"subnet {pod} -> {address} ({what}, {interface})"
    hint = (
        f"the NAD must give {interface} the whole subnet's prefix (ipam.range = the subnet, range_start/range_end "
        "= the pod range) and route the network's other CIDRs through the subnet router; the Multus security "
        "group must admit ICMP from the subnet"
    )
    wrong_route = check_route(interface, source, address, route)
    if wrong_route:
        return failed(row, wrong_route, hint)
    used = re.sub(r"\s+uid \d+.*$", "", " ".join(route.stdout.split()))  # the route, without iproute2's cache tail
    pinged = check_ping(pod, address, interface, address, ping, hint)
    if pinged.status is not Status.PASS:
        return failed(row, f"{pinged.detail}; route: {used}", hint)
    return passed(row, f"{pinged.detail}; route: {used}")


def check_ping(
    source: str, target: str, interface: str, address: str, result: ExecResult, hint: str
) -> CheckResult:
    row = f"ping {source} -> {target} ({interface})"
    summary = next((line.strip() for line in result.stdout.splitlines() if "packet loss" in line), "")
    loss = _LOSS.search(summary)
    zero_loss = bool(loss) and float(loss.group(1)) == 0
    if result.returncode == 0 and (zero_loss or not summary):
        return passed(row, f"{address}: {summary or 'exit 0'}")
    why = summary or (result.stderr.strip().splitlines() or ["no output"])[-1]
    code = "did not finish" if result.returncode is None else f"exit {result.returncode}"
    return failed(row, f"{address}: {why} ({code})", hint)


def ping_hint(cross_node: bool) -> str:
    """Where to look when a ping fails between pods on one node, or on two nodes."""
    if not cross_node:
        return (
            "both pods are on one node, so the packets never leave it: kubectl exec into each pod and run "
            "`ip addr show net1` and `ip route`; the NAD's master must be UP on the node "
            "(/var/log/cloud-init-output.log, multus-interfaces: lines)"
        )
    return (
        "the Multus security group must allow ICMP between the Multus subnets; rp_filter must be off on the nodes "
        "(/var/log/cloud-init-output.log, multus-interfaces: lines); the VPC drops addresses it does not know: each "
        "pod address must be a secondary IP of its node's Multus ENI (aws ec2 describe-network-interfaces "
        "--filters Name=addresses.private-ip-address,Values=<ip>)"
    )


def check_cross_node_placement(
    pods: Sequence[Mapping[str, Any]], availability_zone: str
) -> CheckResult:
    """The cross-node pair runs on two different nodes (the anti-affinity worked)."""
    row = "cross-node pods on 2 nodes"
    nodes = [(p.get("spec") or {}).get("nodeName") for p in pods]
    where = ", ".join(f"{_name(p)} on {n}" for p, n in zip(pods, nodes, strict=True))
    if len(set(nodes)) != len(nodes) or None in nodes:
        return failed(
            row, f"pods share a node: {where}", "their pod anti-affinity should spread them; kubectl get pods -o wide"
        )
    return passed(row, f"{where} in {availability_zone}")


def skip_cross_node(availability_zone: str, nodes_in_zone: Sequence[str]) -> CheckResult:
    return skipped(
        "cross-node ping",
        f"skipped: fewer than 2 nodes in AZ {availability_zone} ({len(nodes_in_zone)}"
        + (f": {', '.join(nodes_in_zone)}" if nodes_in_zone else "") + ")",
    )
