"""The only module that talks to AWS: a thin EC2 / Auto Scaling adapter over injected boto3 clients.

API calls it makes (and nothing else, so the function's IAM policy can stay exact):
  ec2:DescribeInstances, ec2:DescribeNetworkInterfaces (also what the waiters poll),
  ec2:CreateNetworkInterface (tags in TagSpecifications), ec2:ModifyNetworkInterfaceAttribute,
  ec2:AttachNetworkInterface, ec2:DetachNetworkInterface, ec2:DeleteNetworkInterface,
  autoscaling:CompleteLifecycleAction, autoscaling:RecordLifecycleActionHeartbeat.

Time goes through a `Clock` (monotonic time, wall time, sleep) so that tests and the benchmark can run a
60 s or 200 s pending instance in simulated time.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from botocore.config import Config as BotoConfig
from botocore.exceptions import ClientError

from eni_attacher.planning import (
    NETWORK_TAG,
    Eni,
    EniAttachment,
    Instance,
    InstanceAttachment,
    Network,
    client_token,
    eni_tags,
)


@dataclass(frozen=True)
class Settings:
    """Retry and waiter tuning. Production defaults; tests make the waiters fast through the environment."""

    max_attempts: int = 8  # botocore adaptive retries (throttling, 5xx, connection errors)
    waiter_delay: float = 1.0  # seconds between polls of the ENI waiter (new ENIs settle in about a second)
    waiter_max_attempts: int = 25
    poll_seconds: float = 5.0  # DescribeInstances period while an instance is pending; pause before a retry
    heartbeat_seconds: float = 60.0  # RecordLifecycleActionHeartbeat period while waiting (hook timeout: 300 s)
    margin_seconds: float = 45.0  # time kept for cleanup and completion before the function's own timeout
    budget_seconds: float = 600.0  # time to work with when no Lambda context says how much is left

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Settings:
        def number(name: str, kind: type, default: Any) -> Any:
            try:
                value = kind(env[name])
            except (KeyError, ValueError):
                return default
            return value if value > 0 else default

        return cls(
            max_attempts=number("ENI_ATTACHER_MAX_ATTEMPTS", int, cls.max_attempts),
            waiter_delay=number("ENI_ATTACHER_WAITER_DELAY", float, cls.waiter_delay),
            waiter_max_attempts=number("ENI_ATTACHER_WAITER_MAX_ATTEMPTS", int, cls.waiter_max_attempts),
            poll_seconds=number("ENI_ATTACHER_POLL_SECONDS", float, cls.poll_seconds),
            heartbeat_seconds=number("ENI_ATTACHER_HEARTBEAT_SECONDS", float, cls.heartbeat_seconds),
            margin_seconds=number("ENI_ATTACHER_MARGIN_SECONDS", float, cls.margin_seconds),
            budget_seconds=number("ENI_ATTACHER_BUDGET_SECONDS", float, cls.budget_seconds),
        )

    def client_config(self) -> BotoConfig:
        return BotoConfig(retries={"mode": "adaptive", "max_attempts": self.max_attempts},
                          connect_timeout=5, read_timeout=20)

    def waiter_config(self) -> dict[str, Any]:
        # botocore takes an int or float Delay; it sleeps only between polls, never before the first one.
        return {"Delay": self.waiter_delay, "MaxAttempts": self.waiter_max_attempts}


class Clock:
    """Real time. Tests and the benchmark pass a simulated clock with the same three methods."""

    def monotonic(self) -> float:
        return time.monotonic()

    def time(self) -> float:
        return time.time()

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


@dataclass(frozen=True)
class Clients:
    ec2: Any
    autoscaling: Any


def make_clients(settings: Settings, region: str | None = None, session: Any = None) -> Clients:
    """EC2 and Auto Scaling clients with adaptive retries (from `session`, a boto3.Session, if given)."""
    import boto3  # imported here: nothing touches AWS, or builds a client, at import time

    factory = session.client if session is not None else boto3.client
    region = region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    config = settings.client_config()
    return Clients(ec2=factory("ec2", region_name=region, config=config),
                   autoscaling=factory("autoscaling", region_name=region, config=config))


def error_code(exc: BaseException) -> str:
    if isinstance(exc, ClientError):
        return str(exc.response.get("Error", {}).get("Code", ""))
    return type(exc).__name__


NO_ACTIVE_ACTION = "No active Lifecycle Action found"


class Aws:
    def __init__(self, clients: Clients, settings: Settings) -> None:
        self.ec2 = clients.ec2
        self.autoscaling = clients.autoscaling
        self.settings = settings

    # --------------------------------------------------------------------------------------- reads
    def describe_instance(self, instance_id: str) -> Instance | None:
        try:
            reservations = self.ec2.describe_instances(InstanceIds=[instance_id])["Reservations"]
        except ClientError as exc:
            if error_code(exc) in ("InvalidInstanceID.NotFound", "InvalidInstanceID.Malformed"):
                return None
            raise
        raw = next((i for r in reservations for i in r.get("Instances", []) if i["InstanceId"] == instance_id), None)
        if raw is None:
            return None
        attachments = tuple(
            InstanceAttachment(
                eni_id=ni["NetworkInterfaceId"],
                device_index=int(ni["Attachment"]["DeviceIndex"]),
                attachment_id=ni["Attachment"].get("AttachmentId"),
                status=ni["Attachment"].get("Status", "attached"),
                delete_on_termination=bool(ni["Attachment"].get("DeleteOnTermination")),
            )
            for ni in raw.get("NetworkInterfaces", []) if "Attachment" in ni
        )
        return Instance(id=instance_id, availability_zone=raw["Placement"]["AvailabilityZone"],
                        state=raw["State"]["Name"], attachments=attachments)

    def instance_states(self, instance_ids: list[str]) -> dict[str, str]:
        """instance id -> state name, for those EC2 still knows (a filter, so unknown ids raise nothing)."""
        states: dict[str, str] = {}
        ids = sorted(set(instance_ids))
        for start in range(0, len(ids), 200):  # EC2 accepts up to 200 filter values
            pages = self.ec2.get_paginator("describe_instances").paginate(
                Filters=[{"Name": "instance-id", "Values": ids[start:start + 200]}])
            for page in pages:
                for reservation in page["Reservations"]:
                    for raw in reservation.get("Instances", []):
                        states[raw["InstanceId"]] = raw["State"]["Name"]
        return states

    def available_owned_enis(self, *, owner_tag: str, owner: str) -> list[dict[str, Any]]:
        """Raw `available` ENIs carrying our owner tag (the sweeper's input)."""
        filters = [{"Name": f"tag:{owner_tag}", "Values": [owner]}, {"Name": "status", "Values": ["available"]}]
        pages = self.ec2.get_paginator("describe_network_interfaces").paginate(Filters=filters)
        return [raw for page in pages for raw in page["NetworkInterfaces"]]

    def owned_enis(self, *, owner_tag: str, owner: str, instance_tag: str, instance_id: str) -> list[Eni]:
        filters = [{"Name": f"tag:{owner_tag}", "Values": [owner]},
                   {"Name": f"tag:{instance_tag}", "Values": [instance_id]}]
        pages = self.ec2.get_paginator("describe_network_interfaces").paginate(Filters=filters)
        return [self._eni(raw) for page in pages for raw in page["NetworkInterfaces"]]

    def eni(self, eni_id: str) -> Eni | None:
        try:
            found = self.ec2.describe_network_interfaces(NetworkInterfaceIds=[eni_id])["NetworkInterfaces"]
        except ClientError as exc:
            if error_code(exc) == "InvalidNetworkInterfaceID.NotFound":
                return None
            raise
        return self._eni(found[0]) if found else None

    @staticmethod
    def _eni(raw: dict[str, Any]) -> Eni:
        tags = {t["Key"]: t["Value"] for t in raw.get("TagSet", [])}
        a = raw.get("Attachment")
        attachment = None
        if a:
            attachment = EniAttachment(
                instance_id=a.get("InstanceId"),
                device_index=int(a["DeviceIndex"]) if a.get("DeviceIndex") is not None else None,
                attachment_id=a.get("AttachmentId"),
                status=a.get("Status", "attached"),
                delete_on_termination=bool(a.get("DeleteOnTermination")),
            )
        return Eni(id=raw["NetworkInterfaceId"], subnet_id=raw["SubnetId"], status=raw.get("Status", ""),
                   network=tags.get(NETWORK_TAG), source_dest_check=bool(raw.get("SourceDestCheck", True)),
                   attachment=attachment)

    # --------------------------------------------------------------------------------------- waiters
    def wait_available(self, eni_ids: list[str]) -> None:
        if eni_ids:
            self.ec2.get_waiter("network_interface_available").wait(
                NetworkInterfaceIds=list(eni_ids), WaiterConfig=self.settings.waiter_config())

    # --------------------------------------------------------------------------------------- writes
    def create_eni(self, *, instance_id: str, network: Network, subnet_id: str, owner: str,
                   event_time: str = "") -> tuple[str, str]:
        """Create the ENI with all its tags at creation. Returns (id, status)."""
        tags = eni_tags(owner=owner, instance_id=instance_id, network=network, event_time=event_time)
        eni = self.ec2.create_network_interface(
            SubnetId=subnet_id,
            Groups=list(network.security_group_ids),
            Description=f"Multus {network.name} of {instance_id}",
            ClientToken=client_token(instance_id, network.name),
            TagSpecifications=[{"ResourceType": "network-interface",
                                "Tags": [{"Key": k, "Value": v} for k, v in tags.items()]}],
        )["NetworkInterface"]
        return eni["NetworkInterfaceId"], eni.get("Status", "pending")

    def disable_source_dest_check(self, eni_id: str) -> None:
        self.ec2.modify_network_interface_attribute(NetworkInterfaceId=eni_id, SourceDestCheck={"Value": False})

    def attach(self, *, eni_id: str, instance_id: str, device_index: int) -> str:
        return self.ec2.attach_network_interface(
            NetworkInterfaceId=eni_id, InstanceId=instance_id, DeviceIndex=device_index)["AttachmentId"]

    def delete_on_termination(self, *, eni_id: str, attachment_id: str) -> None:
        self.ec2.modify_network_interface_attribute(
            NetworkInterfaceId=eni_id, Attachment={"AttachmentId": attachment_id, "DeleteOnTermination": True})

    def detach(self, attachment_id: str) -> None:
        try:
            self.ec2.detach_network_interface(AttachmentId=attachment_id, Force=True)
        except ClientError as exc:
            if error_code(exc) != "InvalidAttachmentID.NotFound":  # already detached
                raise

    def delete(self, eni_id: str) -> None:
        try:
            self.ec2.delete_network_interface(NetworkInterfaceId=eni_id)
        except ClientError as exc:
            if error_code(exc) != "InvalidNetworkInterfaceID.NotFound":  # already gone
                raise

    def heartbeat(self, *, asg_name: str, hook_name: str, token: str | None, instance_id: str | None) -> str:
        """RecordLifecycleActionHeartbeat. Returns "recorded", or "no active action" if the action has ended."""
        params: dict[str, Any] = {"AutoScalingGroupName": asg_name, "LifecycleHookName": hook_name}
        if token:
            params["LifecycleActionToken"] = token
        if instance_id:
            params["InstanceId"] = instance_id
        try:
            self.autoscaling.record_lifecycle_action_heartbeat(**params)
        except ClientError as exc:
            if error_code(exc) == "ValidationError" and NO_ACTIVE_ACTION.lower() in str(exc).lower():
                return "no active action"
            raise
        return "recorded"

    def complete(self, *, asg_name: str, hook_name: str, token: str | None, instance_id: str | None,
                 result: str) -> str:
        """CompleteLifecycleAction. Returns "completed", or "no active action" if it was already completed."""
        params: dict[str, Any] = {"AutoScalingGroupName": asg_name, "LifecycleHookName": hook_name,
                                  "LifecycleActionResult": result}
        if token:
            params["LifecycleActionToken"] = token
        if instance_id:
            params["InstanceId"] = instance_id
        try:
            self.autoscaling.complete_lifecycle_action(**params)
        except ClientError as exc:
            if error_code(exc) == "ValidationError" and NO_ACTIVE_ACTION.lower() in str(exc).lower():
                return "no active action"
            raise
        return "completed"
