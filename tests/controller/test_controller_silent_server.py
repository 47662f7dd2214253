"""Every request the controller makes to the Kubernetes API has a client-side timeout: against a TCP server
that accepts connections and never sends a byte (a hung apiserver, a dead proxy, a half-open connection) each
call returns with a timeout error instead of hanging the pass.

Would fail on the controller before this change (verified once against that commit): its list, patch and NAD
lookup had no timeout, and the list had not returned after 30 s.
"""

from __future__ import annotations

import threading

import pytest
from fake_kube import SilentServer
from multus_ip_controller import kube


def _bounded(call, seconds: float) -> tuple[bool, BaseException | None]:
    """Run `call` in a thread; (returned within `seconds`, what it raised)."""
    outcome: list[BaseException | None] = []

    def target():
        try:
            call()
            outcome.append(None)
        except BaseException as err:  # noqa: BLE001
            outcome.append(err)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(seconds)
    return (not thread.is_alive()), (outcome[0] if outcome else None)


@pytest.mark.parametrize("call", ["list_pods", "patch_pod_condition", "get_nad"])
def test_every_request_to_a_silent_server_times_out(call):
    from kubernetes import client

    server = SilentServer()
    try:
        configuration = client.Configuration()
        configuration.host = f"http://127.0.0.1:{server.port}"
        configuration.retries = 0
        kc = kube.KubeClient(client.ApiClient(configuration))
        kc.timeout = (0.5, 1.0)  # the production default is (5, 15) s
        args = {"list_pods": ("node-a",), "patch_pod_condition": ("default", "p", {"type": "x"}),
                "get_nad": ("default", "n")}[call]
        returned, error = _bounded(lambda: getattr(kc, call)(*args), 8.0)
        assert returned, f"{call} against a server that never answers did not return"
        assert error is not None and "timed out" in str(error).lower()
    finally:
        server.close()


@pytest.mark.parametrize("call", ["list_ippools", "emit_event", "get_node", "multus_pods", "remove_taint",
                                  "set_condition"])
def test_claim_check_and_startup_taint_requests_to_a_silent_server_time_out(call):
    """The other per-node duties make their own calls (claims.KubeRecords: IPPools, refusal events;
    startup_taint.NodeApi: node, Multus pods, taint and condition patches): each carries the same timeout.
    Fails on the merged code before this change (neither took a timeout)."""
    from kubernetes import client
    from multus_ip_controller import claims, startup_taint

    server = SilentServer()
    try:
        configuration = client.Configuration()
        configuration.host = f"http://127.0.0.1:{server.port}"
        configuration.retries = 0
        api_client = client.ApiClient(configuration)
        records = claims.KubeRecords(api_client, timeout=(0.5, 1.0))
        node_api = startup_taint.NodeApi(client.CoreV1Api(api_client), timeout=(0.5, 1.0))
        calls = {
            "list_ippools": records.list_ippools,
            "emit_event": lambda: records.emit_event("default", "p", claims.EVENT_REASON, "m"),
            "get_node": lambda: node_api.get_node("n1"),
            "multus_pods": lambda: node_api.multus_pods("n1"),
            "remove_taint": lambda: node_api.remove_taint("n1", [{"key": startup_taint.TAINT_KEY}]),
            "set_condition": lambda: node_api.set_condition("n1", {"type": startup_taint.CONDITION_TYPE}),
        }
        returned, error = _bounded(calls[call], 8.0)
        assert returned, f"{call} against a server that never answers did not return"
        assert error is not None and "timed out" in str(error).lower()
    finally:
        server.close()


def test_the_client_main_builds_makes_one_attempt_per_request(tmp_path, monkeypatch):
    """KubeClient as main builds it (from $KUBECONFIG, no configuration of ours): a GET to a silent server
    returns after one read timeout. urllib3's default retries a timed-out GET 3 times, so on the code before
    this test the call took 4 x the read timeout (measured: 4.0 s for a 1 s timeout)."""
    import json
    import time

    server = SilentServer()
    try:
        kubeconfig = tmp_path / "kubeconfig"
        kubeconfig.write_text(json.dumps({
            "apiVersion": "v1", "kind": "Config", "current-context": "silent",
            "clusters": [{"name": "silent", "cluster": {"server": f"http://127.0.0.1:{server.port}"}}],
            "users": [{"name": "silent", "user": {"token": "t"}}],
            "contexts": [{"name": "silent", "context": {"cluster": "silent", "user": "silent"}}]}))
        from kubernetes import client
        from kubernetes.config import kube_config

        monkeypatch.setattr(client.Configuration, "_default", client.Configuration._default)  # load sets it

        # $KUBECONFIG is read when kubernetes.config is first imported; an earlier test may have imported it
        monkeypatch.setattr(kube_config, "KUBE_CONFIG_DEFAULT_LOCATION", str(kubeconfig))
        monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
        kc = kube.KubeClient(timeout=(0.5, 1.0))
        started = time.monotonic()
        returned, error = _bounded(lambda: kc.get_nad("default", "n"), 8.0)
        elapsed = time.monotonic() - started
        assert returned and error is not None and "timed out" in str(error).lower()
        assert elapsed < 2.0, f"{elapsed:.1f} s for one request with a 1 s read timeout"
    finally:
        server.close()
