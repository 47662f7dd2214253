"""The controller as it runs in the DaemonSet: `python -m multus_ip_controller.main` as a separate process,
talking HTTP to the fake Kubernetes API server (fake_kube.py: list/watch/patch, resourceVersions, bookmarks,
410 Gone, a server that goes silent), moto's EC2 in server mode and a fake IMDSv2 (controller_harness.py).

What these stand-ins cannot show (see each module's docstring for the details): TLS, authentication and RBAC
of a real apiserver; real EC2 latency, eventual consistency and throttling; the time a real move takes to show
in IMDS. The manifests (probes, RBAC) are checked in test_controller_manifests.py.
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

    # Extended resources on the node: c5.xlarge has 14 pod slots per ENI; the pods request theirs.
    node = h.kube.nodes[h.node_name]
    assert node["status"]["capacity"]["eks-multus.io/multus1-ips"] == "14"
    assert node["status"]["allocatable"]["eks-multus.io/multus2-ips"] == "14"

    # Steady state: passes run (resync every 2 s) without a LIST or any write.
    since = time.monotonic()
    passes = len(h.reports())
    time.sleep(4.5)
    assert len(h.reports()) - passes >= 2
    assert [h.kube.count(v, r, since) for v, r in (("list", "pods"), ("list", "nodes"), ("patch", "pods/status"),
                                                    ("patch", "nodes/status"))] == [0, 0, 0, 0]

    # The API server accepts and never answers: passes keep finishing (from the cache and EC2), liveness holds.
    h.kube.set_silent(True)
    silent_from = len(h.reports())
    time.sleep(5)
    assert len(h.reports()) - silent_from >= 2
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
