"""The Multus thick-plugin manifests (manifests/multus/) with the image of the cluster's region.

AWS builds Multus for EKS and replicates the image into an EKS registry in every region EKS serves; the
registry's account differs between regions, so the image name is computed here from the region. Pure functions:
no AWS calls, no CDK.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from eks_multus_cdk.assets import asset_path

MULTUS_VERSION = "v4.1.4-eksbuild.3"
MULTUS_IMAGE_TAG = f"{MULTUS_VERSION}_thick"
MULTUS_REPOSITORY = "eks/multus-cni"
# What the `image` fields of manifests/multus/multus-daemonset-thick.yaml hold until rendered.
IMAGE_PLACEHOLDER = "multus-image-set-by-renderer"

# manifests/multus/, applied in this order (the CRD before anything could name a NetworkAttachmentDefinition).
# The admission policy that keeps network-status Multus' own comes last: it names Multus' service account.
MANIFEST_FILES = ("network-attachment-definition-crd.yaml", "multus-daemonset-thick.yaml",
                  "network-status-admission.yaml")

# Region -> account of the EKS add-on image registry, from the EKS user guide page "View Amazon container image
# registries for Amazon EKS add-ons" (awsdocs/amazon-eks-user-guide latest/ug/workloads/add-ons-images.adoc;
# ap-southeast-5 from the same page as published on docs.amazonaws.cn).
REGISTRY_ACCOUNTS: dict[str, str] = {
    "af-south-1": "877085696533",
    "ap-east-1": "800184023465",
    "ap-east-2": "533267051163",
    "ap-northeast-1": "602401143452",
    "ap-northeast-2": "602401143452",
    "ap-northeast-3": "602401143452",
    "ap-south-1": "602401143452",
    "ap-south-2": "900889452093",
    "ap-southeast-1": "602401143452",
    "ap-southeast-2": "602401143452",
    "ap-southeast-3": "296578399912",
    "ap-southeast-4": "491585149902",
    "ap-southeast-5": "151610086707",
    "ap-southeast-6": "333609536671",
    "ap-southeast-7": "121268973566",
    "ca-central-1": "602401143452",
    "ca-west-1": "761377655185",
    "cn-north-1": "918309763551",
    "cn-northwest-1": "961992271922",
    "eu-central-1": "602401143452",
    "eu-central-2": "900612956339",
    "eu-north-1": "602401143452",
    "eu-south-1": "590381155156",
    "eu-south-2": "455263428931",
    "eu-west-1": "602401143452",
    "eu-west-2": "602401143452",
    "eu-west-3": "602401143452",
    "eusc-de-east-1": "877088126301",
    "il-central-1": "066635153087",
    "me-central-1": "759879836304",
    "me-south-1": "558608220178",
    "mx-central-1": "730335286997",
    "sa-east-1": "602401143452",
    "us-east-1": "602401143452",
    "us-east-2": "602401143452",
    "us-gov-east-1": "151742754352",
    "us-gov-west-1": "013241004608",
    "us-west-1": "602401143452",
    "us-west-2": "602401143452",
}


def _dns_suffix(region: str) -> str:
    """The partition's domain: China and the European Sovereign Cloud have their own."""
    if region.startswith("cn-"):
        return "amazonaws.com.cn"
    if region.startswith("eusc-"):
        return "amazonaws.eu"
    return "amazonaws.com"


def registry(region: str) -> str:
    """The EKS add-on image registry host of `region`; ValueError naming the region if EKS has none we know."""
    account = REGISTRY_ACCOUNTS.get(region)
    if account is None:
        raise ValueError(
            f"no Amazon EKS image registry is known for region {region!r}: add its account to "
            f"eks_multus_cdk.multus_manifests.REGISTRY_ACCOUNTS (see the EKS user guide page 'View Amazon "
            f"container image registries for Amazon EKS add-ons')"
        )
    return f"{account}.dkr.ecr.{region}.{_dns_suffix(region)}"


def multus_image(region: str) -> str:
    """The Multus thick-plugin image AWS publishes for EKS in `region` (nodes pull it with the node role)."""
    return f"{registry(region)}/{MULTUS_REPOSITORY}:{MULTUS_IMAGE_TAG}"


def load_manifest_file(path: Path) -> list[dict[str, Any]]:
    """Every object of a (multi-document) YAML file, in order; empty documents are dropped."""
    with path.open(encoding="utf-8") as stream:
        return [doc for doc in yaml.safe_load_all(stream) if doc is not None]


def multus_manifests(region: str) -> list[dict[str, Any]]:
    """CRD, ServiceAccount, ClusterRole(Binding), daemon ConfigMap and DaemonSet, with the region's image.

    Raises ValueError (naming the region) for a region without a known EKS registry, and if the YAML no longer
    has an image placeholder to replace (so an edited manifest cannot silently keep a wrong image).
    """
    return multus_manifests_with_image(multus_image(region))


def multus_manifests_with_image(image: str) -> list[dict[str, Any]]:
    """As `multus_manifests`, with the Multus image given (it may hold a CloudFormation token)."""
    objects: list[dict[str, Any]] = []
    for name in MANIFEST_FILES:
        objects.extend(load_manifest_file(asset_path("manifests", "multus", name)))
    replaced = 0
    for obj in objects:
        if obj.get("kind") != "DaemonSet":
            continue
        pod_spec = obj["spec"]["template"]["spec"]
        for container in [*pod_spec.get("initContainers", []), *pod_spec.get("containers", [])]:
            if container.get("image") != IMAGE_PLACEHOLDER:
                raise ValueError(
                    f"container {container.get('name')!r} of DaemonSet {obj['metadata']['name']} has image "
                    f"{container.get('image')!r}, expected the placeholder {IMAGE_PLACEHOLDER!r}"
                )
            container["image"] = image
            replaced += 1
    if not replaced:
        raise ValueError(f"no DaemonSet container with image {IMAGE_PLACEHOLDER!r} in manifests/multus")
    return objects
