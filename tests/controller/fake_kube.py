"""A loopback Kubernetes API server for the controller's tests and benchmark: pods, one node, list/watch/patch.

Plain HTTP/1.1 on 127.0.0.1 (chunked watch streams), a global resourceVersion counter and an event log, so the
controller's real kubernetes client talks to it exactly as to an apiserver. What it models, because the
controller depends on it:

- LIST returns `metadata.resourceVersion`; WATCH from a resourceVersion replays every later change matching the
  field selector, then streams new ones, and ends the response after `timeoutSeconds` (as the apiserver does).
- BOOKMARK events every `bookmark_interval` seconds when the client asks (`allowWatchBookmarks=true`) and
  `bookmarks` is on; a server with bookmarks off sends nothing on a quiet watch, as older apiservers do.
- 410 Gone for a WATCH from a resourceVersion older than the retained event log (`compact()` drops the log, as
  etcd compaction does), either as an `ERROR` event with code 410 in a 200 stream (the watch cache's way) or as an
  HTTP 410 status (`gone_as="status"`).
- A server that accepts connections and never answers (`silent = True`): requests are read, then nothing is
  written until silence ends, for every request or only for watches (`silent_watches`).
- pods/status PATCH (strategic merge of `status.conditions` by `type`), nodes/status PATCH (JSON merge patch),
  events POST, NAD GET (404: no NADs), node GET; every request is logged with verb and path for counting.

What it does NOT model (a real apiserver differs): no TLS, authentication, RBAC or admission (so RBAC and
ValidatingAdmissionPolicies are checked by the manifest tests, not here); no pagination (limit/continue) and
no `resourceVersion=0` list-from-cache semantics; field selectors only `spec.nodeName` (pods) and
`metadata.name` (nodes); no API priority and fairness (429), no HTTP/2 multiplexing, no protobuf; strategic
merge only for pod conditions; objects carry no managedFields; a watch does not randomise its timeout; a
watch without a resourceVersion starts at "now" without the initial synthetic ADDED events (the controller
always watches from its LIST's resourceVersion).
"""

from __future__ import annotations

import copy
import json
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse


