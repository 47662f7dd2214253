"""A moto world for the ENI lifecycle Lambda, shared by tests/lambda/conftest.py and bench/lambda_bench.py.

moto 5.2.5 gaps closed here (patches of moto's response/backend classes, undone by `Patches.undo`):
- CompleteLifecycleAction / RecordLifecycleActionHeartbeat are not implemented: `LifecycleRecorder` implements
  them against the actions the world opened, records every call (with the result sent) and answers
  "No active Lifecycle Action found" for a token that is unknown or already completed, as Auto Scaling does.
- ModifyNetworkInterfaceAttribute ignores Attachment.DeleteOnTermination: recorded on the ENI (and its attachment
  id checked), so DescribeNetworkInterfaces/DescribeInstances report it.
- AttachNetworkInterface accepts an ENI from another AZ, an ENI already attached and a taken device index: all
  three are rejected with EC2's error codes.
- CreateNetworkInterface ignores ClientToken: a repeated token returns the ENI created first.
- DeleteNetworkInterface deletes an attached ENI: rejected with InvalidNetworkInterface.InUse, as EC2 does
  (patched in the API layer only: moto's own instance termination still removes DeleteOnTermination ENIs).
- moto's backends are not thread-safe (dicts change size under iteration): requests are served one at a time,
  so concurrent invocations still interleave call by call, as they would against EC2.
- Instances never report `pending` in moto: `PendingModel` (installed on the world) keeps chosen instances
  `pending` until a simulated clock reaches their start time, answering DescribeInstances accordingly and
  rejecting AttachNetworkInterface to a pending instance with IncorrectState, as EC2 does. The clock
  (`SimClock`) advances only when the code under test sleeps, so a 200 s start takes no real time.
- `Faults` injects errors into chosen EC2/Auto Scaling actions at moto's response layer, so the real
  moto-backed client call (with botocore's retries) sees them exactly like a service error.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from moto.autoscaling.exceptions import ValidationError
from moto.autoscaling.responses import AutoScalingResponse
from moto.core.responses import ActionResult, EmptyResult
from moto.ec2.exceptions import EC2ClientError
from moto.ec2.models.elastic_network_interfaces import NetworkInterfaceBackend
from moto.ec2.responses import EC2Response

REGION = "us-west-2"
ACCOUNT = "123456789012"
EVENT_TIME = "2026-11-26T05:00:00Z"
AZS = ("us-west-2a", "us-west-2b")
ASG_NAME = "multus-workers"
LAUNCH_HOOK = "multus-eni-launch"
TERMINATE_HOOK = "multus-eni-terminate"
NETWORKS = ("multus1", "multus2")
AMI = "ami-12c6146b"  # one of moto's built-in AMIs


class Patches:
    """setattr that remembers the old values; `undo` restores them (moto classes are process-wide)."""

    def __init__(self) -> None:
        self._undo: list[tuple[Any, str, Any]] = []

    def setattr(self, obj: Any, name: str, value: Any) -> None:
        self._undo.append((obj, name, obj.__dict__.get(name, _MISSING)))
        setattr(obj, name, value)

    def undo(self) -> None:
        while self._undo:
            obj, name, old = self._undo.pop()
            if old is _MISSING:
                delattr(obj, name)
            else:
                setattr(obj, name, old)


_MISSING = object()


# ------------------------------------------------------------------------------------------ lifecycle actions


@dataclass
class LifecycleRecorder:
    """Open lifecycle actions (token -> (group, hook, instance)) and every completion/heartbeat received."""

    active: dict[str, tuple[str, str, str]] = field(default_factory=dict)
    calls: list[dict[str, Any]] = field(default_factory=list)
    heartbeats: list[dict[str, Any]] = field(default_factory=list)

    def open(self, asg_name: str, hook_name: str, instance_id: str) -> str:
        token = str(uuid.uuid4())
        self.active[token] = (asg_name, hook_name, instance_id)
        return token

    def results(self, instance_id: str) -> list[str]:
        """Results sent for the instance, in order (including calls Auto Scaling rejected)."""
        return [c["result"] for c in self.calls if c["instance"] == instance_id]

    def accepted(self, instance_id: str) -> list[str]:
        return [c["result"] for c in self.calls if c["instance"] == instance_id and c["accepted"]]

    def _find(self, asg: str, hook: str, token: str | None, instance: str | None) -> str | None:
        for tok, (a, h, i) in self.active.items():
            if a == asg and h == hook and (tok == token if token else i == instance):
                return tok
        return None

    def install(self, patches: Patches, faults: Faults) -> None:
        recorder = self

        def complete_lifecycle_action(resp: AutoScalingResponse) -> EmptyResult:
            asg, hook = resp._get_param("AutoScalingGroupName"), resp._get_param("LifecycleHookName")
            token, instance = resp._get_param("LifecycleActionToken"), resp._get_param("InstanceId")
            result = resp._get_param("LifecycleActionResult")
            tok = recorder._find(asg, hook, token, instance)
            call = {"asg": asg, "hook": hook, "token": token, "result": result, "accepted": False,
                    "instance": recorder.active[tok][2] if tok else instance}
            recorder.calls.append(call)
            faults.check("CompleteLifecycleAction", resp)
            if result not in ("CONTINUE", "ABANDON"):
                raise ValidationError(f"Invalid LifecycleActionResult {result!r}")
            if tok is None:
                raise ValidationError(f"No active Lifecycle Action found with token {token or instance}")
            del recorder.active[tok]
            call["accepted"] = True
            return EmptyResult()

        def record_lifecycle_action_heartbeat(resp: AutoScalingResponse) -> EmptyResult:
            asg, hook = resp._get_param("AutoScalingGroupName"), resp._get_param("LifecycleHookName")
            token, instance = resp._get_param("LifecycleActionToken"), resp._get_param("InstanceId")
            recorder.heartbeats.append({"asg": asg, "hook": hook, "token": token, "instance": instance})
            if recorder._find(asg, hook, token, instance) is None:
                raise ValidationError(f"No active Lifecycle Action found with token {token or instance}")
            return EmptyResult()

        patches.setattr(AutoScalingResponse, "complete_lifecycle_action", complete_lifecycle_action)
        patches.setattr(AutoScalingResponse, "record_lifecycle_action_heartbeat", record_lifecycle_action_heartbeat)


# ------------------------------------------------------------------------------------------ fault injection


@dataclass
class Fault:
    action: str
    code: str
    message: str
    times: int | None = 1  # None: every call
    after: bool = False  # run the real action first, then fail (a lost response)
    when: Callable[[Any], bool] | None = None  # predicate on moto's response object (request parameters)


class Faults:
    """Errors injected into moto's EC2 / Auto Scaling response handlers."""

    EC2_ACTIONS = ("DescribeInstances", "DescribeNetworkInterfaces", "CreateNetworkInterface",
                   "ModifyNetworkInterfaceAttribute", "AttachNetworkInterface", "DetachNetworkInterface",
                   "DeleteNetworkInterface")

    def __init__(self) -> None:
        self.faults: list[Fault] = []
        self.fired: list[str] = []

    def add(self, action: str, code: str, message: str = "injected fault", **kw: Any) -> Fault:
        fault = Fault(action, code, message, **kw)
        self.faults.append(fault)
        return fault

    def _match(self, action: str, resp: Any, after: bool) -> Fault | None:
        for fault in self.faults:
            if fault.action == action and fault.after == after and fault.times != 0:
                if fault.when is None or fault.when(resp):
                    if fault.times is not None:
                        fault.times -= 1
                    self.fired.append(action)
                    return fault
        return None

    def check(self, action: str, resp: Any, after: bool = False) -> None:
        fault = self._match(action, resp, after)
        if fault is not None:
            raise EC2ClientError(fault.code, fault.message)

    def install(self, patches: Patches) -> None:
        from moto.core.utils import camelcase_to_underscores

        for action in self.EC2_ACTIONS:
            name = camelcase_to_underscores(action)
            original = getattr(EC2Response, name)

            def wrapped(resp: Any, _action: str = action, _original: Callable = original) -> Any:
                self.check(_action, resp)
                result = _original(resp)
                self.check(_action, resp, after=True)
                return result

            patches.setattr(EC2Response, name, wrapped)


