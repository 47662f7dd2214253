"""MultusNodeGroup + EniAttacher: launch template, user data, hooks, ordering, the Lambda and its IAM."""

from __future__ import annotations

import copy
import json

import pytest
from aws_cdk import App
from aws_cdk.assertions import Template

from stacks import build_app
from tests.conftest import resources


@pytest.fixture(scope="module")
def workers(synthesized) -> dict:
    return synthesized.templates["eks-multus-workers"]


def _one(template: dict, cfn_type: str, prefix: str = "NodeGroup") -> tuple[str, dict]:
    """The node group's one resource of `cfn_type` (other constructs of the stack may have their own)."""
    (item,) = [(k, v) for k, v in resources(template, cfn_type).items() if k.startswith(prefix)]
    return item


def _user_data(template: dict) -> str:
    _, lt = _one(template, "AWS::EC2::LaunchTemplate")
    parts = lt["Properties"]["LaunchTemplateData"]["UserData"]["Fn::Base64"]["Fn::Join"][1]
    return "".join(p if isinstance(p, str) else json.dumps(p) for p in parts)


def test_launch_template_requires_imdsv2_with_hop_limit_1_and_encrypted_gp3(workers):
    _, lt = _one(workers, "AWS::EC2::LaunchTemplate")
    data = lt["Properties"]["LaunchTemplateData"]
    assert data["MetadataOptions"]["HttpTokens"] == "required"
    assert data["MetadataOptions"]["HttpPutResponseHopLimit"] == 1
    (disk,) = data["BlockDeviceMappings"]
    assert disk["Ebs"] == {"Encrypted": True, "VolumeSize": 20, "VolumeType": "gp3"}
    assert data["InstanceType"] == "c5.large"
    assert "KeyName" not in data


def test_ami_is_the_al2023_eks_image_resolved_at_deploy_time(workers):
    params = workers["Parameters"]
    assert any(p.get("Default") == "/aws/service/eks/optimized-ami/1.35/amazon-linux-2023/x86_64/standard/"
               "recommended/image_id" for p in params.values())


def test_user_data_has_a_nodeadm_config_and_the_interface_script(workers):
    user_data = _user_data(workers)
    assert "Content-Type: application/node.eks.aws" in user_data
    for field in ('"kind": "NodeConfig"', '"apiServerEndpoint"', '"certificateAuthority"',
                  '"cidr": "172.20.0.0/16"'):
        assert field in user_data
    assert "Content-Type: text/x-shellscript" in user_data
    assert "export MULTUS_INTERFACE_COUNT=2" in user_data
    assert "export MULTUS_IFNAME_PREFIX=multus" in user_data
    assert "/etc/eks/bootstrap.sh" not in user_data


def test_asg_uses_the_launch_template_with_a_fixed_name_and_its_own_hooks(workers):
    _, asg = _one(workers, "AWS::AutoScaling::AutoScalingGroup")
    props = asg["Properties"]
    assert props["AutoScalingGroupName"] == "eks-multus-ng1"
    assert "LaunchTemplate" in props and "LaunchConfigurationName" not in props
    # min/max only: a DesiredCapacity in the template would reset the group's size on every deploy.
    assert (props["MinSize"], props["MaxSize"], "DesiredCapacity" in props) == ("1", "1", False)
    hooks = {h["LifecycleTransition"]: h for h in props["LifecycleHookSpecificationList"]}
    assert hooks["autoscaling:EC2_INSTANCE_LAUNCHING"]["DefaultResult"] == "ABANDON"
    assert hooks["autoscaling:EC2_INSTANCE_TERMINATING"]["DefaultResult"] == "CONTINUE"
    assert not resources(workers, "AWS::AutoScaling::LifecycleHook")
    assert not resources(workers, "AWS::AutoScaling::LaunchConfiguration")


def test_asg_uses_only_the_private_subnets_of_its_configured_azs(workers, synthesized):
    _, asg = _one(workers, "AWS::AutoScaling::AutoScalingGroup")
    zones = json.dumps(asg["Properties"]["VPCZoneIdentifier"])
    cluster = synthesized.templates["eks-multus-cluster"]
    assert "PrivateSubnet1" in zones and "PrivateSubnet2" not in zones  # cdk.json puts ng1 in us-west-2a
    assert cluster["Resources"]["NetworkVpcPrivateSubnet1Subnet6DD86AE6"]["Properties"]["AvailabilityZone"] == \
        "us-west-2a"


def test_function_permission_rule_and_access_entry_exist_before_the_asg(workers):
    _, asg = _one(workers, "AWS::AutoScaling::AutoScalingGroup")
    depends = set(asg["DependsOn"])
    for cfn_type in ("AWS::Lambda::Function", "AWS::Lambda::Permission", "AWS::Events::Rule",
                     "AWS::EKS::AccessEntry"):
        logical_id, _ = _one(workers, cfn_type)
        assert logical_id in depends, cfn_type


