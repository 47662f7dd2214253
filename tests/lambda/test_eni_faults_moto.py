"""Fault matrix: every way an invocation can go wrong ends with a definite lifecycle result and no orphan ENI.

Faults are injected at moto's response layer (eni_moto_world.Faults), so the Lambda's real, moto-backed boto3
call sees them as service errors, including botocore's own retries of throttling errors.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from eni_moto_world import ASG_NAME, AZS, NETWORKS, assert_has_its_enis

NONE = "none"  # no ENI of ours is left for the instance
COMPLETE = "complete"  # the instance has all its ENIs, attached, DeleteOnTermination on


@dataclass
class Case:
    id: str
    # (world, instance id, event, monkeypatch) -> the event to deliver (possibly changed)
    setup: Callable[[Any, str, dict, Any], dict]
    sent: list[str]  # lifecycle results sent for the instance, in order ([] = no lifecycle call)
    enis: str = NONE
    reason: str = ""  # a substring of the logged reason
    check: Callable[[Any, str, dict], None] | None = None
    az: str = AZS[0]
    faults_fire: bool = True
    extra: dict = field(default_factory=dict)


def subnet_param(world, net, az=AZS[0]):
    subnet = world.multus_subnets[net][az]
    return lambda resp: resp._get_param("SubnetId") == subnet


def eni_of(world, instance_id, net):
    found = [e for e in world.enis(instance_id) if {"Key": "eks-multus/network", "Value": net} in e["TagSet"]]
    return found[0]["NetworkInterfaceId"] if found else None


def fault(action, code, **kw):
    def setup(world, instance_id, event, mp):
        world.faults.add(action, code, **{k: (v(world) if k == "when" else v) for k, v in kw.items()})
        return event

    return setup


def set_env(**values):
    def setup(world, instance_id, event, mp):
        for key, value in values.items():
            if value is None:
                mp.delenv(key, raising=False)
            else:
                mp.setenv(key, value(world) if callable(value) else value)
        return event

    return setup


def networks_env(mutate):
    def value(world):
        nets = world.networks_config()
        mutate(world, nets)
        return json.dumps(nets)

    return set_env(MULTUS_NETWORKS=value)


def edit_event(fn):
    def setup(world, instance_id, event, mp):
        fn(event)
        return event

    return setup


def instance_terminated(world, instance_id, event, mp):
    world.ec2.terminate_instances(InstanceIds=[instance_id])
    return event


def unknown_instance(world, instance_id, event, mp):
    event["detail"]["EC2InstanceId"] = "i-0000000000000dead"
    world.lifecycle.active[event["detail"]["LifecycleActionToken"]] = (ASG_NAME, event["detail"][
        "LifecycleHookName"], "i-0000000000000dead")
    return event


def foreign_eni_at_index_2(world, instance_id, event, mp):
    foreign = world.ec2.create_network_interface(SubnetId=world.node_subnets[AZS[0]])["NetworkInterface"]
    world.ec2.attach_network_interface(NetworkInterfaceId=foreign["NetworkInterfaceId"], InstanceId=instance_id,
                                       DeviceIndex=2)
    world.extra = foreign["NetworkInterfaceId"]
    return event


def foreign_eni_untouched(world, instance_id, record):
    eni = world.ec2.describe_network_interfaces(NetworkInterfaceIds=[world.extra])["NetworkInterfaces"][0]
    assert eni["Attachment"]["InstanceId"] == instance_id and eni["Attachment"]["DeviceIndex"] == 2


def both(*setups):
    def setup(world, instance_id, event, mp):
        for s in setups:
            event = s(world, instance_id, event, mp)
        return event

    return setup


def attached_eni_left_to_delete_on_termination(world, instance_id, record):
    assert any("DetachNetworkInterface" in e for e in record["errors"])
    (eni,) = world.enis(instance_id)
    assert eni["Attachment"]["DeleteOnTermination"] is True  # goes with the abandoned instance
    world.ec2.terminate_instances(InstanceIds=[instance_id])
    assert world.enis(instance_id) == []


def logged_completion_failure(world, instance_id, record):
    assert record["lifecycle"] == "failed"
    assert any("CompleteLifecycleAction failed: ResourceContention" in e for e in record["errors"])


def only_two_creates_survive(world, instance_id, record):
    assert len(record["created"]) == 2 == len(set(record["created"]))
    assert len(world.enis(instance_id)) == 2


def fired_twice(world, instance_id, record):
    assert world.faults.fired == ["AttachNetworkInterface", "AttachNetworkInterface"]


CASES = [
    Case("create fails", fault("CreateNetworkInterface", "UnauthorizedOperation"), ["ABANDON"],
         reason="CreateNetworkInterface failed: UnauthorizedOperation"),
    Case("subnet out of addresses (second network)",
         fault("CreateNetworkInterface", "InsufficientFreeAddressesInSubnet",
               when=lambda w: subnet_param(w, NETWORKS[1])),
         ["ABANDON"], reason="InsufficientFreeAddressesInSubnet",
         check=lambda w, i, r: (len(r["created"]) == 1 and r["deleted"] == r["created"]) or pytest.fail(str(r))),
    Case("attach fails (second network, first one attached)",
         fault("AttachNetworkInterface", "AttachmentLimitExceeded",
               when=lambda w: lambda resp: resp._get_param("DeviceIndex") in (2, "2")),
         ["ABANDON"], reason="AttachNetworkInterface failed: AttachmentLimitExceeded",
         check=lambda w, i, r: (len(r["attached"]) == 1 and sorted(r["deleted"]) == sorted(r["created"]))
         or pytest.fail(str(r))),
    Case("source/dest check modify fails",
         fault("ModifyNetworkInterfaceAttribute", "InvalidParameterValue",
               when=lambda w: lambda resp: resp._get_param("SourceDestCheck") is not None),
         ["ABANDON"], reason="SourceDestCheck failed"),
    Case("DeleteOnTermination modify fails",
         fault("ModifyNetworkInterfaceAttribute", "InvalidParameterValue",
               when=lambda w: lambda resp: bool(resp._get_param("Attachment"))),
         ["ABANDON"], reason="DeleteOnTermination failed"),
    Case("attach throttled twice, then succeeds (botocore adaptive retries)",
         fault("AttachNetworkInterface", "RequestLimitExceeded", times=2), ["CONTINUE"], COMPLETE,
         check=fired_twice),
    Case("create response lost after EC2 created it (ClientToken makes the retry idempotent)",
         fault("CreateNetworkInterface", "RequestLimitExceeded", after=True), ["CONTINUE"], COMPLETE,
         check=only_two_creates_survive),
    Case("instance terminated before the event arrived", instance_terminated, ["ABANDON"], reason="is terminated",
         faults_fire=False),
    Case("instance never existed", unknown_instance, [], reason="does not exist", faults_fire=False,
         extra={"results_for": "i-0000000000000dead", "sent": ["ABANDON"]}),
    Case("no Multus subnet for the instance's AZ",
         networks_env(lambda w, nets: nets[1]["subnets"].pop(AZS[0])), ["ABANDON"],
         reason=f"multus2 has no subnet in {AZS[0]}", faults_fire=False),
    Case("config maps the AZ to a subnet of another AZ (EC2 refuses the attach)",
         networks_env(lambda w, nets: nets[1]["subnets"].update({AZS[0]: w.multus_subnets[NETWORKS[1]][AZS[1]]})),
         ["ABANDON"], reason="InvalidParameterCombination", faults_fire=False),
    Case("device index taken by an ENI that is not ours", foreign_eni_at_index_2, ["ABANDON"],
         reason="device index 2 (multus2)", check=foreign_eni_untouched, faults_fire=False),
    Case("malformed event without detail", edit_event(lambda e: e.pop("detail")), [], reason="malformed event",
         faults_fire=False, extra={"result": "ignored"}),
    Case("malformed event without instance id (token still completes it)",
         edit_event(lambda e: e["detail"].pop("EC2InstanceId")), [], reason="lacks instance_id",
         faults_fire=False, extra={"token_sent": "ABANDON"}),
    Case("missing ASG_NAME", set_env(ASG_NAME=None), ["ABANDON"], reason="ASG_NAME is not set", faults_fire=False),
    Case("MULTUS_NETWORKS is not JSON", set_env(MULTUS_NETWORKS="[{not json"), ["ABANDON"],
         reason="not valid JSON", faults_fire=False),
    Case("event for another Auto Scaling group",
         edit_event(lambda e: e["detail"].update(AutoScalingGroupName="someone-else")), [],
         reason="event for someone-else", faults_fire=False, extra={"result": "ignored"}),
    Case("DescribeInstances fails", fault("DescribeInstances", "UnauthorizedOperation"), ["ABANDON"],
         reason="DescribeInstances failed"),
    Case("attach fails and the cleanup's detach fails too",
         both(fault("AttachNetworkInterface", "AttachmentLimitExceeded",
                    when=lambda w: lambda resp: resp._get_param("DeviceIndex") in (2, "2")),
              fault("DetachNetworkInterface", "UnauthorizedOperation", times=None)),
         ["ABANDON"], "one left", reason="AttachmentLimitExceeded", check=attached_eni_left_to_delete_on_termination),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_launch_fault(world, run, monkeypatch, case):
    instance_id = world.launch_instance(case.az)
    event = case.setup(world, instance_id, world.launch_event(instance_id), monkeypatch)
    record = run(event)

    assert case.reason in (record["reason"] or ""), record
    results_for = case.extra.get("results_for", instance_id)
    if "token_sent" in case.extra:  # completed by token (no instance id in the call)
        assert [c["result"] for c in world.lifecycle.calls] == [case.extra["token_sent"]]
        assert world.lifecycle.active == {}
    else:
        assert world.lifecycle.results(results_for) == case.extra.get("sent", case.sent)
    expected_accepted = case.extra.get("accepted", case.extra.get("sent", case.sent))
    if "token_sent" not in case.extra:
        assert world.lifecycle.accepted(results_for) == expected_accepted
    assert record["result"] == case.extra.get("result", (case.sent or case.extra.get("sent")
                                                         or [case.extra.get("token_sent")])[0])
    assert bool(world.faults.fired) is case.faults_fire
    if case.enis == NONE:
        assert world.enis(instance_id) == [], "ENIs of ours left behind"
    elif case.enis == COMPLETE:
        assert_has_its_enis(world, instance_id, case.az)
    if case.check:
        case.check(world, instance_id, record)
    assert world.orphans() == []


# ------------------------------------------------------------------------------------------- terminate faults


def test_complete_lifecycle_action_failing_is_retried_then_raised_and_the_retry_completes(world, run):
    """botocore retries the retryable ResourceContention 1 + 8 times; then the handler logs one line and raises,
    so Lambda retries the invocation (and finally dead-letters it). The retry is idempotent and completes."""
    instance_id = world.launch_instance()
    event = world.launch_event(instance_id)
    world.faults.add("CompleteLifecycleAction", "ResourceContention", times=9)
    record = run(event, raises=True)
    logged_completion_failure(world, instance_id, record)
    assert record["result"] == "CONTINUE" and record["CompletionFailed"] == 1
    assert world.lifecycle.results(instance_id) == ["CONTINUE"] * 9 and world.lifecycle.accepted(instance_id) == []
    assert_has_its_enis(world, instance_id, AZS[0])
    retry = run(event)  # Lambda's asynchronous retry of the same event
    assert retry["result"] == "CONTINUE" and retry["created"] == [] and retry["lifecycle"] == "completed"
    assert world.lifecycle.accepted(instance_id) == ["CONTINUE"]


# moto warns that its EC2-style injected error has no shape in the Auto Scaling model; botocore still parses it.
@pytest.mark.filterwarnings("ignore:Exception\\(EC2ClientError\\) with code AccessDenied:UserWarning")
def test_complete_lifecycle_action_denied_is_raised_at_once(world, run):
    instance_id = world.launch_instance()
    world.faults.add("CompleteLifecycleAction", "AccessDenied", times=None)
    record = run(world.launch_event(instance_id), raises=True)
    assert world.lifecycle.results(instance_id) == ["CONTINUE"]  # not retryable: one call, then raised
    assert "CompleteLifecycleAction failed: AccessDenied" in record["errors"][0]


def test_terminate_continues_when_listing_enis_fails(world, run):
    instance_id = world.launch_instance()
    run(world.launch_event(instance_id))
    world.faults.add("DescribeNetworkInterfaces", "UnauthorizedOperation")
    record = run(world.terminate_event(instance_id))
    assert record["result"] == "CONTINUE" and "DescribeNetworkInterfaces failed" in record["errors"][0]
    assert world.lifecycle.accepted(instance_id) == ["CONTINUE", "CONTINUE"]


def test_terminate_with_bad_config_still_continues(world, run, monkeypatch):
    instance_id = world.launch_instance()
    monkeypatch.setenv("MULTUS_NETWORKS", "nope")
    record = run(world.terminate_event(instance_id))
    assert record["result"] == "CONTINUE" and "invalid configuration" in record["reason"]
    assert world.lifecycle.accepted(instance_id) == ["CONTINUE"]


def test_unexpected_bug_still_completes_the_action(world, run, monkeypatch):
    from eni_attacher import lifecycle

    def boom(*args, **kwargs):
        raise RuntimeError("bug")

    monkeypatch.setattr(lifecycle, "plan_launch", boom)
    instance_id = world.launch_instance()
    record = run(world.launch_event(instance_id))
    assert record["result"] == "ABANDON" and "RuntimeError: bug" in record["reason"]
    assert world.lifecycle.accepted(instance_id) == ["ABANDON"]


def test_unexpected_error_after_creating_enis_still_cleans_up(world, run, monkeypatch):
    from eni_attacher.adapter import Aws

    def broken_attach(self, **kwargs):
        raise RuntimeError("not an AWS error")

    monkeypatch.setattr(Aws, "attach", broken_attach)
    instance_id = world.launch_instance()
    record = run(world.launch_event(instance_id))
    assert record["result"] == "ABANDON" and "RuntimeError: not an AWS error" in record["reason"]
    assert len(record["created"]) == 2 and sorted(record["deleted"]) == sorted(record["created"])
    assert world.lifecycle.accepted(instance_id) == ["ABANDON"]
    assert world.enis(instance_id) == [] and world.orphans() == []


def _report_new_enis_pending(world):
    """EC2 may answer CreateNetworkInterface with status 'pending'; moto always says 'available'."""
    def pending(parsed, **_):
        parsed["NetworkInterface"]["Status"] = "pending"

    world.ec2.meta.events.register("after-call.ec2.CreateNetworkInterface", pending)


def test_pending_new_enis_are_waited_for_with_one_waiter(world, run):
    _report_new_enis_pending(world)
    reads = []
    world.ec2.meta.events.register("before-call.ec2.DescribeNetworkInterfaces", lambda **_: reads.append(1))
    instance_id = world.launch_instance()
    record = run(world.launch_event(instance_id))
    assert record["result"] == "CONTINUE" and len(reads) == 2  # the tag query + one waiter poll for both ENIs
    assert_has_its_enis(world, instance_id, AZS[0])


def test_eni_that_never_becomes_available_is_deleted_and_the_launch_abandoned(world, run):
    _report_new_enis_pending(world)
    calls = []

    def still_pending(parsed, **_):
        calls.append(1)
        if len(calls) > 1:  # every waiter poll
            for eni in parsed["NetworkInterfaces"]:
                eni["Status"] = "pending"

    world.ec2.meta.events.register("after-call.ec2.DescribeNetworkInterfaces", still_pending)
    instance_id = world.launch_instance()
    record = run(world.launch_event(instance_id))
    assert record["result"] == "ABANDON" and "Max attempts exceeded" in record["reason"]
    assert len(calls) == 1 + 3  # the tag query + ENI_ATTACHER_WAITER_MAX_ATTEMPTS polls
    assert sorted(record["deleted"]) == sorted(record["created"]) and len(record["created"]) == 2
    assert world.lifecycle.accepted(instance_id) == ["ABANDON"]
    assert world.enis(instance_id) == [] and world.orphans() == []
