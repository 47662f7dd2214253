"""Carries out launch, terminate and sweep plans through the adapter and completes the lifecycle action.

Every function returns the one record the handler logs; none raises for an AWS error. A completion that failed
is marked in the record (`lifecycle: "failed"`); the handler raises after logging it, so Lambda retries the
(idempotent) invocation and, after its retries, the event lands in the dead-letter queue.

Launch patience: an instance that is still `pending` is not a failure. The launch polls DescribeInstances every
`poll_seconds` (5 s), sends RecordLifecycleActionHeartbeat every `heartbeat_seconds` so the hook does not time
out, and retries transient errors with the whole idempotent plan, until `deadline` (the function's remaining
time less a margin for cleanup). It ABANDONs only when the instance cannot get its ENIs (gone, subnet full, ENI
limit, a permission missing, a device index taken) or the deadline is reached.
"""

from __future__ import annotations

from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from eni_attacher.adapter import Aws, Clock, error_code
from eni_attacher.planning import (
    EVENT_TIME_TAG,
    INSTANCE_TAG,
    OWNER_TAG,
    Config,
    Eni,
    LifecycleEvent,
    PlanError,
    SweepCandidate,
    is_transient,
    parse_time,
    plan_launch,
    plan_sweep,
    plan_terminate,
)

AWS_ERRORS = (ClientError, BotoCoreError)


class StepFailed(Exception):
    def __init__(self, step: str, exc: BaseException) -> None:
        super().__init__(f"{step} failed: {error_code(exc)}: {exc}")
        self.step = step
        self.code = error_code(exc)


class ActionEnded(Exception):
    """The lifecycle action is no longer active (completed elsewhere, or timed out): stop working on it."""


def _step(step: str, fn, *args, **kwargs):
    try:
        return fn(*args, **kwargs)
    except AWS_ERRORS as exc:
        raise StepFailed(step, exc) from exc


def _record(ev: LifecycleEvent) -> dict[str, Any]:
    return {"action": ev.kind, "instance": ev.instance_id, "asg": ev.asg_name, "hook": ev.hook_name,
            "result": None, "reason": None, "created": [], "attached": [], "deleted": [], "errors": []}


def _owned(aws: Aws, cfg: Config, instance_id: str) -> list[Eni]:
    return aws.owned_enis(owner_tag=OWNER_TAG, owner=cfg.owner, instance_tag=INSTANCE_TAG, instance_id=instance_id)


def complete(aws: Aws, ev: LifecycleEvent, result: str, record: dict[str, Any]) -> None:
    """Complete the action, noting in `record` what happened; never raises."""
    record["result"] = result
    try:
        record["lifecycle"] = aws.complete(asg_name=ev.asg_name, hook_name=ev.hook_name, token=ev.token,
                                           instance_id=ev.instance_id, result=result)
    except AWS_ERRORS as exc:  # botocore has already retried throttling and 5xx errors 8 times
        record["lifecycle"] = "failed"
        record["errors"].append(f"CompleteLifecycleAction failed: {error_code(exc)}: {exc}")


def remove_enis(aws: Aws, enis: list[tuple[str, str | None]], record: dict[str, Any],
                wait: tuple[str, ...] = ()) -> None:
    """Force-detach (when an attachment id is given), wait until available, delete. Errors go to the record."""
    to_detach = {eni_id: attachment_id for eni_id, attachment_id in enis if attachment_id}
    settling = [eni_id for eni_id in wait if eni_id not in to_detach]
    for eni_id, attachment_id in to_detach.items():
        try:
            aws.detach(attachment_id)
            settling.append(eni_id)
        except AWS_ERRORS as exc:
            record["errors"].append(f"DetachNetworkInterface {eni_id} failed: {error_code(exc)}: {exc}")
    if settling:
        try:
            aws.wait_available(settling)
        except AWS_ERRORS as exc:
            record["errors"].append(f"waiting for {settling} to become available failed: {error_code(exc)}: {exc}")
    for eni_id, _ in enis:
        try:
            aws.delete(eni_id)
            record["deleted"].append(eni_id)
        except AWS_ERRORS as exc:
            record["errors"].append(f"DeleteNetworkInterface {eni_id} failed: {error_code(exc)}: {exc}")


SWEEP_MIN_AGE_SECONDS = 300.0  # an ENI of a vanished instance is deleted once this old
# No launch attempt works on an ENI this long: the event's maximum age (10 min) plus the function's timeout (10 min).
SWEEP_STALE_AGE_SECONDS = 1800.0


