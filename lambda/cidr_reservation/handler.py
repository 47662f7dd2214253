"""CloudFormation custom resource `Custom::SubnetCidrReservation` (`cidr_reservation.handler.handler`).

Why it exists: the native `AWS::EC2::SubnetCidrReservation` is missing from CloudFormation's registry in most
regions, while the EC2 API behind it (CreateSubnetCidrReservation / DeleteSubnetCidrReservation) exists in every
region. Calling the API gives the same behaviour everywhere.

Properties: `SubnetId`, `Cidr`, `ReservationType` (`explicit` or `prefix`), `Description`.
Physical id: the reservation id (`scr-...`). Every reservation carries the tag `eks-multus/reservation` =
`<stack id>/<logical id>`, which lets a repeated Create find its own reservation instead of failing.

- Create: reuse this resource's own reservation if a retried Create already made it; if the same CIDR is
  reserved by something else with no tag of ours (a 0.1.0 deployment's native resource, which CloudFormation
  deletes after this update), take it over: delete it and create ours. Anything else that overlaps fails with
  EC2's own message.
- Update: subnet, CIDR and type unchanged -> keep the reservation (a new description is not applied: EC2 cannot
  change it in place). Otherwise delete the old reservation first (the new range may overlap it) and create
  the new one; CloudFormation's later Delete of the old id then finds nothing, which counts as done.
- Delete: delete by id; an id that no longer exists, or the placeholder of a Create that failed, is done.

Whatever happens, exactly one response goes to CloudFormation's pre-signed URL and one JSON log line says what
was done, so a stack never waits an hour for an answer.
"""

from __future__ import annotations

import json
import logging
import urllib.request
from typing import Any

LOG = logging.getLogger("cidr_reservation")
LOG.setLevel(logging.INFO)

OWNER_TAG = "eks-multus/reservation"
RESOURCE_TYPE = "subnet-cidr-reservation"
NOT_FOUND = "InvalidSubnetCidrReservationID.NotFound"
# The physical id of a Create that failed before a reservation existed; Delete treats it as nothing to do.
FAILED_PREFIX = "failed-"
RESPONSE_TIMEOUT_SECONDS = 30


class ReservationError(Exception):
    """The request cannot be served (bad properties); the message goes to CloudFormation."""


def owner(event: dict[str, Any]) -> str:
    return f"{event['StackId']}/{event['LogicalResourceId']}"


def _props(props: dict[str, Any]) -> tuple[str, str, str, str]:
    try:
        subnet, cidr, kind = props["SubnetId"], props["Cidr"], props.get("ReservationType", "explicit")
    except (KeyError, TypeError) as exc:
        raise ReservationError(f"missing property {exc}") from None
    if kind not in ("explicit", "prefix"):
        raise ReservationError(f"ReservationType {kind!r} is not explicit or prefix")
    return subnet, cidr, kind, props.get("Description", "")


def _reservations(ec2: Any, subnet_id: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    kwargs: dict[str, Any] = {"SubnetId": subnet_id}
    while True:
        page = ec2.get_subnet_cidr_reservations(**kwargs)
        found += page.get("SubnetIpv4CidrReservations", []) + page.get("SubnetIpv6CidrReservations", [])
        if not page.get("NextToken"):
            return found
        kwargs["NextToken"] = page["NextToken"]


def _tags(reservation: dict[str, Any]) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in reservation.get("Tags") or []}


def _delete(ec2: Any, reservation_id: str) -> bool:
    """Delete a reservation; False when it did not exist (already deleted counts as deleted)."""
    from botocore.exceptions import ClientError

    try:
        ec2.delete_subnet_cidr_reservation(SubnetCidrReservationId=reservation_id)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") == NOT_FOUND:
            return False
        raise
    return True


