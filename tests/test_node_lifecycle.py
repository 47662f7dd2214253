"""Node lifecycle in the template: the rolling update policy, the drain hook and its timeouts, the drainer's identity.

The runtime side (drain logic, lifecycle completion, hooks that do not step on each other) is in tests/drainer and
tests/lambda/test_node_lifecycle_moto.py.
"""

from __future__ import annotations

import json

import pytest
from aws_cdk import App
from aws_cdk.assertions import Template

from eks_multus_cdk import node_drainer
from eks_multus_cdk.node_group import (
    DRAIN_HOOK,
    DRAIN_HOOK_TIMEOUT_SECONDS,
    LAUNCH_HOOK,
    min_instances_in_service,
)
from stacks import build_app
from tests.conftest import resources

ASG = "eks-multus-ng1"


@pytest.fixture(scope="module")
def workers(synthesized) -> dict:
    return synthesized.templates["eks-multus-workers"]


def _asg(template: dict) -> dict:
    (asg,) = resources(template, "AWS::AutoScaling::AutoScalingGroup").values()
    return asg


def _drainer(template: dict, cfn_type: str) -> dict[str, dict]:
    return {k: v for k, v in resources(template, cfn_type).items() if k.startswith("NodeGroupDrainer")}


# ------------------------------------------------------------------------------------ rolling replacement


def test_a_launch_template_change_rolls_the_group_one_node_at_a_time(workers):
    asg = _asg(workers)
    policy = asg["UpdatePolicy"]["AutoScalingRollingUpdate"]
    assert policy["MaxBatchSize"] == 1
    # The pause covers the longest drain (CloudFormation does not wait for the terminate hook): 300 + 600 + 60 s.
    assert policy["PauseTime"] == "PT16M"
    assert policy.get("WaitOnResourceSignals", False) is False  # no cfn-signal: the pause is the wait (README)
    # cdk.json: minSize 1, maxSize 2 -> one node stays in service; the new one comes up (to maxSize) first.
    assert policy["MinInstancesInService"] == 1 < int(asg["Properties"]["MaxSize"])
    assert set(policy["SuspendProcesses"]) == {"HealthCheck", "ReplaceUnhealthy", "AZRebalance",
                                               "AlarmNotification", "ScheduledActions"}
    assert not {"Launch", "Terminate"} & set(policy["SuspendProcesses"])
    # The group follows the template's latest version, so any launch-template change is a group change.
    assert asg["Properties"]["LaunchTemplate"]["Version"] == {
        "Fn::GetAtt": [asg["Properties"]["LaunchTemplate"]["LaunchTemplateId"]["Ref"], "LatestVersionNumber"]}
    assert "AutoScalingReplacingUpdate" not in asg["UpdatePolicy"]  # the fixed group name forbids replacement


@pytest.mark.parametrize(("min_size", "max_size", "expected"), [
    (1, 1, 0),  # one node, no room: it is drained and terminated before its replacement launches
    (1, 2, 1),  # the demo: the replacement joins first
    (3, 3, 2),  # full group: one node down at a time
    (3, 5, 3),
    (0, 1, 0),
])
def test_min_instances_in_service_is_always_below_max_size(min_size, max_size, expected):
    """CloudFormation rejects MinInstancesInService >= MaxSize; the policy never asks for more than minSize."""
    assert min_instances_in_service(min_size, max_size) == expected < max_size


def _launch_template_and_version(config) -> tuple[dict, dict]:
    _, workers_stack = build_app(App(), config)
    template = Template.from_stack(workers_stack).to_json()
    (lt,) = resources(template, "AWS::EC2::LaunchTemplate").values()
    return lt["Properties"]["LaunchTemplateData"], template["Parameters"]


def test_kubernetes_version_and_instance_type_changes_reach_the_launch_template(make_config):
    """What `cdk deploy` changes after editing cdk.json: the launch template (new version -> rolling update)."""
    base, base_params = _launch_template_and_version(make_config())
    bumped, bumped_params = _launch_template_and_version(make_config(kubernetesVersion='"1.34"'))
    bigger, _ = _launch_template_and_version(
        make_config(nodeGroups='[{"name": "ng1", "instanceType": "c5.xlarge", "maxSize": 2,'
                               ' "availabilityZones": ["us-west-2a"]}]'))
    ami = {json.dumps(p["Default"]) for p in base_params.values() if "optimized-ami" in str(p.get("Default"))}
    ami_bumped = {json.dumps(p["Default"]) for p in bumped_params.values() if "optimized-ami" in str(p.get("Default"))}
    assert ami != ami_bumped and "1.34" in ami_bumped.pop()
    assert base["ImageId"] != bumped["ImageId"]  # the AMI parameter of the new version
    assert (base["InstanceType"], bigger["InstanceType"]) == ("c5.large", "c5.xlarge")


