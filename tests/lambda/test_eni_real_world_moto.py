"""What the real world sends that the first build's tests did not: other tools' hooks, slow instances, leftovers.

- Foreign hooks: Auto Scaling sends one event per hook of the group; aws-node-termination-handler (queue mode)
  and drainers add their own. Such an event, delivered to the function (the rule filters them out, but a
  misconfigured rule or a replay must not matter), completes nothing and creates/detaches/deletes nothing.
- Pending instances: moto reports every instance `running`; `PendingModel` (eni_moto_world) keeps an instance
  `pending` for a chosen simulated time, refuses AttachNetworkInterface meanwhile (IncorrectState, like EC2) and
  counts DescribeInstances. `SimClock` advances only when the function sleeps: nothing here sleeps for real.
  Not modelled: how long real EC2 calls take, and an instance that flips pending -> running between two calls of
  one attempt (the attach would fail with IncorrectState, which the function retries as transient).
- Sweeper: `available` ENIs of ours left behind when every attempt failed.
"""

from __future__ import annotations

import pytest
from eni_attacher.handler import SWEEP_EVENT
from eni_attacher.planning import Network, eni_tags
from eni_moto_world import ASG_NAME, AZS, EVENT_TIME, NETWORKS, assert_has_its_enis

FOREIGN = "nth-drain-hook"


# ------------------------------------------------------------------------------------------------ foreign hooks


def _calls(world):
    seen = []
    for client in (world.ec2, world.autoscaling):
        client.meta.events.register("before-call.*.*", lambda model, **_: seen.append(model.name))
    return seen


@pytest.mark.parametrize("kind", ["launch", "terminate"])
def test_foreign_hook_events_are_ignored_even_when_redelivered(world, run, kind):
    instance_id = world.launch_instance()
    if kind == "terminate":
        run(world.launch_event(instance_id))
    before = {e["NetworkInterfaceId"]: e["Attachment"]["Status"] for e in world.enis(instance_id)}
    make = world.launch_event if kind == "launch" else world.terminate_event
    event = make(instance_id, hook=FOREIGN)
    calls = _calls(world)
    for _ in range(3):  # EventBridge and Lambda retries deliver it again
        record = run(event)
        assert record["result"] == "ignored" and FOREIGN in record["reason"]
    assert calls == []  # not one AWS call: no completion, no create, detach or delete
    assert world.lifecycle.active  # the foreign action is still open for its owner
    assert {e["NetworkInterfaceId"]: e["Attachment"]["Status"] for e in world.enis(instance_id)} == before


def test_our_hook_name_with_the_other_transition_is_not_ours_either(world, run):
    instance_id = world.launch_instance()
    event = world.terminate_event(instance_id, hook="multus-eni-launch")
    assert run(event)["result"] == "ignored"
    assert world.lifecycle.calls == []


def test_without_hook_names_in_the_environment_nothing_is_completed(world, run, monkeypatch):
    monkeypatch.delenv("LAUNCH_HOOK_NAME")
    instance_id = world.launch_instance()
    record = run(world.launch_event(instance_id))
    assert record["result"] == "ignored" and "unset" in record["reason"]
    assert world.lifecycle.calls == [] and world.enis(instance_id) == []


# ------------------------------------------------------------------------------------------------ patience


