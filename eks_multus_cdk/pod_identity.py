"""EKS Pod Identity roles that only this cluster's associations can use, and the VPC CNI's own identity.

`pods.eks.amazonaws.com` assumes a Pod Identity role for whichever association names it. Without conditions,
any association in the account (another cluster, another team) could name our role and get its rights. The
trust policy therefore requires `aws:SourceAccount` = this account and `aws:SourceArn` = this cluster's ARN,
the two keys EKS sets when it assumes the role for an association.

`VpcCniIdentity` gives the VPC CNI (`kube-system/aws-node`) its own role with AmazonEKS_CNI_Policy through the
vpc-cni EKS add-on's pod identity association, so that policy no longer sits on the node role (and so is not
reachable through the node's instance metadata). The Pod Identity agent add-on it needs is created here too.
"""

from __future__ import annotations

from aws_cdk import Stack
from aws_cdk import aws_eks_v2 as eks
from aws_cdk import aws_iam as iam
from constructs import Construct

from eks_multus_cdk.compliance import acknowledge, managed_policy_finding

POD_IDENTITY_SERVICE = "pods.eks.amazonaws.com"
POD_IDENTITY_AGENT = "eks-pod-identity-agent"
VPC_CNI_ADDON = "vpc-cni"
VPC_CNI_NAMESPACE = "kube-system"
VPC_CNI_SERVICE_ACCOUNT = "aws-node"


def pod_identity_principal(cluster: eks.ICluster) -> iam.IPrincipal:
    """`pods.eks.amazonaws.com`, only on behalf of `cluster` in this account, allowed to set session tags."""
    return iam.PrincipalWithConditions(
        iam.ServicePrincipal(POD_IDENTITY_SERVICE).with_session_tags(),
        {"StringEquals": {"aws:SourceAccount": Stack.of(cluster).account, "aws:SourceArn": cluster.cluster_arn}},
    )


class VpcCniIdentity(Construct):
    """The Pod Identity agent add-on, and the vpc-cni add-on with its own role (AmazonEKS_CNI_Policy).

    Attributes: `agent` (the eks-pod-identity-agent add-on), `role`, `addon` (the vpc-cni add-on). Nodes must
    not start before both add-ons exist: make the node group depend on this construct.
    """

    def __init__(self, scope: Construct, construct_id: str, *, cluster: eks.ICluster) -> None:
        super().__init__(scope, construct_id)
        self.agent = eks.Addon(self, "PodIdentityAgent", cluster=cluster, addon_name=POD_IDENTITY_AGENT)
        self.role = iam.Role(
            self, "Role", assumed_by=pod_identity_principal(cluster),
            description="VPC CNI (kube-system/aws-node): pod IP addresses on the nodes' VPC CNI ENIs",
            managed_policies=[iam.ManagedPolicy.from_aws_managed_policy_name("AmazonEKS_CNI_Policy")],
        )
        acknowledge(self.role, {
            managed_policy_finding("AmazonEKS_CNI_Policy"): "The AWS-maintained policy the VPC CNI needs to create, "
            "attach and address ENIs on any node (ENI ids are unknown in advance). Only the aws-node service "
            "account gets it, through Pod Identity; the node role and other pods do not.",
        })
        self.addon = eks.Addon(self, "VpcCni", cluster=cluster, addon_name=VPC_CNI_ADDON)
        cfn_addon: eks.CfnAddon = self.addon.node.default_child
        # EKS installs the VPC CNI itself at cluster creation; the managed add-on takes its objects over.
        cfn_addon.resolve_conflicts = "OVERWRITE"
        cfn_addon.pod_identity_associations = [eks.CfnAddon.PodIdentityAssociationProperty(
            service_account=VPC_CNI_SERVICE_ACCOUNT, role_arn=self.role.role_arn)]
        # The agent hands out the credentials: it must run before aws-node asks for them.
        self.addon.node.add_dependency(self.agent)
