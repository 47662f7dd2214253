"""The thin I/O layer: the kubernetes client behind `runner.ClusterReader`, returning plain dicts."""

from __future__ import annotations

import json
from typing import Any

from eks_multus_cdk.verify.checks import ExecResult

NAD_GROUP, NAD_VERSION, NAD_PLURAL = "k8s.cni.cncf.io", "v1", "network-attachment-definitions"
EXEC_TIMEOUT = 30  # seconds; `ping -c 3 -W 2` takes at most ~8


class KubeReader:
    """`ClusterReader` over a kubernetes.client.ApiClient."""

    def __init__(self, api_client: Any, *, exec_timeout: float = EXEC_TIMEOUT) -> None:
        from kubernetes import client

        self._api_client = api_client
        self._core = client.CoreV1Api(api_client)
        self._apps = client.AppsV1Api(api_client)
        self._custom = client.CustomObjectsApi(api_client)
        self._exec_timeout = exec_timeout

    @staticmethod
    def _json(call: Any, *args: Any) -> Any:
        """The API server's JSON as it sent it: no model classes in between, so no client-side validation of
        fields the checks never read, and times stay as the server wrote them."""
        return json.loads(call(*args, _preload_content=False).data)

    def describe(self) -> str:
        return self._api_client.configuration.host

    def list_nodes(self) -> list[dict[str, Any]]:
        return self._json(self._core.list_node).get("items") or []

    def read_daemonset(self, namespace: str, name: str) -> dict[str, Any] | None:
        return _or_none(lambda: self._json(self._apps.read_namespaced_daemon_set, name, namespace))

    def list_nads(self, namespace: str) -> list[dict[str, Any]] | None:
        listing = _or_none(lambda: self._json(
            self._custom.list_namespaced_custom_object, NAD_GROUP, NAD_VERSION, namespace, NAD_PLURAL
        ))
        return None if listing is None else listing.get("items") or []

    def read_pod(self, namespace: str, name: str) -> dict[str, Any] | None:
        return _or_none(lambda: self._json(self._core.read_namespaced_pod, name, namespace))

    def exec(self, namespace: str, pod: str, command: list[str]) -> ExecResult:
        from kubernetes.stream import stream

        ws = stream(
            self._core.connect_get_namespaced_pod_exec, pod, namespace,
            command=command, stdin=False, stdout=True, stderr=True, tty=False, _preload_content=False,
        )
        try:
            ws.run_forever(timeout=self._exec_timeout)
            finished = not ws.is_open()
            stdout, stderr = ws.read_stdout(timeout=0), ws.read_stderr(timeout=0)
            returncode = _returncode(ws) if finished else None
        finally:
            ws.close()
        return ExecResult(returncode, stdout or "", stderr or "")


def _returncode(ws: Any) -> int | None:
    """The exit status from the exec error channel; the client's own parser raises on statuses without causes."""
    try:
        return ws.returncode
    except (KeyError, IndexError, TypeError, ValueError):
        return None


def _or_none(call: Any) -> Any:
    """The call's result, or None when the object (or, for custom objects, its CRD) does not exist."""
    from kubernetes.client.exceptions import ApiException

    try:
        return call()
    except ApiException as err:
        if err.status == 404:
            return None
        raise


def connect(*, kubeconfig: str | None, context: str | None, cluster_name: str | None, region: str | None) -> KubeReader:
    """A reader for the cluster named by --cluster-name/--region (EKS API and STS), else by the kubeconfig."""
    from kubernetes import client, config

    if cluster_name:
        from eks_multus_cdk.verify.eks_auth import eks_client_configuration

        assert region, "the CLI defaults --region to the config's region"
        return KubeReader(client.ApiClient(eks_client_configuration(cluster_name, region)))
    return KubeReader(config.new_client_from_config(config_file=kubeconfig, context=context))