# ------------------------------------------------------------------------------------ hooks and timeouts


def test_the_group_has_one_launch_hook_and_one_drain_hook(workers):
    hooks = {h["LifecycleHookName"]: h for h in _asg(workers)["Properties"]["LifecycleHookSpecificationList"]}
    assert set(hooks) == {LAUNCH_HOOK, DRAIN_HOOK}
    drain = hooks[DRAIN_HOOK]
    assert drain["LifecycleTransition"] == "autoscaling:EC2_INSTANCE_TERMINATING"
    assert drain["DefaultResult"] == "CONTINUE"  # a dead drainer never keeps a node forever
    assert drain["HeartbeatTimeout"] == DRAIN_HOOK_TIMEOUT_SECONDS == 300


def test_drain_deadline_heartbeats_and_timeouts_nest(workers):
    (fn,) = _drainer(workers, "AWS::Lambda::Function").values()
    env = fn["Properties"]["Environment"]["Variables"]
    timeout = fn["Properties"]["Timeout"]
    deadline, heartbeat = int(env["DRAIN_DEADLINE_SECONDS"]), int(env["HEARTBEAT_SECONDS"])
    # heartbeat well inside the hook timeout (a missed one and a Lambda retry delay of up to 2 min still fit)...
    assert heartbeat + 120 <= DRAIN_HOOK_TIMEOUT_SECONDS
    # ...the drain stops (and completes) inside one invocation, with 30 s for the completion...
    assert deadline + 30 <= timeout == 900
    # ...and inside the hook's global timeout: min(100 x HeartbeatTimeout, 48 h).
    assert deadline < min(100 * DRAIN_HOOK_TIMEOUT_SECONDS, 48 * 3600)


def test_drainer_rule_matches_only_the_drain_hook_of_this_group(workers):
    (rule,) = _drainer(workers, "AWS::Events::Rule").values()
    assert rule["Properties"]["EventPattern"] == {
        "source": ["aws.autoscaling"], "detail-type": ["EC2 Instance-terminate Lifecycle Action"],
        "detail": {"AutoScalingGroupName": [ASG], "LifecycleHookName": [DRAIN_HOOK]}}
    (fn,) = _drainer(workers, "AWS::Lambda::Function").values()
    assert fn["Properties"]["Environment"]["Variables"]["DRAIN_HOOK_NAME"] == DRAIN_HOOK


def test_the_drainer_exists_before_the_group(workers):
    depends = set(_asg(workers)["DependsOn"])
    for cfn_type in ("AWS::Lambda::Function", "AWS::Events::Rule", "AWS::Lambda::Permission", "AWS::EKS::AccessEntry",
                     "Custom::AWSCDK-EKS-KubernetesResource"):
        ids = set(_drainer(workers, cfn_type))
        assert ids and ids <= depends, cfn_type


# ------------------------------------------------------------------------------------ the drainer's identity


def test_drainer_iam_is_exactly_its_calls(workers):
    (role_id,) = _drainer(workers, "AWS::IAM::Role")
    (policy,) = _drainer(workers, "AWS::IAM::Policy").values()
    # The unnamed statement is aws-cdk-lib's grant for the on-failure destination (the dead-letter queue).
    statements = {s.get("Sid", "Destination"): s for s in policy["Properties"]["PolicyDocument"]["Statement"]}
    assert {sid: sorted([s["Action"]] if isinstance(s["Action"], str) else s["Action"])
            for sid, s in statements.items()} == {
        "Logs": ["logs:CreateLogStream", "logs:PutLogEvents"],
        "Describe": ["autoscaling:DescribeAutoScalingGroups", "ec2:DescribeInstances"],
        "CompleteLifecycle": ["autoscaling:CompleteLifecycleAction", "autoscaling:RecordLifecycleActionHeartbeat"],
        "Destination": ["sqs:GetQueueAttributes", "sqs:GetQueueUrl", "sqs:SendMessage"],
    }
    (queue_id,) = _drainer(workers, "AWS::SQS::Queue")
    assert statements["Destination"]["Resource"] == {"Fn::GetAtt": [queue_id, "Arn"]}
    assert statements["Describe"]["Resource"] == "*"  # neither Describe call has resource-level permissions
    assert all(s["Effect"] == "Allow" for s in statements.values())
    assert json.dumps(statements["CompleteLifecycle"]["Resource"]).endswith(f':autoScalingGroupName/{ASG}"]]}}')
    role = workers["Resources"][role_id]["Properties"]
    # The only managed policy: what Lambda needs to put the function's ENIs in the VPC.
    assert [json.dumps(m) for m in role["ManagedPolicyArns"]] == [json.dumps(
        {"Fn::Join": ["", ["arn:", {"Ref": "AWS::Partition"},
                           ":iam::aws:policy/service-role/AWSLambdaVPCAccessExecutionRole"]]})]
    assert "eks:" not in json.dumps(policy)  # the Kubernetes API is reached with a token, not with EKS IAM actions


