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
    # maxSize 2 (cdk.json): a rolling update adds the new node before it drains the old one.
    assert (props["MinSize"], props["MaxSize"], "DesiredCapacity" in props) == ("1", "2", False)
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
        ids = [k for k in resources(workers, cfn_type) if k.startswith("NodeGroup")]
        assert ids and set(ids) <= depends, cfn_type


def _rules(template: dict) -> dict[str, dict]:
    return {k: v for k, v in resources(template, "AWS::Events::Rule").items() if k.startswith("NodeGroupEniAttacher")}


def test_rule_matches_only_this_groups_own_hooks(workers):
    (rule,) = [r for r in _rules(workers).values() if "EventPattern" in r["Properties"]]
    assert rule["Properties"]["EventPattern"] == {
        "source": ["aws.autoscaling"],
        "detail-type": ["EC2 Instance-launch Lifecycle Action"],
        "detail": {"AutoScalingGroupName": ["eks-multus-ng1"], "LifecycleHookName": ["multus-eni-launch"]},
    }
    (target,) = rule["Properties"]["Targets"]
    assert target["RetryPolicy"]["MaximumRetryAttempts"] == 4 and "DeadLetterConfig" in target
    _, asg = _one(workers, "AWS::AutoScaling::AutoScalingGroup")
    hooks = {h["LifecycleHookName"] for h in asg["Properties"]["LifecycleHookSpecificationList"]}
    # The group's terminate hook is the drainer's (tests/test_node_lifecycle.py); the ENI function serves none.
    assert hooks == {*rule["Properties"]["EventPattern"]["detail"]["LifecycleHookName"], "multus-node-drain"}
    _, fn = _one(workers, "AWS::Lambda::Function", "NodeGroupEniAttacher")
    env = fn["Properties"]["Environment"]["Variables"]
    assert env["LAUNCH_HOOK_NAME"] == "multus-eni-launch" and "TERMINATE_HOOK_NAME" not in env


def test_hook_timeouts_fit_the_functions_patience(workers):
    from eks_multus_cdk.eni_attacher import FUNCTION_TIMEOUT

    _, asg = _one(workers, "AWS::AutoScaling::AutoScalingGroup")
    hooks = {h["LifecycleTransition"]: h for h in asg["Properties"]["LifecycleHookSpecificationList"]}
    launch = hooks["autoscaling:EC2_INSTANCE_LAUNCHING"]["HeartbeatTimeout"]
    heartbeat = 60  # lambda/eni_attacher/adapter.py Settings.heartbeat_seconds
    assert launch >= heartbeat + 120 + 60  # a missed heartbeat, Lambda's longest retry delay, and margin
    _, fn = _one(workers, "AWS::Lambda::Function", "NodeGroupEniAttacher")
    assert fn["Properties"]["Timeout"] == FUNCTION_TIMEOUT.to_seconds() == 600


def test_sweeper_schedule_and_alarms(workers):
    (schedule,) = [r for r in _rules(workers).values() if "ScheduleExpression" in r["Properties"]]
    assert schedule["Properties"]["ScheduleExpression"] == "rate(15 minutes)"
    (target,) = schedule["Properties"]["Targets"]
    assert json.loads(target["Input"]) == {"eksMultusAction": "sweep"}
    alarms = {k: v["Properties"] for k, v in resources(workers, "AWS::CloudWatch::Alarm").items()
              if k.startswith("NodeGroupEniAttacher")}
    metrics = {(a.get("Namespace"), a.get("MetricName")) for a in alarms.values()}
    assert metrics == {("AWS/SQS", "ApproximateNumberOfMessagesVisible"), ("AWS/Lambda", "Errors"),
                       ("EksMultus/EniAttacher", "LaunchAbandoned")}
    assert all(a["Threshold"] == 1 and a["TreatMissingData"] == "notBreaching" for a in alarms.values())


