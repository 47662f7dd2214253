"""Pure logic of the ENI Lambda: config, event parsing, launch and terminate plans. No AWS, no moto."""

from __future__ import annotations

import json

import pytest
from eni_attacher.planning import (
    ConfigError,
    Eni,
    EniAttachment,
    EventError,
    Instance,
    InstanceAttachment,
    Network,
    PlanError,
    SweepCandidate,
    client_token,
    eni_tags,
    is_transient,
    load_config,
    parse_event,
    parse_time,
    plan_launch,
    plan_sweep,
    plan_terminate,
    served_hooks,
)

NETS = (
    Network("multus1", 1, {"az-a": "subnet-1a", "az-b": "subnet-1b"}, ("sg-1",)),
    Network("multus2", 2, {"az-a": "subnet-2a", "az-b": "subnet-2b"}, ("sg-1",)),
)
INST = "i-0123"
PRIMARY = InstanceAttachment("eni-primary", 0, "att-0", "attached", True)


def instance(az="az-a", state="running", *extra: InstanceAttachment) -> Instance:
    return Instance(INST, az, state, (PRIMARY, *extra))


def ours(eni_id, network, subnet, *, index=None, dot=True, sdc=False, status=None, on=INST) -> Eni:
    attachment = None if index is None else EniAttachment(on, index, f"att-{eni_id}", "attached", dot)
    return Eni(eni_id, subnet, status or ("in-use" if attachment else "available"), network, sdc, attachment)


def env(networks=None, **extra):
    items = networks if networks is not None else [
        {"name": "multus1", "deviceIndex": 1, "subnets": {"az-a": "subnet-1a"}, "securityGroupIds": ["sg-1"]}]
    return {"ASG_NAME": "workers", "MULTUS_NETWORKS": json.dumps(items), "LAUNCH_HOOK_NAME": "launch-hook",
            "TERMINATE_HOOK_NAME": "terminate-hook", **extra}


# --------------------------------------------------------------------------------------------- config


def test_config_loads_networks_and_defaults_owner_to_the_group():
    cfg = load_config(env())
    assert cfg.asg_name == "workers" and cfg.owner == "workers"
    assert (cfg.launch_hook, cfg.terminate_hook) == ("launch-hook", "terminate-hook")
    assert cfg.networks == (Network("multus1", 1, {"az-a": "subnet-1a"}, ("sg-1",)),)
    assert load_config(env(OWNER_TAG_VALUE="other")).owner == "other"


@pytest.mark.parametrize(("environment", "message", "asg_known"), [
    ({}, "ASG_NAME is not set", False),
    ({"ASG_NAME": "workers"}, "MULTUS_NETWORKS is not set", True),
    ({"ASG_NAME": "workers", "MULTUS_NETWORKS": "[{"}, "not valid JSON", True),
    ({"ASG_NAME": "workers", "MULTUS_NETWORKS": "{}"}, "non-empty JSON list", True),
    (env([{"name": "a", "deviceIndex": 0, "subnets": {"z": "s"}, "securityGroupIds": ["g"]}]), "deviceIndex", True),
    (env([{"name": "a", "deviceIndex": "1", "subnets": {"z": "s"}, "securityGroupIds": ["g"]}]), "deviceIndex", True),
    (env([{"name": "a", "deviceIndex": 1, "subnets": {}, "securityGroupIds": ["g"]}]), "subnets", True),
    (env([{"name": "a", "deviceIndex": 1, "subnets": {"z": "s"}, "securityGroupIds": []}]), "securityGroup", True),
    (env([{"name": "", "deviceIndex": 1, "subnets": {"z": "s"}, "securityGroupIds": ["g"]}]), "name", True),
    (env([{"name": "a", "deviceIndex": 1, "subnets": {"z": "s"}, "securityGroupIds": ["g"]},
          {"name": "b", "deviceIndex": 1, "subnets": {"z": "s"}, "securityGroupIds": ["g"]}]), "duplicate", True),
])
def test_config_errors_are_clear(environment, message, asg_known):
    with pytest.raises(ConfigError, match=message) as err:
        load_config(environment)
    assert (err.value.asg_name == "workers") is asg_known


# --------------------------------------------------------------------------------------------- events


