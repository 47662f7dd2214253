"""The ENI Lambda exactly as the synthesized template deploys it: its code asset from the cloud assembly, its
environment resolved (Fn::Join, Fn::GetStackOutput, Ref, Fn::GetAtt) against moto resources that mirror the
cluster stack's subnets and security group, and its Auto Scaling group and hooks as the template declares them.
Nothing is hand-copied: a change to the construct's environment or packaging breaks this test.
"""

from __future__ import annotations

import importlib
import json
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
from eni_moto_world import AMI, REGION, Faults, LifecycleRecorder, Patches, install_ec2_fidelity

HANDLER = "eni_attacher.handler.handler"


def _resources(template: dict, cfn_type: str) -> dict[str, dict]:
    return {k: v for k, v in template["Resources"].items() if v["Type"] == cfn_type}


class Resolver:
    """Resolves the intrinsics the function's environment uses, with moto ids for the cluster stack's resources."""

    def __init__(self, cluster: dict, physical_ids: dict[str, str]) -> None:
        self.physical_ids = physical_ids
        self.exports = {o["Export"]["Name"]: o["Value"] for o in cluster.get("Outputs", {}).values() if "Export" in o}
        self.outputs = {name: o["Value"] for name, o in cluster.get("Outputs", {}).items()}

    def __call__(self, node: Any) -> Any:
        if isinstance(node, str):
            return node
        if isinstance(node, list):
            return [self(n) for n in node]
        (fn, arg), = node.items()
        if fn == "Fn::Join":
            return arg[0].join(str(self(part)) for part in arg[1])
        if fn == "Fn::ImportValue":
            return self(self.exports[arg])
        if fn == "Fn::GetStackOutput":  # weak cross-stack reference (@aws-cdk/core:defaultCrossStackReferences)
            return self(self.outputs[arg["OutputName"]])
        if fn == "Ref":
            return {"AWS::Region": REGION, "AWS::AccountId": "123456789012", "AWS::Partition": "aws"}.get(
                arg) or self.physical_ids[arg]
        if fn == "Fn::GetAtt" and arg[1] == "GroupId":
            return self.physical_ids[arg[0]]
        raise AssertionError(f"unexpected intrinsic {fn} in the function's environment")


@pytest.fixture
def deployed(synthesized, clients, monkeypatch):
    cluster = synthesized.templates[synthesized.cluster_stack.stack_name]
    workers = synthesized.templates[synthesized.workers_stack.stack_name]
    ec2, autoscaling = clients.ec2, clients.autoscaling

    # moto resources standing in for the cluster stack's VPC, subnets and Multus security group.
    physical: dict[str, str] = {}
    (vpc,) = _resources(cluster, "AWS::EC2::VPC").values()
    vpc_id = ec2.create_vpc(CidrBlock=vpc["Properties"]["CidrBlock"])["Vpc"]["VpcId"]
    subnets = _resources(cluster, "AWS::EC2::Subnet")
    for logical_id, subnet in subnets.items():
        physical[logical_id] = ec2.create_subnet(
            VpcId=vpc_id, CidrBlock=subnet["Properties"]["CidrBlock"],
            AvailabilityZone=subnet["Properties"]["AvailabilityZone"])["Subnet"]["SubnetId"]
    for logical_id in _resources(cluster, "AWS::EC2::SecurityGroup"):
        physical[logical_id] = ec2.create_security_group(
            GroupName=logical_id, Description=logical_id, VpcId=vpc_id)["GroupId"]

    # The function, its code asset and its environment, as the template has them.
    (function,) = [f for f in _resources(workers, "AWS::Lambda::Function").values()
                   if f["Properties"]["Handler"] == HANDLER]
    asset_hash = function["Properties"]["Code"]["S3Key"].split(".")[0]
    code_dir = Path(synthesized.assembly.directory) / f"asset.{asset_hash}"
    assert code_dir.is_dir(), "the function's code asset is in the cloud assembly"
    resolve = Resolver(cluster, physical)
    env = {k: resolve(v) for k, v in function["Properties"]["Environment"]["Variables"].items()}
    for key, value in env.items():
        monkeypatch.setenv(key, value)

    # The Auto Scaling group and hooks as the template declares them (moto gaps closed as in eni_moto_world).
    patches, faults, recorder = Patches(), Faults(), LifecycleRecorder()
    install_ec2_fidelity(patches)
    faults.install(patches)
    recorder.install(patches, faults)
    (asg,) = _resources(workers, "AWS::AutoScaling::AutoScalingGroup").values()
    asg_name = asg["Properties"]["AutoScalingGroupName"]
    private = [physical[k] for k, s in subnets.items() if k.startswith("NetworkVpcPrivateSubnet")]
    template_id = ec2.create_launch_template(LaunchTemplateName="nodes", LaunchTemplateData={
        "ImageId": AMI, "InstanceType": "c5.large"})["LaunchTemplate"]["LaunchTemplateId"]
    autoscaling.create_auto_scaling_group(
        AutoScalingGroupName=asg_name, MinSize=0, MaxSize=3, DesiredCapacity=0,
        LaunchTemplate={"LaunchTemplateId": template_id, "Version": "$Latest"}, VPCZoneIdentifier=",".join(private))
    for hook in asg["Properties"]["LifecycleHookSpecificationList"]:
        autoscaling.put_lifecycle_hook(
            AutoScalingGroupName=asg_name, LifecycleHookName=hook["LifecycleHookName"],
            LifecycleTransition=hook["LifecycleTransition"], DefaultResult=hook["DefaultResult"],
            HeartbeatTimeout=hook["HeartbeatTimeout"])

    # Import the handler from the asset directory, not from lambda/.
    saved = {k: sys.modules.pop(k) for k in list(sys.modules) if k.split(".")[0] == "eni_attacher"}
    sys.path.insert(0, str(code_dir))
    try:
        module = importlib.import_module("eni_attacher.handler")
        assert Path(module.__file__).is_relative_to(code_dir)
        yield {"module": module, "env": env, "asg": asg, "workers": workers, "subnets": subnets,
               "physical": physical, "recorder": recorder, "asg_name": asg_name, "ec2": ec2,
               "autoscaling": autoscaling}
    finally:
        sys.path.remove(str(code_dir))
        for k in [k for k in sys.modules if k.split(".")[0] == "eni_attacher"]:
            del sys.modules[k]
        sys.modules.update(saved)
        patches.undo()


