"""Pure logic of the ENI lifecycle Lambda: plain data in, plain data out, no AWS calls.

- `load_config` turns the function's environment into a typed `Config`.
- `parse_event` turns an EventBridge lifecycle-action event into a `LifecycleEvent`.
- `plan_launch` decides, from the instance and the ENIs already tagged for it, which ENIs to create, attach and
  fix so that the instance ends with one ENI per Multus network at that network's device index.
- `plan_terminate` decides which of our ENIs of a terminating instance to delete (only unattached ones: attached
  ENIs go with the instance through DeleteOnTermination, so a terminate never cuts a node's Multus traffic).
- `plan_sweep` decides which `available` ENIs of ours, left when every attempt failed, the sweeper deletes.
- `is_transient` tells an error worth retrying (throttling, 5xx, eventual consistency) from a final one.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

# Tags put on every ENI at creation. The VPC CNI leaves ENIs tagged no_manage=true alone.
NO_MANAGE_TAG = "node.k8s.amazonaws.com/no_manage"
OWNER_TAG = "eks-multus/owner"
INSTANCE_TAG = "eks-multus/instance-id"
NETWORK_TAG = "eks-multus/network"
DEVICE_INDEX_TAG = "eks-multus/device-index"
# The lifecycle event's time (ISO 8601, the same on every delivery of one event, so a retried
# CreateNetworkInterface with the same ClientToken has identical parameters). The sweeper measures age from it.
EVENT_TIME_TAG = "eks-multus/launch-event-time"

# Error codes worth another attempt inside the same invocation: throttling, server-side and eventual-consistency
# errors. Everything else (UnauthorizedOperation, InsufficientFreeAddressesInSubnet, AttachmentLimitExceeded...)
# means the instance cannot get its ENIs now: clean up and ABANDON.
TRANSIENT_CODES = frozenset({
    "RequestLimitExceeded", "Throttling", "ThrottlingException", "RequestThrottled", "InternalError",
    "InternalFailure", "ServiceUnavailable", "Unavailable", "RequestTimeout", "RequestTimeoutException",
    "IncorrectState", "IncorrectInstanceState", "InvalidNetworkInterfaceID.NotFound", "ResourceContention",
})

LAUNCHING = "autoscaling:EC2_INSTANCE_LAUNCHING"
TERMINATING = "autoscaling:EC2_INSTANCE_TERMINATING"
DETAIL_TYPES = {
    "EC2 Instance-launch Lifecycle Action": LAUNCHING,
    "EC2 Instance-terminate Lifecycle Action": TERMINATING,
}
KINDS = {LAUNCHING: "launch", TERMINATING: "terminate"}

# Instance states in which an instance will never take our ENIs.
GONE_STATES = frozenset({"shutting-down", "terminated", "stopping", "stopped"})
# Attachment states that hold a device index and will end attached.
LIVE_ATTACHMENT = frozenset({"attaching", "attached"})


# ---------------------------------------------------------------------------------------------------- config


class ConfigError(ValueError):
    """The function's environment is missing or invalid. `asg_name` is set when ASG_NAME itself was readable."""

    def __init__(self, message: str, asg_name: str | None = None) -> None:
        super().__init__(message)
        self.asg_name = asg_name


@dataclass(frozen=True)
class Network:
    name: str
    device_index: int
    subnets: Mapping[str, str]  # availability zone -> subnet id
    security_group_ids: tuple[str, ...]


@dataclass(frozen=True)
class Config:
    asg_name: str
    owner: str
    networks: tuple[Network, ...]
    launch_hook: str = ""
    terminate_hook: str = ""


def served_hooks(env: Mapping[str, str]) -> dict[str, str]:
    """kind ("launch"/"terminate") -> the lifecycle hook name this function serves (LAUNCH_HOOK_NAME,
    TERMINATE_HOOK_NAME). Kinds whose variable is unset are missing: their events are never completed."""
    hooks = {"launch": (env.get("LAUNCH_HOOK_NAME") or "").strip(),
             "terminate": (env.get("TERMINATE_HOOK_NAME") or "").strip()}
    return {kind: name for kind, name in hooks.items() if name}


def _nonempty_str(value: Any) -> bool:
    return isinstance(value, str) and value.strip() != ""


