"""A loopback stand-in for the EKS Pod Identity agent's container-credentials endpoint.

What the real agent does and this models: the Pod Identity webhook injects AWS_CONTAINER_CREDENTIALS_FULL_URI
(http://169.254.170.23/v1/credentials) and AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE (a projected service-account
token, no trailing newline) into the pod; botocore's container provider reads the file on every fetch and sends
its content as the `Authorization` header; the agent answers 200 with AccessKeyId, SecretAccessKey, Token,
Expiration (ISO 8601) and AccountId, or refuses a request without the right token. Here the endpoint listens on
127.0.0.1 (botocore accepts plain http only on loopback or the agent's link-local addresses), the constructor
writes the token file, and `served` / `unauthorized` count the answers.

What it does NOT model: the agent's exchange of the token with EKS Auth (AssumeRoleForPodIdentity), so no
association, role or session tags exist and moto accepts any key anyway (IAM is proven against the synthesized
policy elsewhere, not here); token rotation by the kubelet; the 169.254.170.23 address and its hop; expiry-driven
refresh (Expiration is an hour ahead, beyond any test).
"""

from __future__ import annotations

import datetime
import json
import secrets
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


class FakePodIdentity:
    def __init__(self, token_file: Path) -> None:
        self.token_file = token_file
        self.token = f"eyJhbGciOiJSUzI1NiJ9.fake.{secrets.token_urlsafe(16)}"
        token_file.write_text(self.token)  # as projected: no trailing newline
        self.served = 0
        self.unauthorized = 0
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                return

            def do_GET(self) -> None:  # noqa: N802
                if self.path != "/v1/credentials":
                    return self._send(404, {"message": "not found"})
                if self.headers.get("Authorization") != fake.token:
                    fake.unauthorized += 1
                    return self._send(401, {"message": "invalid or missing authorization token"})
                fake.served += 1
                expires = datetime.datetime.now(datetime.UTC) + datetime.timedelta(hours=1)
                return self._send(200, {
                    "AccessKeyId": "ASIAFAKEPODIDENTITY1", "SecretAccessKey": secrets.token_urlsafe(30),
                    "Token": secrets.token_urlsafe(60), "AccountId": "123456789012",
                    "Expiration": expires.strftime("%Y-%m-%dT%H:%M:%SZ")})

            def _send(self, code: int, body: dict) -> None:
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True, name="fake-pod-identity").start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1/credentials"

    def env(self) -> dict[str, str]:
        """What the Pod Identity webhook would inject into the controller's pod."""
        return {"AWS_CONTAINER_CREDENTIALS_FULL_URI": self.url,
                "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE": str(self.token_file)}

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
