"""Lambda entry point (`eni_attacher.handler.handler`): parse the event, load the config, call the logic, log once.

Whatever happens, the function writes exactly one JSON log line saying what it did and why. That line is also a
CloudWatch embedded-metric-format document (`_aws` key): metrics `LaunchAbandoned`, `CompletionFailed` and
`EnisSwept` per Auto Scaling group, which the construct's alarms watch. It goes to stdout unprefixed, because
CloudWatch only extracts metrics from a log event that is a JSON object as a whole.

- A lifecycle event for a hook this function does not serve (another tool's hook on the same group, such as
  aws-node-termination-handler's) is ignored with one log line: it is never completed and nothing is created,
  detached or deleted for it.
- A launch it cannot serve is completed with ABANDON whenever the event carries enough to complete it, so no
  lifecycle hook of ours is left waiting for its timeout.
- If CompleteLifecycleAction itself fails (after botocore's retries), the line is logged and the handler raises,
  so Lambda retries the idempotent invocation and finally sends the event to the dead-letter queue.
- `{"eksMultusAction": "sweep"}` (the scheduled rule's input) runs the sweeper; a sweep that failed raises after its
  log line too, so the function's error alarm sees it.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from typing import Any

from eni_attacher import lifecycle
from eni_attacher.adapter import Aws, Clients, Clock, Settings, make_clients
from eni_attacher.planning import (
    ConfigError,
    EventError,
    LifecycleEvent,
    load_config,
    parse_event,
    served_hooks,
)

METRIC_NAMESPACE = "EksMultus/EniAttacher"
SWEEP_EVENT = {"eksMultusAction": "sweep"}


class _Stdout(logging.Handler):
    """Writes the bare message to the current sys.stdout (Lambda ships it to CloudWatch Logs unprefixed)."""

    def emit(self, record: logging.LogRecord) -> None:
        sys.stdout.write(record.getMessage() + "\n")
        sys.stdout.flush()


LOG = logging.getLogger("eni_attacher")
LOG.setLevel(logging.INFO)
if not any(h.get_name() == "eni_attacher-stdout" for h in LOG.handlers):  # once, even if imported twice
    _stdout = _Stdout()
    _stdout.set_name("eni_attacher-stdout")
    LOG.addHandler(_stdout)
LOG.propagate = False  # the runtime's root handler would prefix the line and break the metric document

_clients: Clients | None = None  # created on first use (never at import), reused by warm invocations


class CompletionFailed(RuntimeError):
    """CompleteLifecycleAction failed after botocore's retries; raised after the log line so Lambda retries."""


class SweepFailed(RuntimeError):
    """The sweeper could not list or delete leftovers; raised after the log line (error alarm, then retries)."""


def _default_clients(settings: Settings) -> Clients:
    global _clients
    if _clients is None:
        _clients = make_clients(settings)
    return _clients


def handler(event: Any, context: Any = None, *, clients: Clients | None = None,
            clock: Clock | None = None) -> dict[str, Any]:
    """Lambda handler. `clients` and `clock` are for tests and the benchmark; Lambda calls handler(event, context)."""
    settings = Settings.from_env(os.environ)
    clock = clock or Clock()
    state: dict[str, Any] = {}
    try:
        record = _handle(event, os.environ, settings, clients, state, clock, _deadline(context, settings, clock))
    except Exception as exc:  # noqa: BLE001 - last resort: never leave the hook waiting on an unhandled error
        record = {"action": "unknown", "result": "error", "reason": f"unexpected {type(exc).__name__}: {exc}",
                  "errors": []}
        ev = state.get("event")
        if ev is not None and state.get("aws") is not None and state.get("ours"):
            record.update(action=ev.kind, instance=ev.instance_id, asg=ev.asg_name)
            lifecycle.complete(state["aws"], ev, "CONTINUE" if ev.kind == "terminate" else "ABANDON", record)
    record = _with_metrics(record, clock)
    _emit(record)
    if record.get("lifecycle") == "failed":
        raise CompletionFailed(f"CompleteLifecycleAction failed for {record.get('instance')}: "
                               f"{'; '.join(e for e in record['errors'] if 'CompleteLifecycleAction' in e)}")
    if record.get("action") == "sweep" and record.get("result") == "error":
        raise SweepFailed(f"sweep of {record.get('asg')} failed: {record.get('reason')}; {record.get('errors')}")
    return record


def _deadline(context: Any, settings: Settings, clock: Clock) -> float:
    """When work must stop: the invocation's remaining time less the margin kept for cleanup and completion."""
    remaining = settings.budget_seconds
    get_remaining = getattr(context, "get_remaining_time_in_millis", None)
    if callable(get_remaining):
        remaining = get_remaining() / 1000
    return clock.monotonic() + remaining - settings.margin_seconds