def _parse_network(pos: int, item: Any) -> Network:
    where = f"MULTUS_NETWORKS[{pos}]"
    if not isinstance(item, dict):
        raise ValueError(f"{where} must be an object")
    name, index, subnets, groups = (item.get(k) for k in ("name", "deviceIndex", "subnets", "securityGroupIds"))
    if not _nonempty_str(name):
        raise ValueError(f"{where}.name must be a non-empty string")
    if not isinstance(index, int) or isinstance(index, bool) or index < 1:
        raise ValueError(f"{where}.deviceIndex must be an integer >= 1 (0 is the primary ENI), got {index!r}")
    if not isinstance(subnets, dict) or not subnets:
        raise ValueError(f"{where}.subnets must be a non-empty object of availability zone -> subnet id")
    for az, subnet in subnets.items():
        if not _nonempty_str(az) or not _nonempty_str(subnet):
            raise ValueError(f"{where}.subnets must map availability zone names to subnet ids")
    if not isinstance(groups, list) or not groups or not all(_nonempty_str(g) for g in groups):
        raise ValueError(f"{where}.securityGroupIds must be a non-empty list of security group ids")
    return Network(name=name, device_index=index, subnets=dict(subnets), security_group_ids=tuple(groups))


def load_config(env: Mapping[str, str]) -> Config:
    """Read ASG_NAME, OWNER_TAG_VALUE (defaults to ASG_NAME) and MULTUS_NETWORKS (JSON list)."""
    asg_name = (env.get("ASG_NAME") or "").strip()
    if not asg_name:
        raise ConfigError("ASG_NAME is not set")
    owner = (env.get("OWNER_TAG_VALUE") or "").strip() or asg_name
    raw = env.get("MULTUS_NETWORKS")
    if raw is None or not raw.strip():
        raise ConfigError("MULTUS_NETWORKS is not set", asg_name)
    try:
        items = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"MULTUS_NETWORKS is not valid JSON: {exc}", asg_name) from None
    if not isinstance(items, list) or not items:
        raise ConfigError("MULTUS_NETWORKS must be a non-empty JSON list", asg_name)
    try:
        networks = tuple(_parse_network(pos, item) for pos, item in enumerate(items))
    except ValueError as exc:
        raise ConfigError(str(exc), asg_name) from None
    for attr, label in (("name", "names"), ("device_index", "device indexes")):
        values = [getattr(n, attr) for n in networks]
        if len(set(values)) != len(values):
            raise ConfigError(f"MULTUS_NETWORKS has duplicate {label}: {values}", asg_name)
    hooks = served_hooks(env)
    # The launch hook is required. TERMINATE_HOOK_NAME is optional: without it the function serves no terminate
    # hook (the node group's terminate hook belongs to the node drainer) and every terminate event is foreign.
    if "launch" not in hooks:
        raise ConfigError("LAUNCH_HOOK_NAME is not set", asg_name)
    return Config(asg_name=asg_name, owner=owner, networks=networks, launch_hook=hooks["launch"],
                  terminate_hook=hooks.get("terminate", ""))


# ---------------------------------------------------------------------------------------------------- event


class EventError(ValueError):
    """The event is not a usable lifecycle action. `target` holds whatever fields it did carry."""

    def __init__(self, message: str, target: Mapping[str, str | None]) -> None:
        super().__init__(message)
        self.target = dict(target)

    def completable(self) -> bool:
        """CompleteLifecycleAction needs the group, the hook and a token or an instance id."""
        t = self.target
        return bool(t.get("asg_name") and t.get("hook_name") and (t.get("token") or t.get("instance_id")))


@dataclass(frozen=True)
class LifecycleEvent:
    kind: str  # "launch" | "terminate"
    instance_id: str
    asg_name: str
    hook_name: str
    token: str
    time: str = ""  # the event's own time (EventBridge "time"), "" if absent


def parse_event(event: Any) -> LifecycleEvent:
    if not isinstance(event, dict):
        raise EventError(f"event is a {type(event).__name__}, not an object", {})
    detail = event.get("detail")
    if not isinstance(detail, dict):
        raise EventError("event has no detail object", {})

    def text(key: str) -> str | None:
        value = detail.get(key)
        return value.strip() if _nonempty_str(value) else None

    transition = text("LifecycleTransition") or DETAIL_TYPES.get(str(event.get("detail-type")))
    target = {
        "kind": KINDS.get(transition or ""),
        "instance_id": text("EC2InstanceId"),
        "asg_name": text("AutoScalingGroupName"),
        "hook_name": text("LifecycleHookName"),
        "token": text("LifecycleActionToken"),
    }
    if target["kind"] is None:
        raise EventError(f"not a launch or terminate lifecycle action (transition {transition!r})", target)
    missing = [k for k in ("instance_id", "asg_name", "hook_name", "token") if not target[k]]
    if missing:
        raise EventError(f"event detail lacks {', '.join(missing)}", target)
    when = event.get("time")
    return LifecycleEvent(**target, time=when.strip() if _nonempty_str(when) else "")  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------------- state


