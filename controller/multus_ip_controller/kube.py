"""The Kubernetes side: read pods' Multus network-status, the Node's instance id, NAD masters; list and watch.

Objects are handled as plain dicts in the API's JSON shape (camelCase keys), so tests can feed recorded objects.
Only `KubeClient` talks to the API server.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from multus_ip_controller.planning import IPv4Network, PodAddress, in_ranges, normalize_ip, normalize_mac

NETWORK_STATUS = "k8s.v1.cni.cncf.io/network-status"
LEGACY_NETWORK_STATUS = "k8s.v1.cni.cncf.io/networks-status"  # Multus 3.x wrote this name as well
RESOURCE_PREFIX = "eks-multus.io/"  # our extended resources (capacity.resource_name) and condition types
CONDITION_PREFIX = "eks-multus.io/"
INSTANCE_TYPE_LABEL = "node.kubernetes.io/instance-type"

_PROVIDER_ID = re.compile(r"^aws:///(?P<az>[a-z0-9-]+)/(?P<instance>i-[0-9a-f]+)$")

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Attachment:
    """One entry of the network-status annotation."""

    name: str  # "namespace/nad-name" (or the default network's name)
    interface: str
    ips: tuple[str, ...]
    mac: str | None
    default: bool


def _entry_ips(raw: Any) -> tuple[str, ...]:
    """IPs of one entry. Multus writes plain strings; accept CNI-result-shaped objects too.

    0.3.1/0.4.0 results carry `{"version": "4", "address": "10.0.4.70/24", "interface": 0}`; 1.0.0 results drop
    `version`. Either way `address` (or `ip`) holds the address, with or without a prefix length.
    """
    if isinstance(raw, (str, dict)):
        raw = [raw]
    if not isinstance(raw, list):
        return ()
    ips: list[str] = []
    for item in raw:
        value = (item.get("address") or item.get("ip")) if isinstance(item, dict) else item
        ip = normalize_ip(value) if isinstance(value, str) else None
        if ip and ip not in ips:
            ips.append(ip)
    return tuple(ips)


def parse_network_status(raw: str | None) -> tuple[list[Attachment], str | None]:
    """Parse the annotation; returns the attachments and a problem description (None when it parsed cleanly)."""
    if raw is None or not raw.strip():
        return [], None
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as err:
        return [], f"network-status is not JSON ({err.msg})"
    if isinstance(data, dict):
        data = [data]
    if not isinstance(data, list):
        return [], "network-status is not a list"
    attachments = []
    problem = None
    for entry in data:
        if not isinstance(entry, dict):
            problem = "network-status has an entry that is not an object"
            continue
        ips = _entry_ips(entry.get("ips", entry.get("ip")))
        attachments.append(
            Attachment(
                name=str(entry.get("name") or ""),
                interface=str(entry.get("interface") or ""),
                ips=ips,
                mac=normalize_mac(entry.get("mac")),
                default=entry.get("default") is True,
            )
        )
    return attachments, problem


def network_status_annotation(pod: dict[str, Any]) -> str | None:
    """The raw network-status annotation Multus writes, or None before it has run for the pod."""
    annotations = (pod.get("metadata") or {}).get("annotations") or {}
    return annotations.get(NETWORK_STATUS) or annotations.get(LEGACY_NETWORK_STATUS)


def pod_key(pod: dict[str, Any]) -> str:
    meta = pod.get("metadata") or {}
    return f"{meta.get('namespace', '')}/{meta.get('name', '')}"


def pod_addresses(
    pod: dict[str, Any],
    ranges: Sequence[IPv4Network],
    master_device_index: Callable[[str], int | None] | None = None,
) -> tuple[list[PodAddress], list[str]]:
    """The pod-range addresses of one pod's Multus interfaces, and any problems worth logging.

    Skips host-network pods and pods whose sandbox is gone (phase Succeeded or Failed). `master_device_index`
    maps a network-status name (`namespace/nad`) to the device index of the NAD's master; it is called only
    for an interface without a MAC.
    """
    spec = pod.get("spec") or {}
    status = pod.get("status") or {}
    if spec.get("hostNetwork") or status.get("phase") in ("Succeeded", "Failed"):
        return [], []
    attachments, problem = parse_network_status(network_status_annotation(pod))
    key = pod_key(pod)
    problems = [f"{key}: {problem}"] if problem else []
    terminating = bool((pod.get("metadata") or {}).get("deletionTimestamp"))
    created = str((pod.get("metadata") or {}).get("creationTimestamp") or "")
    result: list[PodAddress] = []
    for att in attachments:
        if att.default:
            continue
        ips = [ip for ip in att.ips if in_ranges(ip, ranges)]
        if not ips:
            continue
        device_index = None
        if att.mac is None:
            device_index = master_device_index(att.name) if master_device_index else None
            fallback = f"using the NAD master's device index {device_index}" if device_index is not None else None
            problems.append(f"{key}: {att.interface or '?'} ({att.name}) has no MAC; {fallback or 'and no NAD master'}")
        for ip in ips:
            result.append(PodAddress(key, att.interface, ip, att.mac, device_index, terminating, created))
    return result, problems


def desired_addresses(
    pods: Iterable[dict[str, Any]],
    ranges: Sequence[IPv4Network],
    master_device_index: Callable[[str], int | None] | None = None,
) -> tuple[list[PodAddress], list[str]]:
    desired: list[PodAddress] = []
    problems: list[str] = []
    for pod in pods:
        addresses, pod_problems = pod_addresses(pod, ranges, master_device_index)
        desired.extend(addresses)
        problems.extend(pod_problems)
    return desired, problems


def api_error_code(err: BaseException) -> str:
    """`HTTP 403 Forbidden` for a Kubernetes ApiException, else the exception's class name."""
    status = getattr(err, "status", None)
    if isinstance(status, int):
        reason = getattr(err, "reason", None)
        return f"HTTP {status} {reason}" if reason else f"HTTP {status}"
    return type(err).__name__