def create(ec2: Any, event: dict[str, Any], props: dict[str, Any], record: dict[str, Any]) -> str:
    subnet, cidr, kind, description = _props(props)
    me = owner(event)
    for existing in _reservations(ec2, subnet):
        if existing.get("Cidr") != cidr or existing.get("ReservationType") != kind:
            continue
        if _tags(existing).get(OWNER_TAG) == me:
            record["result"] = "reused"  # a repeated Create: this resource made it already
            return existing["SubnetCidrReservationId"]
        if OWNER_TAG not in _tags(existing):
            _delete(ec2, existing["SubnetCidrReservationId"])
            record["took_over"] = existing["SubnetCidrReservationId"]
    created = ec2.create_subnet_cidr_reservation(
        SubnetId=subnet, Cidr=cidr, ReservationType=kind, Description=description,
        TagSpecifications=[{"ResourceType": RESOURCE_TYPE, "Tags": [{"Key": OWNER_TAG, "Value": me}]}],
    )["SubnetCidrReservation"]
    record.setdefault("result", "created")
    return created["SubnetCidrReservationId"]


def update(ec2: Any, event: dict[str, Any], record: dict[str, Any]) -> str:
    new, old = _props(event["ResourceProperties"]), _props(event.get("OldResourceProperties") or {})
    physical_id = event["PhysicalResourceId"]
    if new[:3] == old[:3] and not physical_id.startswith(FAILED_PREFIX):
        record["result"] = "unchanged"
        return physical_id
    if not physical_id.startswith(FAILED_PREFIX):
        record["deleted_old"] = _delete(ec2, physical_id)
    return create(ec2, event, event["ResourceProperties"], record)


def delete(ec2: Any, event: dict[str, Any], record: dict[str, Any]) -> str:
    physical_id = event.get("PhysicalResourceId", "")
    if not physical_id.startswith("scr-"):
        record["result"] = "nothing to delete"
    else:
        record["result"] = "deleted" if _delete(ec2, physical_id) else "already gone"
    return physical_id


def handle(ec2: Any, event: dict[str, Any], record: dict[str, Any]) -> str:
    kind = event["RequestType"]
    if kind == "Create":
        return create(ec2, event, event["ResourceProperties"], record)
    if kind == "Update":
        return update(ec2, event, record)
    if kind == "Delete":
        return delete(ec2, event, record)
    raise ReservationError(f"unknown RequestType {kind!r}")


def send_response(event: dict[str, Any], body: dict[str, Any]) -> None:
    """PUT the result to CloudFormation's pre-signed S3 URL (an empty Content-Type, as S3 signed it)."""
    data = json.dumps(body).encode()
    request = urllib.request.Request(event["ResponseURL"], data=data, method="PUT",
                                     headers={"Content-Type": "", "Content-Length": str(len(data))})
    with urllib.request.urlopen(request, timeout=RESPONSE_TIMEOUT_SECONDS) as response:  # noqa: S310 - AWS URL
        response.read()


def handler(event: dict[str, Any], context: Any = None, *, ec2: Any = None) -> dict[str, Any]:
    """Lambda handler; `ec2` is for tests (Lambda calls handler(event, context))."""
    record: dict[str, Any] = {"request": event.get("RequestType"), "resource": event.get("LogicalResourceId"),
                              "properties": event.get("ResourceProperties")}
    status, reason = "SUCCESS", ""
    physical_id = event.get("PhysicalResourceId") or f"{FAILED_PREFIX}{event.get('RequestId', 'unknown')}"
    try:
        if ec2 is None:
            import boto3

            ec2 = boto3.client("ec2")
        physical_id = handle(ec2, event, record)
    except Exception as exc:  # noqa: BLE001 - every failure must still answer CloudFormation
        status, reason = "FAILED", f"{type(exc).__name__}: {exc}"
        record["result"] = "failed"
    record.update(status=status, reason=reason, physical_id=physical_id)
    body = {
        "Status": status, "Reason": reason or f"see log stream {getattr(context, 'log_stream_name', '-')}",
        "PhysicalResourceId": physical_id, "StackId": event.get("StackId"), "RequestId": event.get("RequestId"),
        "LogicalResourceId": event.get("LogicalResourceId"), "NoEcho": False,
        "Data": {"SubnetCidrReservationId": physical_id} if status == "SUCCESS" else {},
    }
    try:
        send_response(event, body)
    except Exception as exc:  # noqa: BLE001 - logged; CloudFormation then times out, nothing else can be done
        record["response_error"] = f"{type(exc).__name__}: {exc}"
    failed = status == "FAILED" or "response_error" in record
    LOG.log(logging.WARNING if failed else logging.INFO, json.dumps(record, sort_keys=True, default=str))
    return record
