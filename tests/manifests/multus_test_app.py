"""A small app (aws_eks_v2 Cluster + MultusCni) and readers for what its template carries.

Shared by tests/manifests (construct tests) and tests/dataplane (which runs the synthesized NAD configs through
the real CNI plugins). The readers find the kubectl manifests by resource type and content, not by logical ID,
so they work on any template that holds a MultusCni (e.g. the real app's workers stack).
"""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import Any

from aws_cdk import App, Environment, Stack
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_eks_v2 as eks
from aws_cdk.assertions import Template
from aws_cdk.lambda_layer_kubectl_v35 import KubectlV35Layer

from eks_multus_cdk.config import AppConfig, parse_config
from eks_multus_cdk.model import MultusNetwork
from eks_multus_cdk.multus import MultusCni
from eks_multus_cdk.sample_pods import sample_pod_manifests

MANIFEST_TYPE = "Custom::AWSCDK-EKS-KubernetesResource"


def config_networks(stack: Stack, config: AppConfig) -> list[MultusNetwork]:
    """The config's Multus networks over imported subnets (ids made up, AZs and CIDRs from the config)."""
    return [
        MultusNetwork(
            name=net.name, plugin=net.plugin, ipvlan_mode=net.ipvlan_mode, routes=net.routes,
            pod_range_prefix_length=net.pod_range_prefix_length,
            subnets=[ec2.Subnet.from_subnet_attributes(stack, f"Net{pos}Az{i}", subnet_id=f"subnet-{pos:02d}{i:015d}",
                                                       availability_zone=az, ipv4_cidr_block=net.subnet_cidrs[i])
                     for i, az in enumerate(config.availability_zones)])
        for pos, net in enumerate(config.multus_networks)
    ]


def build_stack(config: AppConfig, *, env_agnostic: bool = False) -> tuple[Stack, MultusCni]:
    """A stack in the config's region (or environment-agnostic) with a capacity-less cluster (kubectl provider
    from the v35 layer) and MultusCni over one node group that carries every network of the config in order."""
    app = App()
    stack = Stack(app, "MultusTest", env=None if env_agnostic else Environment(region=config.region))
    cluster = eks.Cluster(
        stack,
        "Cluster",
        version=eks.KubernetesVersion.of(config.kubernetes_version),
        default_capacity_type=eks.DefaultCapacityType.NODEGROUP,
        default_capacity=0,
        kubectl_provider_options=eks.KubectlProviderOptions(kubectl_layer=KubectlV35Layer(stack, "KubectlLayer")),
    )
    group = SimpleNamespace(node=SimpleNamespace(id="Workers"), networks=config_networks(stack, config))
    multus = MultusCni(stack, "Multus", cluster=cluster, node_groups=[group], namespace=config.network_namespace,
                       whereabouts=config.cross_node_traffic, sample_manifests=sample_pod_manifests(config))
    return stack, multus


# repr(config) -> template JSON: jsii synthesis costs seconds, so each config is synthesized once per process
# (AppConfig holds dicts, so it is not hashable itself; its dataclass repr is a faithful key).
_TEMPLATES: dict[str, str] = {}


def synthesized_template(config: AppConfig | None = None) -> dict[str, Any]:
    """The synthesized template (a fresh copy) of the test app for `config` (defaults: the default config)."""
    config = config if config is not None else parse_config(None)
    key = repr(config)
    if key not in _TEMPLATES:
        stack, _ = build_stack(config)
        _TEMPLATES[key] = json.dumps(Template.from_stack(stack).to_json())
    return json.loads(_TEMPLATES[key])


def kubernetes_manifest_resources(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Logical ID -> resource, for every kubectl manifest resource of the template."""
    return {k: r for k, r in template["Resources"].items() if r["Type"] == MANIFEST_TYPE}


def manifest_objects(resource: dict[str, Any]) -> list[dict[str, Any]]:
    """The Kubernetes objects of one manifest resource (its Manifest property is a JSON string)."""
    manifest = resource["Properties"]["Manifest"]
    if not isinstance(manifest, str):
        raise AssertionError(f"Manifest is not a plain JSON string (it holds tokens?): {str(manifest)[:200]}")
    return json.loads(manifest)


def template_objects(template: dict[str, Any]) -> list[dict[str, Any]]:
    """Every Kubernetes object of the template's token-free manifests (NADs, Multus, samples are all token-free;
    the pod-address controller's manifest carries its image URI as a token and is checked by tests/controller)."""
    plain = [r for r in kubernetes_manifest_resources(template).values()
             if isinstance(r["Properties"]["Manifest"], str)]
    return [obj for r in plain for obj in manifest_objects(r)]


def objects_of_kind(template: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [obj for obj in template_objects(template) if obj.get("kind") == kind]