def node_instance(node: dict[str, Any]) -> tuple[str, str]:
    """(instance id, availability zone) from the Node's spec.providerID `aws:///us-west-2a/i-0123...`."""
    provider_id = (node.get("spec") or {}).get("providerID") or ""
    match = _PROVIDER_ID.match(provider_id)
    if not match:
        name = (node.get("metadata") or {}).get("name")
        raise ValueError(f"node {name}: spec.providerID {provider_id!r} is not aws:///<az>/<instance id>")
    return match["instance"], match["az"]


def nad_master_device_index(nad: dict[str, Any], ifname_prefix: str) -> int | None:
    """Device index of the host interface a NAD's config names (`master` for ipvlan, `device` for host-device).

    The node renames the ENI at device index N to `<ifname_prefix>N`, so the index is read from the name.
    """
    raw = (nad.get("spec") or {}).get("config")
    try:
        config = json.loads(raw) if isinstance(raw, str) else None
    except json.JSONDecodeError:
        return None
    if not isinstance(config, dict):
        return None
    candidates = [config, *[p for p in config.get("plugins") or [] if isinstance(p, dict)]]
    pattern = re.compile(rf"^{re.escape(ifname_prefix)}(\d+)$")
    for plugin in candidates:
        for key in ("master", "device"):
            match = pattern.match(str(plugin.get(key) or ""))
            if match:
                return int(match.group(1))
    return None


def pod_signature(pod: dict[str, Any]) -> tuple[Any, ...]:
    """What about a pod matters to the controller; a watch event that does not change it triggers nothing."""
    meta = pod.get("metadata") or {}
    return (
        network_status_annotation(pod),
        bool(meta.get("deletionTimestamp")),
        (pod.get("status") or {}).get("phase"),
    )


# What the controller keeps of a pod in its cache: the fields it reads, so 100 pods cost kilobytes, not megabytes.
def strip_pod(pod: dict[str, Any]) -> dict[str, Any]:
    meta = pod.get("metadata") or {}
    spec = pod.get("spec") or {}
    status = pod.get("status") or {}
    annotations = {k: v for k, v in (meta.get("annotations") or {}).items()
                   if k in (NETWORK_STATUS, LEGACY_NETWORK_STATUS)}
    containers = []
    for container in spec.get("containers") or []:
        resources = (container.get("resources") or {}) if isinstance(container, dict) else {}
        kept = {kind: {k: v for k, v in (resources.get(kind) or {}).items() if k.startswith(RESOURCE_PREFIX)}
                for kind in ("requests", "limits")}
        containers.append({"resources": {k: v for k, v in kept.items() if v}})
    return {
        "metadata": {k: v for k, v in {
            "namespace": meta.get("namespace"), "name": meta.get("name"), "uid": meta.get("uid"),
            "creationTimestamp": meta.get("creationTimestamp"), "deletionTimestamp": meta.get("deletionTimestamp"),
            "annotations": annotations,
        }.items() if v},
        "spec": {k: v for k, v in {
            "nodeName": spec.get("nodeName"), "hostNetwork": spec.get("hostNetwork"),
            "readinessGates": spec.get("readinessGates"), "containers": containers,
        }.items() if v},
        "status": {k: v for k, v in {
            "phase": status.get("phase"),
            "conditions": [c for c in status.get("conditions") or []
                           if isinstance(c, dict) and c.get("type", "").startswith(CONDITION_PREFIX)],
        }.items() if v},
    }