def test_drainer_access_entry_maps_to_a_group_bound_to_the_exact_cluster_role(workers):
    (entry,) = _drainer(workers, "AWS::EKS::AccessEntry").values()
    props = entry["Properties"]
    assert props["Type"] == "STANDARD" and "AccessPolicies" not in props
    assert props["KubernetesGroups"] == [f"eks-multus:node-drainer:{ASG}"]
    (manifest,) = _drainer(workers, "Custom::AWSCDK-EKS-KubernetesResource").values()
    objects = json.loads(manifest["Properties"]["Manifest"])
    role = next(o for o in objects if o["kind"] == "ClusterRole")
    binding = next(o for o in objects if o["kind"] == "ClusterRoleBinding")
    assert [(r["apiGroups"], r["resources"], r["verbs"]) for r in role["rules"]] == [
        ([""], ["nodes"], ["get", "patch"]), ([""], ["pods"], ["get", "list"]),
        ([""], ["pods/eviction"], ["create"])]
    assert binding["roleRef"]["name"] == role["metadata"]["name"] == f"eks-multus-node-drainer-{ASG}"
    assert binding["subjects"] == [{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group",
                                    "name": props["KubernetesGroups"][0]}]
    assert len(objects) == 2  # no ServiceAccount, no other grant


def test_drainer_runs_in_the_private_subnets_with_https_out_only(workers):
    (fn,) = _drainer(workers, "AWS::Lambda::Function").values()
    vpc = fn["Properties"]["VpcConfig"]
    assert "PrivateSubnet" in json.dumps(vpc["SubnetIds"])
    (sg_id, sg), = _drainer(workers, "AWS::EC2::SecurityGroup").items()
    assert sg["Properties"]["SecurityGroupEgress"] == [
        {"CidrIp": "0.0.0.0/0", "Description": "AWS APIs and the EKS endpoint", "FromPort": 443,
         "IpProtocol": "tcp", "ToPort": 443}]
    assert "SecurityGroupIngress" not in sg["Properties"]
    (ingress,) = _drainer(workers, "AWS::EC2::SecurityGroupIngress").values()
    p = ingress["Properties"]
    assert (p["FromPort"], p["ToPort"], p["IpProtocol"]) == (443, 443, "tcp")
    assert p["SourceSecurityGroupId"] == {"Fn::GetAtt": [sg_id, "GroupId"]}
    assert "ClusterSecurityGroupId" in json.dumps(p["GroupId"])


def test_rbac_names_are_per_group(make_config):
    assert node_drainer.drainer_rbac("a")[0]["metadata"]["name"] != node_drainer.drainer_rbac("b")[0]["metadata"][
        "name"]


def test_the_drainer_asset_is_its_package_alone_and_runs_from_there(synthesized, tmp_path):
    """The code asset as the template deploys it: only lambda/node_drainer, importable with nothing of this repo."""
    import subprocess
    import sys
    from pathlib import Path

    (fn,) = _drainer(synthesized.templates["eks-multus-workers"], "AWS::Lambda::Function").values()
    assert fn["Properties"]["Handler"] == node_drainer.HANDLER
    asset = Path(synthesized.assembly.directory) / f"asset.{fn['Properties']['Code']['S3Key'].split('.')[0]}"
    files = sorted(str(p.relative_to(asset)) for p in asset.rglob("*") if p.is_file())
    assert files == ["node_drainer/__init__.py", "node_drainer/drain.py", "node_drainer/handler.py",
                     "node_drainer/kube.py"]
    probe = ("import json, sys; sys.path.insert(0, sys.argv[1]); from node_drainer.handler import handler; "
             "print(json.dumps(handler({'detail-type': 'EC2 Instance-launch Lifecycle Action', 'detail': {}}, "
             "env={'ASG_NAME': 'g', 'DRAIN_HOOK_NAME': 'h'})))")
    run = subprocess.run([sys.executable, "-I", "-c", probe, str(asset)], capture_output=True, text=True,
                         cwd=tmp_path, timeout=60)
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout.strip().splitlines()[-1])["result"] == "ignored"