def launch(aws: Aws, cfg: Config, ev: LifecycleEvent, *, clock: Clock | None = None,
           deadline: float | None = None) -> dict[str, Any]:
    clock = clock or Clock()
    settings = aws.settings
    if deadline is None:
        deadline = clock.monotonic() + settings.budget_seconds - settings.margin_seconds
    record = _record(ev)
    record.update(waited_seconds=0, heartbeats=0, attempts=0)
    started = clock.monotonic()
    last_beat = started
    attachments: dict[str, str | None] = {}  # ENI -> attachment id, for every ENI this invocation handled

    def pause(why: str) -> None:
        """Sleep one poll period (heartbeat first when due); PlanError if that would pass the deadline."""
        nonlocal last_beat
        now = clock.monotonic()
        if now + settings.poll_seconds > deadline:
            raise PlanError(f"gave up after {now - started:.0f}s: {why}")
        if now - last_beat >= settings.heartbeat_seconds:
            beat = _step("RecordLifecycleActionHeartbeat", aws.heartbeat, asg_name=ev.asg_name,
                         hook_name=ev.hook_name, token=ev.token, instance_id=ev.instance_id)
            if beat == "no active action":
                raise ActionEnded("the lifecycle action is no longer active (completed elsewhere or timed out)")
            record["heartbeats"] += 1
            last_beat = now
        clock.sleep(settings.poll_seconds)

    try:
        while True:
            try:
                if _attempt(aws, cfg, ev, record, attachments, pause):
                    break
            except StepFailed as exc:
                if not is_transient(exc.code):
                    raise
                record["errors"].append(f"attempt {record['attempts']}: {exc} (transient, retrying)")
                pause(str(exc))
        record["waited_seconds"] = round(clock.monotonic() - started, 1)
        complete(aws, ev, "CONTINUE", record)
        return record
    except ActionEnded as exc:
        record.update(result="gone", reason=str(exc))
        record["waited_seconds"] = round(clock.monotonic() - started, 1)
        remove_enis(aws, list(attachments.items()), record)
        return record
    except (StepFailed, PlanError) as exc:
        record["reason"] = str(exc)
    except Exception as exc:  # noqa: BLE001 - a bug or an unexpected error must still clean up and ABANDON
        record["reason"] = f"unexpected {type(exc).__name__}: {exc}"
    record["waited_seconds"] = round(clock.monotonic() - started, 1)
    # Failure: remove what this invocation created and what earlier attempts left for this instance (the
    # instance is abandoned, so they could only become orphans), then ABANDON.
    remove_enis(aws, list(attachments.items()), record)
    complete(aws, ev, "ABANDON", record)
    return record


def _attempt(aws: Aws, cfg: Config, ev: LifecycleEvent, record: dict[str, Any],
             attachments: dict[str, str | None], pause) -> bool:
    """One pass of the idempotent plan. False: the instance is still pending (after one pause); True: done."""
    instance = _step("DescribeInstances", aws.describe_instance, ev.instance_id)
    if instance is None:
        raise PlanError(f"instance {ev.instance_id} does not exist")
    if instance.state == "pending":  # EC2 attaches only to running (or stopped) instances
        record["pending_polls"] = record.get("pending_polls", 0) + 1
        pause(f"instance {instance.id} is still pending")
        return False
    record["attempts"] += 1  # passes that found the instance running
    owned = _step("DescribeNetworkInterfaces", _owned, aws, cfg, ev.instance_id)
    for eni in owned:
        on = eni.attachment is not None and eni.attachment.instance_id == ev.instance_id
        attachments.setdefault(eni.id, eni.attachment.attachment_id if on else None)
    plan = plan_launch(cfg.networks, instance, owned)
    record["az"] = instance.availability_zone
    # 1. create what is missing (tags at creation, idempotent ClientToken)
    eni_ids: dict[str, str] = {}
    settling = [s.eni_id for s in plan.steps if s.wait_available and s.eni_id]
    for step in plan.steps:
        if step.create:
            eni_id, status = _step("CreateNetworkInterface", aws.create_eni, instance_id=instance.id,
                                   network=step.network, subnet_id=step.subnet_id, owner=cfg.owner,
                                   event_time=ev.time)
            if eni_id not in record["created"]:
                record["created"].append(eni_id)
            attachments.setdefault(eni_id, None)
            if status == "pending":  # EC2 may answer before the ENI is ready; moto never does
                settling.append(eni_id)
        eni_ids[step.network.name] = eni_id if step.create else step.eni_id
    # 2. poll only when EC2 said something is not ready yet (one waiter for all of them)
    if settling:
        _step("waiting for the ENIs to become available", aws.wait_available, settling)
    # 3. per ENI: source/dest check off, attach at the network's device index, DeleteOnTermination on
    for step in plan.steps:
        eni_id = eni_ids[step.network.name]
        if step.disable_source_dest_check:
            _step("ModifyNetworkInterfaceAttribute SourceDestCheck", aws.disable_source_dest_check, eni_id)
        attachment_id = step.attachment_id
        if step.attach:
            attachment_id = _attach(aws, eni_id, instance.id, step.network.device_index)
            attachments[eni_id] = attachment_id
            record["attached"].append(eni_id)
        if step.set_delete_on_termination:
            _step("ModifyNetworkInterfaceAttribute DeleteOnTermination", aws.delete_on_termination,
                  eni_id=eni_id, attachment_id=attachment_id)
    if plan.strays:
        remove_enis(aws, [(e, None) for e in plan.strays], record)
    record["reason"] = "already had its ENIs" if plan.done else f"{len(plan.steps)} ENIs in place"
    return True


