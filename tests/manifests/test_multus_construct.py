"""The MultusCni construct: three kubectl manifests in dependency order, carrying what the renderers produce."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from multus_test_app import (
    build_stack,
    kubernetes_manifest_resources,
    manifest_objects,
    synthesized_template,
)

from eks_multus_cdk.config import AppConfig, parse_config
from eks_multus_cdk.multus import network_namespace
from eks_multus_cdk.multus_manifests import multus_manifests
from eks_multus_cdk.nads import network_attachment_definitions
from eks_multus_cdk.sample_pods import sample_pod_manifests

RENAMED = {
    "region": "eu-west-1",
    "availabilityZones": ["eu-west-1a", "eu-west-1b"],
    "samplePods": False,
    "multusNetworks": [
        {"name": "sig", "subnetCidrs": ["10.0.4.0/24", "10.0.5.0/24"]},
        {"name": "media", "subnetCidrs": ["10.0.6.0/24", "10.0.7.0/24"], "plugin": "host-device"},
    ],
}


def without_prune_labels(objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The objects minus the `aws.cdk.eks/prune-<hash>` label the kubectl provider adds for pruning."""
    for obj in objects:
        labels = obj["metadata"].get("labels", {})
        for key in [k for k in labels if k.startswith("aws.cdk.eks/prune-")]:
            del labels[key]
        if "labels" in obj["metadata"] and not labels:
            del obj["metadata"]["labels"]
    return objects


def resources_by_content(template: dict[str, Any]) -> dict[str, tuple[str, dict[str, Any]]]:
    """'daemonset' / 'nads' / 'samples' -> (logical ID, resource), recognized by the kinds they apply."""
    found = {}
    for logical_id, resource in kubernetes_manifest_resources(template).items():
        kinds = {o["kind"] for o in manifest_objects(resource)}
        role = {"DaemonSet": "daemonset", "NetworkAttachmentDefinition": "nads", "Pod": "samples"}
        (key,) = {role[k] for k in kinds if k in role}
        assert key not in found
        found[key] = (logical_id, resource)
    return found


def depends_on(resource: dict[str, Any]) -> set[str]:
    value = resource.get("DependsOn", [])
    return {value} if isinstance(value, str) else set(value)


def test_three_manifests_in_dependency_order(base_template: dict[str, Any]) -> None:
    found = resources_by_content(base_template)
    assert set(found) == {"daemonset", "nads", "samples"}
    (ds_id, ds), (nad_id, nads), (_, samples) = found["daemonset"], found["nads"], found["samples"]
    assert ds_id in depends_on(nads)
    assert nad_id in depends_on(samples)
    assert not depends_on(ds) & {nad_id, found["samples"][0]}
    for _, resource in found.values():
        assert resource["Properties"]["Overwrite"] is True


def test_template_carries_the_rendered_objects(base_template: dict[str, Any], base_config: AppConfig) -> None:
    found = resources_by_content(base_template)
    assert without_prune_labels(manifest_objects(found["nads"][1])) == [
        # the namespace before its NADs
        network_namespace(base_config.network_namespace), *network_attachment_definitions(base_config)]
    assert without_prune_labels(manifest_objects(found["daemonset"][1])) == multus_manifests(base_config.region)
    assert without_prune_labels(manifest_objects(found["samples"][1])) == sample_pod_manifests(base_config)


def test_no_samples_and_ids_independent_of_config_values(base_template: dict[str, Any]) -> None:
    config = parse_config(RENAMED)
    template = synthesized_template(config)
    found = resources_by_content(template)
    assert set(found) == {"daemonset", "nads"}
    default_ids = {role: logical_id for role, (logical_id, _) in resources_by_content(base_template).items()}
    assert {role: logical_id for role, (logical_id, _) in found.items()} == {
        k: v for k, v in default_ids.items() if k != "samples"
    }, "renaming networks or changing the region must not replace the manifests"
    assert without_prune_labels(manifest_objects(found["nads"][1])) == [
        network_namespace(config.network_namespace), *network_attachment_definitions(config)]
    ds = next(o for o in manifest_objects(found["daemonset"][1]) if o["kind"] == "DaemonSet")
    assert ds["spec"]["template"]["spec"]["containers"][0]["image"].startswith("602401143452.dkr.ecr.eu-west-1.")


def test_attributes(base_config: AppConfig) -> None:
    _, multus = build_stack(dataclasses.replace(base_config, sample_pods=False))
    assert multus.sample_manifest is None
    assert multus.daemonset_manifest is not None and multus.nad_manifest is not None


def test_region_without_registry_fails_at_synth_naming_it() -> None:
    # The config rejects it first, naming the key; a config built around validation still fails in the construct.
    with pytest.raises(ValueError, match='eksMultus.region = "xx-test-1"'):
        parse_config({"region": "xx-test-1", "availabilityZones": ["xx-test-1a", "xx-test-1b"]})
    config = dataclasses.replace(parse_config(None), region="xx-test-1")
    with pytest.raises(ValueError, match="'xx-test-1'"):
        build_stack(config)
