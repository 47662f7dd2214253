"""Lambda entry point (`eni_attacher.handler.handler`): parse the event, load the config, call the logic, log once.

Whatever happens, the function returns normally and writes exactly one JSON log line saying what it did and why;
a launch it cannot serve is completed with ABANDON whenever the event carries enough to complete it, so no
lifecycle hook is left waiting for its timeout.
"""

from __future__ import annotations

import json
import logging
import os
from typing import Any

from eni_attacher import lifecycle
from eni_attacher.adapter import Aws, Clients, Settings, make_clients
from eni_attacher.planning import ConfigError, EventError, LifecycleEvent, load_config, parse_event

LOG = logging.getLogger("eni_attacher")
LOG.setLevel(logging.INFO)

_clients: Clients | None = None  # created on first use (never at import), reused by warm invocations


def _default_clients(settings: Settings) -> Clients:
    global _clients
    if _clients is None:
        _clients = make_clients(settings)
    return _clients


def handler(event: Any, context: Any = None, *, clients: Clients | None = None) -> dict[str, Any]:
    """Lambda handler. `clients` is for tests and the benchmark; Lambda calls handler(event, context)."""
    settings = Settings.from_env(os.environ)
    state: dict[str, Any] = {}
    try:
        record = _handle(event, os.environ, settings, clients, state)
    except Exception as exc:  # noqa: BLE001 - last resort: never leave the hook waiting on an unhandled error
        record = {"action": "unknown", "result": "error", "reason": f"unexpected {type(exc).__name__}: {exc}",
                  "errors": []}
        ev = state.get("event")
        if ev is not None and state.get("aws") is not None:
            record.update(action=ev.kind, instance=ev.instance_id)
            lifecycle.complete(state["aws"], ev, "CONTINUE" if ev.kind == "terminate" else "ABANDON", record)
    _emit(record)
    return record


def _handle(event: Any, env: Any, settings: Settings, clients: Clients | None, state: dict[str, Any]) -> dict:
    def aws() -> Aws:
        if "aws" not in state:
            state["aws"] = Aws(clients or _default_clients(settings), settings)
        return state["aws"]

    try:
        ev = parse_event(event)
    except EventError as exc:
        return _malformed(exc, env, aws)
    state["event"] = ev
    try:
        cfg = load_config(env)
    except ConfigError as exc:
        if exc.asg_name and exc.asg_name != ev.asg_name:
            return _ignored(ev, f"event for {ev.asg_name}, this function serves {exc.asg_name}")
        record = _base(ev, f"invalid configuration: {exc}")
        lifecycle.complete(aws(), ev, "CONTINUE" if ev.kind == "terminate" else "ABANDON", record)
        return record
    if ev.asg_name != cfg.asg_name:
        return _ignored(ev, f"event for {ev.asg_name}, this function serves {cfg.asg_name}")
    if ev.kind == "launch":
        return lifecycle.launch(aws(), cfg, ev)
    return lifecycle.terminate(aws(), cfg, ev)


def _base(ev: LifecycleEvent, reason: str) -> dict[str, Any]:
    return {"action": ev.kind, "instance": ev.instance_id, "asg": ev.asg_name, "result": None, "reason": reason,
            "created": [], "attached": [], "deleted": [], "errors": []}


def _ignored(ev: LifecycleEvent, reason: str) -> dict[str, Any]:
    return {**_base(ev, reason), "result": "ignored"}


def _malformed(exc: EventError, env: Any, aws) -> dict[str, Any]:
    t = exc.target
    ev = LifecycleEvent(kind=t.get("kind") or "unknown", instance_id=t.get("instance_id") or "",
                        asg_name=t.get("asg_name") or "", hook_name=t.get("hook_name") or "",
                        token=t.get("token") or "")
    record = {**_base(ev, f"malformed event: {exc}"), "instance": t.get("instance_id")}
    served = (env.get("ASG_NAME") or "").strip()
    if not exc.completable():
        record.update(result="ignored", reason=f"{record['reason']}; nothing to complete")
        return record
    if served and ev.asg_name != served:
        record.update(result="ignored", reason=f"{record['reason']}; event for {ev.asg_name}, not {served}")
        return record
    # A launch (or an unknown transition) is abandoned; a terminate continues. Both let a termination proceed.
    lifecycle.complete(aws(), ev, "CONTINUE" if ev.kind == "terminate" else "ABANDON", record)
    return record


def _emit(record: dict[str, Any]) -> None:
    failed = record.get("result") in ("ABANDON", "error") or record.get("errors")
    LOG.log(logging.WARNING if failed else logging.INFO, json.dumps(record, sort_keys=True, default=str))