@dataclass(frozen=True)
class InstanceAttachment:
    """One ENI as DescribeInstances lists it on the instance."""

    eni_id: str
    device_index: int
    attachment_id: str | None
    status: str
    delete_on_termination: bool


@dataclass(frozen=True)
class Instance:
    id: str
    availability_zone: str
    state: str
    attachments: tuple[InstanceAttachment, ...] = ()


@dataclass(frozen=True)
class EniAttachment:
    instance_id: str | None
    device_index: int | None
    attachment_id: str | None
    status: str
    delete_on_termination: bool


@dataclass(frozen=True)
class Eni:
    """One of our ENIs as DescribeNetworkInterfaces returns it."""

    id: str
    subnet_id: str
    status: str  # available | in-use | attaching | detaching | pending ...
    network: str | None  # eks-multus/network tag
    source_dest_check: bool
    attachment: EniAttachment | None = None


# ---------------------------------------------------------------------------------------------------- launch


class PlanError(Exception):
    """The instance cannot get its ENIs (fail cleanly: clean up, ABANDON)."""


@dataclass(frozen=True)
class EniStep:
    """What to do for one network. eni_id is None when the ENI must be created."""

    network: Network
    subnet_id: str
    eni_id: str | None
    attachment_id: str | None
    create: bool
    wait_available: bool
    disable_source_dest_check: bool
    attach: bool
    set_delete_on_termination: bool

    @property
    def done(self) -> bool:
        return not (self.create or self.wait_available or self.disable_source_dest_check or self.attach
                    or self.set_delete_on_termination)


@dataclass(frozen=True)
class LaunchPlan:
    steps: tuple[EniStep, ...]
    strays: tuple[str, ...] = ()  # unattached ENIs of ours for this instance that no step uses: delete
    wait_running: bool = False  # attach only works on a running instance

    @property
    def done(self) -> bool:
        return all(s.done for s in self.steps) and not self.strays


def client_token(instance_id: str, network: str) -> str:
    """Deterministic CreateNetworkInterface idempotency token (at most 64 ASCII characters)."""
    digest = hashlib.sha256(f"{instance_id}/{network}".encode()).hexdigest()
    return f"eks-multus-{digest[:48]}"


def eni_tags(*, owner: str, instance_id: str, network: Network, event_time: str = "") -> dict[str, str]:
    tags = {
        NO_MANAGE_TAG: "true",
        OWNER_TAG: owner,
        INSTANCE_TAG: instance_id,
        NETWORK_TAG: network.name,
        DEVICE_INDEX_TAG: str(network.device_index),
        "Name": f"{instance_id}-{network.name}",
    }
    if event_time:
        tags[EVENT_TIME_TAG] = event_time
    return tags


def is_transient(code: str) -> bool:
    """True for an error another attempt may not meet (throttling, 5xx, eventual consistency)."""
    return code in TRANSIENT_CODES or code.endswith(("ConnectionError", "ConnectTimeoutError", "ReadTimeoutError",
                                                     "EndpointConnectionError"))


def _is_on(eni: Eni, instance_id: str) -> bool:
    a = eni.attachment
    return a is not None and a.instance_id == instance_id and a.status in LIVE_ATTACHMENT


def plan_launch(networks: tuple[Network, ...], instance: Instance, owned: list[Eni]) -> LaunchPlan:
    """ENIs to create/attach/fix so that `instance` has one ENI per network at the network's device index.

    `owned` are the ENIs carrying our owner tag and this instance's id tag (from earlier attempts, or done).
    Raises PlanError when that cannot be achieved.
    """
    if instance.state in GONE_STATES:
        raise PlanError(f"instance {instance.id} is {instance.state}")
    by_index = {a.device_index: a for a in instance.attachments if a.status in LIVE_ATTACHMENT}
    used: set[str] = set()
    steps: list[EniStep] = []
    for net in networks:
        subnet_id = net.subnets.get(instance.availability_zone)
        if subnet_id is None:
            raise PlanError(f"network {net.name} has no subnet in {instance.availability_zone}")
        mine = [e for e in owned if e.network == net.name]
        for eni in mine:
            if eni.attachment and eni.attachment.status in LIVE_ATTACHMENT:
                if eni.attachment.instance_id != instance.id:
                    raise PlanError(f"{eni.id} ({net.name}) is attached to {eni.attachment.instance_id}")
                if eni.attachment.device_index != net.device_index:
                    raise PlanError(f"{eni.id} ({net.name}) is attached at device index "
                                    f"{eni.attachment.device_index}, expected {net.device_index}")
        keeper = next((e for e in mine if _is_on(e, instance.id)), None)
        if keeper is None:
            keeper = next((e for e in mine if e.attachment is None and e.subnet_id == subnet_id
                           and e.status in ("available", "pending")), None)
        occupant = by_index.get(net.device_index)
        if occupant is not None and (keeper is None or occupant.eni_id != keeper.id):
            raise PlanError(f"device index {net.device_index} ({net.name}) of {instance.id} is taken by "
                            f"{occupant.eni_id}, which is not ours")
        if keeper is None:
            steps.append(EniStep(net, subnet_id, None, None, create=True, wait_available=False,
                                 disable_source_dest_check=True, attach=True, set_delete_on_termination=True))
            continue
        used.add(keeper.id)
        attached = keeper.attachment is not None and keeper.attachment.instance_id == instance.id
        steps.append(EniStep(
            net, subnet_id, keeper.id, keeper.attachment.attachment_id if attached else None,
            create=False,
            wait_available=keeper.status == "pending",
            disable_source_dest_check=keeper.source_dest_check,
            attach=not attached,
            set_delete_on_termination=not (attached and keeper.attachment.delete_on_termination),
        ))
    strays = tuple(e.id for e in owned if e.id not in used and e.attachment is None)
    attaches = any(s.attach for s in steps)
    return LaunchPlan(steps=tuple(steps), strays=strays, wait_running=attaches and instance.state == "pending")


