"""Node lifecycle under moto: the drainer completes its terminate action, and no consumer completes another's hook.

moto implements neither CompleteLifecycleAction nor RecordLifecycleActionHeartbeat: eni_moto_world's
LifecycleRecorder stands in (it accepts a completion only for an open action of that group, hook and token, as
Auto Scaling does, and answers "No active Lifecycle Action" otherwise). The Kubernetes side is the fake API server
of tests/drainer/fake_eviction_api.py over loopback HTTP. What neither shows: EventBridge's rule matching (the template
tests check the patterns), the real time an instance spends in Terminating:Wait, and the hook's timeout firing.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "drainer"))

from eni_moto_world import ASG_NAME, AZS, assert_has_its_enis  # noqa: E402
from fake_eviction_api import FakeCluster, SimClock, serve  # noqa: E402

FOREIGN = "nth-drain-hook"  # aws-node-termination-handler's hook, in queue-processing mode, on the same group
AUDIT: list = [None]  # the drainer's IamAudit while a test runs (kube_world)


@pytest.fixture
def lifecycle_template(synthesized) -> dict:
    """The hooks and the two functions' environments exactly as the app synthesizes them."""
    workers = synthesized.templates["eks-multus-workers"]
    (asg,) = [r for r in workers["Resources"].values() if r["Type"] == "AWS::AutoScaling::AutoScalingGroup"]
    functions = {k: r["Properties"]["Environment"]["Variables"] for k, r in workers["Resources"].items()
                 if r["Type"] == "AWS::Lambda::Function" and k.startswith("NodeGroup")}
    (eni_env,) = [v for k, v in functions.items() if "EniAttacher" in k]
    (drain_env,) = [v for k, v in functions.items() if "Drainer" in k]
    return {"hooks": asg["Properties"]["LifecycleHookSpecificationList"], "eni_env": eni_env, "drain_env": drain_env}


@pytest.fixture
def drainer_audit(world, synthesized):
    """The drainer's role policy exactly as synthesized (its group's name swapped for the world's), evaluated by
    tests/lambda/iam_eval.py for every AWS call the drainer makes; a denied call fails as AWS would fail it."""
    from iam_eval import IamAudit, resolve

    workers = synthesized.templates["eks-multus-workers"]
    (policy,) = [r for k, r in workers["Resources"].items()
                 if r["Type"] == "AWS::IAM::Policy" and k.startswith("NodeGroupDrainer")]
    text = json.dumps(resolve(policy["Properties"]["PolicyDocument"]["Statement"], {}))
    audit = IamAudit(json.loads(text.replace("eks-multus-ng1", ASG_NAME)))
    audit.attach(world.ec2, world.autoscaling)
    yield audit
    assert audit.denied == [], f"calls the drainer's synthesized policy denies: {audit.denied}"


@pytest.fixture
def kube_world(world, drainer_audit):
    clock = SimClock()
    cluster = FakeCluster(clock)
    with serve(cluster) as url:
        AUDIT[0] = drainer_audit
        try:
            yield cluster, clock, url
        finally:
            AUDIT[0] = None


def drain_env(template_env: dict, **extra) -> dict:
    """The drainer's environment from the template, pointed at the moto world's group."""
    env = {k: v for k, v in template_env.items() if isinstance(v, str)}
    return {**env, "ASG_NAME": ASG_NAME, **extra}


def add_node(cluster: FakeCluster, world, instance_id: str) -> str:
    (reservation,) = world.ec2.describe_instances(InstanceIds=[instance_id])["Reservations"]
    name = reservation["Instances"][0]["PrivateDnsName"]
    cluster.add_node(name, instance_id)
    return name


def run_drainer(event, env, clients, kube_url, clock, catcher_lines: list[str] | None = None, **kw):
    from node_drainer.handler import handler
    from node_drainer.kube import KubeClient

    audit = AUDIT[0]
    audit.enter()  # the drainer's calls, and only those, are evaluated against its policy
    try:
        return handler(event, None, ec2=clients.ec2, autoscaling=clients.autoscaling,
                       kube=KubeClient(kube_url, lambda: "k8s-aws-v1.test"), clock=clock, env=env, **kw)
    finally:
        audit.leave()


