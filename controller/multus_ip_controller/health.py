"""Liveness, readiness and metrics over HTTP on one local port (the DaemonSet's probes call it).

- `/healthz` (liveness) answers 200 while a reconcile pass has finished within `liveness_seconds` (the process
  start counts as one, for the first pass), else 503: a controller stuck in a call, a deadlock or a dead loop
  gets restarted by the kubelet. Passes run at least every resync period and every call has a timeout, so a
  healthy controller never reaches the bound.
- `/readyz` answers 200 when the watch cache has synced, the last pass had no errors and liveness holds; else
  503. The DaemonSet's rolling update waits on it.
- `/metrics`: Prometheus text format.

It listens on the host network (the controller is hostNetwork), by default on 127.0.0.1 only: the kubelet probes
from the node's own network namespace.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Health:
    def __init__(self, liveness_seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.liveness_seconds = liveness_seconds
        self._clock = clock
        self.last_pass = clock()
        self.last_ok = False
        self.synced: Callable[[], bool] = lambda: False

    def pass_finished(self, ok: bool) -> None:
        self.last_pass = self._clock()
        self.last_ok = ok

    def alive(self) -> tuple[bool, str]:
        age = self._clock() - self.last_pass
        if age > self.liveness_seconds:
            return False, f"no reconcile pass finished for {age:.0f} s (bound {self.liveness_seconds:.0f} s)"
        return True, f"last pass finished {age:.1f} s ago"

    def ready(self) -> tuple[bool, str]:
        if not self.synced():
            return False, "watch cache not synced"
        if not self.last_ok:
            return False, "last reconcile pass had errors"
        return self.alive()


def serve(address: str, health: Health, metrics: Callable[[], bytes]) -> ThreadingHTTPServer:
    """Start the server on `host:port` in a daemon thread; returns it (call shutdown() to stop)."""
    host, _, port = address.rpartition(":")

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            path = self.path.split("?", 1)[0]
            if path == "/healthz":
                ok, text = health.alive()
                self._send(200 if ok else 503, text.encode(), "text/plain")
            elif path == "/readyz":
                ok, text = health.ready()
                self._send(200 if ok else 503, text.encode(), "text/plain")
            elif path == "/metrics":
                self._send(200, metrics(), "text/plain; version=0.0.4; charset=utf-8")
            else:
                self._send(404, b"not found", "text/plain")

        def _send(self, code: int, body: bytes, content_type: str) -> None:
            self.send_response(code)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:  # probes every few seconds: no access log
            return

    server = ThreadingHTTPServer((host or "127.0.0.1", int(port)), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="health", daemon=True).start()
    return server
