"""The `Custom::SubnetCidrReservation` handler end to end: moto's EC2, and a real HTTP server on loopback standing in
for CloudFormation's pre-signed response URL (the handler PUTs its answer there, as in AWS).

What moto 5.2.5 does differently from EC2, and how this file deals with it:
- `CreateSubnetCidrReservation` ignores `TagSpecifications` and `Description` (a reservation comes back with no
  tags). The `moto_tags` fixture patches moto's reservation model to store the tags, as EC2 does; without it the
  handler could not recognise its own reservation on a repeated Create.
- moto checks overlap with existing reservations and the subnet's CIDR like EC2; it evaluates no IAM (the
  policy is asserted on the synthesized template in tests/test_network.py), and its ENIs do not avoid reserved
  ranges (not needed here).
- Real CloudFormation sends the same Create again only when a Lambda invocation is retried; here the test sends it.
"""

from __future__ import annotations

import http.server
import json
import threading
import uuid

import boto3
import pytest
from cidr_reservation import handler as cr
from moto import mock_aws

STACK_ID = "arn:aws:cloudformation:us-west-2:123456789012:stack/eks-multus-cluster/11111111-2222-3333-4444-555555555555"
REGION = "us-west-2"


class ResponseServer:
    """Collects the PUT bodies CloudFormation would receive; `status` makes it answer with an error instead."""

    def __init__(self) -> None:
        self.bodies: list[dict] = []
        self.headers: list[dict] = []
        self.status = 200
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_PUT(self):  # noqa: N802 - http.server's naming
                length = int(self.headers["Content-Length"])
                outer.bodies.append(json.loads(self.rfile.read(length)))
                outer.headers.append(dict(self.headers))
                self.send_response(outer.status)
                self.end_headers()

            def log_message(self, *args):  # quiet
                pass

        self.server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/response?X-Amz-Signature=abc"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def responses():
    server = ResponseServer()
    yield server
    server.close()


@pytest.fixture
def moto_tags(monkeypatch):
    """moto drops TagSpecifications on CreateSubnetCidrReservation; store them as EC2 does."""
    from moto.ec2.models import subnets

    original = subnets.SubnetCidrReservation.__init__

    def init(self, ec2_backend, *args, **kwargs):
        original(self, ec2_backend, *args, **kwargs)
        for spec in self.tag_specifications:
            if spec.get("ResourceType") == "subnet-cidr-reservation":
                tags = spec.get("Tags") or spec.get("Tag") or []
                ec2_backend.create_tags([self.id], {t["Key"]: t["Value"] for t in tags})

    monkeypatch.setattr(subnets.SubnetCidrReservation, "__init__", init)


@pytest.fixture
def ec2(aws_credentials, moto_tags):
    with mock_aws():
        yield boto3.client("ec2", region_name=REGION)


@pytest.fixture
def subnet(ec2):
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    return ec2.create_subnet(VpcId=vpc, CidrBlock="10.0.4.0/24", AvailabilityZone="us-west-2a")["Subnet"]["SubnetId"]


def event(responses, request, props, *, physical_id=None, old=None, logical="NetworkPodRangeReservation1Az1ABCD1234"):
    ev = {
        "RequestType": request, "ServiceToken": "arn:aws:lambda:us-west-2:123456789012:function:f",
        "ResponseURL": responses.url, "StackId": STACK_ID, "RequestId": str(uuid.uuid4()),
        "LogicalResourceId": logical, "ResourceType": "Custom::SubnetCidrReservation",
        "ResourceProperties": {"ServiceToken": "arn:aws:lambda:us-west-2:123456789012:function:f", **props},
    }
    if physical_id is not None:
        ev["PhysicalResourceId"] = physical_id
    if old is not None:
        ev["OldResourceProperties"] = {"ServiceToken": "arn:aws:lambda:us-west-2:123456789012:function:f", **old}
    return ev


def props(subnet, cidr="10.0.4.128/25", description="Multus pod addresses of network multus1 in us-west-2a"):
    # CloudFormation hands every property to the function as a string.
    return {"SubnetId": subnet, "Cidr": cidr, "ReservationType": "explicit", "Description": description}


def reservations(ec2, subnet):
    return [(r["Cidr"], r["ReservationType"], {t["Key"]: t["Value"] for t in r["Tags"]}, r["SubnetCidrReservationId"])
            for r in ec2.get_subnet_cidr_reservations(SubnetId=subnet)["SubnetIpv4CidrReservations"]]


def run(ec2, responses, ev):
    cr.handler(ev, None, ec2=ec2)
    body = responses.bodies[-1]
    assert (body["RequestId"], body["StackId"], body["LogicalResourceId"]) == (
        ev["RequestId"], ev["StackId"], ev["LogicalResourceId"])
    return body


def test_create_reserves_the_range_tagged_as_this_resource_and_answers_cloudformation(ec2, subnet, responses):
    body = run(ec2, responses, event(responses, "Create", props(subnet)))
    ((cidr, kind, tags, rid),) = reservations(ec2, subnet)
    assert (body["Status"], body["PhysicalResourceId"], cidr, kind) == ("SUCCESS", rid, "10.0.4.128/25", "explicit")
    assert tags == {cr.OWNER_TAG: f"{STACK_ID}/NetworkPodRangeReservation1Az1ABCD1234"}
    assert body["Data"] == {"SubnetCidrReservationId": rid}
    assert responses.headers[-1].get("Content-Type", "") == ""  # what the pre-signed S3 URL was signed for


def test_a_repeated_create_reuses_its_own_reservation(ec2, subnet, responses):
    ev = event(responses, "Create", props(subnet))
    first = run(ec2, responses, ev)
    again = run(ec2, responses, {**ev, "RequestId": str(uuid.uuid4())})
    assert (again["Status"], again["PhysicalResourceId"]) == ("SUCCESS", first["PhysicalResourceId"])
    assert len(reservations(ec2, subnet)) == 1


