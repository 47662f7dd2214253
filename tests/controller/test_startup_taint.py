"""The startup taint (controller/multus_ip_controller/startup_taint.py): pure decision, sysfs reading, and the
Kubernetes calls made through the real kubernetes client against a fake API server on 127.0.0.1.

The fake server keeps one Node and the Multus pods, answers GET node / list pods and applies the two PATCH kinds
the module sends: a JSON patch (test + replace of /spec/taints, with the test really checked, so a concurrent
change is refused with 422 as the API server does) and a strategic merge of status.conditions by type. Not
modelled: admission, RBAC (the ClusterRole is checked separately), resourceVersion conflicts.
"""

from __future__ import annotations

import copy
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest
import yaml
from multus_ip_controller import startup_taint as st

REPO = Path(__file__).resolve().parents[2]
TAINT = {"key": "eks-multus/not-ready", "value": "interfaces", "effect": "NoSchedule"}
OTHER = {"key": "dedicated", "value": "upf", "effect": "NoSchedule"}


def multus_pod(phase="Running", ready="True"):
    return {"metadata": {"name": "multus-abc", "namespace": "kube-system", "labels": {"app": "multus"}},
            "status": {"phase": phase, "conditions": [{"type": "Ready", "status": ready}]}}


def node(taints=(OTHER, TAINT), count="2"):
    labels = {"kubernetes.io/hostname": "n1"} | ({st.COUNT_LABEL: count} if count else {})
    return {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1", "labels": labels},
            "spec": {"taints": [dict(t) for t in taints]},
            "status": {"conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady"}]}}


def sysfs(tmp_path, **links):
    for name, flags in links.items():
        (tmp_path / name).mkdir()
        (tmp_path / name / "flags").write_text(flags + "\n")
    return str(tmp_path)


# ------------------------------------------------------------------------------------------------ pure


def test_decide_removes_only_when_every_interface_is_up_and_the_daemon_runs():
    up = {"multus1": "up", "multus2": "up"}
    assert st.decide(2, up, True).remove_taint
    for states, daemon, reason in [({"multus1": "up", "multus2": "missing"}, True, "InterfacesMissing"),
                                   ({"multus1": "down", "multus2": "up"}, True, "InterfacesDown"),
                                   (up, False, "MultusNotRunning")]:
        d = st.decide(2, states, daemon)
        assert not d.remove_taint and d.condition["status"] == "False" and d.condition["reason"] == reason
    missing = st.decide(2, {"multus1": "up", "multus2": "missing"}, False).condition["message"]
    assert "multus2" in missing and "Multus daemon" in missing and "stays" in missing
    assert st.decide(None, {}, True).condition["status"] == "Unknown"


def test_interface_states_read_iff_up_from_sysfs(tmp_path):
    path = sysfs(tmp_path, multus1="0x1003", multus2="0x1002")
    assert st.interface_states(path, "multus", 3) == {"multus1": "up", "multus2": "down", "multus3": "missing"}


def test_multus_running_needs_running_and_ready():
    assert st.multus_running([multus_pod()])
    assert not st.multus_running([multus_pod(phase="Pending")])
    assert not st.multus_running([multus_pod(ready="False")])
    assert not st.multus_running([])


def test_constants_match_the_node_group_and_the_multus_manifest():
    from eks_multus_cdk import naming

    assert st.TAINT_KEY == naming.STARTUP_TAINT_KEY and st.COUNT_LABEL == naming.INTERFACE_COUNT_LABEL
    docs = list(yaml.safe_load_all((REPO / "manifests/multus/multus-daemonset-thick.yaml").read_text()))
    (ds,) = [d for d in docs if d and d["kind"] == "DaemonSet"]
    key, value = st.MULTUS_POD_SELECTOR.split("=")
    assert ds["metadata"]["namespace"] == st.MULTUS_NAMESPACE
    assert ds["spec"]["template"]["metadata"]["labels"][key] == value


def _tolerates(pod_spec, taint):
    for t in pod_spec.get("tolerations", []):
        if t.get("operator") == "Exists" and (not t.get("key") or t["key"] == taint["key"]) and \
                t.get("effect", taint["effect"]) == taint["effect"]:
            return True
    return False


@pytest.mark.parametrize("path", ["manifests/multus/multus-daemonset-thick.yaml",
                                  "manifests/whereabouts/daemonset.yaml",
                                  "manifests/pod-address-sync/daemonset.yaml"])
def test_daemonsets_that_must_run_first_tolerate_the_taint(path):
    (ds,) = [d for d in yaml.safe_load_all((REPO / path).read_text()) if d and d["kind"] == "DaemonSet"]
    assert _tolerates(ds["spec"]["template"]["spec"], TAINT)


def test_sample_pods_do_not_tolerate_it():
    for path in (REPO / "manifests/samples").glob("*.yaml"):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc and doc.get("kind") == "Pod":
                assert not _tolerates(doc["spec"], TAINT), path


