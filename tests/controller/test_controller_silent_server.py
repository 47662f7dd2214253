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
