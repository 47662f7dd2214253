"""The drainer's drain logic and its Kubernetes client against the fake API server (tests/drainer/fake_eviction_api.py).

Every test runs the real `node_drainer.drain.drain` through the real `node_drainer.kube.KubeClient` over HTTP on
127.0.0.1; time is simulated (grace periods, reschedules, the deadline), so a 10-minute drain takes milliseconds.
"""

from __future__ import annotations

import socket
import threading

import pytest
from fake_eviction_api import cluster_role_rules
from node_drainer.drain import ActionEnded, drain
from node_drainer.kube import KubeClient

NODE, OTHER, INSTANCE = "ip-10-0-2-10.us-west-2.compute.internal", "ip-10-0-3-20.us-west-2.compute.internal", \
    "i-0123456789abcdef0"


def client(url: str) -> KubeClient:
    return KubeClient(url, lambda: "k8s-aws-v1.test-token")


def run(url, clock, *, deadline=600.0, beats=None, heartbeat_seconds=60.0, instance=INSTANCE):
    beats = [] if beats is None else beats
    return drain(client(url), node_name=NODE, instance_id=instance, clock=clock,
                 deadline=clock.monotonic() + deadline, heartbeat=lambda: beats.append(clock.now),
                 heartbeat_seconds=heartbeat_seconds)


def two_replicas_under_pdb(cluster) -> None:
    cluster.add_node(NODE, INSTANCE)
    cluster.add_node(OTHER, "i-0fedcba9876543210")
    for name in ("web-a", "web-b"):
        cluster.add_pod("apps", name, NODE, labels={"app": "web"}, owner="ReplicaSet", grace=10)
    cluster.add_pdb("apps", "web", {"app": "web"}, min_available=1)
    cluster.add_pod("kube-system", "aws-node-x", NODE, owner="DaemonSet")
    cluster.add_pod("kube-system", "kube-multus-ds-x", NODE, owner="DaemonSet")
    cluster.add_pod("kube-system", "static-x", NODE, annotations={"kubernetes.io/config.mirror": "x"})
    cluster.add_pod("apps", "job-done", NODE, owner="Job", phase="Succeeded")


def test_drain_cordons_and_evicts_one_at_a_time_as_the_pdb_allows(api, cluster, clock):
    two_replicas_under_pdb(cluster)
    report = run(api, clock)
    assert report.result == "drained"
    assert cluster.nodes[NODE]["spec"]["unschedulable"] is True
    assert sorted(report.evicted) == ["apps/web-a", "apps/web-b"]
    # The second replica was refused (429) until the first one's replacement ran on the other node...
    assert report.refused == {"apps/web-b": report.refused["apps/web-b"]} and report.refused["apps/web-b"] >= 1
    # ...so the budget held throughout: never fewer than minAvailable healthy pods.
    assert cluster.min_healthy["web"] == 1
    clock.now += cluster.reschedule_after  # the last replacement starts after the drain has ended
    cluster.tick()
    assert {p["metadata"]["name"] for p in cluster.pods.values() if p["spec"]["nodeName"] == OTHER} == \
        {"web-a-r", "web-b-r"}
    # DaemonSet pods (the node's agents, Multus among them), mirror pods and finished pods stay.
    assert {k for k, p in cluster.pods.items() if p["spec"]["nodeName"] == NODE} == {
        "kube-system/aws-node-x", "kube-system/kube-multus-ds-x", "kube-system/static-x", "apps/job-done"}
    # grace 10 s + reschedule 20 s, polled every 5 s: done within a minute of simulated time.
    assert 30 <= clock.now - 1000.0 <= 60


def test_only_the_cluster_role_verbs_are_used_and_the_role_allows_no_more(api, cluster, clock):
    two_replicas_under_pdb(cluster)
    run(api, clock)
    used = {(verb, resource) for verb, resource, _ in cluster.requests}
    assert used == {("get", "nodes"), ("patch", "nodes"), ("list", "pods"), ("create", "pods/eviction")}
    # "get pods" is granted for `kubectl drain` parity (it re-reads pods); nothing else.
    assert cluster_role_rules() == used | {("get", "pods")}


