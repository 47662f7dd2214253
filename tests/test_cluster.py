"""Cluster construct: version, logging, encryption, endpoint, access entries, no default capacity."""

from __future__ import annotations

from aws_cdk import App
from aws_cdk.assertions import Match, Template

from eks_multus_cdk.cluster import Cluster
from eks_multus_cdk.network import Network
from stacks.base import PinnedAzStack
from stacks.props import network_props
from tests.conftest import resources


def _cluster(template: dict) -> dict:
    (cluster,) = resources(template, "AWS::EKS::Cluster").values()
    return cluster["Properties"]


def test_kubernetes_version_and_native_cluster_resource(synthesized):
    template = synthesized.templates["eks-multus-cluster"]
    assert _cluster(template)["Version"] == "1.35"
    assert not resources(template, "AWS::CloudFormation::Stack"), "no nested stacks"


def test_all_control_plane_logs_enabled(synthesized):
    types = {t["Type"] for t in _cluster(synthesized.templates["eks-multus-cluster"])["Logging"]["ClusterLogging"][
        "EnabledTypes"]}
    assert types == {"api", "audit", "authenticator", "controllerManager", "scheduler"}


def test_secrets_are_envelope_encrypted_with_a_rotated_key(synthesized):
    props = _cluster(synthesized.templates["eks-multus-cluster"])
    (enc,) = props["EncryptionConfig"]
    assert enc["Resources"] == ["secrets"]
    key_id = enc["Provider"]["KeyArn"]["Fn::GetAtt"][0]
    key = synthesized.templates["eks-multus-cluster"]["Resources"][key_id]
    assert key["Type"] == "AWS::KMS::Key" and key["Properties"]["EnableKeyRotation"] is True


def test_endpoint_is_private_by_default(synthesized):
    vpc_config = _cluster(synthesized.templates["eks-multus-cluster"])["ResourcesVpcConfig"]
    assert vpc_config["EndpointPrivateAccess"] is True
    assert vpc_config["EndpointPublicAccess"] is False


def test_no_default_capacity_and_access_entries_only(synthesized):
    template = synthesized.templates["eks-multus-cluster"]
    props = _cluster(template)
    assert props["AccessConfig"] == {"AuthenticationMode": "API", "BootstrapClusterCreatorAdminPermissions": False}
    assert props["ComputeConfig"] == {"Enabled": False}
    for t in synthesized.templates.values():
        assert not resources(t, "AWS::EKS::Nodegroup")


def test_kubectl_provider_uses_the_kubectl_layer_in_private_subnets(synthesized):
    template = synthesized.templates["eks-multus-cluster"]
    layers = resources(template, "AWS::Lambda::LayerVersion")
    assert any("kubectl" in v["Properties"].get("Description", "").lower() for v in layers.values())
    synthesized.cluster.has_resource_properties("AWS::Lambda::Function", {
        "Layers": Match.array_with([{"Ref": Match.string_like_regexp("KubectlLayer")}]),
        "VpcConfig": Match.object_like({"SubnetIds": Match.any_value()}),
    })


def test_bastion_role_is_cluster_admin_through_an_access_entry(synthesized):
    synthesized.cluster.has_resource_properties("AWS::EKS::AccessEntry", {
        "PrincipalArn": {"Fn::GetAtt": [Match.string_like_regexp("^BastionRole"), "Arn"]},
        "AccessPolicies": [{"AccessScope": {"Type": "cluster"}, "PolicyArn": Match.any_value()}],
    })


def test_public_endpoint_and_admin_roles_from_config(make_config):
    config = make_config(endpointPublicAccessCidrs='["198.51.100.0/24"]',
                         adminRoleArns='["arn:aws:iam::111122223333:role/Admin"]')
    stack = PinnedAzStack(App(), "Variant", config=config)
    network = Network(stack, "Network", **network_props(config))
    Cluster(stack, "Cluster", cluster_name=config.stack_prefix, vpc=network.vpc,
            private_subnets=network.private_subnets, kubernetes_version=config.kubernetes_version,
            endpoint_public_access_cidrs=config.endpoint_public_access_cidrs, admin_role_arns=config.admin_role_arns)
    template = Template.from_stack(stack)
    template.has_resource_properties("AWS::EKS::Cluster", {"ResourcesVpcConfig": Match.object_like({
        "EndpointPublicAccess": True, "EndpointPrivateAccess": True, "PublicAccessCidrs": ["198.51.100.0/24"]})})
    template.has_resource_properties("AWS::EKS::AccessEntry", {
        "PrincipalArn": "arn:aws:iam::111122223333:role/Admin",
        "AccessPolicies": [Match.object_like({"AccessScope": {"Type": "cluster"}})]})
