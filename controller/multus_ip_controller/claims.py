"""Address claims checked against the IPAM record before any address is assigned.

A pod's `k8s.v1.cni.cncf.io/network-status` annotation is written by Multus, but a pod owner can write it too
(the admission policy in manifests/multus/ refuses that on clusters that enforce it; this check does not rely
on it). The controller therefore never trusts the annotation alone:

1. **IPAM record**: an address a pod claims is accepted only when whereabouts' IPPool allocation for that address
   names this pod (`podref` = `namespace/name`). whereabouts writes the allocation before the CNI result reaches
   Multus, so a legitimate claim always has one. An address nobody holds, or another pod holds, is refused.
2. **Never from a foreign ENI**: before an address is pulled onto this node (AssignPrivateIpAddresses with
   AllowReassignment moves it from wherever it is), EC2 is asked who holds it. If an ENI this app does not own
   (no `eks-multus/owner` tag naming one of our node groups) holds it, the claim is refused: the address
   belongs to something else in the VPC.

A refusal keeps the address out of the plan (it is never assigned here, and unassigned from this node's ENIs if
it sits there), is reported in the pass's log line, and becomes one Warning event on the claiming pod.

host-local IPAM: the controller runs only with whereabouts (`crossNodeTraffic`); host-local ranges are
node-local and never go onto ENIs, so there is no host-local record to check here.

Plain functions over plain data, plus `ClaimChecker`, which takes its readers as callables (tests pass fakes).
"""

from __future__ import annotations

import ipaddress
import json
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from multus_ip_controller.planning import Eni, PodAddress

log = logging.getLogger(__name__)

WHEREABOUTS_GROUP = "whereabouts.cni.cncf.io"
WHEREABOUTS_VERSION = "v1alpha1"
IPPOOLS = "ippools"
OWNER_TAG = "eks-multus/owner"

NOT_ALLOCATED = "NotAllocated"  # no IPPool allocation for the address
ALLOCATED_TO_OTHER = "AllocatedToAnotherPod"  # the allocation's podref is another pod
FOREIGN_ENI = "HeldByForeignEni"  # an ENI this app does not own holds it
EVENT_REASON = "MultusAddressClaimRefused"


@dataclass(frozen=True)
class Refusal:
    pod: str  # namespace/name
    ip: str
    reason: str
    detail: str


def allocations(pools: Iterable[dict[str, Any]]) -> dict[str, str]:
    """ip -> podref, from whereabouts IPPool objects (`spec.range` CIDR, `spec.allocations` offset -> {podref})."""
    out: dict[str, str] = {}
    for pool in pools:
        spec = pool.get("spec") or {}
        try:
            network = ipaddress.IPv4Network(str(spec.get("range", "")).rsplit("-", 1)[-1], strict=False)
        except ValueError:
            continue
        for offset, allocation in (spec.get("allocations") or {}).items():
            if not str(offset).isdigit() or not isinstance(allocation, dict):
                continue
            podref = allocation.get("podref")
            if isinstance(podref, str) and podref:
                out[str(network.network_address + int(offset))] = podref
    return out


def check_ipam(desired: Sequence[PodAddress], record: dict[str, str]) -> tuple[list[PodAddress], list[Refusal]]:
    """The addresses whose IPAM allocation names the claiming pod, and the refusals."""
    accepted: list[PodAddress] = []
    refused: list[Refusal] = []
    for address in desired:
        owner = record.get(address.ip)
        if owner == address.pod:
            accepted.append(address)
        elif owner is None:
            refused.append(Refusal(address.pod, address.ip, NOT_ALLOCATED, "whereabouts has no allocation for it"))
        else:
            refused.append(Refusal(address.pod, address.ip, ALLOCATED_TO_OTHER, f"whereabouts allocated it to {owner}"))
    return accepted, refused


def foreign_holders(interfaces: Iterable[dict[str, Any]], ips: Iterable[str], owned: Callable[[str | None], bool]
                    ) -> dict[str, str]:
    """ip -> ENI id, for each of `ips` that an ENI not owned by this app holds (DescribeNetworkInterfaces shape)."""
    wanted = set(ips)
    out: dict[str, str] = {}
    for interface in interfaces:
        tags = {t["Key"]: t["Value"] for t in interface.get("TagSet", [])}
        if owned(tags.get(OWNER_TAG)):
            continue
        for address in interface.get("PrivateIpAddresses", []):
            ip = address.get("PrivateIpAddress")
            if ip in wanted:
                out[ip] = interface["NetworkInterfaceId"]
    return out


