"""The Multus thick-plugin manifests and the region -> image mapping."""

from __future__ import annotations

import json
import re

import pytest

from eks_multus_cdk.assets import asset_path
from eks_multus_cdk.multus_manifests import (
    IMAGE_PLACEHOLDER,
    MULTUS_IMAGE_TAG,
    REGISTRY_ACCOUNTS,
    multus_image,
    multus_manifests,
)


def by_kind(objects: list[dict]) -> dict[str, dict]:
    kinds = [o["kind"] for o in objects]
    assert len(kinds) == len(set(kinds)), kinds
    return {o["kind"]: o for o in objects}


def test_us_west_2_image() -> None:
    assert multus_image("us-west-2") == (
        "602401143452.dkr.ecr.us-west-2.amazonaws.com/eks/multus-cni:v4.1.4-eksbuild.3_thick"
    )


@pytest.mark.parametrize("region", sorted(REGISTRY_ACCOUNTS))
def test_every_mapped_region_gives_its_registry(region: str) -> None:
    suffix = {"cn": r"amazonaws\.com\.cn", "eusc": r"amazonaws\.eu"}.get(region.split("-")[0], r"amazonaws\.com")
    pattern = rf"^(\d{{12}})\.dkr\.ecr\.{re.escape(region)}\.{suffix}/eks/multus-cni:v4\.1\.4-eksbuild\.3_thick$"
    match = re.match(pattern, multus_image(region))
    assert match, multus_image(region)
    assert match.group(1) == REGISTRY_ACCOUNTS[region]


def test_registry_map_covers_the_commercial_regions_that_share_the_main_account() -> None:
    shared = {r for r, a in REGISTRY_ACCOUNTS.items() if a == "602401143452"}
    assert {"us-east-1", "us-east-2", "us-west-1", "us-west-2", "eu-west-1", "eu-central-1", "ap-northeast-1",
            "ap-southeast-1", "ap-southeast-2", "ap-south-1", "sa-east-1", "ca-central-1"} <= shared
    assert all(re.fullmatch(r"\d{12}", a) for a in REGISTRY_ACCOUNTS.values())


@pytest.mark.parametrize("region", ["us-west-9", "xx-nowhere-1", "", "US-WEST-2"])
def test_unknown_region_is_a_clear_error(region: str) -> None:
    with pytest.raises(ValueError, match=re.escape(repr(region))):
        multus_image(region)
    with pytest.raises(ValueError, match=re.escape(repr(region))):
        multus_manifests(region)


def test_objects_and_order() -> None:
    objects = multus_manifests("us-west-2")
    assert [o["kind"] for o in objects] == [
        "CustomResourceDefinition", "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "ConfigMap", "DaemonSet",
        "ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding",
    ]
    cluster_scoped = ("CustomResourceDefinition", "ClusterRole", "ClusterRoleBinding", "ValidatingAdmissionPolicy",
                      "ValidatingAdmissionPolicyBinding")
    for obj in objects:
        if obj["kind"] not in cluster_scoped:
            assert obj["metadata"]["namespace"] == "kube-system"


def test_every_container_gets_the_region_image_and_no_placeholder_is_left() -> None:
    raw = (asset_path("manifests", "multus") / "multus-daemonset-thick.yaml").read_text()
    assert raw.count(f"image: {IMAGE_PLACEHOLDER}") == 2
    objects = multus_manifests("eu-south-1")
    assert IMAGE_PLACEHOLDER not in json.dumps(objects)
    pod = by_kind(objects)["DaemonSet"]["spec"]["template"]["spec"]
    images = {c["image"] for c in pod["initContainers"] + pod["containers"]}
    assert images == {f"590381155156.dkr.ecr.eu-south-1.amazonaws.com/eks/multus-cni:{MULTUS_IMAGE_TAG}"}


def test_renders_are_independent() -> None:
    first = multus_manifests("us-west-2")
    by_kind(first)["DaemonSet"]["spec"]["template"]["spec"]["containers"][0]["image"] = "mutated"
    assert multus_manifests("us-west-2") != first