def test_drainer_drains_heartbeats_and_completes_its_action_with_continue(world, clients, kube_world,
                                                                           lifecycle_template):
    cluster, clock, url = kube_world
    instance = world.launch_instance()
    node = add_node(cluster, world, instance)
    cluster.add_node("ip-10-0-1-99.us-west-2.compute.internal", "i-0other")  # where the pods go
    cluster.add_pod("apps", "solo", node, labels={"app": "solo"}, owner="ReplicaSet", grace=90)
    hook = lifecycle_template["drain_env"]["DRAIN_HOOK_NAME"]
    record = run_drainer(world.terminate_event(instance, hook=hook), drain_env(lifecycle_template["drain_env"]),
                         clients, url, clock)
    assert record["drain"] == "drained" and record["evicted"] == ["apps/solo"]
    assert cluster.nodes[node]["spec"]["unschedulable"] is True
    assert world.lifecycle.accepted(instance) == ["CONTINUE"]
    assert [c["hook"] for c in world.lifecycle.calls] == [hook]
    # 90 s of grace period: one heartbeat kept the action alive, for this action only.
    assert [(h["hook"], h["instance"]) for h in world.lifecycle.heartbeats] == [(hook, instance)]


def test_an_action_that_timed_out_mid_drain_stops_the_drain_without_completing(world, clients, kube_world,
                                                                               lifecycle_template):
    cluster, clock, url = kube_world
    instance = world.launch_instance()
    node = add_node(cluster, world, instance)
    cluster.add_pod("apps", "solo", node, labels={"app": "solo"}, owner="ReplicaSet")
    cluster.add_pdb("apps", "solo", {"app": "solo"}, min_available=1)
    hook = lifecycle_template["drain_env"]["DRAIN_HOOK_NAME"]
    event = world.terminate_event(instance, hook=hook)
    world.lifecycle.active.clear()  # the hook's timeout fired (or someone completed it) while we drained
    record = run_drainer(event, drain_env(lifecycle_template["drain_env"]), clients, url, clock)
    assert record["drain"] == "action-ended" and record["result"] == "ended"
    assert world.lifecycle.calls == []  # no completion attempted
    assert clock.now - 1000.0 <= 65


def test_a_failing_completion_raises_after_logging(world, clients, kube_world, lifecycle_template):
    from node_drainer.handler import CompletionFailed

    cluster, clock, url = kube_world
    instance = world.launch_instance()
    add_node(cluster, world, instance)
    world.faults.add("CompleteLifecycleAction", "AccessDenied", times=None)
    hook = lifecycle_template["drain_env"]["DRAIN_HOOK_NAME"]
    with pytest.raises(CompletionFailed):
        run_drainer(world.terminate_event(instance, hook=hook), drain_env(lifecycle_template["drain_env"]),
                    clients, url, clock)


def test_an_instance_that_never_joined_is_let_go_at_once(world, clients, kube_world, lifecycle_template):
    """A launch the ENI Lambda ABANDONed terminates before its node registered: nothing to drain."""
    _, clock, url = kube_world
    instance = world.launch_instance()
    hook = lifecycle_template["drain_env"]["DRAIN_HOOK_NAME"]
    record = run_drainer(world.terminate_event(instance, hook=hook), drain_env(lifecycle_template["drain_env"]),
                         clients, url, clock)
    assert record["drain"] == "node-absent" and world.lifecycle.accepted(instance) == ["CONTINUE"]


def test_every_hook_event_goes_to_every_consumer_and_only_its_owner_completes_it(
        world, clients, kube_world, lifecycle_template, run, monkeypatch):
    """Auto Scaling sends one event per hook; here each goes to both of our functions (as if their rules matched
    everything) together with another tool's hooks. Each action is completed exactly once, by its owner."""
    cluster, clock, url = kube_world
    # The ENI function's environment as synthesized: a launch hook, no terminate hook.
    eni_env = lifecycle_template["eni_env"]
    assert "TERMINATE_HOOK_NAME" not in eni_env
    monkeypatch.setenv("LAUNCH_HOOK_NAME", eni_env["LAUNCH_HOOK_NAME"])
    monkeypatch.delenv("TERMINATE_HOOK_NAME")
    denv = drain_env(lifecycle_template["drain_env"])
    instance = world.launch_instance(AZS[0])
    add_node(cluster, world, instance)

    hooks = [(h["LifecycleHookName"], h["LifecycleTransition"]) for h in lifecycle_template["hooks"]]
    assert sorted(n for n, _ in hooks) == sorted([eni_env["LAUNCH_HOOK_NAME"], denv["DRAIN_HOOK_NAME"]])
    hooks += [(FOREIGN, "autoscaling:EC2_INSTANCE_LAUNCHING"), (FOREIGN, "autoscaling:EC2_INSTANCE_TERMINATING")]
    owner = {eni_env["LAUNCH_HOOK_NAME"]: "eni", denv["DRAIN_HOOK_NAME"]: "drainer"}

    def deliver(consumer: str, event: dict) -> list[str]:
        before = len(world.lifecycle.calls)
        if consumer == "eni":
            run(event)
        else:
            run_drainer(event, denv, clients, url, clock)
        return [c["hook"] for c in world.lifecycle.calls[before:] if c["accepted"]]

    completed_by: dict[str, list[str]] = {}
    launch_first = sorted(hooks, key=lambda h: not h[1].endswith("LAUNCHING"))
    for name, transition in launch_first:
        make = world.launch_event if transition.endswith("LAUNCHING") else world.terminate_event
        event = make(instance, hook=name)
        # the non-owner first: if it completed the action, the owner's completion would be refused
        for consumer in sorted(("eni", "drainer"), key=lambda c: c == owner.get(name)):
            for hook in deliver(consumer, json.loads(json.dumps(event))):
                completed_by.setdefault(hook, []).append(consumer)
        if name == eni_env["LAUNCH_HOOK_NAME"]:
            assert_has_its_enis(world, instance, AZS[0])
    assert completed_by == {eni_env["LAUNCH_HOOK_NAME"]: ["eni"], denv["DRAIN_HOOK_NAME"]: ["drainer"]}
    # The foreign tool's actions are still open, for it to complete; ours are all done.
    assert sorted(h for _, h, _ in world.lifecycle.active.values()) == [FOREIGN, FOREIGN]
    # The ENI function never touched the ENIs on any terminate event: they go with the instance.
    assert_has_its_enis(world, instance, AZS[0])


