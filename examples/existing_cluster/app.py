#!/usr/bin/env python3
"""Multus on an EKS cluster you already run: only the node group, its ENI Lambda, Multus and the NADs are added.

The VPC, its subnets (the Multus ones from a secondary CIDR, 100.64.0.0/16), the cluster and its kubectl
provider exist already and are imported from the ids in cdk.json's context. Nothing else of eks-multus-cdk's app
(network, bastion, cluster) is created. Pods of one network reach pods on other nodes only with PodAddressSync
(see the README); this example keeps host-local IPAM, so pods talk to pods of their own node and to the VPC.
"""

from aws_cdk import App, CfnOutput, Environment, Stack
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_eks_v2 as eks
from aws_cdk import aws_iam as iam

from eks_multus_cdk import MultusCni, MultusNetwork, MultusNodeGroup, PodRangeReservations

app = App()
ctx = app.node.get_context("existing")
stack = Stack(app, "MultusOnExistingCluster", env=Environment(account=ctx["account"], region=ctx["region"]))


def subnets(prefix: str, ids: dict[str, str], cidrs: dict[str, str] | None = None) -> list[ec2.ISubnet]:
    """Imported subnets, one per AZ, with their AZ (and CIDR) as attributes: no lookup at synth."""
    return [ec2.Subnet.from_subnet_attributes(stack, f"{prefix}-{az}", subnet_id=sid, availability_zone=az,
                                              ipv4_cidr_block=(cidrs or {}).get(az))
            for az, sid in sorted(ids.items())]


vpc = ec2.Vpc.from_vpc_attributes(stack, "Vpc", vpc_id=ctx["vpcId"], availability_zones=sorted(ctx["nodeSubnets"]),
                                  private_subnet_ids=[ctx["nodeSubnets"][az] for az in sorted(ctx["nodeSubnets"])])
cluster = eks.Cluster.from_cluster_attributes(
    stack, "Cluster", cluster_name=ctx["clusterName"], vpc=vpc,
    cluster_endpoint=ctx["clusterEndpoint"], cluster_certificate_authority_data=ctx["clusterCa"],
    cluster_security_group_id=ctx["clusterSecurityGroupId"],
    # The Lambda that applies manifests (an aws_eks_v2 cluster's kubectl provider, or one made the same way) and
    # the role it assumes, which needs a cluster access entry with cluster-admin rights.
    kubectl_provider=eks.KubectlProvider.from_kubectl_provider_attributes(
        stack, "KubectlProvider", service_token=ctx["kubectlServiceToken"],
        role=iam.Role.from_role_arn(stack, "KubectlRole", ctx["kubectlRoleArn"])),
)
media = MultusNetwork(name="media", subnets=subnets("Media", ctx["mediaSubnets"], ctx["mediaSubnetCidrs"]),
                      plugin="ipvlan", ipvlan_mode="l2", routes=["192.168.50.0/24"])
workers = MultusNodeGroup(
    stack, "MultusWorkers", cluster=cluster, vpc=vpc, subnets=subnets("Nodes", ctx["nodeSubnets"]),
    networks=[media],
    multus_security_group=ec2.SecurityGroup.from_security_group_id(stack, "MultusSg", ctx["multusSecurityGroupId"]),
    kubernetes_version=ctx["kubernetesVersion"], instance_type="c5.xlarge", min_size=1, max_size=3,
    asg_name="existing-multus-workers",
)
multus = MultusCni(stack, "Multus", cluster=cluster, node_groups=[workers], namespace="telco", whereabouts=False)
# EC2 must never hand the pod ranges (the last /25 of each Multus subnet) to an ENI of its own.
PodRangeReservations(stack, "PodRanges", networks=[media])
CfnOutput(stack, "AsgName", value=workers.asg_name)
CfnOutput(stack, "EniFunctionName", value=workers.eni_attacher.function.function_name)
app.synth()
