"""End to end in moto: the real handler against a VPC, Multus subnets in 2 AZs, an ASG with lifecycle hooks.

moto gaps are closed by the world (see eni_moto_world.py): lifecycle completions are recorded by a patched
CompleteLifecycleAction, DeleteOnTermination is recorded by a patched ModifyNetworkInterfaceAttribute,
AttachNetworkInterface rejects cross-AZ / in-use ENIs and taken device indexes, ClientToken is honoured.
"""

from __future__ import annotations

import importlib
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from botocore.exceptions import ClientError
from eni_attacher import adapter, handler
from eni_attacher.planning import Network, client_token, eni_tags
from eni_moto_world import ASG_NAME, AZS, EVENT_TIME, NETWORKS, assert_has_its_enis


@pytest.mark.parametrize("az", AZS)
def test_launch_gives_one_eni_per_network_in_the_instance_az(world, run, az):
    instance_id = world.launch_instance(az)
    record = run(world.launch_event(instance_id))
    enis = assert_has_its_enis(world, instance_id, az)
    assert record["result"] == "CONTINUE" and record["az"] == az
    assert sorted(record["created"]) == sorted(record["attached"]) == sorted(e["NetworkInterfaceId"] for e in enis)
    assert world.lifecycle.accepted(instance_id) == ["CONTINUE"]
    assert world.orphans() == []


def test_tags_are_set_at_creation_not_by_a_separate_call(world, run):
    calls = []
    world.ec2.meta.events.register("before-parameter-build.ec2.*",
                                   lambda model, params, **_: calls.append((model.name, params)))
    instance_id = world.launch_instance()
    run(world.launch_event(instance_id))
    names = [name for name, _ in calls]
    assert "CreateTags" not in names
    creates = [params for name, params in calls if name == "CreateNetworkInterface"]
    assert [c["ClientToken"] for c in creates] == [client_token(instance_id, n) for n in NETWORKS]
    assert all(c["TagSpecifications"][0]["ResourceType"] == "network-interface" for c in creates)


def test_duplicate_delivery_does_nothing_new_and_treats_completed_action_as_fine(world, run):
    instance_id = world.launch_instance()
    event = world.launch_event(instance_id)
    first = run(event)
    before = {e["NetworkInterfaceId"] for e in world.enis(instance_id)}
    calls = []
    world.ec2.meta.events.register("before-call.ec2.*", lambda model, **_: calls.append(model.name))
    second = run(event)
    assert first["result"] == second["result"] == "CONTINUE"
    assert second["created"] == second["attached"] == [] and second["reason"] == "already had its ENIs"
    assert second["lifecycle"] == "no active action"  # Auto Scaling's ValidationError, logged, not an error
    assert calls == ["DescribeInstances", "DescribeNetworkInterfaces"]  # no writes at all
    assert {e["NetworkInterfaceId"] for e in world.enis(instance_id)} == before
    assert world.lifecycle.results(instance_id) == ["CONTINUE", "CONTINUE"]
    assert world.lifecycle.accepted(instance_id) == ["CONTINUE"]


def test_concurrent_duplicate_deliveries_make_one_set_of_enis(world, run):
    instance_id = world.launch_instance()
    event = world.launch_event(instance_id)
    barrier = threading.Barrier(2)
    reads = []

    def both_read_before_either_writes(**_):  # the worst case for duplicates
        reads.append(1)
        if len(reads) <= 2:
            barrier.wait(5)

    world.ec2.meta.events.register("after-call.ec2.DescribeNetworkInterfaces", both_read_before_either_writes)
    with ThreadPoolExecutor(2) as pool:
        records = list(pool.map(lambda _: handler.handler(event, None, clients=run.clients), range(2)))
    assert sorted(r["result"] for r in records) == ["CONTINUE", "CONTINUE"]
    assert_has_its_enis(world, instance_id, AZS[0])
    assert world.lifecycle.accepted(instance_id) == ["CONTINUE"]
    assert world.orphans() == []


def _create_like_the_lambda(world, instance_id, pos, az=AZS[0], *, subnet=None):
    net = world.networks_config()[pos]
    network = Network(net["name"], net["deviceIndex"], net["subnets"], tuple(net["securityGroupIds"]))
    tags = eni_tags(owner=ASG_NAME, instance_id=instance_id, network=network, event_time=EVENT_TIME)
    return world.ec2.create_network_interface(
        SubnetId=subnet or net["subnets"][az], Groups=net["securityGroupIds"],
        TagSpecifications=[{"ResourceType": "network-interface",
                            "Tags": [{"Key": k, "Value": v} for k, v in tags.items()]}],
    )["NetworkInterface"]["NetworkInterfaceId"]


