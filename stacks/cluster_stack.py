"""Network, bastion and EKS cluster: the long-lived part, deployed first."""

from __future__ import annotations

from typing import Any

from aws_cdk import CfnOutput
from constructs import Construct

from eks_multus_cdk.bastion import Bastion
from eks_multus_cdk.cluster import Cluster
from eks_multus_cdk.config import AppConfig
from eks_multus_cdk.log_encryption import logs_key
from eks_multus_cdk.network import Network, log_retention
from stacks.base import PinnedAzStack
from stacks.props import network_props


class ClusterStack(PinnedAzStack):
    def __init__(self, scope: Construct, construct_id: str, *, config: AppConfig, **kwargs: Any) -> None:
        super().__init__(scope, construct_id, config=config,
                         description="eks-multus-cdk: VPC with Multus subnets, bastion, EKS cluster", **kwargs)
        # One customer-managed key for every log group of the app (this stack's and the workers stack's).
        self.logs_key = logs_key(self, "LogsKey")
        self.encrypt_logs_with(self.logs_key)
        self.network = Network(self, "Network", **network_props(config), log_key=self.logs_key)
        self.cluster = Cluster(
            self, "Cluster", cluster_name=config.stack_prefix, vpc=self.network.vpc,
            private_subnets=self.network.private_subnets, kubernetes_version=config.kubernetes_version,
            service_cidr=config.service_cidr, endpoint_public_access_cidrs=config.endpoint_public_access_cidrs,
            admin_role_arns=config.admin_role_arns, log_retention=log_retention(config), log_key=self.logs_key)
        self.bastion = (
            Bastion(self, "Bastion", vpc=self.network.vpc, subnets=self.network.private_subnets,
                    cluster=self.cluster.cluster, kubernetes_version=config.kubernetes_version,
                    instance_type=config.bastion_instance_type)
            if config.bastion else None
        )
        # The library constructs write no outputs; the app's are here, under readable keys.
        CfnOutput(self, "ClusterName", value=self.cluster.cluster.cluster_name, description="EKS cluster name")
        CfnOutput(self, "UpdateKubeconfigCommand",
                  value=f"aws eks update-kubeconfig --region {self.region} --name {self.cluster.cluster.cluster_name}",
                  description="Writes a kubeconfig for this cluster (run where the API endpoint is reachable)")
        if self.bastion is not None:
            session = f"aws ssm start-session --region {self.region} --target {self.bastion.instance.instance_id}"
            CfnOutput(self, "BastionSessionCommand", value=session,
                      description="Opens a shell on the bastion (needs the Session Manager plugin); kubectl is ready "
                      "there")
        CfnOutput(self, "VpcId", value=self.network.vpc.vpc_id)
        CfnOutput(self, "PrivateSubnetIds", value=",".join(s.subnet_id for s in self.network.private_subnets))
        for pos, (net, subnets) in enumerate(zip(config.multus_networks, self.network.multus_subnets, strict=True)):
            CfnOutput(self, f"Multus{pos + 1}SubnetIds", value=",".join(s.subnet_id for s in subnets),
                      description=f"Subnets of Multus network {net.name}, in AZ order")