def strip_node(node: dict[str, Any]) -> dict[str, Any]:
    meta = node.get("metadata") or {}
    status = node.get("status") or {}
    ours = {kind: {k: v for k, v in (status.get(kind) or {}).items() if k.startswith(RESOURCE_PREFIX)}
            for kind in ("capacity", "allocatable")}
    return {
        "metadata": {"name": meta.get("name"), "uid": meta.get("uid"), "labels": {
            k: v for k, v in (meta.get("labels") or {}).items() if k == INSTANCE_TYPE_LABEL}},
        "spec": {"providerID": (node.get("spec") or {}).get("providerID")},
        "status": ours,
    }


def published_resources(node: dict[str, Any]) -> dict[str, int]:
    """Our extended resources as the node's status.capacity carries them."""
    out = {}
    for name, value in ((node.get("status") or {}).get("capacity") or {}).items():
        if name.startswith(RESOURCE_PREFIX):
            try:
                out[name] = int(str(value))
            except ValueError:
                continue
    return out


def _drain(response: Any) -> None:
    """Read a response we do not need (the connection goes back to the pool); no model deserialization."""
    getattr(response, "data", None)


class KubeClient:
    """Thin wrapper over the kubernetes client: plain dicts in and out, a timeout on every request.

    `timeout` is (connect, read) seconds for every request but the watch; the watch's read timeout is its
    server-side `timeoutSeconds` plus `watch_grace` (default a tenth of it, at least 1 s: 30 s for the default 300 s),
    so a server that accepts a watch and then goes silent is noticed shortly after it would have closed it.
    `on_request(verb, resource)` counts requests.
    """

    def __init__(
        self,
        api_client: Any = None,
        *,
        timeout: tuple[float, float] = (5.0, 15.0),
        watch_grace: float | None = None,
        on_request: Callable[[str, str], None] | None = None,
    ) -> None:
        from kubernetes import client, config

        if api_client is None:
            if os.environ.get("KUBERNETES_SERVICE_HOST"):
                config.load_incluster_config()
            else:  # outside a cluster (the integration test, a developer's machine): $KUBECONFIG
                config.load_kube_config()
            api_client = client.ApiClient()
        self._api = api_client
        self._core = client.CoreV1Api(api_client)
        self._custom = client.CustomObjectsApi(api_client)
        self.timeout = timeout
        self.watch_grace = watch_grace
        self._count = on_request or (lambda verb, resource: None)

    def _to_dict(self, obj: Any) -> dict[str, Any]:
        return self._api.sanitize_for_serialization(obj)

    def get_node(self, name: str) -> dict[str, Any]:
        self._count("get", "nodes")
        response = self._core.read_node(name, _preload_content=False, _request_timeout=self.timeout)
        return json.loads(response.data)

    def _list(self, call: Callable[..., Any], resource: str, selector: str) -> tuple[list[dict[str, Any]], str]:
        self._count("list", resource)
        response = call(field_selector=selector, _preload_content=False, _request_timeout=self.timeout)
        body = json.loads(response.data)
        return body.get("items", []), (body.get("metadata") or {}).get("resourceVersion", "")

    def _watch(self, call: Callable[..., Any], resource: str, selector: str, resource_version: str,
               timeout_seconds: int) -> Iterator[dict[str, Any]]:
        from kubernetes.watch.watch import iter_resp_lines

        from multus_ip_controller.informer import Gone, status_of

        self._count("watch", resource)
        grace = self.watch_grace if self.watch_grace is not None else max(1.0, timeout_seconds / 10)
        try:
            response = call(
                field_selector=selector, watch=True, resource_version=resource_version or None,
                allow_watch_bookmarks=True, timeout_seconds=timeout_seconds, _preload_content=False,
                _request_timeout=(self.timeout[0], timeout_seconds + grace),
            )
        except Exception as err:
            if status_of(err) == 410:
                raise Gone(str(err)[:200]) from None
            raise
        try:
            for line in iter_resp_lines(response):
                if line.strip():
                    yield json.loads(line)
        finally:
            response.release_conn()

    def list_pods(self, node_name: str) -> list[dict[str, Any]]:
        return self.list_pods_rv(node_name)[0]

    def list_pods_rv(self, node_name: str) -> tuple[list[dict[str, Any]], str]:
        return self._list(self._core.list_pod_for_all_namespaces, "pods", f"spec.nodeName={node_name}")

    def watch_pods(self, node_name: str, resource_version: str, timeout_seconds: int) -> Iterator[dict[str, Any]]:
        return self._watch(self._core.list_pod_for_all_namespaces, "pods", f"spec.nodeName={node_name}",
                           resource_version, timeout_seconds)

    def list_node_rv(self, node_name: str) -> tuple[list[dict[str, Any]], str]:
        return self._list(self._core.list_node, "nodes", f"metadata.name={node_name}")

    def watch_node(self, node_name: str, resource_version: str, timeout_seconds: int) -> Iterator[dict[str, Any]]:
        return self._watch(self._core.list_node, "nodes", f"metadata.name={node_name}", resource_version,
                           timeout_seconds)

    def patch_pod_condition(self, namespace: str, name: str, condition: dict[str, Any]) -> None:
        """Set one entry of the pod's status.conditions through the pods/status subresource.

        A strategic merge patch: status.conditions merges by `type`, so the kubelet's conditions stay (a JSON
        merge patch would replace the whole list). Said explicitly: for a dict body the generated API picks
        `application/json-patch+json` (the first type it lists) and only its REST layer (kubernetes 36) turns
        that into a strategic merge patch; the tests check the header that leaves the client.
        """
        self._count("patch", "pods/status")
        response = self._core.patch_namespaced_pod_status(
            name, namespace, {"status": {"conditions": [condition]}},
            _content_type="application/strategic-merge-patch+json", _request_timeout=self.timeout,
            _preload_content=False,
        )
        _drain(response)

    def patch_node_resources(self, node_name: str, resources: dict[str, int]) -> None:
        """Set our extended resources in the Node's status.capacity and status.allocatable (nodes/status)."""
        values = {name: str(value) for name, value in resources.items()}
        self._count("patch", "nodes/status")
        response = self._core.patch_node_status(
            node_name, {"status": {"capacity": values, "allocatable": values}},
            _content_type="application/merge-patch+json", _request_timeout=self.timeout, _preload_content=False,
        )
        _drain(response)

    def create_event(self, namespace: str, event: dict[str, Any]) -> None:
        self._count("create", "events")
        response = self._core.create_namespaced_event(namespace, event, _request_timeout=self.timeout,
                                                      _preload_content=False)
        _drain(response)

    def get_nad(self, namespace: str, name: str) -> dict[str, Any] | None:
        from kubernetes.client.exceptions import ApiException

        self._count("get", "network-attachment-definitions")
        try:
            return self._custom.get_namespaced_custom_object(
                "k8s.cni.cncf.io", "v1", namespace, "network-attachment-definitions", name,
                _request_timeout=self.timeout,
            )
        except ApiException as err:
            if err.status == 404:
                return None
            raise


class NadMasterCache:
    """Resolves `namespace/nad` to the master's device index, caching answers (NAD masters do not change)."""

    def __init__(self, get_nad: Callable[[str, str], dict[str, Any] | None], ifname_prefix: str) -> None:
        self._get_nad = get_nad
        self._prefix = ifname_prefix
        self._cache: dict[str, int | None] = {}

    def __call__(self, name: str) -> int | None:
        if name in self._cache:
            return self._cache[name]
        namespace, _, nad_name = name.rpartition("/")
        try:
            nad = self._get_nad(namespace or "default", nad_name)
        except Exception as err:  # noqa: BLE001 - a failed lookup is retried on the next reconcile
            log.warning(json.dumps({"msg": "NAD lookup failed", "nad": name, "error": str(err)[:300]}))
            return None
        index = nad_master_device_index(nad, self._prefix) if nad else None
        if nad is not None:
            self._cache[name] = index
        return index
