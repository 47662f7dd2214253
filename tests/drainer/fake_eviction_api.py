"""A fake Kubernetes API server for the drainer: nodes, pods, PodDisruptionBudgets, the Eviction API and RBAC.

Served over real HTTP on 127.0.0.1 so the drainer's own client (urllib, bearer token, JSON, status codes) is what
talks to it. Time is a simulated clock shared with the drainer, so grace periods and deadlines take no real time.

What it models, as the API server does:
- Eviction (POST pods/<name>/eviction, policy/v1): 404 for a pod that does not exist; 500 for a pod matched by
  more than one PDB; 429 when the one matching PDB allows no disruption now (healthy pods - desired healthy < 1,
  healthy = Running, Ready and not deleting); otherwise 201 and the pod is deleted with its grace period (it keeps
  being listed, with `deletionTimestamp`, until that ends). A pod already deleting is evicted again with 201.
- ReplicaSet pods come back: `reschedule_after` seconds after one is gone, a replacement starts Running and Ready
  on a schedulable node of the cluster (none if every other node is cordoned).
- RBAC: every request is mapped to (verb, resource) and refused with 403 unless the ClusterRole of
  manifests/node-drainer/rbac.yaml allows it. Unauthenticated requests (no `Bearer k8s-aws-v1.` token) get 401.

What the real one does differently (not modelled): the disruption controller updates a PDB's
`status.disruptionsAllowed` asynchronously and the API server decides on that (stale) status, so a real refusal
can lag the pods by seconds; unhealthyPodEvictionPolicy, priority and preemption, finalizers that hold a deleted
pod, watch/resourceVersion semantics and API priority-and-fairness 429s (which carry Retry-After) are absent.
"""

from __future__ import annotations

import contextlib
import json
import threading
import urllib.parse
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import yaml

RBAC = Path(__file__).resolve().parents[2] / "manifests" / "node-drainer" / "rbac.yaml"


class SimClock:
    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def cluster_role_rules() -> set[tuple[str, str]]:
    """(verb, resource) pairs the drainer's ClusterRole allows (core API group only)."""
    (role,) = [d for d in yaml.safe_load_all(RBAC.read_text()) if d["kind"] == "ClusterRole"]
    rules = set()
    for rule in role["rules"]:
        assert rule["apiGroups"] == [""], rule
        rules |= {(verb, res) for verb in rule["verbs"] for res in rule["resources"]}
    return rules


