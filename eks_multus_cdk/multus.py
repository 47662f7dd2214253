"""Steps 5-7 of the walkthrough on the cluster: the Multus daemonset, the NetworkAttachmentDefinitions, the samples.

Three kubectl-applied manifests, in dependency order:
(a) `daemonset_manifest`: NetworkAttachmentDefinition CRD, RBAC, daemon ConfigMap and the Multus thick-plugin
    DaemonSet (image from the EKS registry of the stack's region: a literal when the region is concrete, else
    `Fn::FindInMap` over a region-keyed CfnMapping, so environment-agnostic stacks get the right registry too);
(b) `nad_manifest`: one NetworkAttachmentDefinition per Multus network and AZ (needs the CRD of a), rendered from
    the node groups' networks: each network's `master` is the interface its ENI gets at its device index, and a
    network carried at two different indexes fails construction (`model.device_indexes`);
(c) `sample_manifest`: the sample pods given as `sample_manifests` (need the NADs of b); None without any.

The pod address reservations (AWS::EC2::SubnetCidrReservation) belong to the network (`PodRangeReservations`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from aws_cdk import CfnMapping, Stack, Token
from aws_cdk import aws_eks_v2 as eks
from constructs import Construct

from eks_multus_cdk.model import MultusNetwork, device_indexes
from eks_multus_cdk.multus_manifests import (
    MULTUS_IMAGE_TAG,
    MULTUS_REPOSITORY,
    REGISTRY_ACCOUNTS,
    multus_manifests_with_image,
    registry,
)
from eks_multus_cdk.nads import render_nads

DEFAULT_NAMESPACE = "multus-networks"


class CarriesNetworks(Protocol):
    """What MultusCni reads from a node group: its construct node and its networks in device order."""

    @property
    def node(self) -> Any: ...

    @property
    def networks(self) -> Sequence[MultusNetwork]: ...


def network_namespace(name: str) -> dict:
    """The namespace that holds the NADs and the sample pods."""
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {
        "name": name, "labels": {"app.kubernetes.io/part-of": "eks-multus"}}}


def multus_image(scope: Construct) -> str:
    """The Multus image of the EKS registry of `scope`'s stack region (see the module docstring)."""
    region = Stack.of(scope).region
    if not Token.is_unresolved(region):
        registry(region)  # a clear ValueError for a region without a known EKS registry
    mapping = CfnMapping(scope, "ImageRegistry", lazy=True,
                         mapping={r: {"host": registry(r)} for r in sorted(REGISTRY_ACCOUNTS)})
    return f"{mapping.find_in_map(region, 'host')}/{MULTUS_REPOSITORY}:{MULTUS_IMAGE_TAG}"


class MultusCni(Construct):
    """Multus CNI and the NetworkAttachmentDefinitions of the node groups' networks on an EKS cluster that has a
    kubectl provider (created or imported with `kubectl_provider`).

    Props: `cluster`; `node_groups` (the groups whose networks get NADs, e.g. `MultusNodeGroup`s);
    `namespace` of the NADs; `whereabouts` (cluster-wide IPAM, needs whereabouts installed, e.g. by
    `PodAddressSync`; False: host-local, pods only reach pods of their own node); `sample_manifests`.

    Attributes: `daemonset_manifest`, `nad_manifest`, `sample_manifest` (None without samples), `networks`
    (network name -> (MultusNetwork, device index)), `image`.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        cluster: eks.ICluster,
        node_groups: Sequence[CarriesNetworks],
        namespace: str = DEFAULT_NAMESPACE,
        whereabouts: bool = True,
        sample_manifests: Sequence[dict[str, Any]] = (),
    ) -> None:
        # Checked before any child exists: a mismatched device index never reaches a template.
        self.networks = device_indexes((ng.node.id, ng.networks) for ng in node_groups)
        super().__init__(scope, construct_id)
        self.image = multus_image(self)
        self.daemonset_manifest = eks.KubernetesManifest(
            self, "MultusDaemonSet", cluster=cluster, manifest=multus_manifests_with_image(self.image),
            overwrite=True,
        )
        nads = render_nads([(net, index - 1, net.availability_zones) for net, index in self.networks.values()],
                           namespace=namespace, whereabouts=whereabouts)
        self.nad_manifest = eks.KubernetesManifest(
            self,
            "NetworkAttachmentDefinitions",
            cluster=cluster,
            # The dedicated namespace first: with namespaceIsolation only its pods may use these NADs.
            manifest=[network_namespace(namespace), *nads],
            overwrite=True,
        )
        self.nad_manifest.node.add_dependency(self.daemonset_manifest)
        self.sample_manifest: eks.KubernetesManifest | None = None
        if sample_manifests:
            self.sample_manifest = eks.KubernetesManifest(
                self, "SamplePods", cluster=cluster, manifest=list(sample_manifests), overwrite=True
            )
            self.sample_manifest.node.add_dependency(self.nad_manifest)