class FakeKube:
    def __init__(self, *, bookmarks: bool = True, bookmark_interval: float = 1.0, gone_as: str = "event") -> None:
        self.bookmarks = bookmarks
        self.bookmark_interval = bookmark_interval
        self.gone_as = gone_as
        self._cond = threading.Condition()
        self.rv = 100
        self.oldest_rv = 100  # a watch from below this gets 410
        self.pods: dict[str, dict[str, Any]] = {}  # uid -> pod
        self.nodes: dict[str, dict[str, Any]] = {}
        self.log: list[tuple[int, str, str, dict[str, Any]]] = []  # (rv, kind, type, object)
        self.requests: list[tuple[float, str, str, str]] = []  # (time, verb, resource, path)
        self.patches: list[tuple[float, str, dict[str, Any]]] = []  # (time, "ns/name", condition) pods/status
        self.node_patches: list[tuple[float, dict[str, Any]]] = []
        self.events: list[dict[str, Any]] = []
        self.silent = False
        self.silent_watches = False
        self._unsilenced = threading.Event()
        self._unsilenced.set()
        self._server: ThreadingHTTPServer | None = None

    # ------------------------------------------------------------------ state changes (the "cluster")

    def _bump(self, kind: str, event_type: str, obj: dict[str, Any]) -> None:
        self.rv += 1
        obj["metadata"]["resourceVersion"] = str(self.rv)
        self.log.append((self.rv, kind, event_type, copy.deepcopy(obj)))
        self._cond.notify_all()

    def add_node(self, name: str, provider_id: str, instance_type: str) -> None:
        with self._cond:
            node = {"apiVersion": "v1", "kind": "Node",
                    "metadata": {"name": name, "uid": str(uuid.uuid4()),
                                 "labels": {"node.kubernetes.io/instance-type": instance_type,
                                            "kubernetes.io/hostname": name}},
                    "spec": {"providerID": provider_id},
                    "status": {"capacity": {"cpu": "4", "pods": "58"}, "allocatable": {"cpu": "3920m", "pods": "58"},
                               "images": [{"names": [f"registry.example/image-{i}:v1"], "sizeBytes": 10 ** 8}
                                          for i in range(30)]}}
            self.nodes[name] = node
            self._bump("nodes", "ADDED", node)

    def add_pod(self, pod: dict[str, Any]) -> str:
        with self._cond:
            pod = copy.deepcopy(pod)
            meta = pod.setdefault("metadata", {})
            meta.setdefault("uid", str(uuid.uuid4()))
            meta.setdefault("creationTimestamp", time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
            pod.setdefault("status", {}).setdefault("phase", "Pending")
            self.pods[meta["uid"]] = pod
            self._bump("pods", "ADDED", pod)
            return meta["uid"]

    def update_pod(self, uid: str, change) -> None:
        with self._cond:
            pod = self.pods[uid]
            change(pod)
            self._bump("pods", "MODIFIED", pod)

    def delete_pod(self, uid: str) -> None:
        with self._cond:
            pod = self.pods.pop(uid)
            self._bump("pods", "DELETED", pod)

    def pod(self, namespace: str, name: str) -> dict[str, Any] | None:
        with self._cond:
            return next((p for p in self.pods.values() if p["metadata"]["namespace"] == namespace
                         and p["metadata"]["name"] == name), None)

    def compact(self) -> None:
        """Drop the event log (etcd compaction): every watch from an older resourceVersion gets 410 Gone."""
        with self._cond:
            self.log.clear()
            self.oldest_rv = self.rv + 1
            self._cond.notify_all()

    def set_silent(self, silent: bool, watches_only: bool = False) -> None:
        self.silent = silent and not watches_only
        self.silent_watches = silent and watches_only
        if silent:
            self._unsilenced.clear()
        else:
            self._unsilenced.set()

    def count(self, verb: str, resource: str, since: float = 0.0) -> int:
        return sum(1 for t, v, r, _ in self.requests if v == verb and r == resource and t >= since)

    # ------------------------------------------------------------------ HTTP

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> FakeKube:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                return

            def _body(self) -> dict[str, Any]:
                length = int(self.headers.get("Content-Length") or 0)
                return json.loads(self.rfile.read(length) or b"{}")

            def _json(self, code: int, obj: Any) -> None:
                data = json.dumps(obj).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _status(self, code: int, reason: str, message: str) -> None:
                self._json(code, {"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": code,
                                  "reason": reason, "message": message})

            def _handle(self, verb: str) -> None:
                url = urlparse(self.path)
                query = {k: v[0] for k, v in parse_qs(url.query).items()}
                parts = url.path.strip("/").split("/")
                watch = (query.get("watch") or "").lower() in ("true", "1")
                resource = _resource(parts)
                if verb == "get" and parts[-1] in ("pods", "nodes"):
                    verb = "list"  # a collection
                fake.requests.append((time.monotonic(), "watch" if watch else verb, resource,
                                      f"{url.path}?rv={query.get('resourceVersion', '')}"))
                body = self._body() if verb in ("patch", "create") else None
                if fake.silent or (watch and fake.silent_watches):
                    fake._unsilenced.wait()  # accepted, read, never answered (until silence ends)
                    self.close_connection = True
                    return
                try:
                    self._route(verb, parts, query, watch, body)
                except (BrokenPipeError, ConnectionResetError):
                    self.close_connection = True

            def _route(self, verb: str, parts: list[str], query: dict[str, str], watch: bool, body: Any) -> None:
                # /api/v1/pods, /api/v1/nodes, /api/v1/nodes/<n>, /api/v1/nodes/<n>/status,
                # /api/v1/namespaces/<ns>/pods/<n>/status, /api/v1/namespaces/<ns>/events, NADs
                if parts[:2] == ["apis", "k8s.cni.cncf.io"]:
                    return self._status(404, "NotFound", "no NADs in the fake")
                if parts[:2] != ["api", "v1"]:
                    return self._status(404, "NotFound", self.path)
                rest = parts[2:]
                if rest in (["pods"], ["nodes"]) and verb == "list":
                    kind = rest[0]
                    selector = query.get("fieldSelector", "")
                    return self._watch(kind, selector, query) if watch else self._list(kind, selector)
                if len(rest) == 2 and rest[0] == "nodes" and verb == "get":
                    with fake._cond:
                        node = copy.deepcopy(fake.nodes.get(rest[1]))
                    return self._json(200, node) if node else self._status(404, "NotFound", rest[1])
                if len(rest) == 3 and rest[0] == "nodes" and rest[2] == "status" and verb == "patch":
                    with fake._cond:
                        node = fake.nodes.get(rest[1])
                        if node is None:
                            return self._status(404, "NotFound", rest[1])
                        fake.node_patches.append((time.monotonic(), body))
                        for key in ("capacity", "allocatable"):
                            node["status"][key].update((body.get("status") or {}).get(key) or {})
                        fake._bump("nodes", "MODIFIED", node)
                        out = copy.deepcopy(node)
                    return self._json(200, out)
                if len(rest) == 5 and rest[0] == "namespaces" and rest[2] == "pods" and rest[4] == "status":
                    ns, name = rest[1], rest[3]
                    if self.headers.get("Content-Type") != "application/strategic-merge-patch+json":
                        return self._status(415, "UnsupportedMediaType", self.headers.get("Content-Type") or "")
                    with fake._cond:
                        pod = next((p for p in fake.pods.values() if p["metadata"]["namespace"] == ns
                                    and p["metadata"]["name"] == name), None)
                        if pod is None:
                            return self._status(404, "NotFound", f"{ns}/{name}")
                        conditions = pod["status"].setdefault("conditions", [])
                        for condition in (body.get("status") or {}).get("conditions") or []:
                            fake.patches.append((time.monotonic(), f"{ns}/{name}", condition))
                            old = next((c for c in conditions if c["type"] == condition["type"]), None)
                            if old is None:
                                conditions.append(dict(condition))
                            else:
                                old.update(condition)
                        fake._bump("pods", "MODIFIED", pod)
                        out = copy.deepcopy(pod)
                    return self._json(200, out)
                if len(rest) == 3 and rest[0] == "namespaces" and rest[2] == "events" and verb == "create":
                    fake.events.append(body)
                    return self._json(201, body)
                return self._status(404, "NotFound", self.path)

            def _matches(self, kind: str, selector: str, obj: dict[str, Any]) -> bool:
                if not selector:
                    return True
                field, _, value = selector.partition("=")
                if kind == "pods" and field == "spec.nodeName":
                    return (obj.get("spec") or {}).get("nodeName") == value
                if kind == "nodes" and field == "metadata.name":
                    return obj["metadata"]["name"] == value
                raise ValueError(f"field selector {selector} not modelled")

            def _list(self, kind: str, selector: str) -> None:
                with fake._cond:
                    store = fake.pods if kind == "pods" else fake.nodes
                    items = [copy.deepcopy(o) for o in store.values() if self._matches(kind, selector, o)]
                    rv = str(fake.rv)
                self._json(200, {"kind": "PodList" if kind == "pods" else "NodeList", "apiVersion": "v1",
                                 "metadata": {"resourceVersion": rv}, "items": items})

            def _chunk(self, obj: dict[str, Any]) -> None:
                data = json.dumps(obj).encode() + b"\n"
                self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
                self.wfile.flush()

            def _watch(self, kind: str, selector: str, query: dict[str, str]) -> None:
                since = int(query.get("resourceVersion") or 0)
                timeout = float(query.get("timeoutSeconds") or 1800)
                bookmarks = fake.bookmarks and (query.get("allowWatchBookmarks") or "").lower() == "true"
                with fake._cond:
                    expired = since and since < fake.oldest_rv - 1
                if expired and fake.gone_as == "status":
                    return self._status(410, "Expired", f"too old resource version: {since} ({fake.oldest_rv})")
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                self.close_connection = True
                if expired:
                    self._chunk({"type": "ERROR", "object": {
                        "kind": "Status", "apiVersion": "v1", "status": "Failure", "code": 410, "reason": "Expired",
                        "message": f"too old resource version: {since} ({fake.oldest_rv})"}})
                    self.wfile.write(b"0\r\n\r\n")
                    return
                end = time.monotonic() + timeout
                sent = since or fake.rv
                next_bookmark = time.monotonic() + fake.bookmark_interval
                while True:
                    with fake._cond:
                        quiet = fake.silent or fake.silent_watches
                        pending = [] if quiet else [(rv, t, o) for rv, k, t, o in fake.log if k == kind and rv > sent]
                        rv_now = fake.rv
                        wait = (min(end, next_bookmark) if bookmarks else end) - time.monotonic()
                        if not pending and not quiet and wait > 0:
                            fake._cond.wait(wait)
                            continue  # look again: something changed, or a bookmark or the end is due
                    if quiet:  # went silent mid-stream: not another byte, until silence ends; then hang up
                        fake._unsilenced.wait()
                        return
                    for rv, event_type, obj in pending:
                        sent = rv
                        if self._matches(kind, selector, obj):
                            self._chunk({"type": event_type, "object": obj})
                    now = time.monotonic()
                    if now >= end:
                        self.wfile.write(b"0\r\n\r\n")
                        return
                    if bookmarks and now >= next_bookmark:
                        sent = max(sent, rv_now)
                        self._chunk({"type": "BOOKMARK", "object": {
                            "kind": "Pod" if kind == "pods" else "Node", "apiVersion": "v1",
                            "metadata": {"resourceVersion": str(sent)}}})
                        next_bookmark = now + fake.bookmark_interval

            def do_GET(self) -> None:  # noqa: N802
                self._handle("get")

            def do_PATCH(self) -> None:  # noqa: N802
                self._handle("patch")

            def do_POST(self) -> None:  # noqa: N802
                self._handle("create")

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True, name="fake-kube").start()
        return self

    def stop(self) -> None:
        self.set_silent(False)
        with self._cond:
            self._cond.notify_all()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def kubeconfig(self) -> dict[str, Any]:
        return {
            "apiVersion": "v1", "kind": "Config", "current-context": "fake",
            "clusters": [{"name": "fake", "cluster": {"server": self.url}}],
            "users": [{"name": "fake", "user": {"token": "fake-token"}}],
            "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "fake"}}],
        }


def _resource(parts: list[str]) -> str:
    if parts[:2] == ["apis", "k8s.cni.cncf.io"]:
        return "network-attachment-definitions"
    rest = parts[2:]
    if rest and rest[0] == "namespaces" and len(rest) >= 3:
        rest = rest[2:]
    if len(rest) >= 3 and rest[2] == "status":
        return f"{rest[0]}/status"
    return rest[0] if rest else ""


class SilentServer:
    """A TCP server on 127.0.0.1 that accepts connections and never sends a byte (a hung apiserver or proxy)."""

    def __init__(self) -> None:
        import socket

        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(64)
        self.port = self._sock.getsockname()[1]
        self._conns: list[Any] = []
        self._stop = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            self._conns.append(conn)  # kept open, never answered

    def close(self) -> None:
        self._stop.set()
        for conn in self._conns:
            conn.close()
        self._sock.close()