@dataclass
class FakeCluster:
    clock: SimClock
    reschedule_after: float = 20.0
    nodes: dict[str, dict] = field(default_factory=dict)
    pods: dict[str, dict] = field(default_factory=dict)  # "ns/name" -> pod
    pdbs: list[dict] = field(default_factory=list)
    requests: list[tuple[str, str, str]] = field(default_factory=list)  # (verb, resource, path)
    min_healthy: dict[str, int] = field(default_factory=dict)  # PDB name -> lowest healthy count seen
    _gone_at: dict[str, float] = field(default_factory=dict)
    _pending: list[tuple[float, dict]] = field(default_factory=list)
    _later: list[tuple[float, Any]] = field(default_factory=list)
    _serial: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)
    rules: set = field(default_factory=cluster_role_rules)

    # -------------------------------------------------------------------------------- building the world
    def add_node(self, name: str, instance_id: str, unschedulable: bool = False, ready: bool = True,
                 taints: list[dict] | None = None) -> dict:
        self.nodes[name] = {"metadata": {"name": name}, "spec": {
            "providerID": f"aws:///us-west-2a/{instance_id}", "unschedulable": unschedulable,
            "taints": taints or []},
            "status": {"conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}}
        return self.nodes[name]

    def add_pod(self, namespace: str, name: str, node: str, *, labels: dict | None = None, owner: str | None = None,
                grace: float = 30.0, phase: str = "Running", annotations: dict | None = None) -> dict:
        self._serial += 1
        pod = {"metadata": {"namespace": namespace, "name": name, "uid": f"uid-{self._serial}",
                            "labels": labels or {}, "annotations": annotations or {},
                            "ownerReferences": [{"kind": owner, "name": f"{name}-owner", "controller": True}]
                            if owner else []},
               "spec": {"nodeName": node, "terminationGracePeriodSeconds": grace},
               "status": {"phase": phase, "conditions": [{"type": "Ready", "status": "True"}]}}
        self.pods[f"{namespace}/{name}"] = pod
        return pod

    def add_pdb(self, namespace: str, name: str, selector: dict, *, min_available: int | None = None,
                max_unavailable: int | None = None) -> None:
        self.pdbs.append({"namespace": namespace, "name": name, "selector": selector,
                          "minAvailable": min_available, "maxUnavailable": max_unavailable})

    def at(self, delay: float, change: Any) -> None:
        """Run `change(cluster)` once the simulated clock is `delay` seconds further (e.g. a taint removed)."""
        self._later.append((self.clock.now + delay, change))

    # -------------------------------------------------------------------------------- the passage of time
    def tick(self) -> None:
        now = self.clock.now
        for when, change in list(self._later):
            if when <= now:
                self._later.remove((when, change))
                change(self)
        for key, at in list(self._gone_at.items()):
            if at <= now:
                pod = self.pods.pop(key)
                del self._gone_at[key]
                owner = pod["metadata"]["ownerReferences"]
                if owner and owner[0]["kind"] == "ReplicaSet":
                    self._pending.append((now + self.reschedule_after, pod))
        for at, old in list(self._pending):
            targets = [n for n, node in self.nodes.items() if not node["spec"]["unschedulable"]
                       and not node["spec"]["taints"]]
            if at <= now and targets:
                self._pending.remove((at, old))
                meta = old["metadata"]
                self.add_pod(meta["namespace"], meta["name"] + "-r", targets[0], labels=meta["labels"],
                             owner="ReplicaSet", grace=old["spec"]["terminationGracePeriodSeconds"])
        for pdb in self.pdbs:
            healthy = self._healthy(pdb)
            self.min_healthy[pdb["name"]] = min(self.min_healthy.get(pdb["name"], healthy), healthy)

    def _matches(self, pdb: dict, pod: dict) -> bool:
        labels = pod["metadata"]["labels"]
        return pod["metadata"]["namespace"] == pdb["namespace"] and all(
            labels.get(k) == v for k, v in pdb["selector"].items())

    def _healthy(self, pdb: dict) -> int:
        return sum(1 for p in self.pods.values() if self._matches(pdb, p) and p["status"]["phase"] == "Running"
                   and not p["metadata"].get("deletionTimestamp"))

    def _disruptions_allowed(self, pdb: dict) -> int:
        expected = sum(1 for p in self.pods.values() if self._matches(pdb, p)) + sum(
            1 for _, p in self._pending if self._matches(pdb, p))
        desired = pdb["minAvailable"] if pdb["minAvailable"] is not None else expected - pdb["maxUnavailable"]
        return self._healthy(pdb) - desired

    # -------------------------------------------------------------------------------- the API
    def handle(self, method: str, path: str, headers: Any, body: bytes) -> tuple[int, dict]:
        with self.lock:
            self.tick()
            auth = headers.get("Authorization", "")
            if not auth.startswith("Bearer k8s-aws-v1."):
                return 401, {"kind": "Status", "message": "Unauthorized"}
            url = urllib.parse.urlsplit(path)
            parts = url.path.strip("/").split("/")
            verb, resource, args = self._route(method, parts, urllib.parse.parse_qs(url.query))
            self.requests.append((verb, resource, path))
            if (verb, resource) not in self.rules:
                return 403, {"kind": "Status", "message": f"forbidden: {verb} {resource}"}
            return getattr(self, f"_{verb}_{resource.replace('/', '_')}")(*args, body=body)

    @staticmethod
    def _route(method: str, parts: list[str], query: dict) -> tuple[str, str, tuple]:
        if parts[:2] != ["api", "v1"]:
            return method.lower(), "/".join(parts), ()
        rest = parts[2:]
        if rest[:1] == ["nodes"]:
            verbs = {"GET": "get" if len(rest) == 2 else "list", "PATCH": "patch", "DELETE": "delete",
                     "PUT": "update"}
            return verbs.get(method, method.lower()), "nodes", tuple(rest[1:2])
        if rest == ["pods"] and method == "GET":
            return "list", "pods", ((query.get("fieldSelector") or [""])[0],)
        if len(rest) >= 4 and rest[0] == "namespaces" and rest[2] == "pods":
            sub = "/" + rest[4] if len(rest) > 4 else ""
            verbs = {"GET": "get", "POST": "create", "DELETE": "delete", "PATCH": "patch", "PUT": "update"}
            return verbs.get(method, method.lower()), "pods" + sub, (rest[1], rest[3])
        return method.lower(), "/".join(rest), ()

    def _get_nodes(self, name: str, body: bytes) -> tuple[int, dict]:
        node = self.nodes.get(name)
        return (200, node) if node else (404, {"kind": "Status", "message": f'nodes "{name}" not found'})

    def _patch_nodes(self, name: str, body: bytes) -> tuple[int, dict]:
        if name not in self.nodes:
            return 404, {"kind": "Status", "message": f'nodes "{name}" not found'}
        self.nodes[name]["spec"].update(json.loads(body)["spec"])
        return 200, self.nodes[name]

    def _list_pods(self, selector: str, body: bytes) -> tuple[int, dict]:
        node = selector.removeprefix("spec.nodeName=")
        return 200, {"kind": "PodList", "items": [p for p in self.pods.values() if p["spec"]["nodeName"] == node]}

    def _create_pods_eviction(self, namespace: str, name: str, body: bytes) -> tuple[int, dict]:
        pod = self.pods.get(f"{namespace}/{name}")
        if pod is None:
            return 404, {"kind": "Status", "message": f'pods "{name}" not found'}
        request = json.loads(body)
        assert request["apiVersion"] == "policy/v1" and request["kind"] == "Eviction", request
        if not pod["metadata"].get("deletionTimestamp"):
            pdbs = [b for b in self.pdbs if self._matches(b, pod)]
            if len(pdbs) > 1:
                return 500, {"kind": "Status", "message": "This pod has more than one PodDisruptionBudget, which "
                             "the eviction subresource does not support."}
            if pdbs and self._disruptions_allowed(pdbs[0]) < 1:
                return 429, {"kind": "Status", "reason": "TooManyRequests",
                             "message": "Cannot evict pod as it would violate the pod's disruption budget."}
            pod["metadata"]["deletionTimestamp"] = str(self.clock.now)
            self._gone_at[f"{namespace}/{name}"] = self.clock.now + pod["spec"]["terminationGracePeriodSeconds"]
        self.tick()
        return 201, {"kind": "Status", "status": "Success"}


@contextlib.contextmanager
def serve(cluster: FakeCluster):
    class Handler(BaseHTTPRequestHandler):
        def _do(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            status, payload = cluster.handle(self.command, self.path, self.headers, self.rfile.read(length))
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_PATCH = do_DELETE = do_PUT = _do

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
