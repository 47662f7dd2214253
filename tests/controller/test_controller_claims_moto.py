# ruff: noqa: F811 - the `world` fixture is imported from the reconcile tests and named as a parameter
"""A hostile tenant against the pod-address controller, end to end on moto's EC2 (issue 10, item 2).

The tenant owns a pod on node-a and writes its `k8s.v1.cni.cncf.io/network-status` annotation itself (RBAC lets a
pod owner do that; the admission policy refuses it where it is enforced, but the controller must not rely on it).
It claims the address of a victim pod on node-b, with node-a's ENI MAC. Before the claim check the controller
moved the address with AllowReassignment, the victim's readiness gate stayed True, and the two controllers moved
the address back and forth on every resync. Now the claim is refused against whereabouts' record.

Stand-ins (see test_controller_reconcile_moto.py): moto's EC2 with its AllowReassignment and filter gaps patched,
and `World.allocations` as whereabouts' IPPool record. What they cannot show: real EC2's timing of a reassignment,
and an API server's event de-duplication (the controller de-duplicates its own events per process).
"""

from __future__ import annotations

import json

from multus_ip_controller import claims
from test_controller_reconcile_moto import CONDITION, PREFIX, World, moto_fixes, world  # noqa: F401 - fixtures

VICTIM_IP = "10.0.4.170"


def _forge(world: World, name: str, node: str, index: int, ip: str) -> None:
    """A pod whose owner wrote network-status by hand: `ip` on the ENI at `index`; whereabouts gave it nothing."""
    world.add_pod(name, node, (index, "10.0.4.171"), gate=True)  # its real interface and address
    pod = world.pods[f"default/{name}"][1]
    status = json.loads(pod["metadata"]["annotations"]["k8s.v1.cni.cncf.io/network-status"])
    status.append({"name": f"default/multus{index}-us-west-2a", "interface": "net9", "ips": [ip],
                   "mac": world.nodes[node].eni(index)["mac"]})
    pod["metadata"]["annotations"]["k8s.v1.cni.cncf.io/network-status"] = json.dumps(status)


def test_forged_claim_does_not_move_the_victims_address_and_the_victim_stays_ready(world):
    world.add_pod("victim", "node-b", (1, VICTIM_IP), gate=True)
    assert world.controller("node-b").reconcile()["ok"]
    victim_eni = world.nodes["node-b"].eni(1)["id"]
    assert world.pod_range_addresses()[VICTIM_IP] == [victim_eni]
    assert world.condition("victim")["status"] == "True"

    _forge(world, "tenant", "node-a", 1, VICTIM_IP)
    controllers = [world.controller(name) for name in ("node-a", "node-b")]  # long-running processes
    for _ in range(3):  # several resyncs of both nodes: no ping-pong
        reports = [c.reconcile() for c in controllers]
        assert world.pod_range_addresses()[VICTIM_IP] == [victim_eni]
        assert world.condition("victim")["status"] == "True"
    node_a = reports[0]
    assert {"pod": "default/tenant", "ip": VICTIM_IP, "reason": claims.ALLOCATED_TO_OTHER} in node_a["refused"]
    assert VICTIM_IP not in json.dumps(node_a["assigned"])
    assert world.pod_range_addresses()["10.0.4.171"] == [world.nodes["node-a"].eni(1)["id"]]  # its own address
    # The tenant's pod is not Ready on the forged address, and it is told why, once.
    assert world.condition("tenant")["status"] == "False" and VICTIM_IP in world.condition("tenant")["message"]
    refusal_events = [e for e in world.events if e[1] == "tenant"]
    assert refusal_events == [("default", "tenant", claims.EVENT_REASON,
                               f"address {VICTIM_IP} not assigned to an ENI: whereabouts allocated it to "
                               f"default/victim ({claims.ALLOCATED_TO_OTHER})")]


def test_control_without_the_claim_check_the_forged_claim_steals_the_address(world):
    """The same scenario through a controller built without the check: the attack is real in this world."""
    world.add_pod("victim", "node-b", (1, VICTIM_IP), gate=True)
    world.controller("node-b").reconcile()
    _forge(world, "tenant", "node-a", 1, VICTIM_IP)
    unchecked = world.controller("node-a")
    unchecked.vet_claims = None
    unchecked.reconcile()
    assert world.pod_range_addresses()[VICTIM_IP] == [world.nodes["node-a"].eni(1)["id"]]


def test_claim_on_an_address_a_foreign_eni_holds_is_refused_even_with_an_allocation(world):
    """10.0.4.250 sits in the pod range but on another stack's ENI: never pulled onto ours."""
    world.add_pod("p1", "node-a", (1, "10.0.4.250"), gate=True)  # whereabouts record says p1 (misconfigured pool)
    report = world.controller("node-a").reconcile()
    (refusal,) = report["refused"]
    assert (refusal["ip"], refusal["reason"]) == ("10.0.4.250", claims.FOREIGN_ENI)
    assert report["assigned"] == {}
    holders = [e for e in world.client.describe_network_interfaces()["NetworkInterfaces"]
               if any(a["PrivateIpAddress"] == "10.0.4.250" for a in e["PrivateIpAddresses"])]
    assert [{t["Key"]: t["Value"] for t in e["TagSet"]}.get("eks-multus/owner") for e in holders] == [
        f"other-{PREFIX}-ng1"]  # still (only) on the other stack's ENI
    assert world.events and world.events[0][2] == claims.EVENT_REASON


def test_unreadable_ipam_record_changes_nothing(world):
    """Fail closed: if the IPPools cannot be read, the pass neither assigns nor unassigns anything."""
    world.add_pod("p1", "node-a", (1, "10.0.4.180"))
    world.reconcile_all()
    before = world.pod_range_addresses()
    world.delete_pod("p1")
    world.add_pod("p2", "node-a", (2, "10.0.4.181"))
    controller = world.controller("node-a")

    def broken():
        raise RuntimeError("ippools: 403 Forbidden")

    controller.vet_claims.__self__.list_ippools = broken
    report = controller.reconcile()
    assert not report["ok"] and report["errors"][0]["op"] == "read"
    assert world.pod_range_addresses() == before


def test_accepted_claims_are_not_checked_again_but_new_ones_are(world):
    """A steady-state pass reads no IPPools (issue 11's 0 LISTs per pass); a new claim, or the same pod name
    with a new pod uid (a pod recreated under its old name), is checked against the record again."""
    world.add_pod("p1", "node-a", (1, "10.0.4.180"), gate=True)
    controller = world.controller("node-a")
    checker = controller.vet_claims.__self__
    reads = []
    real = checker.list_ippools
    checker.list_ippools = lambda: reads.append(1) or real()
    assert controller.reconcile()["ok"] and len(reads) == 1
    assert controller.reconcile()["ok"] and len(reads) == 1, "nothing new: no IPPool read"
    world.add_pod("p2", "node-a", (1, "10.0.4.181"), gate=True)
    assert controller.reconcile()["ok"] and len(reads) == 2
    world.pods["default/p1"][1]["metadata"]["uid"] = "recreated-under-the-same-name"
    assert controller.reconcile()["ok"] and len(reads) == 3
    assert world.pod_range_addresses()["10.0.4.180"] == [world.nodes["node-a"].eni(1)["id"]]