def test_metric_namespace_matches_the_functions(workers):
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "lambda"))
    try:
        from eni_attacher.handler import METRIC_NAMESPACE as emitted
    finally:
        sys.path.pop(0)
    from eks_multus_cdk.eni_attacher import METRIC_NAMESPACE

    assert emitted == METRIC_NAMESPACE


def test_kubelet_max_pods_leaves_out_the_multus_enis(workers):
    user_data = _user_data(workers)
    assert "maxPodsExpression" in user_data
    assert "(default_enis - 2) * (ips_per_eni - 1) + 2 + 4" in user_data


@pytest.mark.parametrize("instance_type", ["c5.large", "m5.xlarge", "r6i.4xlarge", "c6i.metal", "t3.medium"])
def test_max_pods_expression_evaluates_like_nodeadm(instance_type):
    """cel-python evaluates the expression with the variables nodeadm declares (int default_enis, ips_per_eni,
    max_pods); the result is what the VPC CNI can serve plus the hostNetwork pods (c5.large: 9 + 2 + 4 = 15)."""
    import celpy

    from eks_multus_cdk.instance_types import eni_limits, max_pods
    from eks_multus_cdk.node_group import host_network_daemonsets, max_pods_expression

    limits = eni_limits(instance_type)
    hosts = host_network_daemonsets(True)
    env = celpy.Environment()
    program = env.program(env.compile(max_pods_expression(2, hosts)))
    value = program.evaluate({
        "default_enis": celpy.celtypes.IntType(limits.max_interfaces),
        "ips_per_eni": celpy.celtypes.IntType(limits.ipv4_per_interface),
        "max_pods": celpy.celtypes.IntType(limits.max_interfaces * (limits.ipv4_per_interface - 1) + 2)})
    assert int(value) == max_pods(limits.max_interfaces, limits.ipv4_per_interface, 2, hosts)
    if instance_type == "c5.large":
        assert int(value) == 15 and hosts == 4  # multus, whereabouts, controller, pod identity agent


def test_host_network_daemonsets_are_counted_from_the_manifests():
    from eks_multus_cdk.node_group import host_network_daemonsets

    # Multus; with crossNodeTraffic also whereabouts and the controller; always the Pod Identity agent
    assert (host_network_daemonsets(False), host_network_daemonsets(True)) == (2, 4)


def test_nodes_register_with_the_startup_taint_when_the_controller_removes_it(workers, make_config):
    from eks_multus_cdk.naming import STARTUP_TAINT_KEY

    assert STARTUP_TAINT_KEY == "eks-multus/not-ready"
    assert "--register-with-taints=eks-multus/not-ready=interfaces:NoSchedule" in _user_data(workers)
    config = make_config(crossNodeTraffic="false")
    _, workers_stack = build_app(App(), config)
    assert "eks-multus/not-ready" not in json.dumps(Template.from_stack(workers_stack).to_json())


def test_lambda_runtime_handler_and_environment(workers):
    _, fn = _one(workers, "AWS::Lambda::Function", "NodeGroupEniAttacher")
    props = fn["Properties"]
    assert props["Runtime"] == "python3.14"
    assert props["Handler"] == "eni_attacher.handler.handler"
    env = props["Environment"]["Variables"]
    assert env["ASG_NAME"] == env["OWNER_TAG_VALUE"] == "eks-multus-ng1"
    networks = json.dumps(env["MULTUS_NETWORKS"])
    for needle in ('\\"name\\":\\"multus1\\"', '\\"deviceIndex\\":2', "us-west-2a", "us-west-2b"):
        assert needle in networks
    _, invoke = _one(workers, "AWS::Lambda::EventInvokeConfig", "NodeGroupEniAttacher")
    assert invoke["Properties"]["MaximumRetryAttempts"] == 2
    assert "OnFailure" in invoke["Properties"]["DestinationConfig"]
    _, logs = _one(workers, "AWS::Logs::LogGroup", "NodeGroupEniAttacher")
    assert logs["Properties"]["RetentionInDays"] == 30


