"""The controller as it runs in the DaemonSet: `python -m multus_ip_controller.main` as a separate process,
talking HTTP to the fake Kubernetes API server (fake_kube.py: list/watch/patch, resourceVersions, bookmarks,
410 Gone, a server that goes silent), moto's EC2 in server mode and a fake IMDSv2 (controller_harness.py).

The AWS credentials come from a fake EKS Pod Identity endpoint (fake_pod_identity.py), the claim check reads
the whereabouts IPPools the harness writes on `attach`, and the startup-taint loop runs against the same fake.

What these stand-ins cannot show (see each module's docstring for the details): TLS, authentication and RBAC
of a real apiserver; Pod Identity's exchange of the token for a role's credentials; whereabouts itself (its
allocations are written by the harness); real EC2 latency, eventual consistency and throttling; the time a real
move takes to show in IMDS. The manifests (probes, RBAC) are checked in test_controller_manifests.py.
"""

from __future__ import annotations

import time

import pytest
from controller_harness import Harness

FAST = {"RESYNC_SECONDS": "2", "DEBOUNCE_SECONDS": "0.2", "MAX_DEBOUNCE_SECONDS": "0.6",
        "WATCH_TIMEOUT_SECONDS": "2", "KUBE_TIMEOUT_SECONDS": "1", "CONFIRM_SECONDS": "1",
        "LIVENESS_SECONDS": "10"}


@pytest.fixture
def harness(tmp_path, aws_credentials):
    h = Harness(tmp_path, env=FAST).start()
    yield h
    h.stop()


def test_process_serves_pods_from_its_watch_cache_and_survives_a_silent_and_a_compacted_api_server(harness):
    h = harness
    uids = {name: h.add_pod(name, network=n % 2) for n, name in enumerate(("a", "b", "c"))}
    h.wait(lambda: h.http("/readyz")[0] == 200, what="readiness")
    for n, uid in enumerate(uids.values()):
        h.attach(uid, f"10.0.{4 + 2 * (n % 2)}.{140 + n}", network=n % 2)
    h.wait(lambda: all((h.condition(n) or {}).get("status") == "True" for n in uids), what="pods Ready")
    assert h.held() == {"multus1": {"10.0.4.140", "10.0.4.142"}, "multus2": {"10.0.6.141"}}
    assert h.imds.reads > 0 and h.imds.unauthorized == 0  # confirmed through IMDSv2
    assert h.pod_identity.served >= 1 and h.pod_identity.unauthorized == 0  # EC2 credentials from Pod Identity
    assert h.kube.count("list", "ippools") >= 1  # every claim checked against whereabouts' record

    # Extended resources on the node: c5.xlarge has 14 pod slots per ENI; the pods request theirs.
    node = h.kube.nodes[h.node_name]
    assert node["status"]["capacity"]["eks-multus.io/multus1-ips"] == "14"
    assert node["status"]["allocatable"]["eks-multus.io/multus2-ips"] == "14"

    # Steady state: passes run (resync every 2 s) without a LIST or any write.
    since = time.monotonic()
    passes = len(h.reports())
    time.sleep(4.5)
    assert len(h.reports()) - passes >= 2
    # Claims accepted once are not checked again: no IPPool LIST either (the claim check reads the record only for
    # new claims).
    assert [h.kube.count(v, r, since) for v, r in (("list", "pods"), ("list", "nodes"), ("list", "ippools"),
                                                    ("patch", "pods/status"), ("patch", "nodes/status"))] == [0] * 5

    # The API server accepts and never answers: passes keep finishing from the cache (the claims were accepted
    # before, so nothing needs the IPPools), each bounded, nothing held changes and liveness holds. A pass that
    # does need the server (a new claim to check) is bounded by the request timeout: test_controller_silent_server.
    h.kube.set_silent(True)
    silent_from = len(h.reports())
    held = h.held()
    time.sleep(7)
    silent = h.reports()[silent_from:]
    assert len(silent) >= 2
    assert all(r["durationMs"] < 2500 for r in silent), [r["durationMs"] for r in silent]
    assert h.held() == held
    assert h.http("/healthz")[0] == 200
    h.kube.set_silent(False)

    # After the silence: the watch has been dropped by its read timeout and resumed; a new pod is served.
    d = h.add_pod("d", network=0)
    h.attach(d, "10.0.4.150")
    h.wait(lambda: (h.condition("d") or {}).get("status") == "True", timeout=15, what="pod d Ready after silence")

    # etcd compaction: the next watch gets 410 Gone and the cache relists; a pod deleted meanwhile is unassigned.
    lists = h.kube.count("list", "pods")
    h.kube.set_silent(True, watches_only=True)
    since = time.monotonic()
    # The open watch goes quiet; once the client's read timeout has dropped it, its next watch waits at the door.
    h.wait(lambda: h.kube.count("watch", "pods", since) >= 1, timeout=10, what="a watch held by the silent server")
    h.kube.delete_pod(uids["a"])
    h.kube.compact()
    h.kube.set_silent(False)
    h.wait(lambda: h.kube.count("list", "pods") == lists + 1, timeout=15, what="relist after 410")
    h.wait(lambda: "10.0.4.140" not in h.held()["multus1"], timeout=10, what="address of a deleted pod unassigned")

    status, metrics = h.http("/metrics")
    assert status == 200
    assert 'multus_pod_address_ec2_calls_total{operation="AssignPrivateIpAddresses",outcome="ok"}' in metrics
    assert "multus_pod_address_assignment_latency_seconds_count 4.0" in metrics
    assert 'multus_pod_address_cache_objects{cache="pods"} 3.0' in metrics
    assert h.stop() == 0  # SIGTERM: a clean exit


