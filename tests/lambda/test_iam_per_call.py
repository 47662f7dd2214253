"""The ENI function's IAM policy, proven call by call (tests/lambda/iam_eval.py has the evaluator and its limits).

Every test with a moto world already runs under `iam_audit` (conftest.py): each call the handler makes is evaluated
against the synthesized policy and refused if denied. This module checks the evaluator itself, that the scenarios
reach every action the function uses, and that the policy of the first build would have failed here.
"""

from __future__ import annotations

import json

import pytest
from eni_attacher.handler import SWEEP_EVENT
from eni_moto_world import AZS, EVENT_TIME, NETWORKS
from iam_eval import Unsupported, decide, reference

EVERY_ACTION = {
    "ec2:DescribeInstances", "ec2:DescribeNetworkInterfaces", "ec2:CreateNetworkInterface", "ec2:CreateTags",
    "ec2:ModifyNetworkInterfaceAttribute", "ec2:AttachNetworkInterface", "ec2:DetachNetworkInterface",
    "ec2:DeleteNetworkInterface", "autoscaling:CompleteLifecycleAction",
    "autoscaling:RecordLifecycleActionHeartbeat",
}


# ------------------------------------------------------------------------------------------ the evaluator


ALLOW_ENI = {"Effect": "Allow", "Action": "ec2:*NetworkInterface*", "Resource": "arn:aws:ec2:*:*:network-interface/*",
             "Condition": {"StringEquals": {"ec2:ResourceTag/owner": "me"}}}


def test_wildcards_conditions_and_explicit_deny():
    eni = "arn:aws:ec2:us-west-2:1:network-interface/eni-1"
    assert decide([ALLOW_ENI], "ec2:DeleteNetworkInterface", eni, {"ec2:ResourceTag/owner": "me"}) == "Allow"
    assert decide([ALLOW_ENI], "EC2:deletenetworkinterface", eni, {"ec2:ResourceTag/owner": "me"}) == "Allow"
    assert decide([ALLOW_ENI], "ec2:DeleteNetworkInterface", eni, {"ec2:ResourceTag/owner": "you"}) == "ImplicitDeny"
    assert decide([ALLOW_ENI], "ec2:DeleteNetworkInterface", eni, {}) == "ImplicitDeny"  # absent key
    assert decide([ALLOW_ENI], "ec2:DeleteVolume", eni, {"ec2:ResourceTag/owner": "me"}) == "ImplicitDeny"
    deny = {"Effect": "Deny", "Action": "ec2:Delete*", "Resource": "*"}
    assert decide([ALLOW_ENI, deny], "ec2:DeleteNetworkInterface", eni, {"ec2:ResourceTag/owner": "me"}) == "Deny"


@pytest.mark.parametrize("statement", [
    {"Effect": "Allow", "Action": "ec2:*", "Resource": "*", "Condition": {"IpAddress": {"aws:SourceIp": "x"}}},
    {"Effect": "Allow", "Action": "ec2:*", "Resource": "*",
     "Condition": {"ForAllValues:StringEquals": {"aws:TagKeys": ["a"]}}},
    {"Effect": "Allow", "NotAction": "iam:*", "Resource": "*"},
])
def test_what_the_evaluator_does_not_implement_fails_loudly(statement):
    with pytest.raises(Unsupported):
        decide([statement], "ec2:DescribeInstances", "*", {})


def test_reference_data_is_the_offline_service_authorization_reference():
    modify = reference("ec2:ModifyNetworkInterfaceAttribute")
    assert {"network-interface", "instance"} <= set(modify)  # the attachment's instance is a resource of it
    assert "ec2:ResourceTag/${TagKey}" in modify["instance"][1]
    assert set(reference("ec2:DescribeInstances")) == {"*"}


# ------------------------------------------------------------------------------------------ the policy, per call


