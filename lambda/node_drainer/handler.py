"""Lambda entry point (`node_drainer.handler.handler`): drain a terminating node, then complete its action.

Input: the EventBridge "EC2 Instance-terminate Lifecycle Action" of this group's drain hook (the rule matches only
that hook name; the handler checks again). Any other hook, group or transition is ignored with one log line and
no AWS or Kubernetes call: the ENI function's hooks, aws-node-termination-handler's, anyone's.

For its own hook: DescribeInstances gives the node name (the instance's private DNS name, which nodeadm registers),
`drain.drain` cordons and evicts until done or the deadline, heartbeating the action every HEARTBEAT_SECONDS; then
CompleteLifecycleAction with CONTINUE, always (on a terminate hook ABANDON would also terminate, but would skip the
group's other terminate hooks). The deadline is DRAIN_DEADLINE_SECONDS or the invocation's remaining time less a
margin, whichever is earlier, so completion always happens inside the invocation. Exactly one JSON log line per
invocation says what happened. A completion that fails (other than "no active lifecycle action": done or timed out
elsewhere) raises after the log line, so Lambda retries the idempotent invocation.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from typing import Any

from node_drainer.drain import ActionEnded, KubeError, drain

TERMINATE_DETAIL = "EC2 Instance-terminate Lifecycle Action"
MARGIN_SECONDS = 30.0


class _Stdout(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        sys.stdout.write(record.getMessage() + "\n")
        sys.stdout.flush()


LOG = logging.getLogger("node_drainer")
LOG.setLevel(logging.INFO)
if not any(h.get_name() == "node_drainer-stdout" for h in LOG.handlers):
    _out = _Stdout()
    _out.set_name("node_drainer-stdout")
    LOG.addHandler(_out)
LOG.propagate = False


class CompletionFailed(RuntimeError):
    """CompleteLifecycleAction failed for a reason other than the action having ended; Lambda retries."""


class Clock:
    def monotonic(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


def _not_active(exc: Exception) -> bool:
    """Auto Scaling's answer when the action was completed elsewhere or timed out."""
    return "No active Lifecycle Action" in str(exc)


def _kube_from_env(env: Any) -> Any:
    import base64

    import boto3

    from node_drainer.kube import KubeClient, eks_token

    session = boto3.session.Session()
    region = env.get("AWS_REGION") or session.region_name
    ca = base64.b64decode(env["CLUSTER_CA"]).decode() if env.get("CLUSTER_CA") else None
    return KubeClient(env["CLUSTER_ENDPOINT"], lambda: eks_token(
        env["CLUSTER_NAME"], region, session.get_credentials().get_frozen_credentials()), ca_pem=ca)


def handler(event: Any, context: Any = None, *, ec2: Any = None, autoscaling: Any = None, kube: Any = None,
            clock: Any = None, env: Any = None) -> dict[str, Any]:
    """Lambda handler; the keyword arguments are for tests (Lambda calls handler(event, context))."""
    env = os.environ if env is None else env
    clock = clock or Clock()
    detail = event.get("detail") if isinstance(event, dict) else None
    detail = detail if isinstance(detail, dict) else {}
    record: dict[str, Any] = {"action": "drain", "asg": detail.get("AutoScalingGroupName"),
                              "hook": detail.get("LifecycleHookName"), "instance": detail.get("EC2InstanceId")}
    own = (env.get("ASG_NAME"), env.get("DRAIN_HOOK_NAME"))
    if (isinstance(event, dict) and event.get("detail-type") != TERMINATE_DETAIL) or \
            (record["asg"], record["hook"]) != own or \
            detail.get("LifecycleTransition") != "autoscaling:EC2_INSTANCE_TERMINATING" or \
            not record["instance"] or not detail.get("LifecycleActionToken"):
        record.update(result="ignored", reason=f"not a terminate action of hook {own[1]!r} on {own[0]!r}; "
                                               "left for its owner")
        _emit(record)
        return record
    import boto3

    ec2 = ec2 or boto3.client("ec2")
    autoscaling = autoscaling or boto3.client("autoscaling")
    action = {"AutoScalingGroupName": record["asg"], "LifecycleHookName": record["hook"],
              "LifecycleActionToken": detail["LifecycleActionToken"], "InstanceId": record["instance"]}
    remaining = float(env.get("DRAIN_DEADLINE_SECONDS") or 600)
    get_remaining = getattr(context, "get_remaining_time_in_millis", None)
    if callable(get_remaining):
        remaining = min(remaining, get_remaining() / 1000 - MARGIN_SECONDS)
    deadline = clock.monotonic() + remaining

    def heartbeat() -> None:
        try:
            autoscaling.record_lifecycle_action_heartbeat(**action)
        except Exception as exc:  # noqa: BLE001 - botocore ClientError after its own retries
            if _not_active(exc):
                raise ActionEnded(str(exc)) from exc
            record.setdefault("errors", []).append(f"RecordLifecycleActionHeartbeat: {exc}")

    try:
        node_name = _node_name(ec2, record["instance"])
        going_away = _group_going_away(autoscaling, record["asg"])
        if node_name is None:
            record.update(node=None, drain="node-absent")
        elif going_away:
            # `cdk destroy` (or a scale to 0): every node leaves, no pod has anywhere to go, and evictions that a
            # PDB refuses would only hold each node until the deadline.
            record.update(node=node_name, drain="group-going-away", reason=going_away)
        else:
            kube = kube or _kube_from_env(env)
            taint = env.get("STARTUP_TAINT_KEY") or ""
            report = drain(kube, node_name=node_name, instance_id=record["instance"],
                           clock=clock, deadline=deadline, heartbeat=heartbeat,
                           heartbeat_seconds=float(env.get("HEARTBEAT_SECONDS") or 60),
                           joining_peers=lambda: joining_peers(autoscaling, ec2, kube, record["asg"],
                                                               record["instance"], taint),
                           peer_wait_seconds=float(env.get("PEER_WAIT_SECONDS") or 0))
            record.update(report.as_dict())
    except (KubeError, Exception) as exc:  # noqa: BLE001 - a node we cannot drain still has to go
        record.update(drain="error", reason=f"{type(exc).__name__}: {exc}")
    if record.get("drain") == "action-ended":
        record.update(result="ended", lifecycle="not-active")
        _emit(record)
        return record
    record["result"] = "CONTINUE"
    try:
        autoscaling.complete_lifecycle_action(**action, LifecycleActionResult="CONTINUE")
        record["lifecycle"] = "completed"
    except Exception as exc:  # noqa: BLE001
        record["lifecycle"] = "not-active" if _not_active(exc) else "failed"
        record.setdefault("errors", []).append(f"CompleteLifecycleAction: {exc}")
    _emit(record)
    if record["lifecycle"] == "failed":
        raise CompletionFailed(f"CompleteLifecycleAction failed for {record['instance']}")
    return record


