"""Steps 5-7 of the walkthrough on the cluster: the Multus daemonset, the NetworkAttachmentDefinitions, the samples.

Three kubectl-applied manifests, in dependency order:
(a) `daemonset_manifest`: NetworkAttachmentDefinition CRD, RBAC, daemon ConfigMap and the Multus thick-plugin
    DaemonSet (image from the EKS registry of `config.region`);
(b) `nad_manifest`: one NetworkAttachmentDefinition per Multus network and AZ (needs the CRD of a);
(c) `sample_manifest`: the sample pods (need the NADs of b); None when `samplePods` is false.

The pod address reservations (AWS::EC2::SubnetCidrReservation) belong to the network; they come from
`eks_multus_cdk.nads.subnet_cidr_reservations`.
"""

from __future__ import annotations

from aws_cdk import aws_eks_v2 as eks
from constructs import Construct

from eks_multus_cdk.config import AppConfig
from eks_multus_cdk.multus_manifests import multus_manifests
from eks_multus_cdk.nads import network_attachment_definitions
from eks_multus_cdk.sample_pods import sample_pod_manifests


def network_namespace(config: AppConfig) -> dict:
    """The namespace that holds the NADs and the sample pods (`networkNamespace`)."""
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {
        "name": config.network_namespace, "labels": {"app.kubernetes.io/part-of": "eks-multus"}}}


class MultusCni(Construct):
    """Multus CNI, its networks and (optionally) the sample pods on an EKS cluster with a kubectl provider.

    Attributes: `daemonset_manifest`, `nad_manifest`, `sample_manifest` (None without sample pods).
    """

    def __init__(self, scope: Construct, construct_id: str, *, cluster: eks.ICluster, config: AppConfig) -> None:
        super().__init__(scope, construct_id)
        self.daemonset_manifest = eks.KubernetesManifest(
            self, "MultusDaemonSet", cluster=cluster, manifest=multus_manifests(config.region), overwrite=True
        )
        self.nad_manifest = eks.KubernetesManifest(
            self,
            "NetworkAttachmentDefinitions",
            cluster=cluster,
            # The dedicated namespace first: with namespaceIsolation only its pods may use these NADs.
            manifest=[network_namespace(config), *network_attachment_definitions(config)],
            overwrite=True,
        )
        self.nad_manifest.node.add_dependency(self.daemonset_manifest)
        samples = sample_pod_manifests(config)
        self.sample_manifest: eks.KubernetesManifest | None = None
        if samples:
            self.sample_manifest = eks.KubernetesManifest(
                self, "SamplePods", cluster=cluster, manifest=samples, overwrite=True
            )
            self.sample_manifest.node.add_dependency(self.nad_manifest)