def test_process_records_an_event_for_a_pod_whose_eni_is_full(tmp_path, aws_credentials):
    """t3.small: 4 IPv4 addresses per interface, so 3 pod slots per ENI; the 4th (youngest) pod is refused."""
    h = Harness(tmp_path, instance_type="t3.small", networks=1, env=FAST).start()
    try:
        uids = []
        for i in range(4):
            uids.append(h.add_pod(f"p{i}"))
            time.sleep(1.05)  # creationTimestamp has 1 s resolution: p0 is the oldest
        for i, uid in enumerate(uids):
            h.attach(uid, f"10.0.4.{140 + i}")
        h.wait(lambda: any(e["reason"] == "AddressRefused" for e in h.kube.events), what="an AddressRefused event")
        (event,) = [e for e in h.kube.events if e["reason"] == "AddressRefused"]
        assert event["involvedObject"]["name"] == "p3" and "is full: 3 pod addresses" in event["message"]
        assert h.held() == {"multus1": {"10.0.4.140", "10.0.4.141", "10.0.4.142"}}
        assert (h.condition("p3") or {}).get("status") == "False"
        assert h.kube.nodes[h.node_name]["status"]["capacity"]["eks-multus.io/multus1-ips"] == "3"
    finally:
        h.stop()


def test_process_keeps_the_startup_taint_and_says_why_until_multus_can_serve(tmp_path, aws_credentials):
    """The startup-taint loop (issue 9) in the real process, on the main client and its timeouts. This machine
    has no multus1/multus2 links, so the taint stays and MultusInterfacesReady says which interfaces are missing;
    once a Multus daemon pod runs on the node (found by label app=multus and spec.nodeName in kube-system) the
    condition stops blaming it. The taint removal (a JSON patch that tests the taints it read) is then sent as the
    loop sends it: a stale read changes nothing, a current one removes only our taint."""
    from kubernetes import client
    from multus_ip_controller import startup_taint

    h = Harness(tmp_path, env=FAST, startup_taint=True).start()
    try:
        def condition():
            node = h.kube.nodes[h.node_name]
            return next((c for c in node["status"].get("conditions", []) if c["type"] == startup_taint.CONDITION_TYPE),
                        None)

        h.wait(lambda: condition() is not None, what="MultusInterfacesReady")
        first = condition()
        assert (first["status"], first["reason"]) == ("False", "InterfacesMissing")
        assert "multus1, multus2" in first["message"] and "Multus daemon pod is not Running" in first["message"]
        node = h.kube.nodes[h.node_name]
        assert [t["key"] for t in node["spec"]["taints"]] == [startup_taint.TAINT_KEY]
        assert any(c["type"] == "Ready" for c in node["status"]["conditions"])  # the kubelet's condition stays

        h.kube.add_pod({"apiVersion": "v1", "kind": "Pod", "metadata": {
            "namespace": "kube-system", "name": "kube-multus-ds-x7k2p", "labels": {"app": "multus"}},
            "spec": {"nodeName": h.node_name, "hostNetwork": True, "containers": [{"name": "kube-multus"}]},
            "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}})
        h.wait(lambda: "Multus daemon" not in condition()["message"], timeout=15, what="the daemon found")
        assert condition()["reason"] == "InterfacesMissing"
        assert [t["key"] for t in h.kube.nodes[h.node_name]["spec"]["taints"]] == [startup_taint.TAINT_KEY]

        configuration = client.Configuration()
        configuration.host = h.kube.url
        api = startup_taint.NodeApi(client.CoreV1Api(client.ApiClient(configuration)), timeout=(1.0, 2.0))
        taints = api.get_node(h.node_name)["spec"]["taints"]
        h.kube.nodes[h.node_name]["spec"]["taints"].append({"key": "late", "effect": "NoExecute"})  # meanwhile
        with pytest.raises(client.ApiException) as refused:
            api.remove_taint(h.node_name, taints)
        assert refused.value.status == 422
        assert {t["key"] for t in h.kube.nodes[h.node_name]["spec"]["taints"]} == {startup_taint.TAINT_KEY, "late"}
        api.remove_taint(h.node_name, api.get_node(h.node_name)["spec"]["taints"])
        assert [t["key"] for t in h.kube.nodes[h.node_name]["spec"]["taints"]] == ["late"]
    finally:
        h.stop()