# ------------------------------------------------------------------------------------------ simulated time


class SimClock:
    """The Lambda's Clock in simulated time: sleep() advances it at once. Starts at EVENT_TIME's epoch."""

    def __init__(self, start: float = 1795669200.0) -> None:  # 2026-11-26T05:00:00Z
        self.now = start
        self.sleeps: list[float] = []
        self._lock = threading.Lock()

    def monotonic(self) -> float:
        return self.now

    def time(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self.sleeps.append(seconds)
            self.now += seconds


class PendingModel:
    """Instances that stay `pending` until `clock.time()` reaches their start time (moto never reports pending)."""

    def __init__(self, clock: SimClock) -> None:
        self.clock = clock
        self.running_at: dict[str, float] = {}
        self.describes: list[float] = []  # simulated times of DescribeInstances calls

    def pending_for(self, instance_id: str, seconds: float) -> None:
        self.running_at[instance_id] = self.clock.time() + seconds

    def _sync(self, backend: Any) -> None:
        for instance_id, at in self.running_at.items():
            instance = backend.get_instance(instance_id)
            if instance._state.name in ("pending", "running"):
                running = self.clock.time() >= at
                instance._state.name, instance._state.code = ("running", 16) if running else ("pending", 0)

    def install(self, patches: Patches) -> None:
        model = self
        original_describe = EC2Response.describe_instances
        original_attach = NetworkInterfaceBackend.attach_network_interface

        def describe_instances(resp: Any) -> Any:
            model.describes.append(model.clock.time())
            model._sync(resp.ec2_backend)
            return original_describe(resp)

        def attach_network_interface(backend: Any, eni_id: str, instance_id: str, device_index: int) -> Any:
            model._sync(backend)
            if backend.get_instance(instance_id)._state.name == "pending":
                raise EC2ClientError("IncorrectState", f"The instance '{instance_id}' is not in a valid state for "
                                     "this operation.")
            return original_attach(backend, eni_id, instance_id, device_index)

        patches.setattr(EC2Response, "describe_instances", describe_instances)
        patches.setattr(NetworkInterfaceBackend, "attach_network_interface", attach_network_interface)


# ------------------------------------------------------------------------------------------ EC2 fidelity


def install_ec2_fidelity(patches: Patches) -> None:
    tokens: dict[tuple[str, str, str], str] = {}  # (account, region, ClientToken) -> ENI id
    token_lock = threading.Lock()
    original_attach = NetworkInterfaceBackend.attach_network_interface
    original_create = EC2Response.create_network_interface
    original_modify = EC2Response.modify_network_interface_attribute
    original_delete = EC2Response.delete_network_interface

    def attach_network_interface(backend: Any, eni_id: str, instance_id: str, device_index: int) -> Any:
        eni = backend.get_network_interface(eni_id)
        instance = backend.get_instance(instance_id)
        if eni.instance is not None:
            raise EC2ClientError("InvalidNetworkInterface.InUse", f"Interface: [{eni_id}] in use.")
        if eni.subnet.availability_zone != instance.placement.zone:
            raise EC2ClientError("InvalidParameterCombination", "You may not attach a network interface to an "
                                 "instance if they are not in the same availability zone")
        if int(device_index) in instance.nics:
            raise EC2ClientError("InvalidParameterValue", f"Instance '{instance_id}' already has an interface "
                                 f"attached at device index '{device_index}'.")
        return original_attach(backend, eni_id, instance_id, device_index)

    def create_network_interface(resp: Any) -> Any:
        token = resp._get_param("ClientToken")
        key = (resp.current_account, resp.region, token)
        with token_lock:  # EC2's idempotency holds for concurrent requests too
            if token and key in tokens and tokens[key] in resp.ec2_backend.enis:
                return ActionResult({"NetworkInterface": resp.ec2_backend.enis[tokens[key]], "ClientToken": token})
            result = original_create(resp)
            if token:
                tokens[key] = result.result["NetworkInterface"].id
            return result

    def modify_network_interface_attribute(resp: Any) -> Any:
        attachment = resp._get_param("Attachment") or {}
        if attachment:
            eni = resp.ec2_backend.get_network_interface(resp._get_param("NetworkInterfaceId"))
            if eni.attachment_id is None or eni.attachment_id != attachment.get("AttachmentId"):
                raise EC2ClientError("InvalidAttachmentID.NotFound",
                                     f"The attachment ID '{attachment.get('AttachmentId')}' does not exist")
            dot = attachment.get("DeleteOnTermination")
            if dot is not None:
                eni.delete_on_termination = dot in (True, "true", "True")
        return original_modify(resp)

    def delete_network_interface(resp: Any) -> Any:
        eni_id = resp._get_param("NetworkInterfaceId")
        eni = resp.ec2_backend.enis.get(eni_id)
        if eni is not None and eni.instance is not None:
            raise EC2ClientError("InvalidNetworkInterface.InUse", f"The network interface '{eni_id}' is currently "
                                 "in use.")
        return original_delete(resp)

    patches.setattr(NetworkInterfaceBackend, "attach_network_interface", attach_network_interface)
    patches.setattr(EC2Response, "delete_network_interface", delete_network_interface)
    patches.setattr(EC2Response, "create_network_interface", create_network_interface)
    patches.setattr(EC2Response, "modify_network_interface_attribute", modify_network_interface_attribute)


def install_serialized_requests(patches: Patches) -> None:
    from moto.core.botocore_stubber import BotocoreStubber

    lock = threading.RLock()
    original = BotocoreStubber.process_request

    def process_request(self: Any, request: Any) -> Any:
        with lock:
            return original(self, request)

    patches.setattr(BotocoreStubber, "process_request", process_request)


# ------------------------------------------------------------------------------------------ the world


@dataclass
class World:
    """VPC, node subnets and Multus subnets (2 networks x 2 AZs), a security group, an ASG with its hooks."""

    ec2: Any
    autoscaling: Any
    lifecycle: LifecycleRecorder
    faults: Faults
    clock: SimClock = field(default_factory=SimClock)
    pending: PendingModel | None = None
    vpc_id: str = ""
    security_group_id: str = ""
    node_subnets: dict[str, str] = field(default_factory=dict)  # az -> subnet
    multus_subnets: dict[str, dict[str, str]] = field(default_factory=dict)  # network -> az -> subnet

    def networks_config(self) -> list[dict[str, Any]]:
        return [{"name": net, "deviceIndex": pos + 1, "subnets": dict(self.multus_subnets[net]),
                 "securityGroupIds": [self.security_group_id]} for pos, net in enumerate(NETWORKS)]

    def env(self) -> dict[str, str]:
        return {"MULTUS_NETWORKS": json.dumps(self.networks_config()), "ASG_NAME": ASG_NAME,
                "OWNER_TAG_VALUE": ASG_NAME, "LAUNCH_HOOK_NAME": LAUNCH_HOOK, "TERMINATE_HOOK_NAME": TERMINATE_HOOK}

    def launch_instance(self, az: str = AZS[0]) -> str:
        """A running instance of the group in `az` (moto has no Pending:Wait, so it is attached to the group)."""
        instance_id = self.ec2.run_instances(
            ImageId=AMI, MinCount=1, MaxCount=1, InstanceType="m5.large", SubnetId=self.node_subnets[az],
            TagSpecifications=[{"ResourceType": "instance",
                                "Tags": [{"Key": "aws:autoscaling:groupName", "Value": ASG_NAME}]}],
        )["Instances"][0]["InstanceId"]
        self.autoscaling.attach_instances(InstanceIds=[instance_id], AutoScalingGroupName=ASG_NAME)
        return instance_id

    def launch_event(self, instance_id: str, *, open_action: bool = True, hook: str = LAUNCH_HOOK) -> dict[str, Any]:
        return self._event(instance_id, "launch", open_action, hook)

    def terminate_event(self, instance_id: str, *, open_action: bool = True,
                        hook: str = TERMINATE_HOOK) -> dict[str, Any]:
        return self._event(instance_id, "terminate", open_action, hook)

    def _event(self, instance_id: str, kind: str, open_action: bool, hook: str) -> dict[str, Any]:
        token = self.lifecycle.open(ASG_NAME, hook, instance_id) if open_action else str(uuid.uuid4())
        transition = "LAUNCHING" if kind == "launch" else "TERMINATING"
        return {
            "version": "0", "id": str(uuid.uuid4()), "source": "aws.autoscaling", "account": "123456789012",
            "detail-type": f"EC2 Instance-{kind} Lifecycle Action", "region": REGION, "time": EVENT_TIME,
            "resources": [f"arn:aws:autoscaling:{REGION}:123456789012:autoScalingGroup:x:autoScalingGroupName/"
                          f"{ASG_NAME}"],
            "detail": {
                "LifecycleActionToken": token, "AutoScalingGroupName": ASG_NAME, "LifecycleHookName": hook,
                "EC2InstanceId": instance_id, "LifecycleTransition": f"autoscaling:EC2_INSTANCE_{transition}",
                "Origin": "EC2", "Destination": "AutoScalingGroup",
            },
        }

    def enis(self, instance_id: str | None = None) -> list[dict[str, Any]]:
        """ENIs carrying our owner tag (of one instance, if given)."""
        filters = [{"Name": "tag:eks-multus/owner", "Values": [ASG_NAME]}]
        if instance_id:
            filters.append({"Name": "tag:eks-multus/instance-id", "Values": [instance_id]})
        return self.ec2.describe_network_interfaces(Filters=filters)["NetworkInterfaces"]

    def all_enis(self) -> list[dict[str, Any]]:
        return self.ec2.describe_network_interfaces()["NetworkInterfaces"]

    def orphans(self) -> list[str]:
        """Multus-subnet ENIs that are not attached to a running instance."""
        multus = {s for per_az in self.multus_subnets.values() for s in per_az.values()}
        running = {i["InstanceId"] for r in self.ec2.describe_instances()["Reservations"] for i in r["Instances"]
                   if i["State"]["Name"] in ("pending", "running")}
        return [e["NetworkInterfaceId"] for e in self.all_enis()
                if e["SubnetId"] in multus and e.get("Attachment", {}).get("InstanceId") not in running]


def assert_has_its_enis(world: World, instance_id: str, az: str) -> list[dict[str, Any]]:
    """The instance has one ENI per network: right subnet, device index, tags, source/dest off, DeleteOnTermination."""
    enis = sorted(world.enis(instance_id), key=lambda e: e["Attachment"]["DeviceIndex"])
    assert len(enis) == len(NETWORKS)
    for pos, (eni, net) in enumerate(zip(enis, NETWORKS, strict=True)):
        tags = {t["Key"]: t["Value"] for t in eni["TagSet"]}
        assert tags == {"node.k8s.amazonaws.com/no_manage": "true", "eks-multus/owner": ASG_NAME,
                        "eks-multus/instance-id": instance_id, "eks-multus/network": net,
                        "eks-multus/device-index": str(pos + 1), "Name": f"{instance_id}-{net}",
                        "eks-multus/launch-event-time": EVENT_TIME}
        assert eni["SubnetId"] == world.multus_subnets[net][az]
        assert eni["Groups"][0]["GroupId"] == world.security_group_id
        assert eni["SourceDestCheck"] is False
        assert eni["Attachment"]["InstanceId"] == instance_id
        assert eni["Attachment"]["DeviceIndex"] == pos + 1
        assert eni["Attachment"]["DeleteOnTermination"] is True
    return enis


def build_world(ec2: Any, autoscaling: Any, patches: Patches) -> World:
    """Create the resources in moto (inside mock_aws) and install the moto gap patches."""
    faults = Faults()
    recorder = LifecycleRecorder()
    install_serialized_requests(patches)
    install_ec2_fidelity(patches)
    faults.install(patches)  # after the fidelity patches: faults wrap them
    recorder.install(patches, faults)
    world = World(ec2=ec2, autoscaling=autoscaling, lifecycle=recorder, faults=faults)
    world.pending = PendingModel(world.clock)
    world.pending.install(patches)  # outermost on attach: a pending instance is refused before anything else
    world.vpc_id = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    world.security_group_id = ec2.create_security_group(
        GroupName="multus", Description="Multus ENIs", VpcId=world.vpc_id)["GroupId"]
    for i, az in enumerate(AZS):
        world.node_subnets[az] = ec2.create_subnet(
            VpcId=world.vpc_id, CidrBlock=f"10.0.{i}.0/24", AvailabilityZone=az)["Subnet"]["SubnetId"]
    for n, net in enumerate(NETWORKS):
        world.multus_subnets[net] = {
            az: ec2.create_subnet(VpcId=world.vpc_id, CidrBlock=f"10.0.{10 * (n + 1) + i}.0/24",
                                  AvailabilityZone=az)["Subnet"]["SubnetId"]
            for i, az in enumerate(AZS)
        }
    lt = ec2.create_launch_template(LaunchTemplateName="multus-nodes", LaunchTemplateData={
        "ImageId": AMI, "InstanceType": "m5.large"})["LaunchTemplate"]["LaunchTemplateId"]
    autoscaling.create_auto_scaling_group(
        AutoScalingGroupName=ASG_NAME, MinSize=0, MaxSize=100, DesiredCapacity=0,
        LaunchTemplate={"LaunchTemplateId": lt, "Version": "$Latest"},
        VPCZoneIdentifier=",".join(world.node_subnets.values()))
    for hook, transition, default in ((LAUNCH_HOOK, "LAUNCHING", "ABANDON"),
                                      (TERMINATE_HOOK, "TERMINATING", "CONTINUE")):
        autoscaling.put_lifecycle_hook(
            AutoScalingGroupName=ASG_NAME, LifecycleHookName=hook, HeartbeatTimeout=300, DefaultResult=default,
            LifecycleTransition=f"autoscaling:EC2_INSTANCE_{transition}")
    return world
