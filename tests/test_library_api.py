"""The library's own props: constructs built from a MultusNetwork model, without the app's config.

Construct-level: node groups declare their networks in device order and MultusCni renders the NADs from them,
so a network carried at two device indexes fails construction with one message (never a NAD whose `master`
names another ENI); the Multus image follows the stack's region, also in an environment-agnostic stack.
"""

from __future__ import annotations

import json
import re

import pytest
from aws_cdk import App, Environment, Stack
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_eks_v2 as eks
from aws_cdk.assertions import Template
from aws_cdk.lambda_layer_kubectl_v35 import KubectlV35Layer

from eks_multus_cdk.model import MultusNetwork, device_indexes
from eks_multus_cdk.multus import MultusCni
from eks_multus_cdk.node_group import MultusNodeGroup
from tests.manifests.multus_test_app import kubernetes_manifest_resources, manifest_objects

AZS = ["eu-west-1a", "eu-west-1b"]


class TwoAzStack(Stack):
    @property
    def availability_zones(self) -> list[str]:
        return AZS


def _stack(env: Environment | None) -> tuple[Stack, eks.Cluster, ec2.Vpc]:
    stack = TwoAzStack(App(), "Lib", env=env)
    vpc = ec2.Vpc(stack, "Vpc", max_azs=2, nat_gateways=0, subnet_configuration=[
        ec2.SubnetConfiguration(name="nodes", subnet_type=ec2.SubnetType.PRIVATE_ISOLATED, cidr_mask=24)])
    cluster = eks.Cluster(stack, "Cluster", version=eks.KubernetesVersion.of("1.35"), vpc=vpc,
                          vpc_subnets=[ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_ISOLATED)],
                          endpoint_access=eks.EndpointAccess.PRIVATE,
                          default_capacity_type=eks.DefaultCapacityType.NODEGROUP, default_capacity=0,
                          kubectl_provider_options=eks.KubectlProviderOptions(
                              kubectl_layer=KubectlV35Layer(stack, "KubectlLayer")))
    return stack, cluster, vpc


def _network(stack: Stack, name: str, third_octet: int) -> MultusNetwork:
    """A network on imported subnets of a secondary CIDR (100.64.0.0/16), one per AZ."""
    return MultusNetwork(name=name, subnets=[
        ec2.Subnet.from_subnet_attributes(stack, f"{name}{third_octet}{i}", subnet_id=f"subnet-{name}{i}",
                                          availability_zone=az, ipv4_cidr_block=f"100.64.{third_octet + i}.0/24")
        for i, az in enumerate(AZS)])


def _group(stack: Stack, cluster: eks.Cluster, vpc: ec2.Vpc, gid: str, networks: list[MultusNetwork],
           sg: ec2.ISecurityGroup) -> MultusNodeGroup:
    return MultusNodeGroup(stack, gid, cluster=cluster, vpc=vpc, subnets=vpc.isolated_subnets, networks=networks,
                           multus_security_group=sg, kubernetes_version="1.35", asg_name=f"lib-{gid}")


def test_a_network_at_two_device_indexes_fails_naming_it_and_the_indexes():
    stack, cluster, vpc = _stack(Environment(region="eu-west-1"))
    sg = ec2.SecurityGroup(stack, "MultusSg", vpc=vpc)
    signalling, media = _network(stack, "signalling", 10), _network(stack, "media", 20)
    # media is the second ENI (multus2) of the first group, but the only one (multus1) of the second
    core = _group(stack, cluster, vpc, "Core", [signalling, media], sg)
    edge = _group(stack, cluster, vpc, "Edge", [media], sg)
    with pytest.raises(ValueError) as err:
        MultusCni(stack, "Multus", cluster=cluster, node_groups=[core, edge])
    message = str(err.value)
    assert "'media'" in message and "device index 2" in message and "device index 1" in message
    assert "'Core'" in message and "'Edge'" in message
    assert "\n" not in message


def test_different_networks_per_group_render_each_nad_with_its_own_interface():
    stack, cluster, vpc = _stack(Environment(region="eu-west-1"))
    sg = ec2.SecurityGroup(stack, "MultusSg", vpc=vpc)
    signalling, media, oam = (_network(stack, n, o) for n, o in (("signalling", 10), ("media", 20), ("oam", 30)))
    core = _group(stack, cluster, vpc, "Core", [signalling, media], sg)
    edge = _group(stack, cluster, vpc, "Edge", [signalling, media, oam], sg)
    multus = MultusCni(stack, "Multus", cluster=cluster, node_groups=[core, edge], whereabouts=False)
    assert {name: index for name, (_, index) in multus.networks.items()} == {"signalling": 1, "media": 2, "oam": 3}
    template = Template.from_stack(stack).to_json()
    nads = {o["metadata"]["name"]: json.loads(o["spec"]["config"])
            for r in kubernetes_manifest_resources(template).values() for o in manifest_objects(r)
            if o.get("kind") == "NetworkAttachmentDefinition"}
    assert {n: c["master"] for n, c in nads.items()} == {
        "signalling-eu-west-1a": "multus1", "signalling-eu-west-1b": "multus1", "media-eu-west-1a": "multus2",
        "media-eu-west-1b": "multus2", "oam-eu-west-1a": "multus3", "oam-eu-west-1b": "multus3"}
    assert nads["media-eu-west-1b"]["ipam"]["ranges"][0][0]["subnet"] == "100.64.21.0/24"
    # each group's ENI Lambda creates only the ENIs of the networks that group carries
    env = [r["Properties"]["Environment"]["Variables"]["MULTUS_NETWORKS"]
           for r in template["Resources"].values() if r["Type"] == "AWS::Lambda::Function"
           and "MULTUS_NETWORKS" in r["Properties"].get("Environment", {}).get("Variables", {})]
    counts = sorted(json.dumps(v).count("deviceIndex") for v in env)
    assert counts == [2, 3]


