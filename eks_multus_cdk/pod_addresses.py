"""Cross-node traffic on Multus networks: cluster-unique pod addresses that the VPC knows about.

Built only when `crossNodeTraffic` is true. Two parts:
- whereabouts (manifests/whereabouts/): cluster-wide IPAM, so no two pods get the same address (the NADs name
  it with each AZ's pod range; see `eks_multus_cdk.nads`);
- the pod-address controller (controller/, manifests/pod-address-sync/): one per node, it assigns each pod's
  Multus address to the ENI the pod's interface sits on as a secondary private IP, and unassigns it when the pod
  goes, because the VPC drops packets for addresses no ENI holds. Design and limits: controller/README.md.

AWS side: the controller image (a Docker image asset built from controller/ at publish time; synth needs no
Docker), the EKS Pod Identity agent add-on, an IAM role for the controller's service account (write actions
only on ENIs tagged eks-multus/owner=<stackPrefix>-*) and the Pod Identity association.

The manifests are YAML files beside the code, rendered by the pure functions below.
"""

from __future__ import annotations

import copy
import json
import re
from typing import Any

from aws_cdk import Stack, Token
from aws_cdk import aws_ecr_assets as ecr_assets
from aws_cdk import aws_eks_v2 as eks
from aws_cdk import aws_iam as iam
from constructs import Construct

from eks_multus_cdk import naming
from eks_multus_cdk.assets import asset_path
from eks_multus_cdk.compliance import acknowledge
from eks_multus_cdk.config import AppConfig
from eks_multus_cdk.multus_manifests import load_manifest_file

NAMESPACE = "kube-system"
SERVICE_ACCOUNT = "multus-pod-address-sync"
CONTAINER = "controller"
POD_IDENTITY_AGENT = "eks-pod-identity-agent"
WHEREABOUTS_IMAGE = "ghcr.io/k8snetworkplumbingwg/whereabouts:v0.9.4"

# Applied in this order: CRDs before anything that uses them, identities before workloads.
WHEREABOUTS_FILES = ("crds.yaml", "rbac.yaml", "daemonset.yaml", "reconciler.yaml")
CONTROLLER_FILES = ("rbac.yaml", "node-status-policy.yaml", "daemonset.yaml")

# Graviton families carry a "g" after the generation digit (m7g, c6gn, t4g, r8gd); "g5" (GPU) does not.
_ARM_FAMILY = re.compile(r"^[a-z]+\d+[a-z]*g[a-z]*\.")


# --------------------------------------------------------------------------------------------- manifests


def load_manifests(folder: str, files: tuple[str, ...]) -> list[dict[str, Any]]:
    """The objects of manifests/<folder>/<file>... in file order; empty YAML documents are dropped."""
    return [obj for name in files for obj in load_manifest_file(asset_path("manifests", folder, name))]


def pod_ranges(config: AppConfig) -> list[str]:
    """Every Multus network's pod range in every AZ: the addresses the controller may assign and unassign."""
    return [
        str(network.pod_range(az_index))
        for network in config.multus_networks
        for az_index in range(len(config.availability_zones))
    ]


