"""The pure checks against recorded API objects, one failure mode at a time."""

from __future__ import annotations

import copy
import json

import yaml
from verify_fakes import NODE_A, NODE_B, FakeCluster, load, make_config, ping_output, set_network_status

from eks_multus_cdk import nads, naming, sample_pods
from eks_multus_cdk.assets import asset_path
from eks_multus_cdk.verify import checks
from eks_multus_cdk.verify.checks import ExecResult, Status
from eks_multus_cdk.verify.expected import MULTUS_DAEMONSET, MULTUS_DAEMONSET_NAMESPACE, expectations

# --------------------------------------------------------------------------------------------- expectations


def test_expectations_come_from_the_renderers(config):
    exp = expectations(config)
    rendered = nads.network_attachment_definitions(config)
    assert [(n.namespace, n.name) for n in exp.nads] == [
        (n["metadata"]["namespace"], n["metadata"]["name"]) for n in rendered
    ]
    assert [n.config for n in exp.nads] == [json.loads(n["spec"]["config"]) for n in rendered]
    manifests = sample_pods.sample_pod_manifests(config)
    rendered_names = [m["metadata"]["name"] for m in manifests]
    assert [p.name for p in exp.sample_pods + exp.cross_node_pods] == rendered_names
    dual = next(p for p in exp.sample_pods if p.name == "sample-dual")
    az1 = config.availability_zones[0]
    assert [(a.interface, a.nad.name, str(a.nad.pod_range)) for a in dual.attachments] == [
        ("net1", naming.nad_name("multus1", az1), str(config.multus_networks[0].pod_range(0))),
        ("net2", naming.nad_name("multus2", az1), str(config.multus_networks[1].pod_range(0))),
    ]
    assert dual.availability_zone == az1
    assert [p.name for p in exp.cross_node_pods] == ["sample-cross-a", "sample-cross-b"]


def test_expectations_follow_the_config():
    one_network = make_config(
        multusNetworks=[{"name": "fronthaul", "subnetCidrs": ["10.0.4.0/24", "10.0.5.0/24"]}],
        crossNodeTraffic=False,
    )
    exp = expectations(one_network)
    assert [n.name for n in exp.nads] == ["fronthaul-us-west-2a", "fronthaul-us-west-2b"]
    assert exp.nads[0].config["ipam"]["type"] == "host-local"
    assert [p.name for p in exp.sample_pods] == ["sample-single"]  # sample-dual needs two networks
    assert exp.cross_node_pods is None
    assert expectations(make_config(samplePods=False)).sample_pods == ()


def test_the_daemonset_constant_names_the_manifests_daemonset():
    docs = yaml.safe_load_all(asset_path("manifests", "multus", "multus-daemonset-thick.yaml").read_text())
    (ds,) = [d for d in docs if d and d["kind"] == "DaemonSet"]
    assert (ds["metadata"]["namespace"], ds["metadata"]["name"]) == (MULTUS_DAEMONSET_NAMESPACE, MULTUS_DAEMONSET)


def test_networks_annotation_in_its_short_form():
    from eks_multus_cdk.verify.expected import _parse_networks_annotation

    assert _parse_networks_annotation("a@eth9, other/b", "default") == [
        ("default", "a", "eth9"), ("other", "b", "net2"),
    ]


# --------------------------------------------------------------------------------------------- 1. nodes


def test_nodes_ready():
    row = checks.check_nodes(load("nodes.json")["items"])
    assert row.status is Status.PASS
    assert row.detail == "2/2 Ready in us-west-2a"


def test_node_not_ready():
    nodes = load("nodes.json")["items"]
    ready = next(c for c in nodes[1]["status"]["conditions"] if c["type"] == "Ready")
    ready.update(status="False", reason="KubeletNotReady",
                 message="container runtime network not ready: NetworkReady=false reason:NetworkPluginNotReady")
    row = checks.check_nodes(nodes)
    assert row.status is Status.FAIL
    assert f"1/2 Ready; not Ready: {NODE_B} (KubeletNotReady: container runtime network not ready" in row.detail
    assert "cloud-init-output.log" in row.hint