def test_a_pdb_that_never_allows_a_disruption_stops_at_the_deadline_with_heartbeats(api, cluster, clock):
    cluster.add_node(NODE, INSTANCE)
    cluster.add_pod("apps", "solo", NODE, labels={"app": "solo"}, owner="ReplicaSet")
    cluster.add_pdb("apps", "solo", {"app": "solo"}, min_available=1)
    beats: list[float] = []
    report = run(api, clock, deadline=600, beats=beats)
    assert report.result == "deadline"
    assert report.remaining == ["apps/solo"] and report.evicted == []
    assert clock.now - 1000.0 <= 600  # never past the deadline
    assert report.refused["apps/solo"] >= 100  # retried every 5 s, as kubectl drain does
    # One heartbeat a minute keeps a 300 s hook alive for the whole drain.
    gaps = [b - a for a, b in zip([1000.0, *beats], beats, strict=False)]
    assert len(beats) == int((clock.now - 1000.0) // 60) >= 9 and max(gaps) <= 60


def test_a_pod_under_two_pdbs_is_an_error_retried_not_a_crash(api, cluster, clock):
    cluster.add_node(NODE, INSTANCE)
    cluster.add_pod("apps", "both", NODE, labels={"app": "x", "tier": "y"}, owner="ReplicaSet")
    cluster.add_pdb("apps", "by-app", {"app": "x"}, max_unavailable=1)
    cluster.add_pdb("apps", "by-tier", {"tier": "y"}, max_unavailable=1)
    report = run(api, clock, deadline=60)
    assert report.result == "deadline"
    assert any("more than one PodDisruptionBudget" in e for e in report.errors)


def test_max_unavailable_budget_lets_a_single_replica_go(api, cluster, clock):
    cluster.add_node(NODE, INSTANCE)
    cluster.add_node(OTHER, "i-0fedcba9876543210")
    cluster.add_pod("apps", "one", NODE, labels={"app": "one"}, owner="ReplicaSet", grace=5)
    cluster.add_pdb("apps", "one", {"app": "one"}, max_unavailable=1)
    assert run(api, clock).result == "drained"


@pytest.mark.parametrize("provider", [None, "i-0aaaaaaaaaaaaaaaa"])
def test_an_absent_or_foreign_node_is_never_cordoned(api, cluster, clock, provider):
    if provider:
        cluster.add_node(NODE, provider)  # the DNS name now belongs to another instance's node
        cluster.add_pod("apps", "p", NODE, owner="ReplicaSet")
    report = run(api, clock)
    assert report.result == ("node-mismatch" if provider else "node-absent")
    assert [(v, r) for v, r, _ in cluster.requests] == [("get", "nodes")]
    if provider:
        assert cluster.nodes[NODE]["spec"]["unschedulable"] is False


def test_an_ended_lifecycle_action_stops_the_drain(api, cluster, clock):
    cluster.add_node(NODE, INSTANCE)
    cluster.add_pod("apps", "solo", NODE, labels={"app": "solo"}, owner="ReplicaSet")
    cluster.add_pdb("apps", "solo", {"app": "solo"}, min_available=1)

    def heartbeat() -> None:
        raise ActionEnded("No active Lifecycle Action found with instance ID")

    report = drain(client(api), node_name=NODE, instance_id=INSTANCE, clock=clock, deadline=clock.now + 600,
                   heartbeat=heartbeat, heartbeat_seconds=60)
    assert report.result == "action-ended" and clock.now - 1000.0 <= 65


def test_requests_without_a_token_are_refused(api, cluster, clock):
    cluster.add_node(NODE, INSTANCE)
    with pytest.raises(Exception, match="HTTP 401"):
        KubeClient(api, lambda: "not-a-token").get_node(NODE)


def test_a_server_that_never_answers_fails_within_the_request_timeout(clock):
    """A socket that accepts and never replies (a black-holed endpoint): the client gives up after its timeout."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    held: list[socket.socket] = []
    accept = threading.Thread(target=lambda: held.append(listener.accept()[0]), daemon=True)
    accept.start()
    try:
        kube = KubeClient(f"http://127.0.0.1:{listener.getsockname()[1]}", lambda: "k8s-aws-v1.t", timeout=0.3)
        with pytest.raises(Exception, match="timed out"):
            kube.get_node(NODE)
    finally:
        accept.join(2)
        for s in held:
            s.close()
        listener.close()


STARTUP_TAINT = {"key": "eks-multus/not-ready", "value": "interfaces", "effect": "NoSchedule"}


def peer_check(url: str, peer: str):
    """What the handler's `joining_peers` decides for one peer node, through the same client."""
    kube = client(url)

    def check() -> list[str]:
        node = kube.get_node(peer)
        if node is None:
            return [f"{peer}: no node registered yet"]
        return [f"{peer}: taint"] if any(t["key"] == STARTUP_TAINT["key"] for t in node["spec"]["taints"]) else []
    return check


def test_eviction_waits_for_the_joining_node_to_lose_its_startup_taint(api, cluster, clock):
    """Rolling update with room above minSize: the batch's new node is in service but still joining."""
    cluster.add_node(NODE, INSTANCE)
    cluster.add_node(OTHER, "i-0fedcba9876543210", taints=[STARTUP_TAINT])
    cluster.add_pod("apps", "web", NODE, labels={"app": "web"}, owner="ReplicaSet", grace=5)
    cluster.at(90, lambda c: c.nodes[OTHER]["spec"].update(taints=[]))  # the controller removes the taint
    evictions = []
    report = drain(client(api), node_name=NODE, instance_id=INSTANCE, clock=clock, deadline=clock.now + 600,
                   heartbeat=lambda: evictions.append(("beat", clock.now)), heartbeat_seconds=60,
                   joining_peers=peer_check(api, OTHER), peer_wait_seconds=300)
    assert report.result == "drained"
    assert 90 <= report.peer_wait <= 95 and report.peers_not_ready == []
    assert cluster.nodes[NODE]["spec"]["unschedulable"] is True  # cordoned before the wait
    first_eviction = next(i for i, (v, r, _) in enumerate(cluster.requests) if r == "pods/eviction")
    assert all(r != "pods/eviction" for _, r, _ in cluster.requests[:first_eviction])
    clock.now += cluster.reschedule_after
    cluster.tick()
    assert cluster.pods["apps/web-r"]["spec"]["nodeName"] == OTHER


def test_a_peer_that_never_gets_ready_delays_the_drain_only_up_to_the_peer_wait(api, cluster, clock):
    cluster.add_node(NODE, INSTANCE)
    cluster.add_node(OTHER, "i-0fedcba9876543210", taints=[STARTUP_TAINT])  # its ENIs never came
    cluster.add_pod("apps", "web", NODE, owner="ReplicaSet", grace=5)
    report = drain(client(api), node_name=NODE, instance_id=INSTANCE, clock=clock, deadline=clock.now + 600,
                   heartbeat=lambda: None, heartbeat_seconds=60, joining_peers=peer_check(api, OTHER),
                   peer_wait_seconds=300)
    assert report.result == "drained" and 295 <= report.peer_wait <= 300
    assert report.peers_not_ready == [f"{OTHER}: taint"]  # logged: why the drain waited
