"""Node groups with their ENI Lambda, and Multus on the cluster: deployed after the cluster stack."""

from __future__ import annotations

from typing import Any

from constructs import Construct

from eks_multus_cdk.config import AppConfig
from stacks.base import PinnedAzStack
from stacks.cluster_stack import ClusterStack


class WorkersStack(PinnedAzStack):
    def __init__(
        self, scope: Construct, construct_id: str, *, config: AppConfig, cluster_stack: ClusterStack, **kwargs: Any
    ) -> None:
        super().__init__(scope, construct_id, config=config,
                         description="eks-multus-cdk: Multus node groups, ENI Lambda, Multus CNI and samples", **kwargs)