def test_daemon_config_uses_the_vpc_cni_as_master() -> None:
    objects = by_kind(multus_manifests("us-west-2"))
    daemon = json.loads(objects["ConfigMap"]["data"]["daemon-config.json"])
    assert daemon["multusMasterCNI"] == "10-aws.conflist"
    # A pod may only use NADs of its own namespace; the one global namespace is kube-system, not "default".
    assert daemon["namespaceIsolation"] is True and daemon["globalNamespaces"] == "kube-system"
    assert daemon["multusConfigFile"] == "auto"
    assert daemon["cniVersion"] == "0.3.1"
    # Paths the daemon sees: the node's /etc/cni/net.d and /run are mounted under /host.
    assert daemon["confDir"] == daemon["cniConfigDir"] == daemon["multusAutoconfigDir"] == "/host/etc/cni/net.d"
    assert daemon["socketDir"].startswith("/host/run/")
    assert daemon["chrootDir"] == "/hostroot"


def test_daemonset_facts() -> None:
    objects = by_kind(multus_manifests("us-west-2"))
    ds = objects["DaemonSet"]
    pod = ds["spec"]["template"]["spec"]
    assert ds["spec"]["selector"]["matchLabels"].items() <= ds["spec"]["template"]["metadata"]["labels"].items()
    assert pod["hostNetwork"] is True and pod["hostPID"] is True
    assert pod["serviceAccountName"] == objects["ServiceAccount"]["metadata"]["name"]
    assert pod["priorityClassName"] == "system-node-critical"
    (init,) = pod["initContainers"]
    # Copy the shim with overwrite (a stale shim hung pod creation after a reboot).
    assert init["command"] == ["cp", "-f", "/usr/src/multus-cni/bin/multus-shim", "/host/opt/cni/bin/multus-shim"]
    (daemon,) = pod["containers"]
    assert daemon["command"] == ["/usr/src/multus-cni/bin/multus-daemon"]
    assert daemon["resources"]["limits"]["memory"] == daemon["resources"]["requests"]["memory"] == "200Mi"
    assert daemon["env"][0]["name"] == "MULTUS_NODE_NAME"
    mounts = {m["mountPath"]: m["name"] for m in daemon["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    # multus-daemon calls delegate plugins at the node's path, so /opt/cni/bin is mounted at the same path.
    assert volumes[mounts["/opt/cni/bin"]]["hostPath"]["path"] == "/opt/cni/bin"
    assert volumes[mounts["/host/etc/cni/net.d"]]["hostPath"]["path"] == "/etc/cni/net.d"
    assert volumes[mounts["/etc/cni/net.d/multus.d"]]["configMap"]["name"] == objects["ConfigMap"]["metadata"]["name"]
    used = {m["name"] for c in pod["containers"] + pod["initContainers"] for m in c["volumeMounts"]}
    assert used == set(volumes), "every mount has a volume and every volume is mounted"


def test_rbac_binds_the_service_account_to_read_nads_and_annotate_pods() -> None:
    objects = by_kind(multus_manifests("us-west-2"))
    binding = objects["ClusterRoleBinding"]
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                                  "name": objects["ClusterRole"]["metadata"]["name"]}
    sa = objects["ServiceAccount"]["metadata"]
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": sa["name"], "namespace": sa["namespace"]}]
    rules = objects["ClusterRole"]["rules"]
    grants = {(g, r, v) for rule in rules for g in rule["apiGroups"] for r in rule["resources"] for v in rule["verbs"]}
    for verb in ("get", "list", "watch"):
        assert ("k8s.cni.cncf.io", "network-attachment-definitions", verb) in grants
    # Exactly what Multus 4.1.4's thick daemon does (see the manifest's comment): no `update` on pods themselves.
    assert grants == {
        *{("k8s.cni.cncf.io", "network-attachment-definitions", v) for v in ("get", "list", "watch")},
        *{("", "pods", v) for v in ("get", "list", "watch")},
        ("", "pods/status", "update"),
        *{("", "events", v) for v in ("create", "patch", "update")},
    }


def test_crd_serves_the_nad_kind() -> None:
    crd = by_kind(multus_manifests("us-west-2"))["CustomResourceDefinition"]
    assert crd["metadata"]["name"] == "network-attachment-definitions.k8s.cni.cncf.io"
    assert crd["spec"]["group"] == "k8s.cni.cncf.io" and crd["spec"]["scope"] == "Namespaced"
    assert crd["spec"]["names"]["kind"] == "NetworkAttachmentDefinition"
    (version,) = crd["spec"]["versions"]
    assert version["name"] == "v1" and version["served"] and version["storage"]
    schema = version["schema"]["openAPIV3Schema"]
    assert schema["properties"]["spec"]["properties"]["config"]["type"] == "string"
