"""What a deployed cluster should hold, computed from the config by the same functions that render it.

The NADs come from `eks_multus_cdk.nads`, the sample pods (and the networks they name) from
`eks_multus_cdk.sample_pods`: `make verify` checks the cluster against what the app deploys, never against a
copy. Both modules are imported when expectations are built, not when this module is imported.
"""

from __future__ import annotations

import ipaddress
import json
from dataclasses import dataclass
from typing import Any

from eks_multus_cdk import naming
from eks_multus_cdk.config import AppConfig

# The Multus daemonset of manifests/multus/multus-daemonset-thick.yaml.
MULTUS_DAEMONSET_NAMESPACE = "kube-system"
MULTUS_DAEMONSET = "kube-multus-ds"
# The pod pair the cross-node check pings (crossNodeTraffic): two pods on different nodes of one AZ, each with
# net1 on network 1 of that AZ.
CROSS_NODE_PODS = ("sample-cross-a", "sample-cross-b")
NETWORKS_ANNOTATION = "k8s.v1.cni.cncf.io/networks"
ZONE_LABEL = "topology.kubernetes.io/zone"


@dataclass(frozen=True)
class ExpectedNad:
    namespace: str
    name: str
    config: dict[str, Any]  # the parsed CNI config (spec.config)
    network_position: int
    availability_zone: str
    pod_range: ipaddress.IPv4Network
    network: str = ""  # the Multus network's name (the ENIs' eks-multus/network tag)
    subnet: ipaddress.IPv4Network | None = None  # the network's subnet in this AZ

    @property
    def router(self) -> str | None:
        """The subnet's VPC router (its first host)."""
        return str(self.subnet.network_address + 1) if self.subnet else None

    @property
    def status_name(self) -> str:
        """How Multus names this NAD in a pod's network-status annotation."""
        return f"{self.namespace}/{self.name}"


@dataclass(frozen=True)
class ExpectedAttachment:
    interface: str
    nad: ExpectedNad


@dataclass(frozen=True)
class ExpectedPod:
    namespace: str
    name: str
    attachments: tuple[ExpectedAttachment, ...]
    availability_zone: str | None  # from the pod's nodeSelector

    def attachment(self, interface: str) -> ExpectedAttachment | None:
        return next((a for a in self.attachments if a.interface == interface), None)


@dataclass(frozen=True)
class Expectations:
    availability_zones: tuple[str, ...]
    nads: tuple[ExpectedNad, ...]
    sample_pods: tuple[ExpectedPod, ...]  # empty when samplePods is false
    cross_node_pods: tuple[ExpectedPod, ExpectedPod] | None  # None unless samplePods and crossNodeTraffic
    eni_owners: tuple[str, ...] = ()  # eks-multus/owner tag values of this app's Multus ENIs (ASG names)
    daemonset_namespace: str = MULTUS_DAEMONSET_NAMESPACE
    daemonset: str = MULTUS_DAEMONSET


def _parse_networks_annotation(value: Any, default_namespace: str) -> list[tuple[str, str, str]]:
    """(namespace, NAD name, interface) per entry of a `k8s.v1.cni.cncf.io/networks` value, in either of its
    forms: a JSON list of {name, namespace, interface}, or `[ns/]name[@interface]` separated by commas. Multus
    names interfaces without an explicit name net1, net2... by position."""
    entries: list[tuple[str, str, str]] = []
    items: list[dict[str, Any]]
    if isinstance(value, str) and value.strip().startswith("["):
        items = json.loads(value)
    elif isinstance(value, str):
        items = []
        for part in filter(None, (p.strip() for p in value.split(","))):
            ref, _, interface = part.partition("@")
            namespace, _, name = ref.rpartition("/")
            items.append({"name": name, "namespace": namespace or None, "interface": interface or None})
    else:
        items = list(value or [])
    for i, item in enumerate(items):
        entries.append(
            (item.get("namespace") or default_namespace, item["name"], item.get("interface") or f"net{i + 1}")
        )
    return entries


def _expected_pod(manifest: dict[str, Any], nads: dict[tuple[str, str], ExpectedNad]) -> ExpectedPod:
    meta = manifest["metadata"]
    namespace = meta.get("namespace") or naming.SAMPLE_NAMESPACE
    attachments = []
    for nad_namespace, nad_name, interface in _parse_networks_annotation(
        (meta.get("annotations") or {}).get(NETWORKS_ANNOTATION), namespace
    ):
        nad = nads.get((nad_namespace, nad_name))
        if nad is None:  # the renderers disagree with each other: a bug in this repo, not in the cluster
            raise ValueError(f"pod {meta['name']} names NAD {nad_namespace}/{nad_name}, which the app does not render")
        attachments.append(ExpectedAttachment(interface, nad))
    zone = ((manifest.get("spec") or {}).get("nodeSelector") or {}).get(ZONE_LABEL)
    return ExpectedPod(namespace, meta["name"], tuple(attachments), zone)


def expected_nads(config: AppConfig) -> tuple[ExpectedNad, ...]:
    from eks_multus_cdk.nads import network_attachment_definitions

    by_name = {
        naming.nad_name(net.name, az): (position, az_index, az)
        for position, net in enumerate(config.multus_networks)
        for az_index, az in enumerate(config.availability_zones)
    }
    out = []
    for nad in network_attachment_definitions(config):
        meta = nad["metadata"]
        position, az_index, az = by_name[meta["name"]]
        out.append(ExpectedNad(
            namespace=meta.get("namespace") or naming.NAD_NAMESPACE,
            name=meta["name"],
            config=json.loads(nad["spec"]["config"]),
            network_position=position,
            availability_zone=az,
            pod_range=config.multus_networks[position].pod_range(az_index),
            network=config.multus_networks[position].name,
            subnet=ipaddress.IPv4Network(config.multus_networks[position].subnet_cidrs[az_index]),
        ))
    return tuple(out)


def expectations(config: AppConfig) -> Expectations:
    from eks_multus_cdk import sample_pods

    nads = expected_nads(config)
    by_key = {(n.namespace, n.name): n for n in nads}
    manifests = [m for m in sample_pods.sample_pod_manifests(config) if m.get("kind", "Pod") == "Pod"]
    pods = [_expected_pod(m, by_key) for m in manifests]
    cross = tuple(p for p in pods if p.name in CROSS_NODE_PODS)
    samples = tuple(p for p in pods if p.name not in CROSS_NODE_PODS)
    cross_pair = (cross[0], cross[1]) if len(cross) == 2 else None
    return Expectations(
        availability_zones=config.availability_zones,
        nads=nads,
        sample_pods=samples,
        cross_node_pods=cross_pair,
        eni_owners=tuple(naming.asg_name(config.stack_prefix, ng.name) for ng in config.node_groups),
    )