def event(**detail):
    base = {"LifecycleActionToken": "tok", "AutoScalingGroupName": "workers", "LifecycleHookName": "hook",
            "EC2InstanceId": INST, "LifecycleTransition": "autoscaling:EC2_INSTANCE_LAUNCHING"}
    base.update(detail)
    return {"detail-type": "EC2 Instance-launch Lifecycle Action", "source": "aws.autoscaling",
            "detail": {k: v for k, v in base.items() if v is not None}}


def test_parse_launch_and_terminate():
    assert parse_event(event()).kind == "launch"
    ev = parse_event(event(LifecycleTransition="autoscaling:EC2_INSTANCE_TERMINATING"))
    assert (ev.kind, ev.instance_id, ev.asg_name, ev.hook_name, ev.token) == (
        "terminate", INST, "workers", "hook", "tok")
    # the detail-type is enough when the transition field is missing
    assert parse_event(event(LifecycleTransition=None)).kind == "launch"


@pytest.mark.parametrize(("evt", "completable"), [
    (None, False),
    ("text", False),
    ({"detail": "x"}, False),
    (event(EC2InstanceId=None), True),  # token is enough to complete
    (event(LifecycleActionToken=None), True),  # instance id is enough to complete
    (event(LifecycleHookName=None), False),
    (event(LifecycleTransition="autoscaling:TEST_NOTIFICATION"), True),
    (event(EC2InstanceId=7), True),
])
def test_malformed_events_say_whether_they_can_be_completed(evt, completable):
    with pytest.raises(EventError) as err:
        parse_event(evt)
    assert err.value.completable() is completable


# --------------------------------------------------------------------------------------------- launch plans


def test_fresh_instance_gets_one_new_eni_per_network_in_its_az():
    plan = plan_launch(NETS, instance("az-b"), [])
    assert [(s.network.name, s.subnet_id, s.create, s.attach, s.disable_source_dest_check,
             s.set_delete_on_termination) for s in plan.steps] == [
        ("multus1", "subnet-1b", True, True, True, True), ("multus2", "subnet-2b", True, True, True, True)]
    assert not plan.done and plan.strays == () and not plan.wait_running


def test_complete_instance_needs_nothing():
    inst = instance("az-a", "running", InstanceAttachment("eni-1", 1, "att-eni-1", "attached", True),
                    InstanceAttachment("eni-2", 2, "att-eni-2", "attached", True))
    owned = [ours("eni-1", "multus1", "subnet-1a", index=1), ours("eni-2", "multus2", "subnet-2a", index=2)]
    assert plan_launch(NETS, inst, owned).done


def test_half_done_attempt_is_finished_not_duplicated():
    inst = instance("az-a", "running", InstanceAttachment("eni-1", 1, "att-eni-1", "attached", False))
    owned = [ours("eni-1", "multus1", "subnet-1a", index=1, dot=False, sdc=True),
             ours("eni-2", "multus2", "subnet-2a", sdc=False)]
    s1, s2 = plan_launch(NETS, inst, owned).steps
    assert (s1.eni_id, s1.create, s1.attach, s1.disable_source_dest_check, s1.set_delete_on_termination,
            s1.attachment_id) == ("eni-1", False, False, True, True, "att-eni-1")
    assert (s2.eni_id, s2.create, s2.attach, s2.disable_source_dest_check, s2.set_delete_on_termination) == (
        "eni-2", False, True, False, True)


def test_unattached_duplicates_and_wrong_subnet_leftovers_are_strays():
    owned = [ours("eni-1", "multus1", "subnet-1a"), ours("eni-dup", "multus1", "subnet-1a"),
             ours("eni-wrong", "multus2", "subnet-2b")]
    plan = plan_launch(NETS, instance("az-a"), owned)
    assert plan.steps[0].eni_id == "eni-1" and plan.steps[1].create
    assert set(plan.strays) == {"eni-dup", "eni-wrong"}


def test_pending_eni_is_waited_for_and_pending_instance_too():
    plan = plan_launch(NETS, instance("az-a", "pending"), [ours("eni-1", "multus1", "subnet-1a", status="pending")])
    assert plan.steps[0].wait_available and plan.wait_running