def test_rule_matches_only_this_groups_lifecycle_actions(workers):
    _, rule = _one(workers, "AWS::Events::Rule")
    assert rule["Properties"]["EventPattern"] == {
        "source": ["aws.autoscaling"],
        "detail-type": ["EC2 Instance-launch Lifecycle Action", "EC2 Instance-terminate Lifecycle Action"],
        "detail": {"AutoScalingGroupName": ["eks-multus-ng1"]},
    }
    (target,) = rule["Properties"]["Targets"]
    assert target["RetryPolicy"]["MaximumRetryAttempts"] == 4 and "DeadLetterConfig" in target


def test_lambda_runtime_handler_and_environment(workers):
    _, fn = _one(workers, "AWS::Lambda::Function")
    props = fn["Properties"]
    assert props["Runtime"] == "python3.14"
    assert props["Handler"] == "eni_attacher.handler.handler"
    env = props["Environment"]["Variables"]
    assert env["ASG_NAME"] == env["OWNER_TAG_VALUE"] == "eks-multus-ng1"
    networks = json.dumps(env["MULTUS_NETWORKS"])
    for needle in ('\\"name\\":\\"multus1\\"', '\\"deviceIndex\\":2', "us-west-2a", "us-west-2b"):
        assert needle in networks
    _, invoke = _one(workers, "AWS::Lambda::EventInvokeConfig")
    assert invoke["Properties"]["MaximumRetryAttempts"] == 2
    assert "OnFailure" in invoke["Properties"]["DestinationConfig"]
    _, logs = _one(workers, "AWS::Logs::LogGroup")
    assert logs["Properties"]["RetentionInDays"] == 30


def _statements(workers) -> list[dict]:
    (policy,) = [v for k, v in resources(workers, "AWS::IAM::Policy").items() if k.startswith("NodeGroupEniAttacher")]
    return policy["Properties"]["PolicyDocument"]["Statement"]


def test_eni_writes_require_the_owner_tag_and_no_action_wildcards(workers):
    by_sid = {s.get("Sid"): s for s in copy.deepcopy(_statements(workers))}  # the template is session-wide
    for sid in ("CreateOwnedEni", "ManageOwnedEni", "TagOnCreate"):  # subnet pinning: test_least_privilege.py
        assert set(by_sid[sid]["Condition"].pop("ArnEquals")) == {"ec2:Subnet"}
    assert by_sid["CreateOwnedEni"]["Condition"] == {
        "StringEquals": {"aws:RequestTag/eks-multus/owner": "eks-multus-ng1"}}
    assert by_sid["ManageOwnedEni"]["Condition"] == {
        "StringEquals": {"ec2:ResourceTag/eks-multus/owner": "eks-multus-ng1"}}
    assert by_sid["AttachToGroupInstances"]["Condition"] == {
        "StringEquals": {"ec2:ResourceTag/aws:autoscaling:groupName": "eks-multus-ng1"}}
    assert by_sid["TagOnCreate"]["Condition"] == {"StringEquals": {"ec2:CreateAction": "CreateNetworkInterface"}}
    for s in _statements(workers):
        actions = s["Action"] if isinstance(s["Action"], list) else [s["Action"]]
        assert not any("*" in a for a in actions)
        if s.get("Sid") != "Describe":
            assert s["Resource"] != "*"


def test_lifecycle_completion_is_limited_to_this_group(workers):
    (s,) = [s for s in _statements(workers) if s.get("Sid") == "CompleteLifecycle"]
    assert "autoScalingGroupName/eks-multus-ng1" in json.dumps(s["Resource"])


def test_node_role_is_registered_as_ec2_linux_without_cloudformation_access(workers):
    _, entry = _one(workers, "AWS::EKS::AccessEntry")
    assert entry["Properties"]["Type"] == "EC2_LINUX"
    assert not entry["Properties"].get("AccessPolicies")
    roles = resources(workers, "AWS::IAM::Role")
    assert "cloudformation" not in json.dumps(roles).lower()
    assert "cloudformation:" not in json.dumps(resources(workers, "AWS::IAM::Policy")).lower()


def test_every_node_group_gets_its_own_asg_and_lambda(make_config):
    config = make_config(nodeGroups='[{"name": "ng1"}, {"name": "ng2", "instanceType": "c5.xlarge", "maxSize": 3,'
                                    ' "labels": {"role": "upf"},'
                                    ' "taints": [{"key": "dedicated", "value": "upf", "effect": "NoSchedule"}]}]')
    _, workers_stack = build_app(App(), config)
    template = Template.from_stack(workers_stack).to_json()
    asgs = {v["Properties"]["AutoScalingGroupName"] for v in resources(template, "AWS::AutoScaling::AutoScalingGroup")
            .values()}
    assert asgs == {"eks-multus-ng1", "eks-multus-ng2"}
    assert len([k for k in resources(template, "AWS::Lambda::Function") if "EniAttacher" in k]) == 2
    user_data = json.dumps(template)
    assert "--node-labels=role=upf" in user_data and "--register-with-taints=dedicated=upf:NoSchedule" in user_data