def test_rbac_allows_patching_nodes_and_their_status():
    docs = list(yaml.safe_load_all((REPO / "manifests/pod-address-sync/rbac.yaml").read_text()))
    (role,) = [d for d in docs if d["kind"] == "ClusterRole"]
    rules = {(r, v) for rule in role["rules"] for r in rule["resources"] for v in rule["verbs"]}
    assert {("nodes", "get"), ("nodes", "patch"), ("nodes/status", "patch")} <= rules
    # list/watch: issue 11's watch cache of its own Node (field selector metadata.name); never update/delete
    assert not {v for r, v in rules if r.startswith("nodes")} - {"get", "list", "watch", "patch"}


# ------------------------------------------------------------------------------------------------ fake API server


class FakeApi:
    def __init__(self, node_obj, pods):
        self.node = node_obj
        self.pods = pods
        self.requests: list[tuple[str, str, str]] = []  # (method, path, content type)
        self.lock = threading.Lock()

    def handle(self, method, url, content_type, body):
        parsed = urlparse(url)
        with self.lock:
            self.requests.append((method, parsed.path, content_type))
            if method == "GET" and parsed.path == "/api/v1/nodes/n1":
                return 200, self.node
            if method == "GET" and parsed.path == "/api/v1/namespaces/kube-system/pods":
                q = parse_qs(parsed.query)
                assert q["labelSelector"] == ["app=multus"] and q["fieldSelector"] == ["spec.nodeName=n1"]
                return 200, {"kind": "PodList", "apiVersion": "v1", "metadata": {}, "items": self.pods}
            if method == "PATCH" and parsed.path == "/api/v1/nodes/n1":
                assert content_type == "application/json-patch+json"
                new = copy.deepcopy(self.node)
                for op in body:
                    assert op["path"] == "/spec/taints"
                    if op["op"] == "test" and new["spec"].get("taints") != op["value"]:
                        return 422, {"kind": "Status", "status": "Failure", "reason": "Invalid", "code": 422}
                    if op["op"] == "replace":
                        new["spec"]["taints"] = op["value"]
                self.node = new
                return 200, self.node
            if method == "PATCH" and parsed.path == "/api/v1/nodes/n1/status":
                assert content_type == "application/strategic-merge-patch+json"
                conditions = {c["type"]: c for c in self.node["status"]["conditions"]}
                for c in body["status"]["conditions"]:
                    conditions[c["type"]] = c
                self.node["status"]["conditions"] = list(conditions.values())
                return 200, self.node
        return 404, {"kind": "Status", "code": 404}


@pytest.fixture
def api_server():
    servers = []

    def start(node_obj, pods):
        fake = FakeApi(node_obj, pods)

        class Handler(BaseHTTPRequestHandler):
            def _serve(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length)) if length else None
                status, payload = fake.handle(self.command, self.path, self.headers.get("Content-Type"), body)
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_PATCH = _serve

            def log_message(self, *args):
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        from kubernetes import client

        configuration = client.Configuration()
        configuration.host = f"http://127.0.0.1:{server.server_address[1]}"
        api = st.NodeApi(client.CoreV1Api(client.ApiClient(configuration)))
        return fake, api

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def test_node_whose_enis_never_came_keeps_the_taint_and_says_why(api_server, tmp_path):
    fake, api = api_server(node(), [multus_pod()])
    worker = st.StartupTaint(api, "n1", sysfs_net=sysfs(tmp_path, multus1="0x1003"),
                             clock=lambda: "2026-11-30T00:00:00Z")
    assert worker.step() is False
    assert worker.step() is False  # no change: no second status patch
    assert TAINT in fake.node["spec"]["taints"]
    (cond,) = [c for c in fake.node["status"]["conditions"] if c["type"] == st.CONDITION_TYPE]
    assert cond["status"] == "False" and cond["reason"] == "InterfacesMissing" and "multus2" in cond["message"]
    assert any(c["type"] == "Ready" for c in fake.node["status"]["conditions"])  # the kubelet's stay
    assert [m for m, p, _ in fake.requests if m == "PATCH"] == ["PATCH"]


def test_taint_removed_once_interfaces_are_up_and_multus_runs(api_server, tmp_path):
    fake, api = api_server(node(), [multus_pod(phase="Pending")])
    worker = st.StartupTaint(api, "n1", sysfs_net=sysfs(tmp_path, multus1="0x1003", multus2="0x1003"))
    assert worker.step() is False and TAINT in fake.node["spec"]["taints"]
    fake.pods = [multus_pod()]
    assert worker.step() is True
    assert fake.node["spec"]["taints"] == [OTHER]  # only ours removed
    (cond,) = [c for c in fake.node["status"]["conditions"] if c["type"] == st.CONDITION_TYPE]
    assert cond["status"] == "True"
    fake.requests.clear()
    assert worker.step() is True and [(m, p) for m, p, _ in fake.requests] == [("GET", "/api/v1/nodes/n1")]


