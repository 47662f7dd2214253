"""The Kubernetes layer against Pod/Node/NAD objects in the shape Multus 4.1 (thick) and the API server write.

data/pods-multus-4.1.json holds ipvlan pods whose NADs use CNI 0.3.1 and 1.0.0, a host-device interface, the
VPC CNI's default entries (eth0 plus its `"mac": "0"` dummy), a terminating pod, a completed Job pod, a
host-network pod, a host-local address outside the pod ranges and a truncated annotation.
"""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
from controller_test_support import load_data
from multus_ip_controller import kube
from multus_ip_controller.planning import PodAddress, parse_ranges

RANGES = parse_ranges(["10.0.4.128/25", "10.0.6.128/25", "10.0.8.128/25"])
PODS = load_data("pods-multus-4.1.json")["items"]
NADS = {f"{n['metadata']['namespace']}/{n['metadata']['name']}": n for n in load_data("nads.json")}


def by_name(name):
    return next(p for p in PODS if p["metadata"]["name"] == name)


def nad_index(name):
    nad = NADS.get(name)
    return kube.nad_master_device_index(nad, "multus") if nad else None


def test_cni_031_ipvlan_pod_yields_one_address_per_multus_interface_and_skips_the_default_network():
    addresses, problems = kube.pod_addresses(by_name("sample-031"), RANGES, nad_index)
    assert addresses == [
        PodAddress("default/sample-031", "net1", "10.0.4.133", "02:7a:1b:3c:4d:01"),
        PodAddress("default/sample-031", "net2", "10.0.6.140", "02:7a:1b:3c:4d:02"),
    ]
    assert problems == []


def test_cni_100_pod_with_mtu_and_a_host_device_interface():
    addresses, _ = kube.pod_addresses(by_name("sample-100"), RANGES, nad_index)
    assert [(a.interface, a.ip, a.mac) for a in addresses] == [
        ("net1", "10.0.4.134", "02:7a:1b:3c:4d:01"),
        ("net2", "10.0.8.150", "02:7a:1b:3c:4d:03"),
    ]


def test_result_shaped_ips_and_a_missing_mac_falls_back_to_the_nad_master():
    addresses, problems = kube.pod_addresses(by_name("sample-shaped"), RANGES, nad_index)
    assert [(a.ip, a.mac, a.device_index) for a in addresses] == [
        ("10.0.4.135", "02:7a:1b:3c:4d:01", None),
        ("10.0.6.141", "02:7a:1b:3c:4d:02", None),
        ("10.0.6.142", None, 2),
    ]
    assert problems == ["default/sample-shaped: net3 (default/multus2-us-west-2a) has no MAC; "
                        "using the NAD master's device index 2"]


def test_terminating_completed_hostnetwork_and_out_of_range_pods():
    (terminating,), _ = kube.pod_addresses(by_name("sample-terminating"), RANGES)
    assert terminating.terminating and terminating.ip == "10.0.4.136"
    assert kube.pod_addresses(by_name("job-completed"), RANGES) == ([], [])
    assert kube.pod_addresses(by_name("hostnet"), RANGES) == ([], [])
    assert kube.pod_addresses(by_name("sample-hostlocal"), RANGES) == ([], [])


def test_a_broken_annotation_is_reported_not_raised():
    addresses, problems = kube.pod_addresses(by_name("sample-broken"), RANGES)
    assert addresses == []
    assert problems and "network-status is not JSON" in problems[0]


