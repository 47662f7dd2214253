"""Kubernetes events on pods: why an address was refused (ENI full) or failed (EC2 error), visible in
`kubectl describe pod`. Each (pod, reason, message) is sent once per `repeat_seconds`, so a steady node sends none.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterable
from typing import Any

log = logging.getLogger(__name__)

COMPONENT = "multus-pod-address-sync"


class EventRecorder:
    def __init__(
        self,
        create: Callable[[str, dict[str, Any]], None],
        node_name: str,
        repeat_seconds: float = 600.0,
        clock: Callable[[], float] = time.monotonic,
        now: Callable[[], str] | None = None,
    ) -> None:
        self._create = create
        self.node_name = node_name
        self.repeat_seconds = repeat_seconds
        self._clock = clock
        self._now = now or (lambda: time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
        self._sent: dict[tuple[str, str, str], float] = {}

    def warn(self, pod: dict[str, Any], reason: str, message: str) -> bool:
        """Send one Warning event about `pod` unless the same one went out recently; True if sent."""
        meta = pod.get("metadata") or {}
        key = (meta.get("uid") or "", reason, message)
        sent = self._sent.get(key)
        if sent is not None and self._clock() - sent < self.repeat_seconds:
            return False
        now = self._now()
        event = {
            "apiVersion": "v1", "kind": "Event",
            "metadata": {"generateName": f"{meta.get('name', 'pod')}.", "namespace": meta.get("namespace")},
            "involvedObject": {"apiVersion": "v1", "kind": "Pod", "namespace": meta.get("namespace"),
                               "name": meta.get("name"), "uid": meta.get("uid")},
            "reason": reason, "message": message[:1000], "type": "Warning",
            "source": {"component": COMPONENT, "host": self.node_name},
            "reportingComponent": COMPONENT, "reportingInstance": self.node_name,
            "firstTimestamp": now, "lastTimestamp": now, "count": 1,
        }
        try:
            self._create(meta.get("namespace") or "default", event)
        except Exception as err:  # noqa: BLE001 - an event is best effort; never fail a pass over it
            log.warning(json.dumps({"msg": "event not recorded", "reason": reason, "error": str(err)[:200]}))
            return False
        self._sent[key] = self._clock()
        return True

    def forget_except(self, uids: Iterable[str]) -> None:
        """Drop memory of pods that are gone (bounded memory on a churning node)."""
        keep = set(uids)
        self._sent = {k: v for k, v in self._sent.items() if k[0] in keep}
