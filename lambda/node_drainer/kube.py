"""Just enough of a Kubernetes API client for the drainer, on the standard library (Lambda's runtime has no
kubernetes package, and the four calls below do not justify bundling one).

Authentication is what `aws eks get-token` does: a bearer token that is a presigned STS GetCallerIdentity URL whose
signature covers `x-k8s-aws-id: <cluster>`; botocore signs. The requests are exactly those the drainer's ClusterRole
allows (manifests/node-drainer/rbac.yaml): get nodes, patch nodes, list pods, create pods/eviction.
"""

from __future__ import annotations

import base64
import json
import ssl
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from typing import Any

from node_drainer.drain import KubeError

TOKEN_PREFIX = "k8s-aws-v1."
REQUEST_TIMEOUT_SECONDS = 10.0


def eks_token(cluster_name: str, region: str, credentials: Any) -> str:
    """A bearer token for `cluster_name` from botocore credentials (access_key, secret_key, token)."""
    from botocore.auth import SigV4QueryAuth
    from botocore.awsrequest import AWSRequest

    suffix = "amazonaws.com.cn" if region.startswith("cn-") else "amazonaws.com"
    request = AWSRequest(method="GET", url=f"https://sts.{region}.{suffix}/?Action=GetCallerIdentity&Version=2011-06-15",
                         headers={"x-k8s-aws-id": cluster_name})
    SigV4QueryAuth(credentials, "sts", region, expires=60).add_auth(request)
    return TOKEN_PREFIX + base64.urlsafe_b64encode(request.prepare().url.encode()).decode().rstrip("=")


class KubeClient:
    """get_node / cordon / node_pods / evict against `endpoint`. `token` is called before each request (EKS
    accepts a token for 15 minutes; the drainer runs at most 15)."""

    def __init__(self, endpoint: str, token: Callable[[], str], *, ca_pem: str | None = None,
                 timeout: float = REQUEST_TIMEOUT_SECONDS) -> None:
        self.endpoint = endpoint.rstrip("/")
        self.token = token
        self.timeout = timeout
        self.context = ssl.create_default_context(cadata=ca_pem) if ca_pem else None

    def _request(self, method: str, path: str, body: Any = None, content_type: str = "application/json") -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.endpoint + path, data=data, method=method, headers={
            "Authorization": f"Bearer {self.token()}", "Accept": "application/json",
            **({"Content-Type": content_type} if data is not None else {})})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout, context=self.context) as response:
                raw = response.read()
                return response.status, (json.loads(raw) if raw else None)
        except urllib.error.HTTPError as exc:
            try:
                message = json.loads(exc.read() or b"{}").get("message") or exc.reason
            except ValueError:
                message = str(exc.reason)
            raise KubeError(exc.code, f"{method} {path}: {message}") from None
        except (urllib.error.URLError, TimeoutError, OSError) as exc:
            raise KubeError(0, f"{method} {path}: {exc}") from None

    def get_node(self, name: str) -> dict[str, Any] | None:
        try:
            return self._request("GET", f"/api/v1/nodes/{urllib.parse.quote(name)}")[1]
        except KubeError as exc:
            if exc.status == 404:
                return None
            raise

    def cordon(self, name: str) -> None:
        self._request("PATCH", f"/api/v1/nodes/{urllib.parse.quote(name)}", {"spec": {"unschedulable": True}},
                      content_type="application/merge-patch+json")

    def node_pods(self, name: str) -> list[dict[str, Any]]:
        query = urllib.parse.urlencode({"fieldSelector": f"spec.nodeName={name}"})
        return self._request("GET", f"/api/v1/pods?{query}")[1].get("items", [])

    def evict(self, namespace: str, name: str) -> int:
        path = f"/api/v1/namespaces/{urllib.parse.quote(namespace)}/pods/{urllib.parse.quote(name)}/eviction"
        body = {"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": name, "namespace": namespace}}
        return self._request("POST", path, body)[0]
