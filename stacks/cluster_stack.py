"""Network, bastion and EKS cluster: the long-lived part, deployed first."""

from __future__ import annotations

from typing import Any

from aws_cdk import CfnOutput
from constructs import Construct

from eks_multus_cdk.bastion import Bastion
from eks_multus_cdk.cluster import Cluster
from eks_multus_cdk.config import AppConfig
from eks_multus_cdk.log_encryption import logs_key
from eks_multus_cdk.network import Network
from stacks.base import PinnedAzStack


class ClusterStack(PinnedAzStack):
    def __init__(self, scope: Construct, construct_id: str, *, config: AppConfig, **kwargs: Any) -> None:
        super().__init__(scope, construct_id, config=config,
                         description="eks-multus-cdk: VPC with Multus subnets, bastion, EKS cluster", **kwargs)
        # One customer-managed key for every log group of the app (this stack's and the workers stack's).
        self.logs_key = logs_key(self, "LogsKey")
        self.encrypt_logs_with(self.logs_key)
        self.network = Network(self, "Network", config=config, log_key=self.logs_key)
        self.cluster = Cluster(self, "Cluster", config=config, vpc=self.network.vpc,
                               private_subnets=self.network.private_subnets, log_key=self.logs_key)
        self.bastion = (
            Bastion(self, "Bastion", config=config, vpc=self.network.vpc, subnets=self.network.private_subnets,
                    cluster=self.cluster.cluster)
            if config.bastion else None
        )
        CfnOutput(self, "VpcId", value=self.network.vpc.vpc_id)
        CfnOutput(self, "PrivateSubnetIds", value=",".join(s.subnet_id for s in self.network.private_subnets))
        for pos, (net, subnets) in enumerate(zip(config.multus_networks, self.network.multus_subnets, strict=True)):
            CfnOutput(self, f"Multus{pos + 1}SubnetIds", value=",".join(s.subnet_id for s in subnets),
                      description=f"Subnets of Multus network {net.name}, in AZ order")
