"""An informer-style cache: one LIST, then a WATCH from its resourceVersion; relisted only on start and after 410.

The reconcile reads `snapshot()` (no request to the API server); the watch keeps the cache current. What it
does on each thing a real API server sends:

- a watch that the server ends (its `timeoutSeconds`, or a restart of the apiserver): watch again from the last
  resourceVersion seen, at once. No LIST.
- `BOOKMARK` events (asked for with allowWatchBookmarks): only advance the resourceVersion.
- `410 Gone` (the resourceVersion is older than the server's compaction window), as the watch's HTTP status or
  as an `ERROR` event with code 410: LIST again and replace the cache (objects gone meanwhile are dropped and
  reported as deleted).
- any other failure (connection refused or reset, the client's read timeout on a server that accepts and never
  answers, HTTP 5xx, an `ERROR` event with another code): watch again from the last resourceVersion after an
  exponential backoff with full jitter (`backoff_base` doubling up to `backoff_max`), reset after a good event.

Objects are stored as dicts reduced by `strip` (only the fields the controller reads), keyed by metadata.uid.
`on_change(old, new)` is called for every change (old None: added; new None: deleted).
"""

from __future__ import annotations

import json
import logging
import random
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

log = logging.getLogger(__name__)

Obj = dict[str, Any]


class NotSynced(RuntimeError):
    """The cache has not completed its first LIST: its content says nothing yet."""


class Gone(Exception):
    """HTTP 410: the resourceVersion is too old; relist."""


def status_of(err: BaseException) -> int | None:
    status = getattr(err, "status", None)
    return status if isinstance(status, int) else None


class Informer:
    def __init__(
        self,
        *,
        name: str,
        list_fn: Callable[[], tuple[list[Obj], str]],
        watch_fn: Callable[[str, int], Iterator[Obj]],
        strip: Callable[[Obj], Obj] = lambda obj: obj,
        on_change: Callable[[Obj | None, Obj | None], None] | None = None,
        watch_timeout: int = 300,
        backoff_base: float = 0.5,
        backoff_max: float = 30.0,
        rng: Callable[[], float] = random.random,
    ) -> None:
        self.name = name
        self._list = list_fn
        self._watch = watch_fn
        self._strip = strip
        self._on_change = on_change or (lambda old, new: None)
        self.watch_timeout = watch_timeout
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self._rng = rng
        self._lock = threading.Lock()
        self._store: dict[str, Obj] = {}
        self._synced = threading.Event()
        self.resource_version = ""
        self.lists = 0  # LIST requests made (1 on start, +1 per 410)
        self.watches = 0  # WATCH requests made
        self.last_event = time.monotonic()  # last byte of progress: a list, an event or a bookmark

    # ---- reading

    @property
    def synced(self) -> bool:
        return self._synced.is_set()

    def wait_synced(self, timeout: float) -> bool:
        return self._synced.wait(timeout)

    def snapshot(self) -> list[Obj]:
        """The cached objects (the dicts themselves: callers must not change them). Raises NotSynced before the
        first LIST: an empty cache must never be read as "no pods" (that would unassign every address)."""
        if not self._synced.is_set():
            raise NotSynced(f"{self.name} cache has not completed its first list yet")
        with self._lock:
            return list(self._store.values())

    def __len__(self) -> int:
        with self._lock:
            return len(self._store)

    def update_local(self, uid: str, change: Callable[[Obj], Obj]) -> None:
        """Apply our own accepted write to the cached copy (the watch brings the server's copy soon after), so
        the next pass does not send the same write again."""
        with self._lock:
            if uid in self._store:
                self._store[uid] = change(self._store[uid])

    # ---- the loop

    def run(self, stop: threading.Event) -> None:
        failures = 0
        need_list = True
        while not stop.is_set():
            try:
                if need_list:
                    self._relist()
                    need_list = False
                self.watches += 1
                for event in self._watch(self.resource_version, self.watch_timeout):
                    if stop.is_set():
                        return
                    self._handle(event)
                    failures = 0
            except Gone:
                need_list = True
                log.info(json.dumps({"msg": "watch expired (410 Gone); relisting", "cache": self.name}))
                continue
            except Exception as err:  # noqa: BLE001 - anything else: back off, then watch again
                if status_of(err) == 410:
                    need_list = True
                    continue
                failures += 1
                delay = self._rng() * min(self.backoff_max, self.backoff_base * 2 ** (failures - 1))
                log.warning(json.dumps({"msg": "watch failed; retrying", "cache": self.name, "error": str(err)[:300],
                                        "retryInSeconds": round(delay, 2)}))
                stop.wait(delay)

    def _relist(self) -> None:
        items, resource_version = self._list()
        self.lists += 1
        fresh = {}
        for item in items:
            obj = self._strip(item)
            fresh[_uid(obj)] = obj
        with self._lock:
            old, self._store = self._store, fresh
            self.resource_version = resource_version
        self.last_event = time.monotonic()
        self._synced.set()
        for uid in old.keys() - fresh.keys():
            self._on_change(old[uid], None)
        for uid, obj in fresh.items():
            if old.get(uid) != obj:
                self._on_change(old.get(uid), obj)

    def _handle(self, event: Obj) -> None:
        kind = event.get("type")
        obj = event.get("object") or {}
        self.last_event = time.monotonic()
        if kind == "ERROR":
            code = obj.get("code")
            if code == 410:
                raise Gone(obj.get("message") or "410 Gone")
            raise RuntimeError(f"watch ERROR event: {obj.get('code')} {obj.get('message') or ''}".strip())
        version = (obj.get("metadata") or {}).get("resourceVersion")
        if kind == "BOOKMARK":
            if version:
                self.resource_version = version
            return
        stripped = self._strip(obj)
        uid = _uid(stripped)
        with self._lock:
            old = self._store.get(uid)
            if kind == "DELETED":
                self._store.pop(uid, None)
            elif kind in ("ADDED", "MODIFIED"):
                self._store[uid] = stripped
            if version:
                self.resource_version = version
        if kind == "DELETED":
            if old is not None:
                self._on_change(old, None)
        elif kind in ("ADDED", "MODIFIED") and old != stripped:
            self._on_change(old, stripped)


def _uid(obj: Obj) -> str:
    meta = obj.get("metadata") or {}
    return meta.get("uid") or f"{meta.get('namespace', '')}/{meta.get('name', '')}"