# ---------------------------------------------------------------------------------------------------- terminate


@dataclass(frozen=True)
class TerminatePlan:
    delete: tuple[str, ...]  # unattached ENIs of ours for this instance (left by a failed launch attempt)
    set_delete_on_termination: tuple[tuple[str, str], ...]  # (eni, attachment) attached here without it
    skipped: tuple[str, ...]  # notes about ENIs left alone


def plan_terminate(instance_id: str, owned: list[Eni]) -> TerminatePlan:
    """Never detach: an attached ENI keeps carrying the node's Multus traffic until the instance is gone (other
    hooks, such as a drainer, may hold the instance in Terminating:Wait for a long time) and DeleteOnTermination
    removes it then. Only ENIs that are attached nowhere are deleted now."""
    delete: list[str] = []
    fix: list[tuple[str, str]] = []
    skipped: list[str] = []
    for eni in owned:
        a = eni.attachment
        if a is None:
            if eni.status == "available":
                delete.append(eni.id)
            else:
                skipped.append(f"{eni.id} is {eni.status or 'in an unknown state'}; the sweeper removes it later")
        elif a.instance_id not in (None, instance_id):
            skipped.append(f"{eni.id} is attached to {a.instance_id}")
        elif a.status in LIVE_ATTACHMENT and not a.delete_on_termination and a.attachment_id:
            fix.append((eni.id, a.attachment_id))
        elif a.status not in LIVE_ATTACHMENT:
            skipped.append(f"{eni.id} is {a.status}; the sweeper removes it once available")
    return TerminatePlan(tuple(delete), tuple(fix), tuple(skipped))


# ---------------------------------------------------------------------------------------------------- sweep


@dataclass(frozen=True)
class SweepCandidate:
    eni_id: str
    instance_id: str | None  # eks-multus/instance-id tag
    event_time: float | None  # eks-multus/launch-event-time as epoch seconds, None if absent or unreadable


def parse_time(value: str | None) -> float | None:
    """ISO 8601 (EventBridge's "2026-11-26T05:00:00Z") to epoch seconds; None if absent or unreadable."""
    from datetime import datetime

    if not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def plan_sweep(candidates: list[SweepCandidate], instance_states: Mapping[str, str], now: float, *,
               min_age: float, stale_age: float) -> tuple[list[str], list[str]]:
    """(ENIs to delete, notes on the ones kept) among `available` ENIs of ours.

    An ENI is deleted when it is older than `min_age` and its instance is gone (not pending/running: no launch
    can attach it any more), or older than `stale_age` whatever its instance (no launch attempt lives that long:
    the event's maximum age plus the function's timeout is shorter). Without a readable time tag the age is
    unknown: it is deleted only when its instance is gone.
    """
    delete: list[str] = []
    kept: list[str] = []
    for c in candidates:
        state = instance_states.get(c.instance_id or "", "gone")
        alive = state in ("pending", "running")
        age = None if c.event_time is None else now - c.event_time
        if not alive and (age is None or age >= min_age):
            delete.append(c.eni_id)
        elif age is not None and age >= stale_age:
            delete.append(c.eni_id)
        else:
            kept.append(f"{c.eni_id}: instance {c.instance_id} {state}, age "
                        f"{'unknown' if age is None else f'{age:.0f}s'}")
    return delete, kept
