"""Pure readiness-gate decisions: which condition each gated pod on this node should carry after a pass.

A pod opts in with `spec.readinessGates: [{conditionType: eks-multus.io/addresses-assigned}]`; the kubelet then
keeps it not Ready until the controller sets that condition to True. After each pass the controller sets it
True only when every pod-range address the pod reports sits on the right ENI in EC2's state after the pass
(what DescribeNetworkInterfaces said at the start of the pass, plus the assignments EC2 accepted during it *and
that were confirmed on the ENI* (instance metadata local-ipv4s, or a describe after the call), minus the
unassignments), else False naming the addresses still missing and why.

Plain data in, plain data out: pod objects as the API returns them, the pass's desired addresses and ENIs. The
Kubernetes layer only sends the patches.
"""

from __future__ import annotations

import dataclasses
import ipaddress
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from multus_ip_controller import kube, planning

# Equal to eks_multus_cdk.naming.ADDRESSES_READY_CONDITION (a test checks): the CDK app puts it on the samples.
ADDRESSES_READY_CONDITION = "eks-multus.io/addresses-assigned"

ASSIGNED = "AddressesAssigned"
PENDING = "AddressesPending"
NO_ADDRESSES = "NoPodRangeAddresses"
STATUS_PENDING = "NetworkStatusPending"


@dataclass(frozen=True)
class Condition:
    status: str  # "True" or "False"
    reason: str
    message: str

    @property
    def ready(self) -> bool:
        return self.status == "True"


def has_gate(pod: Mapping[str, Any]) -> bool:
    gates = (pod.get("spec") or {}).get("readinessGates") or []
    return any(isinstance(g, dict) and g.get("conditionType") == ADDRESSES_READY_CONDITION for g in gates)


def current_condition(pod: Mapping[str, Any]) -> Condition | None:
    """The pod's condition of our type as the API reported it, or None when it has none yet."""
    for condition in (pod.get("status") or {}).get("conditions") or []:
        if isinstance(condition, dict) and condition.get("type") == ADDRESSES_READY_CONDITION:
            return Condition(
                str(condition.get("status") or ""), str(condition.get("reason") or ""),
                str(condition.get("message") or ""),
            )
    return None


def enis_after(
    enis: Iterable[planning.Eni],
    assigned: Mapping[str, Sequence[str]],
    unassigned: Mapping[str, Sequence[str]],
) -> list[planning.Eni]:
    """This node's ENIs as EC2 holds them after the pass: the state read at its start plus the calls EC2 accepted.

    An assignment (AllowReassignment) moves the address: every other ENI of the node loses it.
    """
    moved = {ip: eni_id for eni_id, ips in assigned.items() for ip in ips}
    result = []
    for eni in enis:
        ips = {ip for ip in eni.secondary_ips if moved.get(ip, eni.eni_id) == eni.eni_id}
        ips -= set(unassigned.get(eni.eni_id, ()))
        ips |= set(assigned.get(eni.eni_id, ()))
        result.append(dataclasses.replace(eni, secondary_ips=frozenset(ips)))
    return result


def _pending(
    desired: Sequence[planning.PodAddress], enis: Sequence[planning.Eni], ranges: Sequence[planning.IPv4Network]
) -> tuple[dict[str, str], dict[tuple[str, str], str]]:
    """What a fresh plan over the post-pass state would still do: (ip -> why, by ip), ((pod, ip) -> why)."""
    leftover = planning.plan(desired, enis, ranges)
    by_ip = {ip: f"not yet assigned to {eni_id}" for eni_id, ips in leftover.assign.items() for ip in ips}
    by_pod_ip: dict[tuple[str, str], str] = {}
    for skipped in leftover.skipped:
        for pod in skipped.pod.split(", "):
            by_pod_ip.setdefault((pod, skipped.ip), skipped.reason)
    return by_ip, by_pod_ip


def decide(
    pods: Iterable[Mapping[str, Any]],
    desired: Sequence[planning.PodAddress],
    enis: Sequence[planning.Eni],
    ranges: Sequence[planning.IPv4Network],
    reasons: Mapping[str, str] | None = None,
) -> dict[str, Condition]:
    """The condition every gated pod should have (keyed `namespace/name`), given the pass's desired addresses and
    the ENIs as they are after it (`enis_after`).

    Pods being deleted and pods whose sandbox is gone (Succeeded, Failed) are left out: nothing to gate. A pod
    that is not on the host network but has no network-status yet (Multus has not run) is not Ready: its
    addresses are unknown. Messages are deterministic, so an unchanged state never causes a second patch.
    `reasons` (ip -> why) says more about an address that is still pending: its ENI is full, or it was assigned
    but the instance metadata does not list it on the ENI yet (not routable yet).
    """
    reasons = reasons or {}
    pending_ip, pending_pod_ip = _pending(desired, enis, ranges)
    by_pod: dict[str, list[str]] = {}
    for address in desired:
        ips = by_pod.setdefault(address.pod, [])
        if address.ip not in ips:
            ips.append(address.ip)

    result: dict[str, Condition] = {}
    for pod in pods:
        meta = pod.get("metadata") or {}
        spec = pod.get("spec") or {}
        if not has_gate(pod) or meta.get("deletionTimestamp"):
            continue
        if (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
            continue
        key = kube.pod_key(pod)
        if not spec.get("hostNetwork"):
            raw = kube.network_status_annotation(pod)
            _, problem = kube.parse_network_status(raw)
            if not raw or not raw.strip():
                result[key] = Condition("False", STATUS_PENDING, "Multus has not reported the pod's networks yet")
                continue
            if problem:
                result[key] = Condition("False", STATUS_PENDING, f"cannot read the pod's network-status: {problem}")
                continue
        ips = sorted(by_pod.get(key, []), key=ipaddress.IPv4Address)
        if not ips:
            result[key] = Condition("True", NO_ADDRESSES, "the pod has no address in a Multus pod range")
            continue
        missing = []
        for ip in ips:
            why = pending_ip.get(ip) or pending_pod_ip.get((key, ip))
            if why:
                why = reasons.get(ip, why)
                missing.append(f"{ip} ({why})")
        if missing:
            result[key] = Condition("False", PENDING, "not on the pod interface's ENI yet: " + "; ".join(missing))
        else:
            result[key] = Condition("True", ASSIGNED, "on the pod interface's ENI: " + ", ".join(ips))
    return result


def condition_patch(condition: Condition, transition_time: str | None) -> dict[str, Any]:
    """One entry of status.conditions; `transition_time` only when the status flips (or the condition is new),
    so a reason or message change keeps the server's lastTransitionTime (strategic merge keeps omitted fields)."""
    entry: dict[str, Any] = {
        "type": ADDRESSES_READY_CONDITION,
        "status": condition.status,
        "reason": condition.reason,
        "message": condition.message,
    }
    if transition_time is not None:
        entry["lastTransitionTime"] = transition_time
    return entry


def changes(
    pods: Iterable[Mapping[str, Any]], decided: Mapping[str, Condition], now: str
) -> list[tuple[str, str, dict[str, Any]]]:
    """(namespace, name, condition entry) for every pod whose condition differs from what it carries."""
    out = []
    for pod in pods:
        key = kube.pod_key(pod)
        wanted = decided.get(key)
        if wanted is None:
            continue
        have = current_condition(pod)
        if have == wanted:
            continue
        flipped = have is None or have.status != wanted.status
        meta = pod.get("metadata") or {}
        out.append((meta.get("namespace", ""), meta.get("name", ""), condition_patch(wanted, now if flipped else None)))
    return out
