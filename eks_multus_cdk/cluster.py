"""Step 3 of the walkthrough: the EKS cluster (aws_eks_v2: native AWS::EKS::Cluster, access entries only)."""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import RemovalPolicy, Stack
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_eks_v2 as eks
from aws_cdk import aws_kms as kms
from aws_cdk import aws_logs as logs
from aws_cdk.lambda_layer_kubectl_v35 import KubectlV35Layer
from constructs import Construct

from eks_multus_cdk.compliance import acknowledge, managed_policy_finding

_KUBECTL_PROVIDER_REASON = (
    "aws-cdk-lib's kubectl provider (a Lambda and the custom-resource framework): its roles, managed policies and "
    "runtime are chosen by the library and cannot be set from here."
)


def _acknowledge_kubectl_provider(cluster: eks.Cluster) -> None:
    provider = cluster.node.find_child("KubectlProvider")
    stack = Stack.of(cluster)
    handler = provider.node.find_child("Handler")
    ecr_public = stack.get_logical_id(handler.node.find_child("HasEcrPublic"))
    ecr_public_policy = (
        f'{{"Fn::If":["{ecr_public}",{{"Fn::Join":["",["arn:",{{"Ref":"AWS::Partition"}},'
        '":iam::aws:policy/AmazonElasticContainerRegistryPublicReadOnly"]]},{"Ref":"AWS::NoValue"}]}'
    )
    findings = [
        managed_policy_finding("service-role/AWSLambdaBasicExecutionRole"),
        managed_policy_finding("service-role/AWSLambdaVPCAccessExecutionRole"),
        managed_policy_finding("AmazonEC2ContainerRegistryReadOnly"),
        f"AwsSolutions-IAM4[Policy::{ecr_public_policy}]",
        f"AwsSolutions-IAM5[Resource::<{stack.get_logical_id(handler.node.default_child)}.Arn>:*]",
        "AwsSolutions-L1",
    ]
    acknowledge(provider, dict.fromkeys(findings, _KUBECTL_PROVIDER_REASON))

ALL_LOG_TYPES = [
    eks.ClusterLoggingTypes.API,
    eks.ClusterLoggingTypes.AUDIT,
    eks.ClusterLoggingTypes.AUTHENTICATOR,
    eks.ClusterLoggingTypes.CONTROLLER_MANAGER,
    eks.ClusterLoggingTypes.SCHEDULER,
]


def cluster_admin_policies() -> list[eks.IAccessPolicy]:
    return [eks.AccessPolicy.from_access_policy_name(
        "AmazonEKSClusterAdminPolicy", access_scope_type=eks.AccessScopeType.CLUSTER)]


class Cluster(Construct):
    """EKS control plane with KMS-encrypted secrets, all control-plane logs, a kubectl provider and no capacity.

    The API endpoint is private unless `endpointPublicAccessCidrs` names who may reach it publicly; then it is
    public (only from those CIDRs) and private. The kubectl provider Lambda runs in the private subnets so it
    reaches a private endpoint.

    Props: `cluster_name`, `vpc`, `private_subnets` (control plane ENIs and the kubectl Lambda),
    `kubernetes_version`, `service_cidr`, `endpoint_public_access_cidrs`, `admin_role_arns` (cluster-admin access
    entries), `log_retention` and `log_key` (control-plane log group). Attributes: `cluster` (eks_v2 Cluster),
    `cluster_name`, `secrets_key`, `log_group`. No CfnOutputs: the app's stack writes them.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        cluster_name: str,
        vpc: ec2.IVpc,
        private_subnets: Sequence[ec2.ISubnet],
        kubernetes_version: str = "1.35",
        service_cidr: str = "172.20.0.0/16",
        endpoint_public_access_cidrs: Sequence[str] = (),
        admin_role_arns: Sequence[str] = (),
        log_retention: logs.RetentionDays = logs.RetentionDays.ONE_MONTH,
        log_key: kms.IKey | None = None,
    ) -> None:
        super().__init__(scope, construct_id)
        private_subnets = list(private_subnets)
        # The control plane's log group, made here (retention, our key, deleted with the stack) before EKS would
        # create it without either: that needs the cluster's name in advance, so the cluster gets a fixed one.
        self.cluster_name = cluster_name
        self.log_group = logs.LogGroup(
            self, "ControlPlaneLogs", log_group_name=f"/aws/eks/{self.cluster_name}/cluster",
            retention=log_retention,
            encryption_key=log_key, removal_policy=RemovalPolicy.DESTROY,
        )
        self.secrets_key = kms.Key(
            self, "SecretsKey", enable_key_rotation=True, description="EKS envelope encryption of Secrets"
        )
        endpoint = (
            eks.EndpointAccess.PUBLIC_AND_PRIVATE.only_from(*endpoint_public_access_cidrs)
            if endpoint_public_access_cidrs
            else eks.EndpointAccess.PRIVATE
        )
        self.cluster = eks.Cluster(
            self,
            "Cluster",
            cluster_name=self.cluster_name,
            version=eks.KubernetesVersion.of(kubernetes_version),
            vpc=vpc,
            vpc_subnets=[ec2.SubnetSelection(subnets=private_subnets)],
            endpoint_access=endpoint,
            secrets_encryption_key=self.secrets_key,
            cluster_logging=ALL_LOG_TYPES,
            service_ipv4_cidr=service_cidr,
            # Self-managed nodes come from MultusNodeGroup: no Auto Mode, no default node group.
            default_capacity_type=eks.DefaultCapacityType.NODEGROUP,
            default_capacity=0,
            # Admins are named explicitly (bastion, adminRoleArns); the deploying principal gets nothing implicit.
            bootstrap_cluster_creator_admin_permissions=False,
            output_config_command=False,
            kubectl_provider_options=eks.KubectlProviderOptions(
                kubectl_layer=KubectlV35Layer(self, "KubectlLayer"),
                private_subnets=private_subnets,
            ),
        )
        self.cluster.node.add_dependency(self.log_group)
        acknowledge(self.cluster.role, {
            managed_policy_finding("AmazonEKSClusterPolicy"): "The EKS service role policy EKS requires for the "
            "control plane; AWS maintains it as EKS gains features.",
        })
        _acknowledge_kubectl_provider(self.cluster)
        for i, arn in enumerate(admin_role_arns):
            self.cluster.grant_access(f"Admin{i + 1}", arn, cluster_admin_policies())