def test_rolling_update_drain_waits_for_the_new_node_then_evicts(world, clients, kube_world, lifecycle_template):
    """A batch with room above minSize: the new instance is InService (its ENIs attached) but its node still
    carries the startup taint; the old node is cordoned at once and evicted only after the taint is gone."""
    cluster, clock, url = kube_world
    old, new = world.launch_instance(), world.launch_instance()
    old_node = add_node(cluster, world, old)
    new_node = add_node(cluster, world, new)
    taint = lifecycle_template["drain_env"]["STARTUP_TAINT_KEY"]
    cluster.nodes[new_node]["spec"]["taints"] = [{"key": taint, "value": "interfaces", "effect": "NoSchedule"}]
    cluster.at(150, lambda c: c.nodes[new_node]["spec"].update(taints=[]))
    cluster.add_pod("apps", "web", old_node, labels={"app": "web"}, owner="ReplicaSet", grace=5)
    hook = lifecycle_template["drain_env"]["DRAIN_HOOK_NAME"]
    record = run_drainer(world.terminate_event(old, hook=hook), drain_env(lifecycle_template["drain_env"]),
                         clients, url, clock)
    assert record["drain"] == "drained" and 150 <= record["peerWaitSeconds"] <= 155
    assert record["heartbeats"] >= 2 and world.lifecycle.accepted(old) == ["CONTINUE"]
    assert record["drainErrors"] == []


def test_scale_in_with_ready_peers_does_not_wait(world, clients, kube_world, lifecycle_template):
    cluster, clock, url = kube_world
    leaving, staying = world.launch_instance(), world.launch_instance()
    node = add_node(cluster, world, leaving)
    add_node(cluster, world, staying)
    cluster.add_pod("apps", "web", node, owner="ReplicaSet", grace=5)
    hook = lifecycle_template["drain_env"]["DRAIN_HOOK_NAME"]
    record = run_drainer(world.terminate_event(leaving, hook=hook), drain_env(lifecycle_template["drain_env"]),
                         clients, url, clock)
    assert record["drain"] == "drained" and record["peerWaitSeconds"] == 0 and record["peersNotReady"] == []


def test_a_group_going_away_is_not_drained_so_destroy_is_not_held(world, clients, kube_world, lifecycle_template):
    """`cdk destroy` (or a scale to 0): every node leaves at once and no pod has anywhere to go. A two-replica
    workload under a PDB would refuse the second eviction until the deadline (600 s a node); the drainer lets the
    node go at once instead, and says why."""
    cluster, clock, url = kube_world
    instance = world.launch_instance()
    node = add_node(cluster, world, instance)
    cluster.add_pod("kube-system", "coredns-a", node, labels={"k8s-app": "kube-dns"}, owner="ReplicaSet", grace=5)
    clients.autoscaling.update_auto_scaling_group(AutoScalingGroupName=ASG_NAME, MinSize=0, MaxSize=0,
                                                  DesiredCapacity=0)
    hook = lifecycle_template["drain_env"]["DRAIN_HOOK_NAME"]
    record = run_drainer(world.terminate_event(instance, hook=hook), drain_env(lifecycle_template["drain_env"]),
                         clients, url, clock)
    assert record["drain"] == "group-going-away" and "scaled to 0" in record["reason"]
    assert world.lifecycle.accepted(instance) == ["CONTINUE"]
    assert clock.now == 1000.0 and clock.sleeps == [], "no wait, no eviction round"
