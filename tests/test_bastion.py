"""Bastion: SSM only (no key, no inbound), IMDSv2, encrypted disk, kubectl + kubeconfig at boot."""

from __future__ import annotations

import json

from tests.conftest import resources


def _instance(synthesized) -> dict:
    (instance,) = resources(synthesized.templates["eks-multus-cluster"], "AWS::EC2::Instance").values()
    return instance["Properties"]


def test_no_ssh_key_and_no_inbound_rule(synthesized):
    props = _instance(synthesized)
    assert "KeyName" not in props
    sgs = resources(synthesized.templates["eks-multus-cluster"], "AWS::EC2::SecurityGroup")
    (bastion_sg,) = [v for k, v in sgs.items() if k.startswith("BastionSecurityGroup")]
    assert "SecurityGroupIngress" not in bastion_sg["Properties"]
    assert [(e["IpProtocol"], e["FromPort"]) for e in bastion_sg["Properties"]["SecurityGroupEgress"]] == [("tcp", 443)]


def test_imdsv2_is_required_with_hop_limit_1(synthesized):
    assert _instance(synthesized)["MetadataOptions"] == {
        "HttpEndpoint": "enabled", "HttpTokens": "required", "HttpPutResponseHopLimit": 1}


def test_root_volume_is_encrypted(synthesized):
    (device,) = _instance(synthesized)["BlockDeviceMappings"]
    assert device["Ebs"]["Encrypted"] is True and device["Ebs"]["VolumeType"] == "gp3"


def test_session_manager_and_eks_describe_only(synthesized):
    template = synthesized.templates["eks-multus-cluster"]
    (role,) = [v for k, v in resources(template, "AWS::IAM::Role").items() if k.startswith("BastionRole")]
    assert "AmazonSSMManagedInstanceCore" in json.dumps(role["Properties"]["ManagedPolicyArns"])
    (policy,) = [v for k, v in resources(template, "AWS::IAM::Policy").items() if k.startswith("BastionRole")]
    actions = [s["Action"] for s in policy["Properties"]["PolicyDocument"]["Statement"]]
    assert actions == ["eks:DescribeCluster"]


def test_boot_installs_matching_kubectl_and_a_kubeconfig(synthesized):
    user_data = json.dumps(_instance(synthesized)["UserData"])
    assert "stable-${minor}.txt" in user_data and 'minor=\\"1.35\\"' in user_data
    assert "sha256sum --check" in user_data
    assert "aws eks update-kubeconfig" in user_data and "/etc/skel" in user_data


def test_output_gives_the_session_command(synthesized):
    outputs = synthesized.templates["eks-multus-cluster"]["Outputs"]
    (cmd,) = [v for k, v in outputs.items() if k.startswith("BastionSessionCommand")]
    assert "aws ssm start-session --region us-west-2 --target" in json.dumps(cmd["Value"])