def test_no_nodes_points_at_the_lifecycle_hook():
    row = checks.check_nodes([])
    assert row.status is Status.FAIL
    assert "ENI Lambda's log group" in row.hint


# --------------------------------------------------------------------------------------------- 2. daemonset


def test_daemonset_ready_on_every_node():
    row = checks.check_daemonset(load("daemonset-kube-multus-ds.json"), 2, "kube-system", "kube-multus-ds")
    assert (row.status, row.detail) == (Status.PASS, "2 ready / 2 desired / 2 nodes")


def test_daemonset_not_ready_on_a_node():
    ds = load("daemonset-kube-multus-ds.json")
    ds["status"].update(numberReady=1, numberAvailable=1, numberUnavailable=1)
    row = checks.check_daemonset(ds, 2, "kube-system", "kube-multus-ds")
    assert (row.status, row.detail) == (Status.FAIL, "1 ready / 2 desired / 2 nodes")
    assert "kubectl -n kube-system logs ds/kube-multus-ds" in row.hint


def test_daemonset_scheduled_on_fewer_nodes_than_the_cluster_has():
    row = checks.check_daemonset(load("daemonset-kube-multus-ds.json"), 3, "kube-system", "kube-multus-ds")
    assert row.status is Status.FAIL


def test_daemonset_missing():
    assert checks.check_daemonset(None, 2, "kube-system", "kube-multus-ds").status is Status.FAIL


# --------------------------------------------------------------------------------------------- 3. NADs


def test_nads_as_rendered(config, cluster: FakeCluster):
    rows = checks.check_nads(cluster.nads["multus-networks"], expectations(config).nads)
    assert [(r.name, r.status) for r in rows] == [
        (f"NAD multus-networks/{n}", Status.PASS)
        for n in ("multus1-us-west-2a", "multus1-us-west-2b", "multus2-us-west-2a", "multus2-us-west-2b")
    ]
    assert rows[0].detail == "ipvlan on multus1, as expected"


def test_nad_config_compared_as_json_not_as_text(config, cluster: FakeCluster):
    served = cluster.nads["multus-networks"]
    for nad in served:  # same content, other key order and spacing
        nad["spec"]["config"] = json.dumps(dict(reversed(json.loads(nad["spec"]["config"]).items())), indent=2)
    assert {r.status for r in checks.check_nads(served, expectations(config).nads)} == {Status.PASS}


def test_nad_missing(config, cluster: FakeCluster):
    served = [n for n in cluster.nads["multus-networks"] if n["metadata"]["name"] != "multus2-us-west-2b"]
    rows = {r.name: r for r in checks.check_nads(served, expectations(config).nads)}
    row = rows["NAD multus-networks/multus2-us-west-2b"]
    assert (row.status, row.detail) == (Status.FAIL, "not found")
    assert "get network-attachment-definitions" in row.hint
    assert rows["NAD multus-networks/multus2-us-west-2a"].status is Status.PASS


def test_nad_config_drift(config, cluster: FakeCluster):
    served = cluster.nads["multus-networks"]
    cni = json.loads(served[0]["spec"]["config"])
    cni["master"] = "ens6"  # the walkthrough's AL2 name, not the stable one
    cni["ipam"]["range"] = "10.0.4.128/25"  # the first build's defect: only the pod block
    del cni["mode"]
    served[0]["spec"]["config"] = json.dumps(cni)
    row = checks.check_nads(served, expectations(config).nads)[0]
    assert row.status is Status.FAIL
    assert row.detail == (
        'spec.config differs: ipam.range: expected "10.0.4.0/24", got "10.0.4.128/25"; '
        'master: expected "multus1", got "ens6"; mode: missing (expected "l2")'
    )
    assert "re-run cdk deploy" in row.hint


def test_nad_config_not_json(config, cluster: FakeCluster):
    served = cluster.nads["multus-networks"]
    served[0]["spec"]["config"] = "{'cniVersion': '0.3.1'"
    assert checks.check_nads(served, expectations(config).nads)[0].status is Status.FAIL