def render_whereabouts(objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The whereabouts objects as shipped (nothing is config-dependent); checks every image is the pinned one."""
    objects = copy.deepcopy(objects)
    for obj in objects:
        for container in _containers(obj):
            if container.get("image") != WHEREABOUTS_IMAGE:
                raise ValueError(f"{obj['kind']}/{obj['metadata']['name']}: image {container.get('image')!r} "
                                 f"is not the pinned {WHEREABOUTS_IMAGE}")
    return objects


def render_controller(
    objects: list[dict[str, Any]],
    *,
    image: str,
    pod_ranges: list[str],
    region: str,
    owner_prefix: str,
    resync_seconds: int | None = None,
) -> list[dict[str, Any]]:
    """The controller's objects with the image and the env values set on the parsed DaemonSet.

    Raises ValueError if the DaemonSet, its container or an env variable the controller needs is missing, so an
    edited YAML cannot silently ship a half-configured controller.
    """
    objects = copy.deepcopy(objects)
    daemonsets = [o for o in objects if o.get("kind") == "DaemonSet"]
    if len(daemonsets) != 1:
        raise ValueError(f"expected one DaemonSet in the controller manifests, found {len(daemonsets)}")
    containers = [c for c in _containers(daemonsets[0]) if c.get("name") == CONTAINER]
    if len(containers) != 1:
        raise ValueError(f"the controller DaemonSet has no container named {CONTAINER!r}")
    (container,) = containers
    container["image"] = image
    values = {
        "POD_RANGES": json.dumps(pod_ranges),
        "AWS_REGION": region,
        "ENI_OWNER_PREFIX": owner_prefix,
        "IFNAME_PREFIX": naming.IFNAME_PREFIX,
    }
    if resync_seconds is not None:
        values["RESYNC_SECONDS"] = str(resync_seconds)
    env = {e["name"]: e for e in container.get("env", [])}
    for name, value in values.items():
        if name not in env:
            raise ValueError(f"the controller container has no env variable {name}")
        env[name]["value"] = value
    if "NODE_NAME" not in env or "valueFrom" not in env["NODE_NAME"]:
        raise ValueError("the controller container must take NODE_NAME from the downward API")
    return objects


def service_account_name(objects: list[dict[str, Any]]) -> str:
    """The service account the controller DaemonSet runs as (what the Pod Identity association must name)."""
    (daemonset,) = [o for o in objects if o.get("kind") == "DaemonSet"]
    return daemonset["spec"]["template"]["spec"]["serviceAccountName"]


def _containers(obj: dict[str, Any]) -> list[dict[str, Any]]:
    spec = ((obj.get("spec") or {}).get("template") or {}).get("spec") or {}
    return [*spec.get("initContainers", []), *spec.get("containers", [])]


def image_platform(config: AppConfig) -> ecr_assets.Platform:
    """linux/arm64 when every node group is Graviton, linux/amd64 when none is; one image cannot serve both."""
    arm = {bool(_ARM_FAMILY.match(ng.instance_type)) for ng in config.node_groups}
    if len(arm) > 1:
        raise ValueError(
            "node groups mix Graviton (arm64) and x86_64 instance types; the pod-address controller image is "
            "built for one architecture"
        )
    return ecr_assets.Platform.LINUX_ARM64 if arm == {True} else ecr_assets.Platform.LINUX_AMD64


# --------------------------------------------------------------------------------------------- construct


class PodAddressSync(Construct):
    """whereabouts plus the per-node pod-address controller, with its image, IAM role and Pod Identity.

    Attributes: `image` (DockerImageAsset), `role` (IAM role of the controller), `manifest` (controller
    KubernetesManifest), `whereabouts_manifest`, `association` (CfnPodIdentityAssociation), `addon` (the Pod
    Identity agent add-on, None when `install_pod_identity_agent` is false because the cluster has it already).
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        cluster: eks.ICluster,
        config: AppConfig,
        install_pod_identity_agent: bool = True,
    ) -> None:
        if not config.cross_node_traffic:
            raise ValueError("PodAddressSync is only for crossNodeTraffic: true (host-local needs no controller)")
        super().__init__(scope, construct_id)
        stack = Stack.of(self)

        self.image = ecr_assets.DockerImageAsset(
            self,
            "Image",
            directory=str(asset_path("controller")),
            platform=image_platform(config),
            exclude=["**/__pycache__", "**/*.pyc", "**/.pytest_cache"],
        )

        self.addon: eks.Addon | None = None
        if install_pod_identity_agent:
            self.addon = eks.Addon(self, "PodIdentityAgent", cluster=cluster, addon_name=POD_IDENTITY_AGENT)

        self.role = iam.Role(
            self,
            "Role",
            assumed_by=iam.ServicePrincipal("pods.eks.amazonaws.com").with_session_tags(),
            description="Multus pod-address controller: assigns pod addresses on this stack's Multus ENIs",
        )
        # EC2 has no resource-level permissions for Describe* actions: they need "*". DescribeInstanceTypes gives
        # the per-interface address limit (once per controller start); DescribeInstances its instance type when
        # the Node lacks the node.kubernetes.io/instance-type label.
        self.role.add_to_policy(
            iam.PolicyStatement(
                sid="ReadNetworkInterfaces",
                actions=["ec2:DescribeNetworkInterfaces", "ec2:DescribeInstanceTypes", "ec2:DescribeInstances"],
                resources=["*"],
            )
        )
        self.role.add_to_policy(
            iam.PolicyStatement(
                sid="PodAddressesOnOwnMultusEnis",
                actions=["ec2:AssignPrivateIpAddresses", "ec2:UnassignPrivateIpAddresses"],
                resources=[stack.format_arn(service="ec2", resource="network-interface", resource_name="*")],
                # Exactly this app's node groups: a prefix wildcard would also match another deployment's
                # groups whose stack prefix merely starts the same way.
                conditions={"StringEquals": {f"ec2:ResourceTag/{naming.OWNER_TAG}": [
                    naming.asg_name(config.stack_prefix, group.name) for group in config.node_groups]}},
            )
        )

        region = "<AWS::Region>" if Token.is_unresolved(stack.region) else stack.region
        acknowledge(self.role, {
            "AwsSolutions-IAM5[Resource::*]": "ec2:DescribeNetworkInterfaces, DescribeInstanceTypes and "
            "DescribeInstances support no resource-level permissions.",
            f"AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:ec2:{region}:<AWS::AccountId>:network-interface/*]":
            "Multus ENIs are created per node at launch, so their ids are unknown at deploy time; assign and "
            "unassign are allowed only on ENIs whose eks-multus/owner tag names one of this app's node groups.",
        })

        controller_objects = render_controller(
            load_manifests("pod-address-sync", CONTROLLER_FILES),
            image=self.image.image_uri,
            pod_ranges=pod_ranges(config),
            region=stack.region,
            owner_prefix=config.stack_prefix,
        )
        self.association = eks.CfnPodIdentityAssociation(
            self,
            "PodIdentity",
            cluster_name=cluster.cluster_name,
            namespace=NAMESPACE,
            service_account=service_account_name(controller_objects),
            role_arn=self.role.role_arn,
        )

        self.whereabouts_manifest = eks.KubernetesManifest(
            self,
            "Whereabouts",
            cluster=cluster,
            manifest=render_whereabouts(load_manifests("whereabouts", WHEREABOUTS_FILES)),
            overwrite=True,
        )
        self.manifest = eks.KubernetesManifest(
            self, "Controller", cluster=cluster, manifest=controller_objects, overwrite=True
        )
        # Pod Identity injects credentials at pod admission: the association must exist before the pods do.
        self.manifest.node.add_dependency(self.association)
        if self.addon is not None:
            self.manifest.node.add_dependency(self.addon)
