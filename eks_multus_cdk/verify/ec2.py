"""The one EC2 read `make verify` makes: this app's in-use Multus ENIs of a network in an AZ.

The ENI Lambda tags every Multus ENI with its owner (the Auto Scaling group's name) and network at creation, so
the lookup is one DescribeNetworkInterfaces filtered by those tags and the AZ. boto3 is imported when the reader
is made, not when this module is imported.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

OWNER_TAG = "eks-multus/owner"
NETWORK_TAG = "eks-multus/network"


def subnet_hosts_reader(region: str, client: Any = None) -> Callable[[str, str, Sequence[str]], list[tuple[str, str]]]:
    """(network, AZ, owners) -> [(primary private address, instance id)] of the matching attached ENIs."""
    if client is None:
        import boto3

        client = boto3.client("ec2", region_name=region)

    def subnet_hosts(network: str, availability_zone: str, owners: Sequence[str]) -> list[tuple[str, str]]:
        filters = [
            {"Name": f"tag:{NETWORK_TAG}", "Values": [network]},
            {"Name": f"tag:{OWNER_TAG}", "Values": list(owners)},
            {"Name": "availability-zone", "Values": [availability_zone]},
            {"Name": "status", "Values": ["in-use"]},
        ]
        hosts = []
        for page in client.get_paginator("describe_network_interfaces").paginate(Filters=filters):
            for eni in page["NetworkInterfaces"]:
                instance = (eni.get("Attachment") or {}).get("InstanceId")
                if instance and eni.get("PrivateIpAddress"):
                    hosts.append((eni["PrivateIpAddress"], instance))
        return sorted(hosts)

    return subnet_hosts