def test_nad_crd_missing(config):
    rows = checks.check_nads(None, expectations(config).nads)
    assert {r.status for r in rows} == {Status.FAIL}
    assert "CRD is not installed" in rows[0].detail


# --------------------------------------------------------------------------------------------- 4. pods Running


def _expected(config, name):
    return next(p for p in expectations(config).sample_pods if p.name == name)


def test_pod_running(config):
    row = checks.check_pod_running(load("pod-sample-single.json"), _expected(config, "sample-single"), "ds")
    assert (row.status, row.detail) == (Status.PASS, f"Running on {NODE_A}")


def test_pod_pending_unschedulable(config):
    pod = load("pod-sample-single.json")
    del pod["spec"]["nodeName"]
    pod["status"] = {
        "phase": "Pending", "qosClass": "Burstable",
        "conditions": [{
            "type": "PodScheduled", "status": "False", "reason": "Unschedulable",
            "lastTransitionTime": "2026-11-26T10:02:17Z",
            "message": "0/2 nodes are available: 2 node(s) didn't match Pod's node affinity/selector. "
                       "preemption: 0/2 nodes are available: 2 Preemption is not helpful for scheduling.",
        }],
    }
    row = checks.check_pod_running(pod, _expected(config, "sample-single"), "kube-multus-ds")
    assert row.status is Status.FAIL
    assert row.detail.startswith("Pending (unschedulable: 0/2 nodes are available: 2 node(s) didn't match")
    assert "us-west-2a" in row.hint


def test_pod_stuck_creating_points_at_multus(config):
    pod = load("pod-sample-dual.json")
    pod["status"]["phase"] = "Pending"
    pod["status"]["containerStatuses"][0]["state"] = {"waiting": {"reason": "ContainerCreating"}}
    del pod["metadata"]["annotations"]["k8s.v1.cni.cncf.io/network-status"]
    row = checks.check_pod_running(pod, _expected(config, "sample-dual"), "kube-multus-ds")
    assert row.status is Status.FAIL
    assert row.detail == f"Pending on {NODE_A} (sample: ContainerCreating)"
    assert "kubectl -n kube-system logs ds/kube-multus-ds" in row.hint


def test_pod_missing(config):
    assert checks.check_pod_running(None, _expected(config, "sample-single"), "ds").status is Status.FAIL


# --------------------------------------------------------------------------------------------- 5. network-status


def test_pod_networks(config):
    node = load("nodes.json")["items"][0]
    row = checks.check_pod_networks(load("pod-sample-dual.json"), node, _expected(config, "sample-dual"), "ds")
    assert row.status is Status.PASS, row.detail
    assert row.detail == "net1=10.0.4.130 (multus1-us-west-2a), net2=10.0.6.129 (multus2-us-west-2a)"


def test_net1_address_outside_the_pod_range(config):
    # host-local over the whole subnet (the walkthrough's NAD) hands out the subnet's first addresses, which
    # EC2 may also give to an ENI.
    pod = load("pod-sample-single.json")
    set_network_status(pod, lambda entries: entries[1].update(ips=["10.0.4.5"]))
    node = load("nodes.json")["items"][0]
    row = checks.check_pod_networks(pod, node, _expected(config, "sample-single"), "ds")
    assert row.status is Status.FAIL
    assert row.detail == "net1 address 10.0.4.5 is outside the pod range 10.0.4.128/25"
    assert "multus-interfaces:" in row.hint


def test_net2_missing_on_the_dual_pod(config):
    pod = load("pod-sample-dual.json")
    set_network_status(pod, lambda entries: entries.pop())
    node = load("nodes.json")["items"][0]
    row = checks.check_pod_networks(pod, node, _expected(config, "sample-dual"), "ds")
    assert row.status is Status.FAIL
    assert row.detail == "net2 missing (interfaces: dummy8e1f0a4b2c7, net1)"


def test_net1_on_another_nad(config):
    pod = load("pod-sample-single.json")
    set_network_status(pod, lambda entries: entries[1].update(name="default/ipvlan-multus"))
    row = checks.check_pod_networks(pod, None, _expected(config, "sample-single"), "ds")
    assert row.status is Status.FAIL
    assert row.detail == "net1 is on 'default/ipvlan-multus', expected 'multus-networks/multus1-us-west-2a'"


