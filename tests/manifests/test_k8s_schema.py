"""Every Kubernetes object we ship or render validates against the API schema it will meet.

Built-in kinds: kubernetes-validate's schema of Kubernetes 1.35 in strict mode (unknown fields are errors). It
ships 1.35.0 itself (1.25 to 1.37), so "1.35" selects exactly that schema. NetworkAttachmentDefinitions: the
openAPIV3Schema of the CRD we ship, made strict the same way (the API server would silently prune an unknown
field, so a misspelt `spec.config` must fail here), plus the object-meta rules the API server applies.
"""

from __future__ import annotations

import copy
import dataclasses
import re
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
from kubernetes_validate.utils import all_versions

from eks_multus_cdk.assets import asset_path
from eks_multus_cdk.config import AppConfig, parse_config
from eks_multus_cdk.multus_manifests import load_manifest_file, multus_manifests
from eks_multus_cdk.nads import network_attachment_definitions
from eks_multus_cdk.sample_pods import sample_pod_manifests

KUBERNETES_VERSION = "1.35"
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


def shipped_files() -> list[Path]:
    root = asset_path("manifests")
    return sorted(p for p in root.rglob("*") if p.suffix in (".yaml", ".yml"))


def configs() -> dict[str, AppConfig]:
    default = parse_config(None)
    return {
        "default": default,
        "host-local": dataclasses.replace(default, cross_node_traffic=False),
        "host-device": parse_config(None, {"multusNetworks.1.plugin": "host-device"}),
        "three-azs": parse_config({
            "region": "eu-west-1",
            "availabilityZones": ["eu-west-1a", "eu-west-1b", "eu-west-1c"],
            "publicSubnetCidrs": ["10.1.0.0/24", "10.1.1.0/24", "10.1.2.0/24"],
            "privateSubnetCidrs": ["10.1.4.0/22", "10.1.8.0/22", "10.1.12.0/22"],
            "vpcCidr": "10.1.0.0/16",
            "multusNetworks": [{"name": "n3", "subnetCidrs": ["10.1.16.0/26", "10.1.16.64/26", "10.1.16.128/26"],
                                "podRangePrefixLength": 28}],
        }),
    }


def rendered_objects() -> list[tuple[str, dict[str, Any]]]:
    out = []
    for name, config in configs().items():
        objects = multus_manifests(config.region) + network_attachment_definitions(config)
        objects += sample_pod_manifests(config)
        out += [(f"{name}:{o['kind']}/{o['metadata']['name']}", o) for o in objects]
    return out


def shipped_objects() -> list[tuple[str, dict[str, Any]]]:
    root = asset_path("manifests")
    return [
        (f"{path.relative_to(root)}:{i}", obj)
        for path in shipped_files()
        for i, obj in enumerate(load_manifest_file(path))
    ]


def strict(schema: dict[str, Any]) -> dict[str, Any]:
    """The schema with `additionalProperties: false` wherever it lists properties (metadata excepted)."""
    schema = copy.deepcopy(schema)

    def walk(node: dict[str, Any]) -> None:
        if "properties" in node:
            node.setdefault("additionalProperties", False)
            for key, child in node["properties"].items():
                if key != "metadata":
                    walk(child)

    walk(schema)
    return schema


def nad_schema() -> dict[str, Any]:
    (crd,) = load_manifest_file(asset_path("manifests", "multus", "network-attachment-definition-crd.yaml"))
    (version,) = crd["spec"]["versions"]
    return strict(version["schema"]["openAPIV3Schema"])


def validate(obj: dict[str, Any]) -> None:
    if obj.get("kind") == "NetworkAttachmentDefinition":
        assert obj["apiVersion"] == "k8s.cni.cncf.io/v1"
        jsonschema.Draft202012Validator(nad_schema()).validate(obj)
        meta = obj["metadata"]
        assert _DNS_SUBDOMAIN.match(meta["name"]) and len(meta["name"]) <= 253, meta["name"]
        assert _DNS_SUBDOMAIN.match(meta["namespace"]) and len(meta["namespace"]) <= 63
        for key, value in meta.get("labels", {}).items():
            assert len(value) <= 63 and re.match(r"^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$", value), key
    else:
        assert kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True) == KUBERNETES_VERSION


def test_kubernetes_validate_ships_the_cluster_version() -> None:
    assert f"{KUBERNETES_VERSION}.0" in all_versions()


def test_the_manifest_folders_hold_our_files() -> None:
    names = {str(p.relative_to(asset_path("manifests"))) for p in shipped_files()}
    assert {"multus/network-attachment-definition-crd.yaml", "multus/multus-daemonset-thick.yaml",
            "samples/sample-single.yaml", "samples/sample-dual.yaml"} <= names


@pytest.mark.parametrize(("where", "obj"), shipped_objects(), ids=lambda v: v if isinstance(v, str) else "")
def test_shipped_object_validates(where: str, obj: dict[str, Any]) -> None:
    validate(obj)


@pytest.mark.parametrize(("where", "obj"), rendered_objects(), ids=lambda v: v if isinstance(v, str) else "")
def test_rendered_object_validates(where: str, obj: dict[str, Any]) -> None:
    validate(obj)


def test_template_objects_validate(base_template: dict[str, Any]) -> None:
    from multus_test_app import template_objects

    objects = template_objects(base_template)
    assert {o["kind"] for o in objects} >= {"CustomResourceDefinition", "DaemonSet", "NetworkAttachmentDefinition"}
    for obj in objects:
        validate(obj)


def test_the_checks_can_fail() -> None:
    (pod, *_) = sample_pod_manifests(parse_config(None))
    bad = copy.deepcopy(pod)
    bad["spec"]["containers"][0]["command"] = "sleep infinity"  # a string where a list belongs
    with pytest.raises(kubernetes_validate.ValidationError):
        validate(bad)
    bad = copy.deepcopy(pod)
    bad["spec"]["nodeSelectr"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        validate(bad)
    nad = network_attachment_definitions(parse_config(None))[0]
    misspelt = copy.deepcopy(nad)
    misspelt["spec"]["conifg"] = misspelt["spec"].pop("config")
    with pytest.raises(jsonschema.ValidationError):
        validate(misspelt)
    not_a_string = copy.deepcopy(nad)
    not_a_string["spec"]["config"] = {"cniVersion": "0.3.1"}
    with pytest.raises(jsonschema.ValidationError):
        validate(not_a_string)