def _group_going_away(autoscaling: Any, asg_name: str) -> str:
    """Why no node of the group will stay ('' when some will): the group is being deleted or scaled to 0."""
    groups = autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=[asg_name])["AutoScalingGroups"]
    if not groups:
        return "the Auto Scaling group no longer exists"
    group = groups[0]
    if group.get("Status") == "Delete in progress":
        return "the Auto Scaling group is being deleted"
    if group.get("DesiredCapacity", 1) == 0 or group.get("MaxSize", 1) == 0:
        return "the Auto Scaling group is scaled to 0"
    return ""


def joining_peers(autoscaling: Any, ec2: Any, kube: Any, asg_name: str, instance_id: str, taint_key: str) -> list[str]:
    """Why the group's other in-service nodes cannot take pods yet: not registered, not Ready, or still carrying
    the Multus startup taint (empty list: all can). One DescribeAutoScalingGroups, one DescribeInstances, one GET
    per peer node (the ClusterRole allows get, not list, on nodes)."""
    groups = autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=[asg_name])["AutoScalingGroups"]
    peers = [i["InstanceId"] for g in groups for i in g.get("Instances", [])
             if i["InstanceId"] != instance_id and i.get("LifecycleState") == "InService"]
    if not peers:
        return []
    reservations = ec2.describe_instances(InstanceIds=peers)["Reservations"]
    names = {i["InstanceId"]: i.get("PrivateDnsName") for r in reservations for i in r["Instances"]}
    reasons = []
    for peer in peers:
        node = kube.get_node(names[peer]) if names.get(peer) else None
        if node is None:
            reasons.append(f"{peer}: no node registered yet")
            continue
        ready = any(c.get("type") == "Ready" and c.get("status") == "True"
                    for c in node.get("status", {}).get("conditions", []))
        if not ready:
            reasons.append(f"{names[peer]}: not Ready")
        elif taint_key and any(t.get("key") == taint_key for t in node.get("spec", {}).get("taints") or []):
            reasons.append(f"{names[peer]}: {taint_key} taint still set")
    return reasons


def _node_name(ec2: Any, instance_id: str) -> str | None:
    """The node name nodeadm registers: the instance's private DNS name (None if the instance is gone)."""
    try:
        reservations = ec2.describe_instances(InstanceIds=[instance_id])["Reservations"]
    except Exception as exc:  # noqa: BLE001
        if "InvalidInstanceID" in str(exc):
            return None
        raise
    instances = [i for r in reservations for i in r["Instances"]]
    return (instances[0].get("PrivateDnsName") or None) if instances else None


def _emit(record: dict[str, Any]) -> None:
    bad = record.get("drain") in ("error", "deadline", "node-mismatch") or record.get("lifecycle") == "failed"
    LOG.log(logging.WARNING if bad else logging.INFO, json.dumps(record, sort_keys=True, default=str))