def _every_path(world, run):
    """Launch (pending, with heartbeats), duplicate, terminate with a leftover, failed launch cleanup, sweep."""
    a = world.launch_instance(AZS[0])
    world.pending.pending_for(a, 130)
    assert run(world.launch_event(a))["result"] == "CONTINUE"
    run(world.launch_event(a))  # duplicate
    leftover = world.ec2.create_network_interface(
        SubnetId=world.multus_subnets[NETWORKS[0]][AZS[0]], Groups=[world.security_group_id],
        TagSpecifications=[{"ResourceType": "network-interface", "Tags": [
            {"Key": "eks-multus/owner", "Value": "multus-workers"}, {"Key": "eks-multus/instance-id", "Value": a},
            {"Key": "eks-multus/launch-event-time", "Value": EVENT_TIME}]}])["NetworkInterface"]
    assert leftover["NetworkInterfaceId"] in run(world.terminate_event(a))["deleted"]
    b = world.launch_instance(AZS[1])
    world.faults.add("AttachNetworkInterface", "AttachmentLimitExceeded",
                     when=lambda resp: resp._get_param("DeviceIndex") in (2, "2"))
    assert run(world.launch_event(b))["result"] == "ABANDON"  # cleanup detaches and deletes
    c = world.launch_instance(AZS[1])
    world.ec2.terminate_instances(InstanceIds=[c])
    world.ec2.create_network_interface(
        SubnetId=world.multus_subnets[NETWORKS[1]][AZS[1]], Groups=[world.security_group_id],
        TagSpecifications=[{"ResourceType": "network-interface", "Tags": [
            {"Key": "eks-multus/owner", "Value": "multus-workers"}, {"Key": "eks-multus/instance-id", "Value": c}]}])
    world.clock.sleep(600)
    assert len(run(SWEEP_EVENT)["deleted"]) == 1


def test_every_call_of_every_path_is_allowed_by_the_synthesized_policy(world, run):
    _every_path(world, run)
    actions = {action for action, _, _, _ in world.iam.evaluated}
    assert actions == EVERY_ACTION
    assert {d for *_, d in world.iam.evaluated} == {"Allow"}
    # the attachment's instance is checked for the DeleteOnTermination change, and it is allowed
    assert ("ec2:ModifyNetworkInterfaceAttribute", "instance") in {(a, r) for a, r, _, _ in world.iam.evaluated}


def test_first_builds_policy_would_abandon_every_launch(world, run):
    """The first build granted ModifyNetworkInterfaceAttribute on network-interface/* only."""
    for statement in world.iam.statements:
        if statement.get("Sid") == "AttachToGroupInstances":
            statement["Action"] = [a for a in statement["Action"] if a != "ec2:ModifyNetworkInterfaceAttribute"]
    instance_id = world.launch_instance()
    record = run(world.launch_event(instance_id))
    assert record["result"] == "ABANDON"
    assert "DeleteOnTermination failed: UnauthorizedOperation" in record["reason"]
    assert world.enis(instance_id) == [] and world.orphans() == []
    assert world.iam.denied and "instance/" + instance_id in world.iam.denied[0]
    world.expected_denials = len(world.iam.denied)


def test_enis_of_another_group_and_foreign_instances_are_out_of_reach(world, run):
    """An IAM-denied call in the middle of a launch: the instance is not tagged as one of the group's."""
    instance_id = world.ec2.run_instances(ImageId="ami-12c6146b", MinCount=1, MaxCount=1,
                                          SubnetId=world.node_subnets[AZS[0]])["Instances"][0]["InstanceId"]
    record = run(world.launch_event(instance_id))
    assert record["result"] == "ABANDON" and "AttachNetworkInterface failed: UnauthorizedOperation" in record["reason"]
    assert world.enis(instance_id) == [] and world.orphans() == []
    world.expected_denials = len(world.iam.denied)


def _shape(statements):
    def actions(s):
        return sorted(s["Action"] if isinstance(s["Action"], list) else [s["Action"]])

    return sorted((s.get("Sid", ""), s["Effect"], json.dumps(actions(s))) for s in statements)


def test_the_apps_template_has_the_same_statements(synthesized, eni_policy_statements):
    workers = synthesized.templates[synthesized.workers_stack.stack_name]
    (policy,) = [v for k, v in workers["Resources"].items()
                 if v["Type"] == "AWS::IAM::Policy" and k.startswith("NodeGroupEniAttacher")]
    assert _shape(policy["Properties"]["PolicyDocument"]["Statement"]) == _shape(eni_policy_statements)


def test_subnet_conditions_are_evaluated_against_the_enis_subnet():
    """ArnEquals on ec2:Subnet: the ENI's own subnet matches, another subnet does not, an absent key never does."""
    from iam_eval import decide

    statement = {"Effect": "Allow", "Action": "ec2:DeleteNetworkInterface", "Resource": "*",
                 "Condition": {"ArnEquals": {"ec2:Subnet": ["arn:aws:ec2:us-west-2:123456789012:subnet/subnet-a"]}}}
    subnet = "arn:aws:ec2:us-west-2:123456789012:subnet/subnet-"
    assert decide([statement], "ec2:DeleteNetworkInterface", "x", {"ec2:Subnet": subnet + "a"}) == "Allow"
    assert decide([statement], "ec2:DeleteNetworkInterface", "x", {"ec2:Subnet": subnet + "b"}) == "ImplicitDeny"
    assert decide([statement], "ec2:DeleteNetworkInterface", "x", {}) == "ImplicitDeny"