def test_a_network_without_a_subnet_where_the_nodes_run_fails():
    stack, cluster, vpc = _stack(Environment(region="eu-west-1"))
    sg = ec2.SecurityGroup(stack, "MultusSg", vpc=vpc)
    one_az = MultusNetwork(name="oam", subnets=[ec2.Subnet.from_subnet_attributes(
        stack, "oam0", subnet_id="subnet-oam0", availability_zone="eu-west-1a", ipv4_cidr_block="100.64.30.0/24")])
    with pytest.raises(ValueError, match="Multus network 'oam' has no subnet in eu-west-1b"):
        _group(stack, cluster, vpc, "Core", [one_az], sg)


def test_image_registry_follows_an_environment_agnostic_stack_through_a_region_mapping():
    """No region anywhere: the registry comes from Fn::FindInMap over AWS::Region, and the node group's cdk-nag
    acknowledgements (ARNs with the region) synthesize without a token in their ids (KeyMustResolveToString)."""
    stack, cluster, vpc = _stack(None)
    group = _group(stack, cluster, vpc, "Workers", [_network(stack, "media", 20)],
                   ec2.SecurityGroup(stack, "MultusSg", vpc=vpc))
    MultusCni(stack, "Multus", cluster=cluster, node_groups=[group])
    template = Template.from_stack(stack).to_json()
    (mapping,) = template["Mappings"].values()
    assert mapping["eu-west-1"]["host"] == "602401143452.dkr.ecr.eu-west-1.amazonaws.com"
    assert mapping["af-south-1"]["host"].startswith("877085696533.")
    daemonset = next(r for r in kubernetes_manifest_resources(template).values()
                     if "DaemonSet" in json.dumps(r["Properties"]["Manifest"]))
    assert "Fn::FindInMap" in json.dumps(daemonset) and '"Ref": "AWS::Region"' in json.dumps(daemonset)


def test_device_indexes_rejects_two_networks_of_one_name():
    stack = Stack(App(), "S")
    a, b = _network(stack, "media", 20), _network(stack, "media", 40)
    with pytest.raises(ValueError, match="two different networks of that name"):
        device_indexes([("g1", [a]), ("g2", [b])])


def test_pod_ranges_of_imported_secondary_cidr_subnets_are_reserved():
    """Bring-your-own subnets keep the pod-range reservations (before, only `Network` made them)."""
    from eks_multus_cdk.cidr_reservations import PodRangeReservations

    stack = Stack(App(), "Reserve", env=Environment(region="eu-west-1"))
    media = _network(stack, "media", 20)
    reservations = PodRangeReservations(stack, "PodRanges", networks=[media])
    assert len(reservations.reservations) == 2
    template = Template.from_stack(stack).to_json()
    props = sorted((r["Properties"]["Cidr"], r["Properties"]["SubnetId"]) for r in template["Resources"].values()
                   if r["Type"] == "Custom::SubnetCidrReservation")
    assert props == [("100.64.20.128/25", "subnet-media0"), ("100.64.21.128/25", "subnet-media1")]


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"plugin": "macvlan"}, "plugin 'macvlan' is not one of ipvlan, host-device"),
    ({"ipvlan_mode": "l4"}, "ipvlan_mode 'l4'"),
    ({"routes": ["10.0.0.0/33"]}, "route '10.0.0.0/33' is not an IPv4 network"),
    ({"pod_range_prefix_length": 30}, "pod_range_prefix_length 30"),
    ({"subnet_cidrs": ["100.64.20.0/24"]}, "subnet_cidrs has 1 entries for 2 subnets"),
])
def test_a_bad_network_fails_in_one_line_naming_it_and_the_value(kwargs, message):
    stack = Stack(App(), "Bad")
    subnets = _network(stack, "media", 20).subnets
    with pytest.raises(ValueError, match=re.escape(message)) as err:
        MultusNetwork(name="media", subnets=subnets, **kwargs)
    assert str(err.value).startswith("MultusNetwork 'media': ") and "\n" not in str(err.value)


def test_subnets_with_token_azs_are_refused():
    stack = Stack(App(), "Tokens")  # env-agnostic: the VPC's AZs are Fn::GetAZs tokens
    vpc = ec2.Vpc(stack, "Vpc", max_azs=2, nat_gateways=0, subnet_configuration=[
        ec2.SubnetConfiguration(name="m", subnet_type=ec2.SubnetType.PRIVATE_ISOLATED, cidr_mask=24)])
    with pytest.raises(ValueError, match="availability zones must be concrete names"):
        MultusNetwork(name="media", subnets=vpc.isolated_subnets)
