"""A loopback IMDSv2 stand-in: session token (PUT /latest/api/token), then
GET /latest/meta-data/network/interfaces/macs/<mac>/local-ipv4s with that token.

`addresses(mac)` supplies what the instance's ENI with that MAC holds (the tests read it from moto's EC2).
`lag_reads` models the asynchronous move AWS documents: an address appears in local-ipv4s only after it has
been held for that many reads. Not modelled: the other metadata paths, token TTL expiry, the hop limit
(the controller is on the host network), IMDS throttling.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

TOKEN = "fake-imds-token"


class FakeImds:
    def __init__(self, addresses: Callable[[str], set[str]], lag_reads: int = 0) -> None:
        self.addresses = addresses
        self.lag_reads = lag_reads
        self.reads = 0
        self.unauthorized = 0
        self._held_for: dict[tuple[str, str], int] = {}
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                return

            def _send(self, code: int, body: str) -> None:
                data = body.encode()
                self.send_response(code)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_PUT(self) -> None:  # noqa: N802
                if self.path == "/latest/api/token" and self.headers.get("X-aws-ec2-metadata-token-ttl-seconds"):
                    return self._send(200, TOKEN)
                return self._send(400, "bad token request")

            def do_GET(self) -> None:  # noqa: N802
                if self.headers.get("X-aws-ec2-metadata-token") != TOKEN:
                    fake.unauthorized += 1
                    return self._send(401, "")
                prefix, suffix = "/latest/meta-data/network/interfaces/macs/", "/local-ipv4s"
                if not (self.path.startswith(prefix) and self.path.endswith(suffix)):
                    return self._send(404, "")
                mac = self.path[len(prefix):-len(suffix)]
                fake.reads += 1
                held = fake.addresses(mac)
                if held is None:
                    return self._send(404, "")
                shown = []
                for ip in sorted(held):
                    count = fake._held_for.get((mac, ip), 0) + 1
                    fake._held_for[(mac, ip)] = count
                    if count > fake.lag_reads:
                        shown.append(ip)
                return self._send(200, "\n".join(shown))

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True, name="fake-imds").start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