def test_half_done_attempt_created_but_not_attached_is_finished(world, run):
    instance_id = world.launch_instance()
    leftover = _create_like_the_lambda(world, instance_id, 0)
    record = run(world.launch_event(instance_id))
    assert record["result"] == "CONTINUE"
    assert len(record["created"]) == 1 and leftover in record["attached"]
    enis = assert_has_its_enis(world, instance_id, AZS[0])
    assert enis[0]["NetworkInterfaceId"] == leftover


def test_half_done_attempt_attached_without_delete_on_termination_is_fixed(world, run):
    instance_id = world.launch_instance()
    eni_id = _create_like_the_lambda(world, instance_id, 0)
    world.ec2.attach_network_interface(NetworkInterfaceId=eni_id, InstanceId=instance_id, DeviceIndex=1)
    record = run(world.launch_event(instance_id))
    assert record["result"] == "CONTINUE" and eni_id not in record["attached"] and len(record["created"]) == 1
    assert_has_its_enis(world, instance_id, AZS[0])  # source/dest check off and DeleteOnTermination on now


def test_leftover_duplicates_of_an_earlier_attempt_are_deleted(world, run):
    instance_id = world.launch_instance()
    first = _create_like_the_lambda(world, instance_id, 1)
    duplicate = _create_like_the_lambda(world, instance_id, 1)
    wrong_az = _create_like_the_lambda(world, instance_id, 0, AZS[1])
    record = run(world.launch_event(instance_id))
    assert record["result"] == "CONTINUE"
    assert sorted(record["deleted"]) == sorted([duplicate, wrong_az])
    assert {e["NetworkInterfaceId"] for e in world.enis(instance_id)} >= {first}
    assert_has_its_enis(world, instance_id, AZS[0])
    assert world.orphans() == []


def test_terminate_keeps_attached_enis_and_deletes_only_unattached_leftovers(world, run):
    """Nothing attached is detached: the node keeps its Multus traffic until EC2 terminates it (a drainer's hook
    may hold it in Terminating:Wait), and DeleteOnTermination removes the ENIs then."""
    instance_id = world.launch_instance(AZS[1])
    run(world.launch_event(instance_id))
    attached = {e["NetworkInterfaceId"] for e in world.enis(instance_id)}
    leftover = _create_like_the_lambda(world, instance_id, 0, AZS[1])  # an 'available' one as well
    calls = []
    world.ec2.meta.events.register("before-call.ec2.*", lambda model, **_: calls.append(model.name))
    record = run(world.terminate_event(instance_id))
    assert record["result"] == "CONTINUE" and record["deleted"] == [leftover]
    assert set(record["kept_attached"]) == attached
    assert "DetachNetworkInterface" not in calls
    assert {e["NetworkInterfaceId"] for e in world.enis(instance_id)} == attached
    assert all(e["Attachment"]["Status"] == "attached" for e in world.enis(instance_id))
    assert world.lifecycle.accepted(instance_id) == ["CONTINUE", "CONTINUE"]
    world.ec2.terminate_instances(InstanceIds=[instance_id])  # what CONTINUE leads to
    assert world.enis(instance_id) == [] and world.orphans() == []


def test_terminate_turns_on_delete_on_termination_where_an_attempt_left_it_off(world, run):
    instance_id = world.launch_instance()
    eni_id = _create_like_the_lambda(world, instance_id, 0)
    world.ec2.attach_network_interface(NetworkInterfaceId=eni_id, InstanceId=instance_id, DeviceIndex=1)
    record = run(world.terminate_event(instance_id))
    assert record["result"] == "CONTINUE" and record["deleted"] == []
    (eni,) = world.enis(instance_id)
    assert eni["Attachment"]["DeleteOnTermination"] is True and eni["Attachment"]["Status"] == "attached"
    world.ec2.terminate_instances(InstanceIds=[instance_id])
    assert world.orphans() == []


def test_terminate_of_a_vanished_instance_still_cleans_up_and_continues(world, run):
    instance_id = world.launch_instance()
    run(world.launch_event(instance_id))
    leftover = _create_like_the_lambda(world, instance_id, 0)
    world.ec2.terminate_instances(InstanceIds=[instance_id])  # DeleteOnTermination takes the attached ones
    record = run(world.terminate_event(instance_id))
    assert record["result"] == "CONTINUE" and record["deleted"] == [leftover]
    assert world.orphans() == []
    assert world.enis(instance_id) == []


