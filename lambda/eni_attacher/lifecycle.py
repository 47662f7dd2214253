"""Carries out launch and terminate plans through the adapter and completes the lifecycle action.

Every function returns the one record the handler logs; none raises for an AWS error.
"""

from __future__ import annotations

from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from eni_attacher.adapter import Aws, error_code
from eni_attacher.planning import (
    INSTANCE_TAG,
    OWNER_TAG,
    Config,
    Eni,
    LifecycleEvent,
    PlanError,
    plan_launch,
    plan_terminate,
)

AWS_ERRORS = (ClientError, BotoCoreError)


class StepFailed(Exception):
    def __init__(self, step: str, exc: BaseException) -> None:
        super().__init__(f"{step} failed: {error_code(exc)}: {exc}")
        self.step = step


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
    except AWS_ERRORS as exc:
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


def launch(aws: Aws, cfg: Config, ev: LifecycleEvent) -> dict[str, Any]:
    record = _record(ev)
    attachments: dict[str, str | None] = {}  # ENI -> attachment id, for every ENI this invocation handled
    try:
        instance = _step("DescribeInstances", aws.describe_instance, ev.instance_id)
        owned = _step("DescribeNetworkInterfaces", _owned, aws, cfg, ev.instance_id)
        for eni in owned:
            on = eni.attachment is not None and eni.attachment.instance_id == ev.instance_id
            attachments[eni.id] = eni.attachment.attachment_id if on else None
        if instance is None:
            raise PlanError(f"instance {ev.instance_id} does not exist")
        plan = plan_launch(cfg.networks, instance, owned)
        record["az"] = instance.availability_zone
        # 1. create what is missing (tags at creation, idempotent ClientToken)
        eni_ids: dict[str, str] = {}
        settling = [s.eni_id for s in plan.steps if s.wait_available and s.eni_id]
        for step in plan.steps:
            if step.create:
                eni_id, status = _step("CreateNetworkInterface", aws.create_eni, instance_id=instance.id,
                                       network=step.network, subnet_id=step.subnet_id, owner=cfg.owner)
                record["created"].append(eni_id)
                attachments.setdefault(eni_id, None)
                if status == "pending":  # EC2 may answer before the ENI is ready; moto never does
                    settling.append(eni_id)
            eni_ids[step.network.name] = eni_id if step.create else step.eni_id
        # 2. poll only when EC2 said something is not ready yet (one waiter for all of them)
        if settling:
            _step("waiting for the ENIs to become available", aws.wait_available, settling)
        if plan.wait_running:
            _step("waiting for the instance to run", aws.wait_running, instance.id)
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
        complete(aws, ev, "CONTINUE", record)
        return record
    except (StepFailed, PlanError) as exc:
        record["reason"] = str(exc)
    except Exception as exc:  # noqa: BLE001 - a bug or an unexpected error must still clean up and ABANDON
        record["reason"] = f"unexpected {type(exc).__name__}: {exc}"
    # Failure: remove what this invocation created and what earlier attempts left for this instance (the
    # instance is abandoned, so they could only become orphans), then ABANDON.
    remove_enis(aws, list(attachments.items()), record)
    complete(aws, ev, "ABANDON", record)
    return record


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
    """Detach (force) and delete our ENIs of the instance, then CONTINUE; failures are logged, never block."""
    record = _record(ev)
    try:
        owned = _step("DescribeNetworkInterfaces", _owned, aws, cfg, ev.instance_id)
    except StepFailed as exc:
        record["errors"].append(str(exc))
        record["reason"] = "could not list the instance's ENIs; DeleteOnTermination removes attached ones"
        complete(aws, ev, "CONTINUE", record)
        return record
    plan = plan_terminate(ev.instance_id, owned)
    record["errors"].extend(plan.skipped)
    detach = dict(plan.detach)
    remove_enis(aws, [(e, detach.get(e)) for e in plan.delete], record, wait=plan.wait)
    if not owned:
        record["reason"] = "no ENIs of ours"
    elif record["errors"]:
        record["reason"] = "some ENIs could not be removed (attached ones go with the instance: DeleteOnTermination)"
    else:
        record["reason"] = f"removed {len(record['deleted'])} ENIs"
    complete(aws, ev, "CONTINUE", record)
    return record