def test_concurrent_taint_change_is_not_overwritten(api_server, tmp_path):
    fake, api = api_server(node(), [multus_pod()])
    worker = st.StartupTaint(api, "n1", sysfs_net=sysfs(tmp_path, multus1="0x1003", multus2="0x1003"))
    original_get = api.get_node

    def stale_get(name):
        seen = original_get(name)
        fake.node["spec"]["taints"].append({"key": "late", "effect": "NoExecute"})  # someone else, meanwhile
        return seen

    api.get_node = stale_get
    with pytest.raises(Exception, match="422|Unprocessable|Invalid"):
        worker.step()
    taints = fake.node["spec"]["taints"]
    assert {"key": "late", "effect": "NoExecute"} in taints and TAINT in taints
    api.get_node = original_get
    assert worker.step() is True
    assert {t["key"] for t in fake.node["spec"]["taints"]} == {"dedicated", "late"}


def test_run_loop_stops_when_done_and_survives_errors(api_server, tmp_path):
    fake, api = api_server(node(), [multus_pod()])
    calls = []
    worker = st.StartupTaint(api, "n1", sysfs_net=sysfs(tmp_path, multus1="0x1003", multus2="0x1003"))
    real_step = worker.step

    def flaky():
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("API server unreachable")
        return real_step()

    worker.step = flaky
    worker.run(threading.Event(), every=0.01)
    assert len(calls) == 2 and TAINT not in fake.node["spec"]["taints"]


def test_main_starts_the_startup_taint_loop_for_its_node(monkeypatch):
    """The few lines of wiring in main.py: the loop runs for NODE_NAME with IFNAME_PREFIX, stops with the rest,
    and talks through the main client's connection with the same request timeout (KUBE_TIMEOUT_SECONDS)."""
    import socket
    import time

    from multus_ip_controller import ec2 as ec2_mod
    from multus_ip_controller import kube
    from multus_ip_controller import main as main_mod

    shared_client = object()  # KubeClient's ApiClient: the startup-taint loop must use this one
    built = []

    class FakeKube:
        api_client = shared_client

        def __init__(self, **kwargs):
            self.timeout = kwargs["timeout"]
            built.append(self)

        def get_node(self, name):
            return {"spec": {"providerID": "aws:///us-west-2a/i-0123456789abcdef0"},
                    "metadata": {"labels": {"topology.kubernetes.io/zone": "us-west-2a"}}}

        def list_pods_rv(self, node):
            return [], "1"  # the pod cache syncs at once (main waits for it before the first pass)

        def list_node_rv(self, node):
            return [{"metadata": {"uid": "n1-uid", "name": node}}], "1"

        def watch_pods(self, node, resource_version, timeout):
            time.sleep(0.05)  # a quiet watch that ends; the informer watches again until the stop event
            return iter(())

        watch_node = watch_pods
        # referenced by main, never called here (the main loop's run is replaced)
        get_nad = patch_pod_condition = patch_node_resources = create_event = None

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    started = []
    monkeypatch.setattr(kube, "KubeClient", FakeKube)
    monkeypatch.setattr(ec2_mod, "make_client", lambda region: object())
    monkeypatch.setattr(main_mod.Loop, "run", lambda self: self.stop.set())
    monkeypatch.setattr(main_mod.signal, "signal", lambda *a: None)
    monkeypatch.setattr(st, "start", lambda node, prefix, stop, **kw: started.append((node, prefix, stop, kw)))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "false")  # main sets it; restored after the test
    rc = main_mod.main({"NODE_NAME": "n1", "POD_RANGES": '["10.0.4.128/25"]', "AWS_REGION": "us-west-2",
                        "IFNAME_PREFIX": "net", "KUBE_TIMEOUT_SECONDS": "7", "HEALTH_ADDRESS": f"127.0.0.1:{port}",
                        # Pod Identity's variables: main refuses to start without them (credentials.py)
                        "AWS_CONTAINER_CREDENTIALS_FULL_URI": "http://169.254.170.23/v1/credentials",
                        "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE": "/var/run/secrets/pods.eks.amazonaws.com/token"})
    assert rc == 0 and [(n, p) for n, p, _, _ in started] == [("n1", "net")]
    assert started[0][2].is_set()  # the same stop event as the main loop
    (client,) = built
    assert client.timeout == (5.0, 7.0)
    assert started[0][3] == {"api_client": shared_client, "timeout": client.timeout}


def test_taint_removed_while_a_timed_noexecute_taint_is_on_the_node(api_server, tmp_path):
    """The JSON-patch `test` compares with what the server stores: a NoExecute taint's timeAdded must reach it
    exactly as stored ("...Z"), not as the client's model would write it back ("...+00:00")."""
    unreachable = {"key": "node.kubernetes.io/unreachable", "effect": "NoExecute", "timeAdded": "2026-11-30T03:35:36Z"}
    tainted = node()
    tainted["spec"]["taints"].append(unreachable)
    fake, api = api_server(tainted, [multus_pod()])
    worker = st.StartupTaint(api, "n1", sysfs_net=sysfs(tmp_path, multus1="0x1003", multus2="0x1003"))
    assert worker.step() is True
    assert fake.node["spec"]["taints"] == [t for t in tainted["spec"]["taints"] if t["key"] != st.TAINT_KEY]