def test_terminate_with_nothing_of_ours(world, run):
    instance_id = world.launch_instance()
    record = run(world.terminate_event(instance_id))
    assert (record["result"], record["reason"]) == ("CONTINUE", "no ENIs of ours")
    assert world.lifecycle.accepted(instance_id) == ["CONTINUE"]


def test_default_clients_are_made_lazily_with_adaptive_retries(world, caplog, monkeypatch):
    """The real entry point (no injected clients) under mock_aws: clients appear on first use only."""
    monkeypatch.setattr(handler, "_clients", None)
    instance_id = world.launch_instance()
    assert handler.handler(world.launch_event(instance_id), None)["result"] == "CONTINUE"
    made = handler._clients
    assert made is not None and made.ec2.meta.config.retries["mode"] == "adaptive"
    assert made.ec2.meta.config.retries["total_max_attempts"] == 9  # 8 retries after the first attempt
    handler.handler(world.terminate_event(instance_id), None)
    assert handler._clients is made  # reused by warm invocations
    assert world.lifecycle.accepted(instance_id) == ["CONTINUE", "CONTINUE"]


def test_importing_the_handler_builds_no_client(monkeypatch):
    import boto3

    def no_clients(*args, **kwargs):
        raise AssertionError("a boto3 client was created at import time")

    monkeypatch.setattr(boto3, "client", no_clients)
    monkeypatch.setattr(boto3.session.Session, "client", no_clients)
    for module in (adapter, handler):
        importlib.reload(module)
    assert handler._clients is None


def test_settings_defaults_are_sane_and_overridable():
    s = adapter.Settings.from_env({})
    assert (s.max_attempts, s.waiter_delay, s.waiter_max_attempts) == (8, 1.0, 25)
    assert (s.poll_seconds, s.heartbeat_seconds, s.margin_seconds) == (5.0, 60.0, 45.0)
    s = adapter.Settings.from_env({"ENI_ATTACHER_WAITER_DELAY": "0.01", "ENI_ATTACHER_WAITER_MAX_ATTEMPTS": "x"})
    assert (s.waiter_delay, s.waiter_max_attempts) == (0.01, 25)


# ------------------------------------------------------------------------- the moto gap patches themselves


def test_world_attach_rejects_what_ec2_rejects(world):
    instance_id = world.launch_instance(AZS[0])
    other = world.launch_instance(AZS[0])
    cross_az = _create_like_the_lambda(world, instance_id, 0, AZS[1])
    good = _create_like_the_lambda(world, instance_id, 0)
    cases = [
        (dict(NetworkInterfaceId=cross_az, InstanceId=instance_id, DeviceIndex=1), "InvalidParameterCombination"),
        (dict(NetworkInterfaceId=good, InstanceId=instance_id, DeviceIndex=0), "InvalidParameterValue"),
    ]
    for params, code in cases:
        with pytest.raises(ClientError) as err:
            world.ec2.attach_network_interface(**params)
        assert err.value.response["Error"]["Code"] == code
    world.ec2.attach_network_interface(NetworkInterfaceId=good, InstanceId=instance_id, DeviceIndex=1)
    with pytest.raises(ClientError) as err:
        world.ec2.attach_network_interface(NetworkInterfaceId=good, InstanceId=other, DeviceIndex=1)
    assert err.value.response["Error"]["Code"] == "InvalidNetworkInterface.InUse"


def test_world_honours_client_token_and_records_delete_on_termination(world):
    instance_id = world.launch_instance()
    subnet = world.multus_subnets[NETWORKS[0]][AZS[0]]
    a = world.ec2.create_network_interface(SubnetId=subnet, ClientToken="t1")["NetworkInterface"]
    b = world.ec2.create_network_interface(SubnetId=subnet, ClientToken="t1")["NetworkInterface"]
    assert a["NetworkInterfaceId"] == b["NetworkInterfaceId"]
    att = world.ec2.attach_network_interface(NetworkInterfaceId=a["NetworkInterfaceId"], InstanceId=instance_id,
                                             DeviceIndex=1)["AttachmentId"]
    world.ec2.modify_network_interface_attribute(
        NetworkInterfaceId=a["NetworkInterfaceId"], Attachment={"AttachmentId": att, "DeleteOnTermination": True})
    described = world.ec2.describe_network_interfaces(NetworkInterfaceIds=[a["NetworkInterfaceId"]])
    assert described["NetworkInterfaces"][0]["Attachment"]["DeleteOnTermination"] is True
