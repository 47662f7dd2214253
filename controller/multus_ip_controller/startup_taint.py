"""Removes the node's startup taint once Multus can serve pods there (issue 9).

Nodes register with the NoSchedule taint `eks-multus/not-ready` (eks_multus_cdk.node_group.STARTUP_TAINT) and
the label `eks-multus/multus-interfaces=<N>`. This module, run by the per-node controller in its own thread,
removes the taint only when both hold:
  1. the node's Multus interfaces are up under their stable names (`<prefix>1..N`, read from
     /sys/class/net: the controller runs on the host network, so it sees the node's links), and
  2. a Multus daemon pod (kube-system, label app=multus) is Running and Ready on this node.
Until then the taint stays and the node condition `MultusInterfacesReady` says why (status False, the missing or
down interfaces and whether the daemon runs), so a node whose ENIs never came is visible in `kubectl describe
node` instead of silently broken. Once the taint is gone the thread ends (a restart finds no taint and stops).

`decide` is pure; `NodeApi` is the only part that talks to Kubernetes (through the kubernetes client).
The taint is removed with a JSON patch that first tests the taint list it read, so a concurrent change to the
node's taints (another controller, kubectl) makes the patch fail and the next pass retry, never overwrite it.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

log = logging.getLogger("multus_ip_controller.startup_taint")

TAINT_KEY = "eks-multus/not-ready"  # eks_multus_cdk.naming.STARTUP_TAINT_KEY (a test checks)
COUNT_LABEL = "eks-multus/multus-interfaces"  # eks_multus_cdk.naming.INTERFACE_COUNT_LABEL
CONDITION_TYPE = "MultusInterfacesReady"
MULTUS_NAMESPACE = "kube-system"
MULTUS_POD_SELECTOR = "app=multus"  # the pod template label of manifests/multus/multus-daemonset-thick.yaml
IFF_UP = 0x1


@dataclass(frozen=True)
class Decision:
    remove_taint: bool
    condition: dict[str, str]  # type, status, reason, message (lastTransitionTime added when patched)


def interface_states(sysfs_net: str, prefix: str, count: int) -> dict[str, str]:
    """name -> "up" | "down" | "missing" for prefix1..prefixN."""
    states = {}
    for i in range(1, count + 1):
        name = f"{prefix}{i}"
        try:
            with open(os.path.join(sysfs_net, name, "flags"), encoding="ascii") as f:
                flags = int(f.read().strip(), 16)
        except (OSError, ValueError):
            states[name] = "missing"
            continue
        states[name] = "up" if flags & IFF_UP else "down"
    return states


def multus_running(pods: list[dict[str, Any]]) -> bool:
    """A Multus daemon pod is Running with its Ready condition True."""
    for pod in pods:
        status = pod.get("status") or {}
        ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or [])
        if status.get("phase") == "Running" and ready and not (pod.get("metadata") or {}).get("deletionTimestamp"):
            return True
    return False


def has_taint(node: dict[str, Any]) -> bool:
    return any(t.get("key") == TAINT_KEY for t in (node.get("spec") or {}).get("taints") or [])


def interface_count(node: dict[str, Any]) -> int | None:
    raw = ((node.get("metadata") or {}).get("labels") or {}).get(COUNT_LABEL, "")
    return int(raw) if raw.isdigit() and int(raw) > 0 else None


def decide(count: int | None, states: dict[str, str], daemon: bool) -> Decision:
    """Pure: remove the taint only when every interface is up and the daemon runs; otherwise say why."""
    if count is None:
        return Decision(False, {"type": CONDITION_TYPE, "status": "Unknown", "reason": "NoInterfaceCount",
                                "message": f"the node has no {COUNT_LABEL} label; the taint stays"})
    missing = [n for n, s in states.items() if s == "missing"]
    down = [n for n, s in states.items() if s == "down"]
    problems = []
    if missing:
        problems.append(f"interfaces missing: {', '.join(missing)} (their ENIs never came, or the boot script "
                        "could not rename them: see multus-interfaces lines in /var/log/cloud-init-output.log)")
    if down:
        problems.append(f"interfaces down: {', '.join(down)}")
    if not daemon:
        problems.append("the Multus daemon pod is not Running and Ready on this node")
    if problems:
        reason = "InterfacesMissing" if missing else ("InterfacesDown" if down else "MultusNotRunning")
        return Decision(False, {"type": CONDITION_TYPE, "status": "False", "reason": reason,
                                "message": "; ".join(problems) + f"; taint {TAINT_KEY} stays"})
    return Decision(True, {"type": CONDITION_TYPE, "status": "True", "reason": "InterfacesUp",
                           "message": f"{', '.join(states)} up and the Multus daemon running; {TAINT_KEY} removed"})


class NodeApi:
    """The Kubernetes calls: read the node, list the Multus pods on it, patch its taints and its condition.

    Every call carries `timeout` ((connect, read) seconds, as kube.KubeClient's): an API server that accepts and
    never answers fails the pass, and the loop retries, instead of hanging this thread.
    """

    def __init__(self, core: Any = None, *, timeout: tuple[float, float] = (5.0, 15.0)) -> None:
        if core is None:
            from kubernetes import client

            core = client.CoreV1Api()  # the configuration KubeClient loaded (in-cluster)
        self.core = core
        self.timeout = timeout

    def get_node(self, name: str) -> dict[str, Any]:
        # The raw JSON, not the client's model: remove_taint's JSON-patch `test` compares the taint list with what
        # the server stores, and the model would rewrite a NoExecute taint's timeAdded ("...Z" -> "...+00:00"), so
        # the test would fail for as long as such a taint is on the node.
        response = self.core.read_node(name, _request_timeout=self.timeout, _preload_content=False)
        return json.loads(response.data)

    def multus_pods(self, node_name: str) -> list[dict[str, Any]]:
        pods = self.core.list_namespaced_pod(MULTUS_NAMESPACE, label_selector=MULTUS_POD_SELECTOR,
                                             field_selector=f"spec.nodeName={node_name}",
                                             _request_timeout=self.timeout)
        return self.core.api_client.sanitize_for_serialization(pods).get("items", [])

    def remove_taint(self, name: str, taints: list[dict[str, Any]]) -> None:
        kept = [t for t in taints if t.get("key") != TAINT_KEY]
        self.core.patch_node(name, [{"op": "test", "path": "/spec/taints", "value": taints},
                                    {"op": "replace", "path": "/spec/taints", "value": kept}],
                             _content_type="application/json-patch+json", _request_timeout=self.timeout)

    def set_condition(self, name: str, condition: dict[str, str]) -> None:
        """Strategic merge on status.conditions (merged by type: the kubelet's own conditions stay)."""
        self.core.patch_node_status(name, {"status": {"conditions": [condition]}},
                                    _content_type="application/strategic-merge-patch+json",
                                    _request_timeout=self.timeout)


class StartupTaint:
    def __init__(self, api: NodeApi, node_name: str, *, prefix: str = "multus", sysfs_net: str = "/sys/class/net",
                 clock: Callable[[], str] | None = None) -> None:
        self.api = api
        self.node_name = node_name
        self.prefix = prefix
        self.sysfs_net = sysfs_net
        self.clock = clock or (lambda: time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
        self._last: tuple[str, str, str] | None = None

    def step(self) -> bool:
        """One pass. True when there is nothing left to do (no taint, or it was just removed)."""
        node = self.api.get_node(self.node_name)
        if not has_taint(node):
            return True
        count = interface_count(node)
        states = interface_states(self.sysfs_net, self.prefix, count or 0)
        decision = decide(count, states, multus_running(self.api.multus_pods(self.node_name)))
        key = (decision.condition["status"], decision.condition["reason"], decision.condition["message"])
        if key != self._last:
            condition = {**decision.condition, "lastTransitionTime": self.clock(), "lastHeartbeatTime": self.clock()}
            self.api.set_condition(self.node_name, condition)
            self._last = key
            log.info(json.dumps({"msg": "startup taint", "node": self.node_name, **decision.condition}))
        if decision.remove_taint:
            self.api.remove_taint(self.node_name, node["spec"]["taints"])
            return True
        return False

    def run(self, stop: threading.Event, every: float = 5.0) -> None:
        while not stop.is_set():
            try:
                if self.step():
                    return
            except Exception as err:  # noqa: BLE001 - API hiccups (or a lost test-and-set): next pass retries
                log.warning(json.dumps({"msg": "startup taint pass failed", "error": str(err)[:300]}))
            stop.wait(every)


def start(node_name: str, prefix: str, stop: threading.Event, *, api_client: Any = None,
          timeout: tuple[float, float] = (5.0, 15.0)) -> threading.Thread:
    """Run the startup-taint loop in a daemon thread (called once from main, with KubeClient's client and timeout)."""
    core = None
    if api_client is not None:
        from kubernetes import client

        core = client.CoreV1Api(api_client)
    worker = StartupTaint(NodeApi(core, timeout=timeout), node_name, prefix=prefix)
    thread = threading.Thread(target=worker.run, args=(stop,), daemon=True, name="startup-taint")
    thread.start()
    return thread
