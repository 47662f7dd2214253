"""The walkthrough's sample pods."""

from __future__ import annotations

import dataclasses
import json

from eks_multus_cdk import naming
from eks_multus_cdk.assets import asset_path
from eks_multus_cdk.config import parse_config
from eks_multus_cdk.multus_manifests import load_manifest_file
from eks_multus_cdk.nads import network_attachment_definitions
from eks_multus_cdk.sample_pods import NETWORKS_ANNOTATION, sample_pod_manifests

OTHER = {
    "region": "eu-central-1",
    "availabilityZones": ["eu-central-1b", "eu-central-1c"],
    "samplePodImage": "registry.example.com/tools/net:1.2",
    "multusNetworks": [
        {"name": "signal", "subnetCidrs": ["10.0.4.0/24", "10.0.5.0/24"]},
        {"name": "media", "subnetCidrs": ["10.0.6.0/24", "10.0.7.0/24"], "plugin": "host-device"},
    ],
}


def test_default_render_equals_the_shipped_yaml() -> None:
    """The YAML files carry the default config's values, so `kubectl apply -f manifests/samples` matches a deploy."""
    shipped = [
        obj
        for name in ("sample-single.yaml", "sample-dual.yaml", "sample-cross-a.yaml", "sample-cross-b.yaml")
        for obj in load_manifest_file(asset_path("manifests", "samples", name))
    ]
    rendered = sample_pod_manifests(parse_config(None))
    for pod in rendered:  # the renderer adds the readiness gate and the extended resources (crossNodeTraffic is
        # on by default); the files lack them
        assert pod["spec"].pop("readinessGates") == [{"conditionType": naming.ADDRESSES_READY_CONDITION}]
        resources = pod["spec"]["containers"][0]["resources"]
        for kind in ("requests", "limits"):
            for name in [k for k in resources[kind] if k.startswith("eks-multus.io/")]:
                assert resources[kind].pop(name) == "1"
    assert rendered == shipped


def test_samples_request_one_address_slot_per_network_iff_cross_node_traffic() -> None:
    by_name = {p["metadata"]["name"]: p for p in sample_pod_manifests(parse_config(OTHER))}
    dual = by_name["sample-dual"]["spec"]["containers"][0]["resources"]
    assert {k: v for k, v in dual["requests"].items() if k.startswith("eks-multus.io/")} == {
        "eks-multus.io/signal-ips": "1", "eks-multus.io/media-ips": "1"}
    assert dual["limits"]["eks-multus.io/signal-ips"] == "1"
    without = sample_pod_manifests(parse_config({**OTHER, "crossNodeTraffic": False}))
    assert not any(k.startswith("eks-multus.io/") for p in without
                   for kind in ("requests", "limits") for k in p["spec"]["containers"][0]["resources"][kind])


def test_readiness_gate_iff_cross_node_traffic() -> None:
    """Only with the pod-address controller is there anyone to set the condition; without it the pod would never
    be Ready."""
    gate = [{"conditionType": "eks-multus.io/addresses-assigned"}]
    with_controller = sample_pod_manifests(parse_config(OTHER))
    assert len(with_controller) == 4 and all(p["spec"]["readinessGates"] == gate for p in with_controller)
    without = sample_pod_manifests(parse_config({**OTHER, "crossNodeTraffic": False}))
    assert len(without) == 2 and all("readinessGates" not in p["spec"] for p in without)
    shipped = [load_manifest_file(asset_path("manifests", "samples", f))[0]
               for f in ("sample-single.yaml", "sample-dual.yaml", "sample-cross-a.yaml", "sample-cross-b.yaml")]
    assert all("readinessGates" not in p["spec"] for p in shipped)


def test_disabled() -> None:
    assert sample_pod_manifests(dataclasses.replace(parse_config(None), sample_pods=False)) == []


def test_one_network_gives_only_the_single_sample() -> None:
    config = parse_config({"multusNetworks": [{"name": "only", "subnetCidrs": ["10.0.4.0/24", "10.0.5.0/24"]}]})
    assert [p["metadata"]["name"] for p in sample_pod_manifests(config)] == [
        "sample-single", "sample-cross-a", "sample-cross-b"]


def test_cross_node_pair_only_with_cross_node_traffic() -> None:
    names = [p["metadata"]["name"] for p in sample_pod_manifests(parse_config({"crossNodeTraffic": False}))]
    assert names == ["sample-single", "sample-dual"]
    cross = [p for p in sample_pod_manifests(parse_config(None)) if p["metadata"]["name"].startswith("sample-cross")]
    assert len(cross) == 2
    for pod in cross:
        (term,) = pod["spec"]["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"]
        assert term["podAffinityTerm"]["topologyKey"] == "kubernetes.io/hostname"
        selector = term["podAffinityTerm"]["labelSelector"]["matchLabels"]
        assert selector == {"app.kubernetes.io/name": "sample-cross"}
        assert selector.items() <= pod["metadata"]["labels"].items()


def test_pods_name_only_nads_of_their_pinned_az() -> None:
    config = parse_config(OTHER)
    pods = {p["metadata"]["name"]: p for p in sample_pod_manifests(config)}
    assert list(pods) == ["sample-single", "sample-dual", "sample-cross-a", "sample-cross-b"]
    nads = {
        (n["metadata"]["namespace"], n["metadata"]["name"]): n["metadata"]["labels"]["topology.kubernetes.io/zone"]
        for n in network_attachment_definitions(config)
    }
    expected = {
        "sample-single": ["signal-eu-central-1b"],
        "sample-dual": ["signal-eu-central-1b", "media-eu-central-1b"],
        "sample-cross-a": ["signal-eu-central-1b"],
        "sample-cross-b": ["signal-eu-central-1b"],
    }
    for name, pod in pods.items():
        zone = pod["spec"]["nodeSelector"]["topology.kubernetes.io/zone"]
        assert zone == "eu-central-1b"
        attachments = json.loads(pod["metadata"]["annotations"][NETWORKS_ANNOTATION])
        assert [a["name"] for a in attachments] == expected[name]
        assert [a["interface"] for a in attachments] == ["net1", "net2"][: len(attachments)]
        for a in attachments:
            assert nads[(a["namespace"], a["name"])] == zone, "a pod may only name NADs of its node's AZ"


def test_container_is_long_running_and_not_privileged() -> None:
    for pod in sample_pod_manifests(parse_config(OTHER)):
        (container,) = pod["spec"]["containers"]
        assert container["image"] == "registry.example.com/tools/net:1.2"
        assert container["command"] == ["sleep", "infinity"]
        sc = container["securityContext"]
        assert sc.get("privileged") is not True and sc["allowPrivilegeEscalation"] is False
        assert sc["capabilities"] == {"drop": ["ALL"], "add": ["NET_RAW"]}
        assert "hostNetwork" not in pod["spec"]
