"""The watch cache against the loopback fake API server (fake_kube.py): one LIST, watches across server
timeouts, bookmarks, 410 Gone as an event and as a status, a watch that goes silent, jittered backoff."""

from __future__ import annotations

import threading
import time

import pytest
from fake_kube import FakeKube
from multus_ip_controller import informer, kube

NODE = "node-a"


def client_for(url: str, **kwargs) -> kube.KubeClient:
    from kubernetes import client

    configuration = client.Configuration()
    configuration.host = url
    return kube.KubeClient(client.ApiClient(configuration), **kwargs)


def pod(name: str, node: str = NODE, status: str | None = None) -> dict:
    annotations = {kube.NETWORK_STATUS: status} if status else {}
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"namespace": "default", "name": name, "annotations": annotations},
            "spec": {"nodeName": node, "containers": [{"name": "c", "image": "x"}]}}


@pytest.fixture
def fake():
    server = FakeKube(bookmark_interval=0.2).start()
    yield server
    server.stop()


def run_cache(kc: kube.KubeClient, changes: list, watch_timeout: int = 1) -> tuple[informer.Informer, threading.Event]:
    cache = informer.Informer(
        name="pods", list_fn=lambda: kc.list_pods_rv(NODE),
        watch_fn=lambda rv, timeout: kc.watch_pods(NODE, rv, timeout), strip=kube.strip_pod,
        on_change=lambda old, new: changes.append((old is not None, new is not None)),
        watch_timeout=watch_timeout, backoff_base=0.05, backoff_max=0.2,
    )
    stop = threading.Event()
    threading.Thread(target=cache.run, args=(stop,), daemon=True).start()
    assert cache.wait_synced(5)
    return cache, stop


def wait_for(check, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.02)


def names(cache: informer.Informer) -> set[str]:
    return {p["metadata"]["name"] for p in cache.snapshot()}


def test_cache_lists_once_then_follows_the_watch_across_server_timeouts_without_relisting(fake):
    fake.add_pod(pod("p1"))
    fake.add_pod(pod("elsewhere", node="node-b"))
    changes: list = []
    cache, stop = run_cache(client_for(fake.url), changes)
    try:
        assert names(cache) == {"p1"}
        uid = fake.add_pod(pod("p2", status='[{"name":"x","ips":["10.0.4.140"]}]'))
        wait_for(lambda: names(cache) == {"p1", "p2"})
        time.sleep(2.5)  # two server-side watch timeouts (timeoutSeconds=1): the client re-watches, no LIST
        fake.delete_pod(uid)
        wait_for(lambda: names(cache) == {"p1"})
        assert fake.count("list", "pods") == 1 and cache.lists == 1
        assert fake.count("watch", "pods") >= 3
        assert changes[:1] == [(False, True)] and changes[-1] == (True, False)
    finally:
        stop.set()


def test_cache_keeps_only_what_the_controller_reads(fake):
    big = pod("p1", status='[{"name":"x","ips":["10.0.4.140"]}]')
    big["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"] = "x" * 50_000
    big["metadata"]["labels"] = {"app": "a"}
    big["spec"]["containers"][0]["resources"] = {"requests": {"cpu": "1", "eks-multus.io/multus1-ips": "1"}}
    big["spec"]["readinessGates"] = [{"conditionType": "eks-multus.io/addresses-assigned"}]
    fake.add_pod(big)
    cache, stop = run_cache(client_for(fake.url), [])
    stop.set()
    (cached,) = cache.snapshot()
    assert cached["metadata"]["annotations"] == {kube.NETWORK_STATUS: '[{"name":"x","ips":["10.0.4.140"]}]'}
    assert cached["spec"]["containers"] == [{"resources": {"requests": {"eks-multus.io/multus1-ips": "1"}}}]
    assert cached["spec"]["readinessGates"] and "labels" not in cached["metadata"]
    assert len(str(cached)) < 1000


@pytest.mark.parametrize("gone_as", ["event", "status"])
def test_410_gone_relists_and_drops_objects_deleted_meanwhile(gone_as):
    fake = FakeKube(bookmarks=False, gone_as=gone_as).start()
    try:
        keep = fake.add_pod(pod("keep"))
        gone = fake.add_pod(pod("gone"))
        changes: list = []
        fake.set_silent(True, watches_only=True)  # hold the watch while the "cluster" moves on
        cache, stop = run_cache(client_for(fake.url, watch_grace=0.5), changes, watch_timeout=1)
        fake.delete_pod(gone)
        fake.add_pod(pod("new"))
        fake.compact()  # the cache's resourceVersion is now older than anything the server keeps
        fake.set_silent(False)
        wait_for(lambda: cache.lists == 2)
        wait_for(lambda: names(cache) == {"keep", "new"})
        assert (True, False) in changes  # the deleted pod was reported gone
        assert fake.count("list", "pods") == 2
        assert keep
        stop.set()
    finally:
        fake.stop()


def test_bookmarks_advance_the_resource_version_without_events(fake):
    cache, stop = run_cache(client_for(fake.url), [], watch_timeout=5)
    try:
        before = cache.resource_version
        fake.add_node("other", "aws:///us-west-2a/i-0123456789abcdef0", "c5.xlarge")  # another kind: no pod event
        wait_for(lambda: int(cache.resource_version) > int(before))
        assert names(cache) == set()
    finally:
        stop.set()


def test_a_watch_that_goes_silent_is_dropped_after_its_read_timeout_and_resumed(fake):
    fake.add_pod(pod("p1"))
    cache, stop = run_cache(client_for(fake.url, watch_grace=0.5), [], watch_timeout=1)
    try:
        fake.set_silent(True, watches_only=True)
        watches = fake.count("watch", "pods")
        time.sleep(2.0)  # > timeoutSeconds + grace: the client gives up on the silent stream and re-watches
        assert fake.count("watch", "pods") > watches
        fake.set_silent(False)
        fake.add_pod(pod("p2"))
        wait_for(lambda: names(cache) == {"p1", "p2"})
        assert cache.lists == 1  # resumed from its resourceVersion, no relist
    finally:
        stop.set()


def test_snapshot_refuses_before_the_first_list():
    cache = informer.Informer(name="pods", list_fn=lambda: ([], "1"), watch_fn=lambda rv, t: iter(()))
    with pytest.raises(informer.NotSynced):
        cache.snapshot()


def test_watch_failures_back_off_with_jitter():
    calls: list[float] = []
    stop = threading.Event()
    delays: list[float] = []

    def watch(rv, timeout):
        calls.append(time.monotonic())
        if len(calls) >= 5:
            stop.set()
        raise ConnectionResetError("reset by peer")

    cache = informer.Informer(name="pods", list_fn=lambda: ([], "1"), watch_fn=watch, backoff_base=0.01,
                              backoff_max=0.04, rng=lambda: 0.5)
    real_wait = stop.wait
    stop.wait = lambda delay=None: delays.append(delay) or real_wait(0)  # type: ignore[method-assign]
    cache.run(stop)
    assert delays[:4] == [0.005, 0.01, 0.02, 0.02]  # full jitter (x0.5 here), doubling, capped
    assert cache.lists == 1