def test_desired_addresses_over_the_whole_recorded_pod_list():
    desired, problems = kube.desired_addresses(PODS, RANGES, nad_index)
    assert sorted(a.ip for a in desired) == [
        "10.0.4.133", "10.0.4.134", "10.0.4.135", "10.0.4.136", "10.0.6.140", "10.0.6.141", "10.0.6.142", "10.0.8.150"
    ]
    assert len(problems) == 2  # the MAC fallback and the broken annotation


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (None, []),
        ("", []),
        ('{"name": "default/n", "interface": "net1", "ips": ["10.0.4.140"], "mac": "02:00:00:00:00:01"}',
         [kube.Attachment("default/n", "net1", ("10.0.4.140",), "02:00:00:00:00:01", False)]),
        ('[{"name": "default/n", "ips": "10.0.4.140/25"}]',
         [kube.Attachment("default/n", "", ("10.0.4.140",), None, False)]),
        ('[{"name": "default/n", "ips": ["fd00::5", "10.0.4.140", "10.0.4.140"]}]',
         [kube.Attachment("default/n", "", ("10.0.4.140",), None, False)]),
        ('[{"name": "aws-cni", "interface": "eth0", "ips": ["10.0.2.3"], "default": true}]',
         [kube.Attachment("aws-cni", "eth0", ("10.0.2.3",), None, True)]),
    ],
)
def test_parse_network_status_variants(raw, expected):
    assert kube.parse_network_status(raw) == (expected, None)


def test_parse_network_status_reports_junk():
    assert kube.parse_network_status("42")[1] == "network-status is not a list"
    attachments, problem = kube.parse_network_status('["x", {"name": "default/n", "ips": ["10.0.4.140"]}]')
    assert len(attachments) == 1 and "not an object" in problem


def test_legacy_annotation_name_is_read_too():
    pod = {"metadata": {"namespace": "default", "name": "old", "annotations": {
        kube.LEGACY_NETWORK_STATUS: '[{"name": "default/n", "interface": "net1", "ips": ["10.0.4.140"], '
                                    '"mac": "02:00:00:00:00:01"}]'}}}
    assert [a.ip for a in kube.pod_addresses(pod, RANGES)[0]] == ["10.0.4.140"]


def test_node_instance_from_provider_id():
    assert kube.node_instance(load_data("node.json")) == ("i-0a1b2c3d4e5f60718", "us-west-2a")
    with pytest.raises(ValueError, match="providerID"):
        kube.node_instance({"metadata": {"name": "n"}, "spec": {"providerID": "kind://docker/kind/n"}})


def test_nad_master_device_index_for_ipvlan_conflist_host_device_and_junk():
    assert nad_index("default/multus2-us-west-2a") == 2  # ipvlan, "master"
    assert nad_index("default/multus3-us-west-2a") == 3  # conflist, host-device "device"
    assert kube.nad_master_device_index({"spec": {"config": "{"}}, "multus") is None
    assert kube.nad_master_device_index({"spec": {"config": '{"master": "eth1"}'}}, "multus") is None


def test_nad_cache_caches_answers_but_retries_failed_lookups():
    calls = []

    def get_nad(namespace, name):
        calls.append((namespace, name))
        if len(calls) == 1:
            raise RuntimeError("API server unavailable")
        return NADS.get(f"{namespace}/{name}")

    cache = kube.NadMasterCache(get_nad, "multus")
    assert cache("default/multus2-us-west-2a") is None  # failed: not cached
    assert cache("default/multus2-us-west-2a") == 2
    assert cache("default/multus2-us-west-2a") == 2
    assert len(calls) == 2


class FakeCore:
    """Just enough of CoreV1Api for KubeClient: a list call the Watch helper can stream."""

    def __init__(self, pods):
        self.pods = pods
        self.calls = []

    def list_pod_for_all_namespaces(self, **kwargs):
        self.calls.append(kwargs)
        if kwargs.get("_preload_content") is False:
            return SimpleNamespace(data=json.dumps({"items": self.pods}).encode())
        raise AssertionError("unexpected call")


def test_kube_client_lists_the_nodes_pods_with_a_field_selector():
    from kubernetes import client

    kc = kube.KubeClient(client.ApiClient())
    kc._core = FakeCore(PODS)
    assert len(kc.list_pods("node-a")) == len(PODS)
    assert kc._core.calls[0]["field_selector"] == "spec.nodeName=node-a"
