"""Pure planning: which pod addresses EC2 must hold on which of this node's Multus ENIs.

Plain data in, plain data out; no Kubernetes, no AWS. `plan()` diffs the complete desired state (every pod
address on this node) against the complete actual state (every secondary address on this node's Multus ENIs),
so running it again after a crash or a restart gives the same answer: the controller is restart-safe.

Rules:
- Only addresses inside the configured pod ranges are ever assigned or unassigned. An ENI's primary address and
  any secondary address outside the pod ranges are never touched.
- A pod address goes to the ENI whose MAC equals the pod interface's MAC (an ipvlan slave carries its parent
  ENI's MAC; a host-device pod holds the ENI itself). Only when the MAC is unknown does the ENI at the device
  index of the NAD's `master` get it. Never "the first ENI in that subnet": two ENIs may share one subnet.
- An address held by a terminating pod is kept where it is but never pulled onto this node: once its sandbox is
  gone, whereabouts may already have handed it to a pod on another node (or to a live pod here, which wins).
- An address that two pod interfaces on this node with different ENIs claim is a conflict: it is left where it
  is and reported. So is an address whose ENI cannot be found (unknown MAC, NAD lookup failed): when in doubt,
  the controller never takes an address away from a pod that still reports it.
"""

from __future__ import annotations

import ipaddress
import re
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

IPv4Network = ipaddress.IPv4Network


@dataclass(frozen=True)
class Eni:
    """One Multus ENI attached to this node's instance, as EC2 reports it."""

    eni_id: str
    mac: str
    device_index: int | None
    primary_ip: str
    secondary_ips: frozenset[str] = frozenset()
    network: str | None = None  # the eks-multus/network tag: names the extended resource of its free slots


@dataclass(frozen=True)
class PodAddress:
    """One address a pod interface holds on a Multus network."""

    pod: str  # namespace/name
    interface: str  # interface name inside the pod, e.g. net1
    ip: str
    mac: str | None  # lowercase, None when the network-status entry has none
    device_index: int | None = None  # from the NAD's master; used only when mac is None
    terminating: bool = False
    # The pod's creationTimestamp (RFC 3339, sorts by time): oldest pods are served first.
    created: str = field(default="", compare=False)


@dataclass(frozen=True)
class Skipped:
    pod: str
    ip: str
    reason: str


@dataclass(frozen=True)
class Plan:
    assign: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # ENI id -> addresses to add
    unassign: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # ENI id -> addresses to remove
    in_place: int = 0  # desired addresses EC2 already has on the right ENI
    skipped: tuple[Skipped, ...] = ()
    by_device_index: tuple[str, ...] = ()  # addresses placed by the NAD master fallback (no MAC)

    @property
    def empty(self) -> bool:
        return not self.assign and not self.unassign


def parse_ranges(cidrs: Iterable[str]) -> tuple[IPv4Network, ...]:
    """The pod ranges as networks; raises ValueError for anything that is not an IPv4 CIDR block."""
    return tuple(ipaddress.IPv4Network(c, strict=True) for c in cidrs)


def normalize_ip(value: str) -> str | None:
    """`10.0.4.70`, `10.0.4.70/24` -> `10.0.4.70`; None for anything that is not an IPv4 address."""
    if not isinstance(value, str):
        return None
    try:
        return str(ipaddress.IPv4Interface(value.strip()).ip)
    except ValueError:
        return None


_MAC = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")


def normalize_mac(value: object) -> str | None:
    """A MAC in lowercase colon form, or None: the VPC CNI's host-side dummy entries carry `"mac": "0"`."""
    if not isinstance(value, str):
        return None
    mac = value.strip().lower().replace("-", ":")
    if not _MAC.match(mac) or mac == "00:00:00:00:00:00":
        return None
    return mac


def in_ranges(ip: str, ranges: Sequence[IPv4Network]) -> bool:
    try:
        address = ipaddress.IPv4Address(ip)
    except ValueError:
        return False
    return any(address in r for r in ranges)


def plan(desired: Iterable[PodAddress], enis: Iterable[Eni], ranges: Sequence[IPv4Network]) -> Plan:
    enis = list(enis)
    by_mac = {e.mac.lower(): e for e in enis if e.mac}
    by_index = {e.device_index: e for e in enis if e.device_index is not None}
    primaries = {e.primary_ip for e in enis}

    skipped: list[Skipped] = []
    by_device_index: list[str] = []
    wanted: dict[str, set[str]] = defaultdict(set)  # ip -> ENI ids that live pods want it on
    keep: dict[str, set[str]] = defaultdict(set)  # ip -> ENI ids it may stay on (terminating pods)
    unplaced: set[str] = set()  # a pod here holds it but its ENI is unknown: leave EC2's copy alone
    claimants: dict[str, set[str]] = defaultdict(set)  # ip -> pods, for conflict messages

    for address in desired:
        if not in_ranges(address.ip, ranges):
            continue  # not ours to manage (default network, static or host-local addresses)
        if address.ip in primaries:
            skipped.append(Skipped(address.pod, address.ip, "is the primary address of an ENI"))
            continue
        eni = None
        if address.mac:
            eni = by_mac.get(address.mac.lower())
            reason = f"no Multus ENI on this instance has MAC {address.mac}"
        elif address.device_index is not None:
            eni = by_index.get(address.device_index)
            reason = f"no MAC, and no Multus ENI at device index {address.device_index}"
            if eni is not None:
                by_device_index.append(address.ip)
        else:
            reason = "no MAC and no NAD master to find its ENI by"
        if eni is None:
            skipped.append(Skipped(address.pod, address.ip, reason))
            unplaced.add(address.ip)
            continue
        claimants[address.ip].add(address.pod)
        (keep if address.terminating else wanted)[address.ip].add(eni.eni_id)

    actual: dict[str, set[str]] = defaultdict(set)  # ip -> ENI ids holding it (pod-range secondaries only)
    for eni in enis:
        for ip in eni.secondary_ips:
            if ip != eni.primary_ip and in_ranges(ip, ranges):
                actual[ip].add(eni.eni_id)

    assign: dict[str, set[str]] = defaultdict(set)
    unassign: dict[str, set[str]] = defaultdict(set)
    in_place = 0
    for ip in sorted(set(wanted) | set(keep) | set(actual), key=ipaddress.IPv4Address):
        targets = wanted.get(ip, set())
        holders = actual.get(ip, set())
        if len(targets) > 1:
            # Two live interfaces on this node claim it on different ENIs: leave it where it is, say so.
            pods = ", ".join(sorted(claimants[ip]))
            skipped.append(Skipped(pods, ip, "claimed on more than one ENI of this node; left where it is"))
            continue
        if targets:
            (target,) = targets
            if target in holders:
                in_place += 1
            else:
                assign[target].add(ip)  # AllowReassignment moves it from wherever it is
            # Other ENIs of this node lose it through the reassignment; unassigning too would race it.
            continue
        if ip in unplaced:
            continue
        for eni_id in holders - keep.get(ip, set()):
            unassign[eni_id].add(ip)
        in_place += len(holders & keep.get(ip, set()))

    def freeze(d: dict[str, set[str]]) -> dict[str, tuple[str, ...]]:
        return {k: tuple(sorted(v, key=ipaddress.IPv4Address)) for k, v in sorted(d.items()) if v}

    return Plan(
        assign=freeze(assign),
        unassign=freeze(unassign),
        in_place=in_place,
        skipped=tuple(skipped),
        by_device_index=tuple(sorted(set(by_device_index), key=ipaddress.IPv4Address)),
    )