@pytest.mark.parametrize("pending_seconds", [60, 200])
def test_pending_instance_gets_its_enis_and_continue(world, run, pending_seconds):
    instance_id = world.launch_instance()
    world.pending.pending_for(instance_id, pending_seconds)
    start = world.clock.time()
    record = run(world.launch_event(instance_id))

    assert record["result"] == "CONTINUE", record
    assert_has_its_enis(world, instance_id, AZS[0])
    elapsed = world.clock.time() - start
    assert pending_seconds <= elapsed <= pending_seconds + 5  # CONTINUE within one poll of the instance running
    describes = [t for t in world.pending.describes if t < start + pending_seconds]
    assert len(describes) <= pending_seconds / 5 + 1  # at most one DescribeInstances per 5 s while waiting
    assert set(world.clock.sleeps) == {5.0}
    # heartbeats keep the 300 s hook alive: one per 60 s of waiting, accepted by Auto Scaling
    assert record["heartbeats"] == len(world.lifecycle.heartbeats) == int((pending_seconds - 1) // 60)
    assert world.lifecycle.accepted(instance_id) == ["CONTINUE"] and world.orphans() == []


def test_instance_still_pending_at_the_deadline_is_abandoned_without_leftovers(world, run, monkeypatch):
    monkeypatch.setenv("ENI_ATTACHER_BUDGET_SECONDS", "120")
    monkeypatch.setenv("ENI_ATTACHER_MARGIN_SECONDS", "20")
    instance_id = world.launch_instance()
    world.pending.pending_for(instance_id, 3600)
    record = run(world.launch_event(instance_id))
    assert record["result"] == "ABANDON" and "still pending" in record["reason"]
    assert 95 <= record["waited_seconds"] <= 100
    assert world.enis(instance_id) == [] and world.lifecycle.accepted(instance_id) == ["ABANDON"]


def test_action_that_ended_while_waiting_stops_the_wait(world, run):
    """The hook timed out (or someone completed it): the heartbeat says so, the function stops and completes nothing."""
    instance_id = world.launch_instance()
    world.pending.pending_for(instance_id, 600)
    event = world.launch_event(instance_id)
    world.lifecycle.active.clear()
    record = run(event)
    assert record["result"] == "gone" and record["heartbeats"] == 0
    assert world.lifecycle.calls == [] and len(world.lifecycle.heartbeats) == 1
    assert world.clock.time() - 1795669200.0 <= 65 and world.enis(instance_id) == []


def test_transient_error_is_retried_inside_the_invocation(world, run):
    instance_id = world.launch_instance()
    # injected with HTTP 400, so botocore does not retry it itself: the function's own loop does, 5 s apart
    world.faults.add("AttachNetworkInterface", "InternalError", times=3)
    record = run(world.launch_event(instance_id))
    assert record["result"] == "CONTINUE" and record["attempts"] == 4 and world.clock.sleeps == [5.0] * 3
    assert "transient, retrying" in record["errors"][0]
    assert_has_its_enis(world, instance_id, AZS[0])
    assert world.orphans() == []


def test_final_error_is_not_retried(world, run):
    instance_id = world.launch_instance()
    world.faults.add("CreateNetworkInterface", "InsufficientFreeAddressesInSubnet", times=None)
    record = run(world.launch_event(instance_id))
    assert record["result"] == "ABANDON" and record["attempts"] == 1 and world.clock.sleeps == []
    assert record["LaunchAbandoned"] == 1  # the metric the ABANDON alarm watches


# ------------------------------------------------------------------------------------------------ sweeper


def _leftover(world, instance_id, pos=0, az=AZS[0], event_time=EVENT_TIME):
    net = world.networks_config()[pos]
    network = Network(net["name"], net["deviceIndex"], net["subnets"], tuple(net["securityGroupIds"]))
    tags = eni_tags(owner=ASG_NAME, instance_id=instance_id, network=network, event_time=event_time)
    return world.ec2.create_network_interface(
        SubnetId=net["subnets"][az], Groups=net["securityGroupIds"],
        TagSpecifications=[{"ResourceType": "network-interface",
                            "Tags": [{"Key": k, "Value": v} for k, v in tags.items()]}],
    )["NetworkInterface"]["NetworkInterfaceId"]


def test_sweeper_deletes_leftovers_no_launch_can_use_and_keeps_the_rest(world, run):
    live = world.launch_instance()
    run(world.launch_event(live))  # attached ENIs: never candidates
    gone = world.launch_instance()
    world.ec2.terminate_instances(InstanceIds=[gone])
    old_of_gone = _leftover(world, gone)
    old_of_live = _leftover(world, live, 1)  # a launch of a live instance may still adopt it
    stale_of_live = _leftover(world, live, 0, event_time="2026-11-26T04:00:00Z")  # an hour old
    untagged_of_vanished = _leftover(world, "i-00000000000000000", 1, event_time="")
    foreign = world.ec2.create_network_interface(SubnetId=world.multus_subnets[NETWORKS[0]][AZS[0]])
    world.clock.sleep(400)  # the leftovers are 400 s old by their event-time tag

    record = run(SWEEP_EVENT)

    assert record["action"] == "sweep" and record["result"] == "swept"
    assert sorted(record["deleted"]) == sorted([old_of_gone, stale_of_live, untagged_of_vanished])
    assert record["EnisSwept"] == 3 and [k.split(":")[0] for k in record["kept"]] == [old_of_live]
    remaining = {e["NetworkInterfaceId"] for e in world.all_enis()}
    assert old_of_live in remaining and foreign["NetworkInterface"]["NetworkInterfaceId"] in remaining
    assert len(world.enis(live)) == 3  # its two attached ENIs and the young leftover
    assert world.lifecycle.calls[-1]["result"] == "CONTINUE"  # the sweep completed nothing


def test_sweeper_does_nothing_on_a_clean_group(world, run):
    instance_id = world.launch_instance()
    run(world.launch_event(instance_id))
    calls = _calls(world)
    record = run(SWEEP_EVENT)
    assert record["deleted"] == [] and calls == ["DescribeNetworkInterfaces"]


# ------------------------------------------------------------------------------------------------ the log line


def test_the_log_line_is_a_bare_embedded_metric_document_on_stdout(world, run, capsys):
    """CloudWatch extracts EMF metrics only from a log event that is one JSON object: no logging prefix."""
    import json

    instance_id = world.launch_instance()
    world.faults.add("CreateNetworkInterface", "InsufficientFreeAddressesInSubnet", times=None)
    capsys.readouterr()
    record = run(world.launch_event(instance_id))
    (line,) = capsys.readouterr().out.splitlines()
    doc = json.loads(line)
    assert doc == record
    (directive,) = doc["_aws"]["CloudWatchMetrics"]
    assert directive["Namespace"] == "EksMultus/EniAttacher"
    for dimension_set in directive["Dimensions"]:
        assert all(isinstance(doc[d], str) for d in dimension_set)
    assert {m["Name"] for m in directive["Metrics"]} == {"LaunchAbandoned", "CompletionFailed"}
    assert doc["LaunchAbandoned"] == 1 and doc["CompletionFailed"] == 0 and doc["AutoScalingGroupName"] == ASG_NAME
    assert isinstance(doc["_aws"]["Timestamp"], int)


def test_ignored_events_carry_no_metrics(world, run):
    record = run(world.launch_event(world.launch_instance(), hook=FOREIGN))
    assert "_aws" not in record


def test_a_failed_sweep_raises_after_its_log_line(world, run):
    gone = world.launch_instance()
    world.ec2.terminate_instances(InstanceIds=[gone])
    leftover = _leftover(world, gone)
    world.clock.sleep(400)
    world.faults.add("DeleteNetworkInterface", "InternalError", times=None)
    record = run(SWEEP_EVENT, raises=True)
    assert record["result"] == "error" and record["deleted"] == [] and "DeleteNetworkInterface" in record["errors"][0]
    assert leftover in {e["NetworkInterfaceId"] for e in world.all_enis()}
