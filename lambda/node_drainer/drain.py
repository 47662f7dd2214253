"""The drain itself: cordon the node, evict its pods through the Eviction API, wait until they are gone.

Pure logic over an injected Kubernetes client (`kube`), clock and heartbeat callback, so tests drive it against a
fake API server under simulated time. What it does, in the order `kubectl drain` does it:

1. GET the node. Absent (a launch that never joined, or already deleted): nothing to drain. Its `spec.providerID`
   must name the terminating instance, so a reused DNS name can never cordon someone else's node.
2. Cordon: PATCH `spec.unschedulable: true` (skipped when already cordoned).
2b. Wait for joining peers (when `joining_peers` is given): while another in-service node of the group has not
   registered, is not Ready or still carries the Multus startup taint, evicting would only leave pods Pending, so
   wait (heartbeating) up to `peer_wait_seconds`. In a rolling update with room above minSize this is the new node
   of the batch; in a plain scale-in every peer is long ready and nothing waits.
3. Until no evictable pod is left on the node or the deadline passes, every `poll_seconds`:
   list the node's pods; skip DaemonSet pods (their controller would put them back, and the node's own agents,
   Multus among them, must run until the end), mirror (static) pods and finished pods; POST an Eviction for every
   pod not yet deleting. 201: the API server deletes it with its grace period; 404: already gone; 429: a
   PodDisruptionBudget refuses now (retried next round, as kubectl drain does every 5 s); any other status
   (500 for a pod under two PDBs, 403) is recorded and retried too. Between rounds a heartbeat keeps the
   lifecycle action alive.
4. Result: `drained` (no evictable pod left), `deadline` (pods left; the node goes anyway: a PDB that never allows
   a disruption must not block scale-in forever), `node-absent`, `node-mismatch`, `action-ended` (the lifecycle
   action was completed or timed out elsewhere: stop).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

POLL_SECONDS = 5.0


class KubeError(Exception):
    """An API request failed: `status` is the HTTP status (0 when the server could not be reached)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"HTTP {status}: {message}" if status else message)
        self.status = status


class ActionEnded(Exception):
    """The lifecycle action is no longer active: whoever ends the wait must stop."""


class Kube(Protocol):
    def get_node(self, name: str) -> dict[str, Any] | None: ...
    def cordon(self, name: str) -> None: ...
    def node_pods(self, name: str) -> list[dict[str, Any]]: ...
    def evict(self, namespace: str, name: str) -> int: ...


class Clock(Protocol):
    def monotonic(self) -> float: ...
    def sleep(self, seconds: float) -> None: ...


@dataclass
class DrainReport:
    node: str
    result: str = ""
    cordoned: bool = False
    evicted: list[str] = field(default_factory=list)
    refused: dict[str, int] = field(default_factory=dict)  # pod -> 429 count (PodDisruptionBudget)
    errors: list[str] = field(default_factory=list)
    remaining: list[str] = field(default_factory=list)
    heartbeats: int = 0
    rounds: int = 0
    peer_wait: float = 0.0
    peers_not_ready: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"node": self.node, "drain": self.result, "cordoned": self.cordoned, "evicted": self.evicted,
                "refused": self.refused, "drainErrors": self.errors[-10:], "remaining": self.remaining,
                "heartbeats": self.heartbeats, "rounds": self.rounds, "peerWaitSeconds": self.peer_wait,
                "peersNotReady": self.peers_not_ready}


def pod_key(pod: dict[str, Any]) -> str:
    return f"{pod['metadata'].get('namespace', '')}/{pod['metadata']['name']}"


def evictable(pod: dict[str, Any]) -> bool:
    """What `kubectl drain --ignore-daemonsets` evicts: not a DaemonSet pod, not a mirror pod, not finished."""
    meta = pod.get("metadata", {})
    if any(ref.get("kind") == "DaemonSet" and ref.get("controller") for ref in meta.get("ownerReferences") or []):
        return False
    if "kubernetes.io/config.mirror" in (meta.get("annotations") or {}):
        return False
    return pod.get("status", {}).get("phase") not in ("Succeeded", "Failed")


def drain(kube: Kube, *, node_name: str, instance_id: str, clock: Clock, deadline: float,
          heartbeat: Callable[[], None], heartbeat_seconds: float, poll_seconds: float = POLL_SECONDS,
          joining_peers: Callable[[], list[str]] | None = None, peer_wait_seconds: float = 0.0) -> DrainReport:
    """Drain `node_name` (which must be `instance_id`'s node) until done or `deadline` (clock.monotonic()).

    `joining_peers()` returns why other nodes of the group cannot take pods yet (empty: they can)."""
    report = DrainReport(node=node_name)
    node = kube.get_node(node_name)
    if node is None:
        report.result = "node-absent"
        return report
    provider_id = node.get("spec", {}).get("providerID", "")
    if not provider_id.endswith(f"/{instance_id}"):
        report.result = "node-mismatch"
        report.errors.append(f"node {node_name} has providerID {provider_id!r}, not instance {instance_id}")
        return report
    if not node["spec"].get("unschedulable"):
        kube.cordon(node_name)
    report.cordoned = True
    last_beat = [clock.monotonic()]

    def pause() -> None:
        clock.sleep(poll_seconds)
        if clock.monotonic() - last_beat[0] >= heartbeat_seconds:
            heartbeat()
            report.heartbeats += 1
            last_beat[0] = clock.monotonic()

    try:
        started = clock.monotonic()
        wait_until = min(deadline, started + peer_wait_seconds)
        while joining_peers is not None:
            try:
                report.peers_not_ready = joining_peers()
            except Exception as exc:  # noqa: BLE001 - a peer check that fails must not block the drain
                report.errors.append(f"peer check: {type(exc).__name__}: {exc}")
                report.peers_not_ready = []
            if not report.peers_not_ready or clock.monotonic() + poll_seconds > wait_until:
                break
            pause()
        report.peer_wait = clock.monotonic() - started
        while True:
            report.rounds += 1
            try:
                pods = [p for p in kube.node_pods(node_name) if evictable(p)]
            except KubeError as exc:
                report.errors.append(f"list pods: {exc}")
                pods = None
            if pods == []:
                report.result, report.remaining = "drained", []
                return report
            for pod in pods or []:
                if pod["metadata"].get("deletionTimestamp"):
                    continue  # evicted (by us or anyone): wait for its grace period to end
                key = pod_key(pod)
                try:
                    status = kube.evict(pod["metadata"]["namespace"], pod["metadata"]["name"])
                except KubeError as exc:
                    status = exc.status
                    if status == 429:
                        report.refused[key] = report.refused.get(key, 0) + 1
                    elif status != 404:
                        report.errors.append(f"evict {key}: {exc}")
                    continue
                if status in (200, 201) and key not in report.evicted:
                    report.evicted.append(key)
            report.remaining = sorted(pod_key(p) for p in pods or [])
            if clock.monotonic() + poll_seconds > deadline:
                report.result = "deadline"
                return report
            pause()
    except ActionEnded:
        report.result = "action-ended"
        return report
