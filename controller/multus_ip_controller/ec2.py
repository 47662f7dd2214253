"""The EC2 side: read this instance's Multus ENIs, assign and unassign secondary private addresses.

The client is injected (tests pass a moto-backed one); `make_client` builds the real one lazily, never at import.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from multus_ip_controller.planning import Eni

OWNER_TAG = "eks-multus/owner"
DEVICE_INDEX_TAG = "eks-multus/device-index"
NETWORK_TAG = "eks-multus/network"

# Error codes that mean "slow down", not "this request is wrong".
THROTTLING_CODES = frozenset(
    {"Throttling", "ThrottlingException", "RequestLimitExceeded", "TooManyRequestsException", "RequestThrottled"}
)


def make_client(region: str) -> Any:
    """An EC2 client with adaptive retries (client-side rate limiting that backs off on throttling) and a
    timeout on every request: 3 s to connect, 10 s to read, at most 5 attempts, so one call cannot hold a pass
    for more than about a minute even against an endpoint that accepts and never answers. AWS_ENDPOINT_URL
    (botocore's standard variable) points it elsewhere, e.g. at moto in the integration test."""
    import boto3
    from botocore.config import Config

    return boto3.client(
        "ec2",
        region_name=region,
        config=Config(
            retries={"mode": "adaptive", "max_attempts": 5},
            connect_timeout=3,
            read_timeout=10,
            user_agent_extra="eks-multus-pod-address-sync",
        ),
    )


def _device_index(interface: dict[str, Any], tags: dict[str, str]) -> int | None:
    raw = tags.get(DEVICE_INDEX_TAG)
    if raw is not None and raw.isdigit():
        return int(raw)
    index = (interface.get("Attachment") or {}).get("DeviceIndex")
    return index if isinstance(index, int) else None


class Ec2Adapter:
    """EC2 calls the controller makes. `owner_prefix` limits it to ENIs tagged `eks-multus/owner=<prefix>-*`,
    the same condition the controller's IAM policy puts on the write actions."""

    def __init__(self, client: Any, owner_prefix: str | None = None,
                 on_call: Callable[[str, str], None] | None = None) -> None:
        self.client = client
        self.owner_prefix = owner_prefix
        self._on_call = on_call or (lambda operation, outcome: None)

    def _call(self, operation: str, call: Callable[[], Any]) -> Any:
        """One API call, counted by operation and outcome (`ok` or the error code)."""
        try:
            result = call()
        except Exception as err:
            self._on_call(operation, error_code(err))
            raise
        self._on_call(operation, "ok")
        return result

    def ipv4_per_interface(self, instance_id: str, instance_type: str | None = None) -> tuple[str, int]:
        """(instance type, IPv4 addresses per interface): DescribeInstances only when the type is not given
        (the Node's node.kubernetes.io/instance-type label gives it), then DescribeInstanceTypes."""
        if not instance_type:
            reservations = self._call("DescribeInstances", lambda: self.client.describe_instances(
                InstanceIds=[instance_id]))["Reservations"]
            instance_type = reservations[0]["Instances"][0]["InstanceType"]
        types = self._call("DescribeInstanceTypes", lambda: self.client.describe_instance_types(
            InstanceTypes=[instance_type]))["InstanceTypes"]
        return instance_type, int(types[0]["NetworkInfo"]["Ipv4AddressesPerInterface"])

    def _owned(self, owner: str | None) -> bool:
        if owner is None:
            return False
        return self.owner_prefix is None or owner.startswith(f"{self.owner_prefix}-")

    def multus_enis(self, instance_id: str) -> list[Eni]:
        """The Multus ENIs attached to the instance (tagged with an owner), with their secondary addresses."""
        pages = self._call("DescribeNetworkInterfaces", lambda: list(
            self.client.get_paginator("describe_network_interfaces").paginate(Filters=[
                {"Name": "attachment.instance-id", "Values": [instance_id]},
                {"Name": "tag-key", "Values": [OWNER_TAG]},
            ])))
        enis: list[Eni] = []
        for page in pages:
            for interface in page.get("NetworkInterfaces", []):
                tags = {t["Key"]: t["Value"] for t in interface.get("TagSet", [])}
                if not self._owned(tags.get(OWNER_TAG)):
                    continue
                addresses = interface.get("PrivateIpAddresses", [])
                primary = next((a["PrivateIpAddress"] for a in addresses if a.get("Primary")), None)
                primary = primary or interface.get("PrivateIpAddress", "")
                enis.append(
                    Eni(
                        eni_id=interface["NetworkInterfaceId"],
                        mac=(interface.get("MacAddress") or "").lower(),
                        device_index=_device_index(interface, tags),
                        primary_ip=primary,
                        secondary_ips=frozenset(
                            a["PrivateIpAddress"] for a in addresses if a["PrivateIpAddress"] != primary
                        ),
                        network=tags.get(NETWORK_TAG) or None,
                    )
                )
        return sorted(enis, key=lambda e: (e.device_index is None, e.device_index or 0, e.eni_id))

    def assign(self, eni_id: str, ips: Iterable[str]) -> None:
        """Assign the addresses to the ENI, moving any that another ENI holds (a pod rescheduled elsewhere)."""
        self._call("AssignPrivateIpAddresses", lambda: self.client.assign_private_ip_addresses(
            NetworkInterfaceId=eni_id, PrivateIpAddresses=list(ips), AllowReassignment=True
        ))

    def unassign(self, eni_id: str, ips: Iterable[str]) -> None:
        self._call("UnassignPrivateIpAddresses", lambda: self.client.unassign_private_ip_addresses(
            NetworkInterfaceId=eni_id, PrivateIpAddresses=list(ips)))


def error_code(err: BaseException) -> str:
    response = getattr(err, "response", None)
    if isinstance(response, dict):
        return str((response.get("Error") or {}).get("Code") or type(err).__name__)
    return type(err).__name__
