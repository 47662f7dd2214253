"""Node groups with their ENI Lambda, and Multus on the cluster: deployed after the cluster stack.

Here (and only in stacks/) the app's config becomes the constructs' props.
"""

from __future__ import annotations

from typing import Any

from aws_cdk import CfnOutput, CrossStackReferences, ReferenceStrength
from constructs import Construct

from eks_multus_cdk.config import AppConfig
from eks_multus_cdk.model import MultusNetwork
from eks_multus_cdk.multus import MultusCni
from eks_multus_cdk.network import log_retention
from eks_multus_cdk.node_group import MultusNodeGroup
from eks_multus_cdk.pod_addresses import PodAddressSync
from eks_multus_cdk.pod_identity import VpcCniIdentity
from eks_multus_cdk.sample_pods import sample_pod_manifests
from stacks.base import PinnedAzStack
from stacks.cluster_stack import ClusterStack


def multus_networks(config: AppConfig, cluster_stack: ClusterStack) -> list[MultusNetwork]:
    """The config's Multus networks with the subnets the cluster stack made for them."""
    return [
        MultusNetwork(name=net.name, subnets=subnets, subnet_cidrs=net.subnet_cidrs, plugin=net.plugin,
                      ipvlan_mode=net.ipvlan_mode, pod_range_prefix_length=net.pod_range_prefix_length,
                      routes=net.routes)
        for net, subnets in zip(config.multus_networks, cluster_stack.network.multus_subnets, strict=True)
    ]


class WorkersStack(PinnedAzStack):
    def __init__(
        self, scope: Construct, construct_id: str, *, config: AppConfig, cluster_stack: ClusterStack, **kwargs: Any
    ) -> None:
        super().__init__(scope, construct_id, config=config,
                         description="eks-multus-cdk: Multus node groups, ENI Lambda, Multus CNI and samples", **kwargs)
        self.encrypt_logs_with(cluster_stack.logs_key)
        # Strong references (exports/imports) to the cluster stack, although cdk.json keeps the recommended weak
        # default: a weak reference (Fn::GetStackOutput) is read only when this stack is created or updated, so a
        # replaced subnet or key in the cluster stack would leave this stack's Lambda environment, ASG subnets and
        # IAM conditions on the old ids while `cdk deploy` sees no change here; an export in use also stops
        # CloudFormation from deleting what this stack still needs.
        CrossStackReferences.of(self).consume(ReferenceStrength.STRONG)
        network = cluster_stack.network
        cluster = cluster_stack.cluster.cluster
        self.networks = multus_networks(config, cluster_stack)
        # The VPC CNI's own Pod Identity role (the node role no longer carries AmazonEKS_CNI_Policy), before nodes.
        self.cni_identity = VpcCniIdentity(self, "VpcCniIdentity", cluster=cluster)
        self.node_groups: list[MultusNodeGroup] = []
        for i, group in enumerate(config.node_groups):
            # The first group keeps the plain id; more groups are numbered, so adding one replaces nothing.
            construct_id = "NodeGroup" if i == 0 else f"NodeGroup{i + 1}"
            ng = MultusNodeGroup(
                self, construct_id, cluster=cluster, vpc=network.vpc,
                subnets=[s for s in network.private_subnets
                         if not group.availability_zones or s.availability_zone in group.availability_zones],
                # every group of the app carries every network, in config order
                networks=self.networks, multus_security_group=network.multus_security_group,
                kubernetes_version=config.kubernetes_version, instance_type=group.instance_type,
                min_size=group.min_size, max_size=group.max_size, volume_size=group.volume_size,
                labels=group.labels, taints=group.taints, service_cidr=config.service_cidr,
                asg_name=f"{config.stack_prefix}-{group.name}", node_ssm=config.node_ssm,
                pod_address_sync=config.cross_node_traffic,
                # the pod-address controller (crossNodeTraffic) removes the startup taint
                startup_taint=config.cross_node_traffic,
                log_retention=log_retention(config), log_key=cluster_stack.logs_key,
                drainer_subnets=network.private_subnets,
            )
            ng.auto_scaling_group.node.add_dependency(self.cni_identity)
            # aws-node must have its own credentials before the node role loses AmazonEKS_CNI_Policy (upgrades).
            ng.role.node.add_dependency(self.cni_identity)
            CfnOutput(self, f"{construct_id}AsgName", value=ng.asg_name)
            CfnOutput(self, f"{construct_id}EniFunction", value=ng.eni_attacher.function.function_name)
            self.node_groups.append(ng)
        # Multus, its NetworkAttachmentDefinitions and the sample pods, applied through the cluster's kubectl provider.
        self.multus = MultusCni(self, "Multus", cluster=cluster, node_groups=self.node_groups,
                                namespace=config.network_namespace, whereabouts=config.cross_node_traffic,
                                sample_manifests=sample_pod_manifests(config))
        # Cross-node traffic: whereabouts hands out cluster-unique pod addresses and a per-node controller assigns
        # them to the node's Multus ENI, so the VPC delivers them. NADs name whereabouts; pods need it installed.
        self.pod_addresses = None
        if config.cross_node_traffic:
            self.pod_addresses = PodAddressSync(
                self, "PodAddresses", cluster=cluster, node_groups=self.node_groups, owner_prefix=config.stack_prefix,
                install_pod_identity_agent=False)
            self.pod_addresses.manifest.node.add_dependency(self.cni_identity.agent)
            self.multus.nad_manifest.node.add_dependency(self.pod_addresses.whereabouts_manifest)