@pytest.mark.parametrize(("inst", "owned", "message"), [
    (instance("az-c"), [], "multus1 has no subnet in az-c"),
    (instance("az-a", "shutting-down"), [], "is shutting-down"),
    (instance("az-a", "terminated"), [], "is terminated"),
    (instance("az-a", "running", InstanceAttachment("eni-foreign", 2, "att-f", "attached", True)), [],
     "device index 2 .* taken by eni-foreign, which is not ours"),
    # our ENI of network 1 sits at network 2's index
    (instance("az-a", "running", InstanceAttachment("eni-1", 2, "att-eni-1", "attached", True)),
     [ours("eni-1", "multus1", "subnet-1a", index=2)], "attached at device index 2, expected 1"),
    (instance("az-a"), [ours("eni-1", "multus1", "subnet-1a", index=1, on="i-other")], "attached to i-other"),
])
def test_impossible_launches_fail_cleanly(inst, owned, message):
    with pytest.raises(PlanError, match=message):
        plan_launch(NETS, inst, owned)


def test_client_token_is_deterministic_per_instance_and_network_and_fits_ec2_limit():
    assert client_token(INST, "multus1") == client_token(INST, "multus1")
    assert len({client_token(INST, "multus1"), client_token(INST, "multus2"), client_token("i-other", "multus1")}) == 3
    assert len(client_token(INST, "x" * 300)) <= 64 and client_token(INST, "a").isascii()


def test_tags():
    assert eni_tags(owner="workers", instance_id=INST, network=NETS[1]) == {
        "node.k8s.amazonaws.com/no_manage": "true", "eks-multus/owner": "workers",
        "eks-multus/instance-id": INST, "eks-multus/network": "multus2", "eks-multus/device-index": "2",
        "Name": f"{INST}-multus2"}


# --------------------------------------------------------------------------------------------- terminate plans


def test_terminate_never_detaches_and_deletes_only_unattached_enis():
    owned = [ours("eni-1", "multus1", "subnet-1a", index=1), ours("eni-2", "multus2", "subnet-2a"),
             ours("eni-3", "multus2", "subnet-2a", index=2, on="i-other"),
             ours("eni-5", "multus2", "subnet-2a", index=2, dot=False),
             Eni("eni-4", "subnet-1a", "detaching", "multus1", False,
                 EniAttachment(INST, 1, "att-4", "detaching", True))]
    plan = plan_terminate(INST, owned)
    assert plan.delete == ("eni-2",)
    assert plan.set_delete_on_termination == (("eni-5", "att-eni-5"),)
    assert plan.skipped == ("eni-3 is attached to i-other", "eni-4 is detaching; the sweeper removes it once available")


def test_config_needs_the_launch_hook_name():
    environment = env()
    environment.pop("LAUNCH_HOOK_NAME")
    with pytest.raises(ConfigError, match="LAUNCH_HOOK_NAME is not set"):
        load_config(environment)


def test_terminate_hook_name_is_optional_and_then_no_terminate_hook_is_served():
    """The node group gives the ENI function no terminate hook (the drainer owns the group's terminate hook)."""
    environment = env()
    environment.pop("TERMINATE_HOOK_NAME")
    assert load_config(environment).terminate_hook == ""
    assert served_hooks(environment) == {"launch": "launch-hook"}


def test_sweep_deletes_enis_of_gone_instances_after_min_age_and_any_after_stale_age():
    now = 10_000.0
    candidates = [
        SweepCandidate("eni-gone-old", "i-gone", now - 400), SweepCandidate("eni-gone-new", "i-gone", now - 100),
        SweepCandidate("eni-live", "i-live", now - 400), SweepCandidate("eni-live-stale", "i-live", now - 2000),
        SweepCandidate("eni-terminated-untagged", "i-term", None), SweepCandidate("eni-pending", "i-pend", None),
    ]
    states = {"i-live": "running", "i-term": "terminated", "i-pend": "pending"}
    delete, kept = plan_sweep(candidates, states, now, min_age=300, stale_age=1800)
    assert delete == ["eni-gone-old", "eni-live-stale", "eni-terminated-untagged"]
    assert len(kept) == 3 and kept[0].startswith("eni-gone-new: instance i-gone gone")


def test_event_time_is_parsed_and_transient_codes_are_told_apart():
    assert parse_time("2026-11-26T05:00:00Z") == 1795669200.0 and parse_time("yesterday") is None
    assert is_transient("RequestLimitExceeded") and is_transient("IncorrectState")
    assert not is_transient("UnauthorizedOperation") and not is_transient("InsufficientFreeAddressesInSubnet")