def test_pod_on_a_node_of_another_az(config):
    node = copy.deepcopy(load("nodes.json")["items"][0])
    node["metadata"]["labels"]["topology.kubernetes.io/zone"] = "us-west-2b"
    row = checks.check_pod_networks(load("pod-sample-single.json"), node, _expected(config, "sample-single"), "ds")
    assert row.status is Status.FAIL
    assert "node is in us-west-2b but its NAD multus1-us-west-2a is for us-west-2a" in row.detail


def test_no_network_status_annotation(config):
    pod = load("pod-sample-single.json")
    del pod["metadata"]["annotations"]["k8s.v1.cni.cncf.io/network-status"]
    row = checks.check_pod_networks(pod, None, _expected(config, "sample-single"), "kube-multus-ds")
    assert row.status is Status.FAIL
    assert "logs ds/kube-multus-ds" in row.hint


# --------------------------------------------------------------------------------------------- 6. ping


def test_ping_ok():
    result = ExecResult(0, ping_output("10.0.4.129", "10.0.4.130"))
    row = checks.check_ping("a", "b", "net1", "10.0.4.130", result, "hint")
    assert row.status is Status.PASS
    assert row.detail == "10.0.4.130: 3 packets transmitted, 3 received, 0% packet loss, time 2043ms"


def test_ping_all_lost():
    result = ExecResult(1, ping_output("10.0.4.129", "10.0.4.131", received=0))
    row = checks.check_ping("a", "b", "net1", "10.0.4.131", result, "the hint")
    assert row.status is Status.FAIL
    assert row.detail == "10.0.4.131: 3 packets transmitted, 0 received, 100% packet loss, time 2043ms (exit 1)"
    assert row.hint == "the hint"


def test_ping_some_lost_and_ping_not_finished():
    partial = ExecResult(1, ping_output("10.0.4.129", "10.0.4.131", received=2))
    assert checks.check_ping("a", "b", "net1", "x", partial, "h").status is Status.FAIL
    unfinished = ExecResult(None, "PING 10.0.4.131 (10.0.4.131) from 10.0.4.129 net1: 56(84) bytes of data.\n")
    row = checks.check_ping("a", "b", "net1", "10.0.4.131", unfinished, "h")
    assert row.status is Status.FAIL and row.detail.endswith("(did not finish)")


def test_ping_without_the_interface():
    result = ExecResult(2, "", "ping: SO_BINDTODEVICE net1: No such device\n")
    row = checks.check_ping("a", "b", "net1", "10.0.4.130", result, "h")
    assert row.detail == "10.0.4.130: ping: SO_BINDTODEVICE net1: No such device (exit 2)"


def test_ping_command():
    assert checks.ping_command("10.0.4.130") == ["ping", "-c", "3", "-W", "2", "10.0.4.130"]


# --------------------------------------------------------------------------------------------- 7. cross-node


def test_cross_node_placement():
    a, b = load("pod-sample-cross-a.json"), load("pod-sample-cross-b.json")
    assert checks.check_cross_node_placement([a, b], "us-west-2a").status is Status.PASS
    b["spec"]["nodeName"] = NODE_A
    row = checks.check_cross_node_placement([a, b], "us-west-2a")
    assert row.status is Status.FAIL and "share a node" in row.detail


def test_cross_node_skip_is_a_skip():
    row = checks.skip_cross_node("us-west-2a", [NODE_A])
    assert row.status is Status.SKIP
    assert row.detail == f"skipped: fewer than 2 nodes in AZ us-west-2a (1: {NODE_A})"


def test_json_differences():
    assert checks.json_differences({"a": [1, {"b": 2}]}, {"a": [1, {"b": 3}], "c": True}) == [
        "a[1].b: expected 2, got 3", "c: unexpected true",
    ]
    assert checks.json_differences([1], [1, 2]) == ["(root): expected [1], got [1, 2]"]
    assert checks.json_differences({"x": 1}, {"x": True}) == ["x: expected 1, got true"]
