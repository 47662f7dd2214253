"""Pure capacity rules: free slots per ENI, oldest pods first, moves between ENIs, the published resource."""

from __future__ import annotations

from multus_ip_controller import capacity, planning
from multus_ip_controller.planning import Eni, PodAddress

RANGES = planning.parse_ranges(["10.0.4.128/25", "10.0.6.128/25"])
A = Eni("eni-a", "02:00:00:00:00:01", 1, "10.0.4.20", frozenset(), "multus1")
B = Eni("eni-b", "02:00:00:00:00:02", 2, "10.0.4.21", frozenset(), "multus2")


def addr(pod, ip, mac=A.mac, created="2026-11-30T10:00:00Z", terminating=False):
    return PodAddress(f"default/{pod}", "net1", ip, mac, None, terminating, created)


def test_oldest_pods_fill_the_free_slots_and_the_rest_is_refused_naming_the_eni():
    desired = [addr("young", "10.0.4.130", created="2026-11-30T10:00:09Z"),
               addr("old", "10.0.4.131", created="2026-11-30T09:00:00Z"),
               addr("mid", "10.0.4.132", created="2026-11-30T10:00:05Z")]
    eni = Eni("eni-a", A.mac, 1, "10.0.4.20", frozenset({"10.0.4.10"}), "multus1")  # one foreign secondary
    fitted = capacity.fit(planning.plan(desired, [eni], RANGES), desired, [eni], ipv4_per_interface=4)
    assert fitted.plan.assign == {"eni-a": ("10.0.4.131", "10.0.4.132")}  # 3 slots - 1 foreign = 2
    (refused,) = fitted.refused
    assert (refused.pod, refused.ip) == ("default/young", "10.0.4.130")
    assert "eni-a (network multus1) is full: 3 pod addresses per interface" in refused.reason
    assert fitted.free == {"eni-a": 0}


def test_unassignments_free_slots_in_the_same_pass():
    eni = Eni("eni-a", A.mac, 1, "10.0.4.20", frozenset({"10.0.4.140", "10.0.4.141", "10.0.4.142"}), "multus1")
    desired = [addr("new", "10.0.4.150")]  # the three held addresses belong to pods that are gone
    fitted = capacity.fit(planning.plan(desired, [eni], RANGES), desired, [eni], ipv4_per_interface=4)
    assert fitted.plan.unassign == {"eni-a": ("10.0.4.140", "10.0.4.141", "10.0.4.142")}
    assert fitted.plan.assign == {"eni-a": ("10.0.4.150",)} and fitted.refused == ()


def test_a_move_between_two_enis_of_the_node_frees_the_source_only_if_the_target_has_room():
    a = Eni("eni-a", A.mac, 1, "10.0.4.20", frozenset({"10.0.4.140"}), "multus1")
    b = Eni("eni-b", B.mac, 2, "10.0.4.21", frozenset({"10.0.4.141"}), "multus2")
    # .140 moves from A to B (its pod's MAC is B's now) but B is full (1 slot); A's slot is then not free.
    desired = [addr("mover", "10.0.4.140", mac=B.mac, created="2026-11-30T10:00:05Z"),
               addr("onb", "10.0.4.141", mac=B.mac, created="2026-11-30T09:00:00Z"),
               addr("newa", "10.0.4.142", mac=A.mac)]
    fitted = capacity.fit(planning.plan(desired, [a, b], RANGES), desired, [a, b], ipv4_per_interface=2)
    assert fitted.plan.assign == {}
    assert sorted(r.ip for r in fitted.refused) == ["10.0.4.140", "10.0.4.142"]


def test_an_unknown_limit_changes_nothing():
    desired = [addr("p", "10.0.4.130")]
    plan = planning.plan(desired, [A], RANGES)
    assert capacity.fit(plan, desired, [A], None).plan is plan
    assert capacity.extended_resources([A], desired, [], None, RANGES) == {}


def test_published_value_leaves_requesting_pods_to_the_scheduler():
    eni = Eni("eni-a", A.mac, 1, "10.0.4.20", frozenset({"10.0.4.10", "10.0.4.130", "10.0.4.131"}), "multus1")
    desired = [addr("plain", "10.0.4.130"), addr("asks", "10.0.4.131")]
    pods = [{"metadata": {"namespace": "default", "name": "asks"},
             "spec": {"containers": [{"resources": {"limits": {"eks-multus.io/multus1-ips": "1"}}}]}},
            {"metadata": {"namespace": "default", "name": "plain"}, "spec": {"containers": [{}]}}]
    # 9 slots (c5.large: 10 per interface) - 1 foreign - 1 pod that does not request it
    assert capacity.extended_resources([eni, B], desired, pods, 10, RANGES) == {
        "eks-multus.io/multus1-ips": 7, "eks-multus.io/multus2-ips": 9}


def test_the_samples_request_the_resource_the_controller_publishes():
    from eks_multus_cdk.sample_pods import EXTENDED_RESOURCE

    assert EXTENDED_RESOURCE.format(network="multus1") == capacity.resource_name("multus1")
