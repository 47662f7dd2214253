"""The EC2 side: read this instance's Multus ENIs, assign and unassign secondary private addresses.

The client is injected (tests pass a moto-backed one); `make_client` builds the real one lazily, never at import.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from multus_ip_controller.planning import Eni

OWNER_TAG = "eks-multus/owner"
DEVICE_INDEX_TAG = "eks-multus/device-index"

# Error codes that mean "slow down", not "this request is wrong".
THROTTLING_CODES = frozenset(
    {"Throttling", "ThrottlingException", "RequestLimitExceeded", "TooManyRequestsException", "RequestThrottled"}
)


def make_client(region: str) -> Any:
    """An EC2 client with adaptive retries (client-side rate limiting that backs off on throttling)."""
    import boto3
    from botocore.config import Config

    return boto3.client(
        "ec2",
        region_name=region,
        config=Config(
            retries={"mode": "adaptive", "max_attempts": 8},
            connect_timeout=5,
            read_timeout=30,
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

    def __init__(self, client: Any, owner_prefix: str | None = None) -> None:
        self.client = client
        self.owner_prefix = owner_prefix

    def _owned(self, owner: str | None) -> bool:
        if owner is None:
            return False
        return self.owner_prefix is None or owner.startswith(f"{self.owner_prefix}-")

    def multus_enis(self, instance_id: str) -> list[Eni]:
        """The Multus ENIs attached to the instance (tagged with an owner), with their secondary addresses."""
        paginator = self.client.get_paginator("describe_network_interfaces")
        enis: list[Eni] = []
        for page in paginator.paginate(
            Filters=[
                {"Name": "attachment.instance-id", "Values": [instance_id]},
                {"Name": "tag-key", "Values": [OWNER_TAG]},
            ]
        ):
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
                    )
                )
        return sorted(enis, key=lambda e: (e.device_index is None, e.device_index or 0, e.eni_id))

    def assign(self, eni_id: str, ips: Iterable[str]) -> None:
        """Assign the addresses to the ENI, moving any that another ENI holds (a pod rescheduled elsewhere)."""
        self.client.assign_private_ip_addresses(
            NetworkInterfaceId=eni_id, PrivateIpAddresses=list(ips), AllowReassignment=True
        )

    def unassign(self, eni_id: str, ips: Iterable[str]) -> None:
        self.client.unassign_private_ip_addresses(NetworkInterfaceId=eni_id, PrivateIpAddresses=list(ips))


def error_code(err: BaseException) -> str:
    response = getattr(err, "response", None)
    if isinstance(response, dict):
        return str((response.get("Error") or {}).get("Code") or type(err).__name__)
    return type(err).__name__
