"""Pure capacity rules: how many pod addresses each Multus ENI can still take, who gets them, what to publish.

An ENI holds at most the instance type's "IPv4 addresses per interface" (EC2 `NetworkInfo.Ipv4AddressesPerInterface`,
learned once per process), its primary address included. Plain data in, plain data out:

- `fit` trims a plan so no ENI is sent more assignments than it has free slots after the pass's unassignments
  and moves. When slots are short the **oldest pods are served first** (pod creationTimestamp, then name, then
  address): a burst of new pods cannot take the slot of a pod that was waiting longer. An address a pod already
  has is never taken away to make room. The refused addresses are returned with a reason naming the ENI and its
  limit; the next pass tries them again (a slot frees when a pod goes).
- `extended_resources` computes what the node advertises per network as the extended resource
  `eks-multus.io/<network>-ips`: the ENI's pod slots minus the addresses held for pods that do *not* request the
  resource (the scheduler counts the requests of the pods that do). A pod that requests one is then only
  scheduled where an address can still be routed.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace

from multus_ip_controller.planning import Eni, IPv4Network, Plan, PodAddress, Skipped, in_ranges

RESOURCE_PREFIX = "eks-multus.io/"


def resource_name(network: str) -> str:
    """The extended resource of one Multus network, e.g. `eks-multus.io/multus1-ips`."""
    return f"{RESOURCE_PREFIX}{network}-ips"


@dataclass(frozen=True)
class Fitted:
    plan: Plan
    refused: tuple[Skipped, ...] = ()  # addresses left out because their ENI is full
    free: Mapping[str, int] | None = None  # ENI id -> free slots after the pass (None: limit unknown)


def slots(ipv4_per_interface: int) -> int:
    """Secondary addresses one ENI can hold: the per-interface limit minus its primary address."""
    return max(ipv4_per_interface - 1, 0)


def _age_key(claims: Mapping[str, list[PodAddress]]):
    def key(ip: str) -> tuple[str, str, ipaddress.IPv4Address]:
        live = [a for a in claims.get(ip, []) if not a.terminating] or claims.get(ip, [])
        oldest = min(live, key=lambda a: (a.created or "~", a.pod), default=None)
        return (oldest.created or "~", oldest.pod, ipaddress.IPv4Address(ip)) if oldest else (
            "~", "", ipaddress.IPv4Address(ip))

    return key


def fit(plan: Plan, desired: Iterable[PodAddress], enis: Sequence[Eni], ipv4_per_interface: int | None) -> Fitted:
    """The plan with no ENI sent more assignments than it has room for; oldest pods first.

    With `ipv4_per_interface` None (the limit is not known yet) the plan is returned unchanged.
    """
    if ipv4_per_interface is None:
        return Fitted(plan)
    limit = slots(ipv4_per_interface)
    claims: dict[str, list[PodAddress]] = {}
    for address in desired:
        claims.setdefault(address.ip, []).append(address)
    key = _age_key(claims)
    wanted = {eni_id: sorted(ips, key=key) for eni_id, ips in plan.assign.items()}
    by_id = {e.eni_id: e for e in enis}

    # Moves between two ENIs of this node free a slot on the source only if the move itself is accepted, so
    # iterate until the accepted set no longer changes (each round can only refuse more).
    accepted = {eni_id: list(ips) for eni_id, ips in wanted.items()}
    for _ in range(len(enis) + 2):
        moved_away = {ip: eni_id for eni_id, ips in accepted.items() for ip in ips}
        free: dict[str, int] = {}
        changed = False
        for eni in enis:
            held = {ip for ip in eni.secondary_ips if ip != eni.primary_ip}
            held -= set(plan.unassign.get(eni.eni_id, ()))
            held = {ip for ip in held if moved_away.get(ip, eni.eni_id) == eni.eni_id}
            room = limit - len(held)
            take = [ip for ip in wanted.get(eni.eni_id, []) if ip not in held]
            keep = take[: max(room, 0)]
            if keep != accepted.get(eni.eni_id, []) and eni.eni_id in wanted:
                accepted[eni.eni_id] = keep
                changed = True
            free[eni.eni_id] = room - len(keep)
        if not changed:
            break

    refused: list[Skipped] = []
    for eni_id, ips in wanted.items():
        kept = set(accepted.get(eni_id, []))
        eni = by_id.get(eni_id)
        for ip in ips:
            if ip in kept:
                continue
            pods = ", ".join(sorted({a.pod for a in claims.get(ip, []) if not a.terminating})) or "?"
            network = f" (network {eni.network})" if eni and eni.network else ""
            refused.append(Skipped(pods, ip, f"{eni_id}{network} is full: {limit} pod addresses per interface "
                                             f"on this instance type; older pods are served first"))
    assign = {eni_id: tuple(sorted(ips, key=ipaddress.IPv4Address)) for eni_id, ips in accepted.items() if ips}
    return Fitted(replace(plan, assign=assign), tuple(refused), free)


def pod_requests(pod: Mapping, name: str) -> int:
    """How many of the extended resource `name` the pod's containers request (limits count when requests are
    omitted, as the API server defaults them); init containers are ignored."""
    total = 0
    for container in (pod.get("spec") or {}).get("containers") or []:
        resources = (container.get("resources") or {}) if isinstance(container, dict) else {}
        value = (resources.get("requests") or {}).get(name, (resources.get("limits") or {}).get(name))
        try:
            total += int(str(value)) if value is not None else 0
        except ValueError:
            continue
    return total


def extended_resources(
    enis: Sequence[Eni],
    desired: Iterable[PodAddress],
    pods: Iterable[Mapping],
    ipv4_per_interface: int | None,
    ranges: Sequence[IPv4Network],
) -> dict[str, int]:
    """`eks-multus.io/<network>-ips` -> how many pods requesting it this node can still give an address to.

    Slots of the network's ENI, minus secondary addresses outside the pod ranges (someone else's), minus the
    addresses of pods that do not request the resource (the scheduler does not see those). Empty while the
    limit is unknown, and for ENIs without an `eks-multus/network` tag.
    """
    if ipv4_per_interface is None:
        return {}
    limit = slots(ipv4_per_interface)
    requesting: dict[str, set[str]] = {}  # resource -> pod keys requesting it
    for pod in pods:
        meta = pod.get("metadata") or {}
        key = f"{meta.get('namespace', '')}/{meta.get('name', '')}"
        for eni in enis:
            if eni.network and pod_requests(pod, resource_name(eni.network)) > 0:
                requesting.setdefault(resource_name(eni.network), set()).add(key)
    by_mac = {e.mac: e for e in enis}
    by_index = {e.device_index: e for e in enis if e.device_index is not None}
    unseen: dict[str, set[str]] = {}  # ENI id -> addresses of pods that do not request its resource
    for address in desired:
        eni = by_mac.get(address.mac or "") or (by_index.get(address.device_index) if not address.mac else None)
        if eni is None or not eni.network:
            continue
        if address.pod not in requesting.get(resource_name(eni.network), set()):
            unseen.setdefault(eni.eni_id, set()).add(address.ip)
    out: dict[str, int] = {}
    for eni in enis:
        if not eni.network:
            continue
        foreign = {ip for ip in eni.secondary_ips if ip != eni.primary_ip and not in_ranges(ip, ranges)}
        value = limit - len(foreign) - len(unseen.get(eni.eni_id, set()))
        name = resource_name(eni.network)
        out[name] = out.get(name, 0) + max(value, 0)
    return out