def _attach(aws: Aws, eni_id: str, instance_id: str, device_index: int) -> str:
    try:
        return aws.attach(eni_id=eni_id, instance_id=instance_id, device_index=device_index)
    except AWS_ERRORS as exc:
        # A concurrent delivery of the same event may have attached this very ENI (same ClientToken) first.
        try:
            current = aws.eni(eni_id)
        except AWS_ERRORS:
            current = None
        a = current.attachment if current else None
        if a and a.instance_id == instance_id and a.device_index == device_index and a.attachment_id:
            return a.attachment_id
        raise StepFailed("AttachNetworkInterface", exc) from exc


def terminate(aws: Aws, cfg: Config, ev: LifecycleEvent) -> dict[str, Any]:
    """Delete our unattached ENIs of the instance and make sure attached ones have DeleteOnTermination, then
    CONTINUE. Attached ENIs are never detached: the node keeps its Multus traffic while other hooks (a drainer)
    hold it, and EC2 deletes them with the instance. Failures are logged and never block the termination."""
    record = _record(ev)
    try:
        owned = _step("DescribeNetworkInterfaces", _owned, aws, cfg, ev.instance_id)
    except StepFailed as exc:
        record["errors"].append(str(exc))
        record["reason"] = "could not list the instance's ENIs; DeleteOnTermination removes attached ones"
        complete(aws, ev, "CONTINUE", record)
        return record
    plan = plan_terminate(ev.instance_id, owned)
    record["skipped"] = list(plan.skipped)
    record["kept_attached"] = sorted(e.id for e in owned if e.attachment is not None
                                     and e.attachment.instance_id == ev.instance_id)
    for eni_id, attachment_id in plan.set_delete_on_termination:
        try:
            aws.delete_on_termination(eni_id=eni_id, attachment_id=attachment_id)
        except AWS_ERRORS as exc:
            record["errors"].append(f"ModifyNetworkInterfaceAttribute DeleteOnTermination {eni_id} failed: "
                                    f"{error_code(exc)}: {exc} (the sweeper removes it once detached)")
    remove_enis(aws, [(e, None) for e in plan.delete], record)
    if not owned:
        record["reason"] = "no ENIs of ours"
    else:
        record["reason"] = (f"left {len(record['kept_attached'])} attached ENIs to DeleteOnTermination, "
                            f"deleted {len(record['deleted'])} unattached")
    complete(aws, ev, "CONTINUE", record)
    return record


def sweep(aws: Aws, cfg: Config, *, clock: Clock | None = None,
          min_age: float = SWEEP_MIN_AGE_SECONDS, stale_age: float = SWEEP_STALE_AGE_SECONDS) -> dict[str, Any]:
    """Scheduled: delete `available` ENIs of this group that no launch can still use (see `plan_sweep`)."""
    clock = clock or Clock()
    record: dict[str, Any] = {"action": "sweep", "asg": cfg.asg_name, "result": "swept", "reason": None,
                              "deleted": [], "kept": [], "errors": []}
    try:
        raw = _step("DescribeNetworkInterfaces", aws.available_owned_enis, owner_tag=OWNER_TAG, owner=cfg.owner)
        candidates = []
        for eni in raw:
            tags = {t["Key"]: t["Value"] for t in eni.get("TagSet", [])}
            if eni.get("Attachment"):
                continue
            candidates.append(SweepCandidate(eni["NetworkInterfaceId"], tags.get(INSTANCE_TAG),
                                             parse_time(tags.get(EVENT_TIME_TAG))))
        instances = [c.instance_id for c in candidates if c.instance_id]
        states = _step("DescribeInstances", aws.instance_states, instances) if instances else {}
    except StepFailed as exc:
        record.update(result="error", reason=str(exc))
        return record
    delete, record["kept"] = plan_sweep(candidates, states, clock.time(), min_age=min_age, stale_age=stale_age)
    remove_enis(aws, [(e, None) for e in delete], record)
    record["reason"] = f"{len(candidates)} available ENIs of ours, deleted {len(record['deleted'])}"
    if record["errors"]:
        record["result"] = "error"
    return record