def _handle(event: Any, env: Any, settings: Settings, clients: Clients | None, state: dict[str, Any],
            clock: Clock, deadline: float) -> dict:
    def aws() -> Aws:
        if "aws" not in state:
            state["aws"] = Aws(clients or _default_clients(settings), settings)
        return state["aws"]

    if event == SWEEP_EVENT:
        try:
            cfg = load_config(env)
        except ConfigError as exc:
            return {"action": "sweep", "asg": exc.asg_name, "result": "error",
                    "reason": f"invalid configuration: {exc}", "deleted": [], "errors": []}
        return lifecycle.sweep(aws(), cfg, clock=clock)

    hooks = served_hooks(env)
    try:
        ev = parse_event(event)
    except EventError as exc:
        return _malformed(exc, env, aws, hooks)
    state["event"] = ev
    if hooks.get(ev.kind) != ev.hook_name:
        return _ignored(ev, f"hook {ev.hook_name!r} is not this function's {ev.kind} hook "
                            f"({hooks.get(ev.kind) or 'unset'!r}); left for its owner")
    try:
        cfg = load_config(env)
    except ConfigError as exc:
        if exc.asg_name and exc.asg_name != ev.asg_name:
            return _ignored(ev, f"event for {ev.asg_name}, this function serves {exc.asg_name}")
        state["ours"] = True
        record = _base(ev, f"invalid configuration: {exc}")
        lifecycle.complete(aws(), ev, "CONTINUE" if ev.kind == "terminate" else "ABANDON", record)
        return record
    if ev.asg_name != cfg.asg_name:
        return _ignored(ev, f"event for {ev.asg_name}, this function serves {cfg.asg_name}")
    state["ours"] = True
    if ev.kind == "launch":
        return lifecycle.launch(aws(), cfg, ev, clock=clock, deadline=deadline)
    return lifecycle.terminate(aws(), cfg, ev)


def _base(ev: LifecycleEvent, reason: str) -> dict[str, Any]:
    return {"action": ev.kind, "instance": ev.instance_id, "asg": ev.asg_name, "hook": ev.hook_name,
            "result": None, "reason": reason, "created": [], "attached": [], "deleted": [], "errors": []}


def _ignored(ev: LifecycleEvent, reason: str) -> dict[str, Any]:
    return {**_base(ev, reason), "result": "ignored"}


def _malformed(exc: EventError, env: Any, aws, hooks: dict[str, str]) -> dict[str, Any]:
    t = exc.target
    ev = LifecycleEvent(kind=t.get("kind") or "unknown", instance_id=t.get("instance_id") or "",
                        asg_name=t.get("asg_name") or "", hook_name=t.get("hook_name") or "",
                        token=t.get("token") or "")
    record = {**_base(ev, f"malformed event: {exc}"), "instance": t.get("instance_id")}
    served = (env.get("ASG_NAME") or "").strip()
    if not exc.completable():
        record.update(result="ignored", reason=f"{record['reason']}; nothing to complete")
        return record
    if ev.hook_name not in hooks.values():
        record.update(result="ignored", reason=f"{record['reason']}; hook {ev.hook_name!r} is not ours")
        return record
    if served and ev.asg_name != served:
        record.update(result="ignored", reason=f"{record['reason']}; event for {ev.asg_name}, not {served}")
        return record
    # A launch (or an unknown transition) is abandoned; a terminate continues. Both let a termination proceed.
    lifecycle.complete(aws(), ev, "CONTINUE" if ev.kind == "terminate" else "ABANDON", record)
    return record


def _with_metrics(record: dict[str, Any], clock: Clock) -> dict[str, Any]:
    """The record as an embedded-metric-format document (metrics only for a group we serve)."""
    asg = record.get("asg")
    if not asg or record.get("result") == "ignored":
        return record
    values = {"CompletionFailed": int(record.get("lifecycle") == "failed")}
    if record.get("action") == "launch":
        values["LaunchAbandoned"] = int(record.get("result") == "ABANDON")
    if record.get("action") == "sweep":
        values["EnisSwept"] = len(record.get("deleted", []))
    return {**record, **values, "AutoScalingGroupName": asg, "_aws": {
        "Timestamp": int(clock.time() * 1000),
        "CloudWatchMetrics": [{"Namespace": METRIC_NAMESPACE, "Dimensions": [["AutoScalingGroupName"]],
                               "Metrics": [{"Name": name, "Unit": "Count"} for name in values]}],
    }}


def _emit(record: dict[str, Any]) -> None:
    failed = record.get("result") in ("ABANDON", "error") or record.get("errors")
    LOG.log(logging.WARNING if failed else logging.INFO, json.dumps(record, sort_keys=True, default=str))
