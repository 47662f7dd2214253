#!/usr/bin/env python3
"""Two node groups that carry different Multus networks, on a VPC and cluster this app creates.

`core` nodes carry signalling (multus1) and media (multus2); `edge` nodes carry signalling (multus1), media
(multus2) and oam (multus3). A network shared by both groups sits at the same device index in each: MultusCni
renders one NAD per network and AZ whose `master` is that interface, and refuses to build if the groups disagree.
whereabouts IPAM and the pod-address controller (PodAddressSync) let pods talk across nodes.
"""

from aws_cdk import App, CfnOutput, Environment, Stack
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_eks_v2 as eks
from aws_cdk.lambda_layer_kubectl_v35 import KubectlV35Layer

from eks_multus_cdk import MultusCni, MultusNetwork, MultusNodeGroup, PodAddressSync, VpcCniIdentity

app = App()
region = app.node.try_get_context("region") or "eu-west-1"
azs = [f"{region}a", f"{region}b"]
stack = Stack(app, "TwoMultusNodeGroups", env=Environment(region=region))

multus_groups = ["signalling", "media", "oam"]
vpc = ec2.Vpc(
    stack, "Vpc", ip_addresses=ec2.IpAddresses.cidr("10.20.0.0/16"), availability_zones=azs, nat_gateways=1,
    subnet_configuration=[
        ec2.SubnetConfiguration(name="public", subnet_type=ec2.SubnetType.PUBLIC, cidr_mask=24),
        ec2.SubnetConfiguration(name="nodes", subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS, cidr_mask=22),
        # Multus subnets: VPC-internal only
        *(ec2.SubnetConfiguration(name=name, subnet_type=ec2.SubnetType.PRIVATE_ISOLATED, cidr_mask=24)
          for name in multus_groups),
    ],
)
cluster = eks.Cluster(
    stack, "Cluster", version=eks.KubernetesVersion.of("1.35"), vpc=vpc,
    vpc_subnets=[ec2.SubnetSelection(subnet_group_name="nodes")], endpoint_access=eks.EndpointAccess.PRIVATE,
    default_capacity_type=eks.DefaultCapacityType.NODEGROUP, default_capacity=0,
    kubectl_provider_options=eks.KubectlProviderOptions(kubectl_layer=KubectlV35Layer(stack, "KubectlLayer")),
)
multus_sg = ec2.SecurityGroup(stack, "MultusSg", vpc=vpc, description="Multus ENIs", allow_all_outbound=False)
multus_sg.add_ingress_rule(ec2.Peer.ipv4(vpc.vpc_cidr_block), ec2.Port.all_traffic(), "Multus inside the VPC")
multus_sg.add_egress_rule(ec2.Peer.ipv4(vpc.vpc_cidr_block), ec2.Port.all_traffic(), "Multus inside the VPC")

signalling, media, oam = (
    MultusNetwork(name=name, subnets=vpc.select_subnets(subnet_group_name=name).subnets) for name in multus_groups)
cni_identity = VpcCniIdentity(stack, "VpcCniIdentity", cluster=cluster)
groups = []
for gid, networks, instance_type in (("Core", [signalling, media], "c5.xlarge"),
                                     ("Edge", [signalling, media, oam], "c5.2xlarge")):
    group = MultusNodeGroup(
        stack, gid, cluster=cluster, vpc=vpc, subnets=vpc.select_subnets(subnet_group_name="nodes").subnets,
        networks=networks, multus_security_group=multus_sg, kubernetes_version="1.35", instance_type=instance_type,
        labels={"example.com/role": gid.lower()}, asg_name=f"two-groups-{gid.lower()}",
        pod_address_sync=True, startup_taint=True)
    group.auto_scaling_group.node.add_dependency(cni_identity)
    CfnOutput(stack, f"{gid}AsgName", value=group.asg_name)
    groups.append(group)

multus = MultusCni(stack, "Multus", cluster=cluster, node_groups=groups, whereabouts=True)
pod_addresses = PodAddressSync(stack, "PodAddresses", cluster=cluster, node_groups=groups, owner_prefix="two-groups")
pod_addresses.manifest.node.add_dependency(cni_identity.agent)
multus.nad_manifest.node.add_dependency(pod_addresses.whereabouts_manifest)
app.synth()