def test_synthesized_function_attaches_the_enis_of_the_instances_az(deployed):
    d = deployed
    ec2, asg_name = d["ec2"], d["asg_name"]
    node_subnet = next(d["physical"][k] for k, s in d["subnets"].items()
                       if k.startswith("NetworkVpcPrivateSubnet") and s["Properties"]["AvailabilityZone"] ==
                       "us-west-2b")
    instance_id = ec2.run_instances(
        ImageId=AMI, MinCount=1, MaxCount=1, InstanceType="c5.large", SubnetId=node_subnet,
        TagSpecifications=[{"ResourceType": "instance",
                            "Tags": [{"Key": "aws:autoscaling:groupName", "Value": asg_name}]}],
    )["Instances"][0]["InstanceId"]
    d["autoscaling"].attach_instances(InstanceIds=[instance_id], AutoScalingGroupName=asg_name)
    (launch_hook,) = [h["LifecycleHookName"] for h in d["asg"]["Properties"]["LifecycleHookSpecificationList"]
                      if h["LifecycleTransition"] == "autoscaling:EC2_INSTANCE_LAUNCHING"]
    token = d["recorder"].open(asg_name, launch_hook, instance_id)
    event = {
        "version": "0", "id": str(uuid.uuid4()), "source": "aws.autoscaling", "account": "123456789012",
        "detail-type": "EC2 Instance-launch Lifecycle Action", "region": REGION, "time": "2026-11-26T05:00:00Z",
        "resources": [], "detail": {
            "LifecycleActionToken": token, "AutoScalingGroupName": asg_name, "LifecycleHookName": launch_hook,
            "EC2InstanceId": instance_id, "LifecycleTransition": "autoscaling:EC2_INSTANCE_LAUNCHING"},
    }
    # The event is one the template's rule would deliver.
    (rule,) = [r for k, r in _resources(d["workers"], "AWS::Events::Rule").items()
               if "EventPattern" in r["Properties"] and "EniAttacher" in k]  # the drainer has a rule of its own
    pattern = rule["Properties"]["EventPattern"]
    assert event["source"] in pattern["source"] and event["detail-type"] in pattern["detail-type"]
    assert event["detail"]["AutoScalingGroupName"] in pattern["detail"]["AutoScalingGroupName"]
    assert event["detail"]["LifecycleHookName"] in pattern["detail"]["LifecycleHookName"]

    result = d["module"].handler(event, None)

    assert result["result"] == "CONTINUE", result
    assert d["recorder"].accepted(instance_id) == ["CONTINUE"]
    enis = ec2.describe_network_interfaces(
        Filters=[{"Name": "tag:eks-multus/instance-id", "Values": [instance_id]}])["NetworkInterfaces"]
    by_index = {e["Attachment"]["DeviceIndex"]: e for e in enis}
    networks = json.loads(d["env"]["MULTUS_NETWORKS"])
    assert sorted(by_index) == [n["deviceIndex"] for n in networks] == [1, 2]
    cidr_of = {d["physical"][k]: s["Properties"]["CidrBlock"] for k, s in d["subnets"].items()}
    # AZ2's Multus subnets of the default config: 10.0.5.0/24 (multus1) and 10.0.7.0/24 (multus2).
    assert [cidr_of[by_index[i]["SubnetId"]] for i in (1, 2)] == ["10.0.5.0/24", "10.0.7.0/24"]
    for eni in enis:
        tags = {t["Key"]: t["Value"] for t in eni["TagSet"]}
        assert tags["eks-multus/owner"] == asg_name and tags["node.k8s.amazonaws.com/no_manage"] == "true"
        assert eni["SourceDestCheck"] is False and eni["Attachment"]["DeleteOnTermination"] is True
