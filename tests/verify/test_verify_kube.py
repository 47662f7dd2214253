"""The I/O layer: the real kubernetes client against a local HTTP server replaying the recorded objects.

Proves that what `KubeReader` hands the checks (models turned back into API JSON) is what they were written
against, and that 404s become None. Exec is a websocket: its handling is tested with a stand-in stream.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException
from verify_fakes import load, ping_output

from eks_multus_cdk.verify import kube
from eks_multus_cdk.verify.checks import ExecResult, Status
from eks_multus_cdk.verify.expected import expectations
from eks_multus_cdk.verify.runner import run_checks


def _not_found(path: str) -> dict:
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": f"{path} not found", "reason": "NotFound", "code": 404}


@pytest.fixture
def api_server(cluster):
    """Serves the fake cluster's objects over HTTP the way the API server lays out its paths."""
    routes = {
        "/api/v1/nodes": {"kind": "NodeList", "apiVersion": "v1", "metadata": {}, "items": cluster.nodes},
        "/apis/apps/v1/namespaces/kube-system/daemonsets/kube-multus-ds":
            cluster.daemonsets[("kube-system", "kube-multus-ds")],
        "/apis/k8s.cni.cncf.io/v1/namespaces/multus-networks/network-attachment-definitions":
            {**load("nad-list.json"), "items": cluster.nads["multus-networks"]},
        **{f"/api/v1/namespaces/{ns}/pods/{name}": pod for (ns, name), pod in cluster.pods.items()},
    }
    seen: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - http.server's name
            path = self.path.split("?")[0]
            seen.append(path)
            body = routes.get(path)
            code = 200 if body is not None else 404
            data = json.dumps(body if body is not None else _not_found(path)).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    try:
        yield routes, seen, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def reader(api_server):
    _, _, host = api_server
    return kube.KubeReader(client.ApiClient(client.Configuration(host=host)))


def test_objects_come_back_as_api_json(reader, cluster):
    assert reader.list_nodes() == cluster.nodes
    ds = cluster.daemonsets[("kube-system", "kube-multus-ds")]
    assert reader.read_daemonset("kube-system", "kube-multus-ds") == ds
    assert reader.read_pod("multus-networks", "sample-dual") == cluster.pod("sample-dual")
    assert reader.list_nads("multus-networks") == cluster.nads["multus-networks"]


def test_not_found_is_none(reader):
    assert reader.read_pod("multus-networks", "nope") is None
    assert reader.read_daemonset("kube-system", "nope") is None
    assert reader.list_nads("other") is None  # what a cluster without the CRD answers


def test_other_errors_propagate(api_server, monkeypatch):
    _, _, host = api_server
    reader = kube.KubeReader(client.ApiClient(client.Configuration(host=host)))
    monkeypatch.setattr(reader._core, "read_namespaced_pod",
                        lambda *a, **k: (_ for _ in ()).throw(ApiException(status=403, reason="Forbidden")))
    with pytest.raises(ApiException):
        reader.read_pod("multus-networks", "sample-single")


def test_checks_accept_what_the_client_returns(reader, cluster, config, monkeypatch):
    monkeypatch.setattr(reader, "exec", cluster.exec)  # websocket exec: below
    results = run_checks(reader, expectations(config), subnet_hosts=cluster.subnet_hosts)
    assert {r.status for r in results} == {Status.PASS}, [r for r in results if r.status is not Status.PASS]
    assert len(results) == 24


class FakeStream:
    """What kubernetes.stream.stream returns with _preload_content=False, after the command ran."""

    def __init__(self, stdout="", stderr="", error_channel='{"metadata":{},"status":"Success"}', finishes=True):
        self._out, self._err, self._error_channel, self._finishes = stdout, stderr, error_channel, finishes
        self.open, self.closed, self.timeout = True, False, None

    def run_forever(self, timeout=None):
        self.timeout = timeout
        self.open = not self._finishes

    def is_open(self):
        return self.open

    def read_stdout(self, timeout=None):
        return self._out

    def read_stderr(self, timeout=None):
        return self._err

    @property
    def returncode(self):  # as the client parses the error channel
        import yaml

        err = yaml.safe_load(self._error_channel)
        if err["status"] == "Success":
            return 0
        return int(err["details"]["causes"][0]["message"])

    def close(self):
        self.closed = True


def _exec_with(monkeypatch, ws, reader):
    calls = []

    def fake_stream(func, *args, **kwargs):
        calls.append((func.__name__, args, kwargs))
        return ws

    monkeypatch.setattr("kubernetes.stream.stream", fake_stream)
    result = reader.exec("multus-networks", "sample-single", ["ping", "-c", "3", "-W", "2", "10.0.4.130"])
    return result, calls


def test_exec_success(reader, monkeypatch):
    ws = FakeStream(stdout=ping_output("10.0.4.129", "10.0.4.130"))
    result, calls = _exec_with(monkeypatch, ws, reader)
    assert result == ExecResult(0, ping_output("10.0.4.129", "10.0.4.130"), "")
    ((name, args, kwargs),) = calls
    assert name == "connect_get_namespaced_pod_exec" and args == ("sample-single", "multus-networks")
    assert kwargs["command"][-1] == "10.0.4.130"
    assert kwargs["_preload_content"] is False and kwargs["tty"] is False and kwargs["stdin"] is False
    assert ws.closed and ws.timeout == kube.EXEC_TIMEOUT


def test_exec_nonzero_exit(reader, monkeypatch):
    error = ('{"metadata":{},"status":"Failure","message":"command terminated with non-zero exit code: '
             'error executing command [ping], exit code 1","reason":"NonZeroExitCode",'
             '"details":{"causes":[{"reason":"ExitCode","message":"1"}]}}')
    ws = FakeStream(stdout=ping_output("10.0.4.129", "10.0.4.131", received=0), error_channel=error)
    result, _ = _exec_with(monkeypatch, ws, reader)
    assert result.returncode == 1


def test_exec_that_does_not_finish_or_fails_to_start(reader, monkeypatch):
    result, _ = _exec_with(monkeypatch, FakeStream(finishes=False), reader)
    assert result.returncode is None
    no_ping = ('{"metadata":{},"status":"Failure","message":"exec: \\"ping\\": executable file not found in $PATH",'
               '"reason":"InternalError"}')
    result, _ = _exec_with(monkeypatch, FakeStream(error_channel=no_ping), reader)
    assert result.returncode is None  # the client's parser would raise KeyError here