class ClaimChecker:
    """Vets one pass's desired addresses. Raises when a record cannot be read, so the pass changes nothing."""

    def __init__(
        self,
        *,
        list_ippools: Callable[[], list[dict[str, Any]]],
        describe_holders: Callable[[Sequence[str]], list[dict[str, Any]]],
        owned: Callable[[str | None], bool],
        emit_event: Callable[[str, str, str, str], None] | None = None,
    ) -> None:
        self.list_ippools = list_ippools
        self.describe_holders = describe_holders
        self.owned = owned
        self.emit_event = emit_event
        self._reported: set[tuple[str, str, str]] = set()

    def vet(self, desired: Sequence[PodAddress], enis: Sequence[Eni]) -> tuple[list[PodAddress], list[Refusal]]:
        accepted, refused = check_ipam(desired, allocations(self.list_ippools()))
        here = {ip for eni in enis for ip in eni.secondary_ips}
        incoming = sorted({a.ip for a in accepted if a.ip not in here and not a.terminating})
        foreign = foreign_holders(self.describe_holders(incoming), incoming, self.owned) if incoming else {}
        if foreign:
            refused += [Refusal(a.pod, a.ip, FOREIGN_ENI, f"{foreign[a.ip]} holds it and is not one of ours")
                        for a in accepted if a.ip in foreign]
            accepted = [a for a in accepted if a.ip not in foreign]
        self._report(refused)
        return accepted, refused

    def _report(self, refused: Sequence[Refusal]) -> None:
        """One Warning event per (pod, address, reason) for the life of this process; failures only logged."""
        if self.emit_event is None:
            return
        for refusal in refused:
            key = (refusal.pod, refusal.ip, refusal.reason)
            if key in self._reported:
                continue
            namespace, _, name = refusal.pod.partition("/")
            message = f"address {refusal.ip} not assigned to an ENI: {refusal.detail} ({refusal.reason})"
            try:
                self.emit_event(namespace, name, EVENT_REASON, message)
                self._reported.add(key)
            except Exception as err:  # noqa: BLE001 - an event is best effort; the refusal stands either way
                log.warning(json.dumps({"msg": "event not recorded", "pod": refusal.pod, "error": str(err)[:300]}))


# --------------------------------------------------------------------------------------------- adapters


def owned_by(owner_prefix: str | None) -> Callable[[str | None], bool]:
    """The same ownership rule as `ec2.Ec2Adapter`: tagged `eks-multus/owner=<prefix>-*` (any owner if no prefix)."""
    def owned(owner: str | None) -> bool:
        return owner is not None and (owner_prefix is None or owner.startswith(f"{owner_prefix}-"))
    return owned


# EC2 refuses a filter with more than 200 values (FilterLimitExceeded): larger lookups go in chunks.
MAX_FILTER_VALUES = 200


def ec2_holders(client: Any) -> Callable[[Sequence[str]], list[dict[str, Any]]]:
    """DescribeNetworkInterfaces for the ENIs holding any of the addresses (primary or secondary)."""
    def describe(ips: Sequence[str]) -> list[dict[str, Any]]:
        found: dict[str, dict[str, Any]] = {}
        values = list(ips)
        for start in range(0, len(values), MAX_FILTER_VALUES):
            chunk = values[start:start + MAX_FILTER_VALUES]
            paginator = client.get_paginator("describe_network_interfaces")
            pages = paginator.paginate(Filters=[{"Name": "addresses.private-ip-address", "Values": chunk}])
            for page in pages:
                for interface in page.get("NetworkInterfaces", []):
                    found.setdefault(interface.get("NetworkInterfaceId", str(len(found))), interface)
        return list(found.values())
    return describe


class KubeRecords:
    """The Kubernetes reads and writes of the claim check: whereabouts IPPools and events on pods.

    Every call carries `timeout` ((connect, read) seconds, as kube.KubeClient's): an API server that accepts and
    never answers fails the claim check, which ends the pass changing nothing, instead of stalling it.
    """

    def __init__(self, api_client: Any = None, whereabouts_namespace: str = "kube-system", *,
                 timeout: tuple[float, float] = (5.0, 15.0)) -> None:
        """`api_client` None: a client from the configuration already loaded (in-cluster, by kube.KubeClient)."""
        from kubernetes import client

        api_client = api_client or client.ApiClient()
        self._custom = client.CustomObjectsApi(api_client)
        self._core = client.CoreV1Api(api_client)
        self._namespace = whereabouts_namespace
        self.timeout = timeout

    def list_ippools(self) -> list[dict[str, Any]]:
        response = self._custom.list_namespaced_custom_object(
            WHEREABOUTS_GROUP, WHEREABOUTS_VERSION, self._namespace, IPPOOLS, _request_timeout=self.timeout)
        return list(response.get("items", []))

    def emit_event(self, namespace: str, name: str, reason: str, message: str) -> None:
        import datetime

        from kubernetes import client

        now = datetime.datetime.now(datetime.UTC)
        self._core.create_namespaced_event(namespace, client.CoreV1Event(
            metadata=client.V1ObjectMeta(generate_name=f"{name}.", namespace=namespace),
            involved_object=client.V1ObjectReference(kind="Pod", api_version="v1", namespace=namespace, name=name),
            reason=reason, message=message[:1000], type="Warning", count=1,
            first_timestamp=now, last_timestamp=now,
            source=client.V1EventSource(component="multus-pod-address-sync"),
        ), _request_timeout=self.timeout)