def test_upgrade_from_the_native_type_takes_the_range_over_and_survives_the_old_resources_delete(
        ec2, subnet, responses):
    # 0.1.0 reserved the range with AWS::EC2::SubnetCidrReservation (no tags). CloudFormation creates the new
    # custom resource first and deletes the old native resource in the cleanup phase.
    native = ec2.create_subnet_cidr_reservation(SubnetId=subnet, Cidr="10.0.4.128/25",
                                                ReservationType="explicit")["SubnetCidrReservation"]
    body = run(ec2, responses, event(responses, "Create", props(subnet)))
    assert body["Status"] == "SUCCESS"
    ((_, _, tags, rid),) = reservations(ec2, subnet)
    assert rid == body["PhysicalResourceId"] != native["SubnetCidrReservationId"] and cr.OWNER_TAG in tags
    # The native resource's delete: EC2 answers NotFound, which CloudFormation counts as deleted.
    with pytest.raises(ec2.exceptions.ClientError, match=cr.NOT_FOUND):
        ec2.delete_subnet_cidr_reservation(SubnetCidrReservationId=native["SubnetCidrReservationId"])
    assert [r[3] for r in reservations(ec2, subnet)] == [rid]


def test_a_range_reserved_by_another_stack_is_not_taken(ec2, subnet, responses):
    other = ec2.create_subnet_cidr_reservation(
        SubnetId=subnet, Cidr="10.0.4.128/25", ReservationType="explicit",
        TagSpecifications=[{"ResourceType": "subnet-cidr-reservation",
                            "Tags": [{"Key": cr.OWNER_TAG, "Value": "another-stack/X"}]}])["SubnetCidrReservation"]
    body = run(ec2, responses, event(responses, "Create", props(subnet)))
    assert body["Status"] == "FAILED" and "overlap" in body["Reason"]
    assert body["PhysicalResourceId"].startswith(cr.FAILED_PREFIX)
    assert [r[3] for r in reservations(ec2, subnet)] == [other["SubnetCidrReservationId"]]
    # CloudFormation then deletes the failed resource by the id we answered: nothing of the other stack goes.
    gone = run(ec2, responses, event(responses, "Delete", props(subnet), physical_id=body["PhysicalResourceId"]))
    assert gone["Status"] == "SUCCESS"
    assert [r[3] for r in reservations(ec2, subnet)] == [other["SubnetCidrReservationId"]]


def test_update_with_only_a_new_description_keeps_the_reservation(ec2, subnet, responses):
    created = run(ec2, responses, event(responses, "Create", props(subnet)))
    rid = created["PhysicalResourceId"]
    body = run(ec2, responses, event(responses, "Update", props(subnet, description="renamed"), physical_id=rid,
                                     old=props(subnet)))
    assert (body["Status"], body["PhysicalResourceId"]) == ("SUCCESS", rid)
    assert [r[3] for r in reservations(ec2, subnet)] == [rid]


def test_update_to_an_overlapping_range_replaces_it_and_the_old_delete_is_harmless(ec2, subnet, responses):
    rid = run(ec2, responses, event(responses, "Create", props(subnet)))["PhysicalResourceId"]
    # podRangePrefixLength 25 -> 26: the new range lies inside the old one, so the old must go first.
    body = run(ec2, responses, event(responses, "Update", props(subnet, cidr="10.0.4.192/26"), physical_id=rid,
                                     old=props(subnet)))
    assert body["Status"] == "SUCCESS" and body["PhysicalResourceId"] != rid
    assert [(r[0], r[3]) for r in reservations(ec2, subnet)] == [("10.0.4.192/26", body["PhysicalResourceId"])]
    cleanup = run(ec2, responses, event(responses, "Delete", props(subnet), physical_id=rid))
    assert cleanup["Status"] == "SUCCESS"
    assert [r[3] for r in reservations(ec2, subnet)] == [body["PhysicalResourceId"]]


def test_delete_removes_the_reservation_and_a_repeated_delete_succeeds(ec2, subnet, responses):
    rid = run(ec2, responses, event(responses, "Create", props(subnet)))["PhysicalResourceId"]
    assert run(ec2, responses, event(responses, "Delete", props(subnet), physical_id=rid))["Status"] == "SUCCESS"
    assert reservations(ec2, subnet) == []
    assert run(ec2, responses, event(responses, "Delete", props(subnet), physical_id=rid))["Status"] == "SUCCESS"


def test_bad_input_fails_with_the_reason_and_still_answers(ec2, subnet, responses):
    outside = run(ec2, responses, event(responses, "Create", props(subnet, cidr="10.9.0.0/25")))
    assert outside["Status"] == "FAILED" and "10.0.4.0/24" in outside["Reason"]
    missing = run(ec2, responses, event(responses, "Create", {"SubnetId": subnet}))
    assert missing["Status"] == "FAILED" and "Cidr" in missing["Reason"]
    no_subnet = run(ec2, responses, event(responses, "Create", props("subnet-0123456789abcdef0")))
    assert no_subnet["Status"] == "FAILED"
    assert reservations(ec2, subnet) == []


def test_an_unreachable_response_url_is_logged_not_raised(ec2, subnet, responses, caplog):
    responses.status = 403  # e.g. an expired pre-signed URL
    record = cr.handler(event(responses, "Create", props(subnet)), None, ec2=ec2)
    assert record["status"] == "SUCCESS" and "HTTPError" in record["response_error"]
    assert any("response_error" in r.getMessage() and r.levelname == "WARNING" for r in caplog.records)