def _statements(workers) -> list[dict]:
    (policy,) = [v for k, v in resources(workers, "AWS::IAM::Policy").items() if k.startswith("NodeGroupEniAttacher")]
    return policy["Properties"]["PolicyDocument"]["Statement"]


def test_eni_writes_require_the_owner_tag_and_no_action_wildcards(workers):
    by_sid = {s.get("Sid"): s for s in copy.deepcopy(_statements(workers))}  # the template is session-wide
    # subnet pinning: test_least_privilege.py (a new ENI through the subnet resource, an existing one by ec2:Subnet)
    assert set(by_sid["ManageOwnedEni"]["Condition"].pop("ArnEquals")) == {"ec2:Subnet"}
    assert "ArnEquals" not in by_sid["TagOnCreate"]["Condition"] and "ArnEquals" not in by_sid["CreateOwnedEni"][
        "Condition"]
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
    _, entry = _one(workers, "AWS::EKS::AccessEntry", "NodeGroupAccessEntry")
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
    assert "--node-labels=eks-multus/multus-interfaces=2,role=upf" in user_data
    assert "--register-with-taints=dedicated=upf:NoSchedule,eks-multus/not-ready=interfaces:NoSchedule" in user_data


def test_config_never_accepts_a_node_that_leaves_the_vpc_cni_no_address():
    """Every instance type config accepts, with as many Multus networks as it allows, leaves the VPC CNI at least one
    pod address; the one way to get none (one IPv4 address per ENI) is refused, naming the key."""
    from eks_multus_cdk.config import ConfigError, parse_config
    from eks_multus_cdk.instance_types import ENI_LIMITS, vpc_cni_pod_addresses

    with pytest.raises(ConfigError, match=r"eksMultus\.nodeGroups\[0\]\.ipv4PerInterface = 1"):
        parse_config({"nodeGroups": [{"name": "ng1", "instanceType": "x9.large", "maxNetworkInterfaces": 3,
                                      "ipv4PerInterface": 1}]})
    parse_config({"nodeGroups": [{"name": "ng1", "instanceType": "x9.large", "maxNetworkInterfaces": 3,
                                  "ipv4PerInterface": 2}]})
    for name, limits in ENI_LIMITS.items():
        most_networks = limits.max_interfaces - 1  # config needs the primary ENI plus one per network
        assert vpc_cni_pod_addresses(limits.max_interfaces, limits.ipv4_per_interface, most_networks) >= 1, name


def test_user_data_fits_ec2s_16_kb_and_carries_the_script_byte_for_byte(workers):
    """EC2 rejects more than 16384 bytes of raw user data. The tokens resolve at deploy time: the CA bundle of an
    EKS cluster is about 1.5 KB of base64, the endpoint and the name well under 100 characters; counted here as
    2048, 128 and 100."""
    import base64
    import gzip
    import re
    from pathlib import Path

    from eks_multus_cdk.node_group import USER_DATA_LIMIT

    _, lt = _one(workers, "AWS::EC2::LaunchTemplate")
    parts = lt["Properties"]["LaunchTemplateData"]["UserData"]["Fn::Base64"]["Fn::Join"][1]
    tokens = [p for p in parts if not isinstance(p, str)]
    assert len(tokens) == 3  # cluster name, endpoint, certificate authority
    sizes = {"Arn": 100, "Endpoint": 128, "CertificateAuthorityData": 2048}
    total = sum(len(p.encode()) for p in parts if isinstance(p, str))
    total += sum(max(n for key, n in sizes.items() if key in json.dumps(t) or key == "Arn") for t in tokens)
    assert total < USER_DATA_LIMIT, total
    text = "".join(p for p in parts if isinstance(p, str))
    marker = r"<<'EKS_MULTUS_SCRIPT' \| gunzip >\"\$target\"\n(.*?)\nEKS_MULTUS_SCRIPT\n"
    packed = re.search(marker, text, re.S).group(1)
    script = Path(__file__).resolve().parents[1] / "userdata" / "setup-multus-interfaces.sh"
    assert gzip.decompress(base64.b64decode(packed)) == script.read_bytes()
