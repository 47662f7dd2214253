"""Pure planning: desired pod addresses vs. EC2's secondary addresses on this node's Multus ENIs."""

from __future__ import annotations

import pytest
from multus_ip_controller.planning import (
    Eni,
    PodAddress,
    normalize_ip,
    normalize_mac,
    parse_ranges,
    plan,
)

RANGES = parse_ranges(["10.0.4.128/25", "10.0.6.128/25"])
MAC1, MAC2, MAC3 = "02:00:00:00:00:01", "02:00:00:00:00:02", "02:00:00:00:00:03"


def enis(**secondaries):
    """Two ENIs in the same subnet (10.0.4.0/24) and one in another (10.0.6.0/24)."""
    return [
        Eni("eni-1", MAC1, 1, "10.0.4.11", frozenset(secondaries.get("eni1", ()))),
        Eni("eni-2", MAC2, 2, "10.0.4.12", frozenset(secondaries.get("eni2", ()))),
        Eni("eni-3", MAC3, 3, "10.0.6.13", frozenset(secondaries.get("eni3", ()))),
    ]


def addr(ip, mac=None, *, pod="default/p", device_index=None, terminating=False):
    return PodAddress(pod, "net1", ip, mac, device_index, terminating)


def test_address_goes_to_the_eni_with_the_pod_interfaces_mac_not_the_first_in_the_subnet():
    result = plan([addr("10.0.4.130", MAC2)], enis(), RANGES)
    assert result.assign == {"eni-2": ("10.0.4.130",)}
    assert result.unassign == {}


def test_nothing_to_do_when_ec2_already_matches():
    desired = [addr("10.0.4.130", MAC2), addr("10.0.6.140", MAC3)]
    result = plan(desired, enis(eni2=["10.0.4.130"], eni3=["10.0.6.140"]), RANGES)
    assert result.empty
    assert result.in_place == 2


def test_addresses_no_pod_holds_are_unassigned_but_primary_and_out_of_range_ones_are_kept():
    result = plan([], enis(eni1=["10.0.4.130", "10.0.4.50"], eni3=["10.0.6.200"]), RANGES)
    assert result.unassign == {"eni-1": ("10.0.4.130",), "eni-3": ("10.0.6.200",)}
    assert result.assign == {}


def test_address_on_the_wrong_eni_of_this_node_is_reassigned_not_also_unassigned():
    # AllowReassignment moves it; an unassign from eni-1 in the same pass would race the move.
    result = plan([addr("10.0.4.130", MAC2)], enis(eni1=["10.0.4.130"]), RANGES)
    assert result.assign == {"eni-2": ("10.0.4.130",)}
    assert result.unassign == {}


def test_addresses_outside_the_pod_ranges_are_never_planned():
    result = plan([addr("10.0.4.70", MAC1), addr("10.0.2.37", MAC1)], enis(), RANGES)
    assert result.empty and not result.skipped


def test_mac_fallback_uses_the_nad_masters_device_index_and_says_so():
    result = plan([addr("10.0.4.131", None, device_index=2)], enis(), RANGES)
    assert result.assign == {"eni-2": ("10.0.4.131",)}
    assert result.by_device_index == ("10.0.4.131",)


def test_mac_wins_over_device_index():
    result = plan([addr("10.0.4.131", MAC1, device_index=2)], enis(), RANGES)
    assert result.assign == {"eni-1": ("10.0.4.131",)}
    assert result.by_device_index == ()


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        (addr("10.0.4.131", "02:00:00:00:00:99"), "no Multus ENI on this instance has MAC"),
        (addr("10.0.4.131", None, device_index=7), "no Multus ENI at device index 7"),
        (addr("10.0.4.131", None), "no MAC and no NAD master"),
    ],
)
def test_unplaceable_addresses_are_skipped_with_a_reason(address, reason):
    result = plan([address], enis(eni1=["10.0.4.131"]), RANGES)
    assert result.assign == {}
    assert reason in result.skipped[0].reason
    # A pod here still reports it: when in doubt, EC2's copy stays.
    assert result.unassign == {}


def test_terminating_pod_keeps_its_address_but_never_pulls_it_back():
    kept = plan([addr("10.0.4.130", MAC1, terminating=True)], enis(eni1=["10.0.4.130"]), RANGES)
    assert kept.empty and kept.in_place == 1
    gone = plan([addr("10.0.4.130", MAC1, terminating=True)], enis(), RANGES)
    assert gone.empty  # another node may hold it already: do not steal it back


def test_live_pod_wins_over_a_terminating_one_with_the_same_address():
    desired = [
        addr("10.0.4.130", MAC1, pod="default/old", terminating=True),
        addr("10.0.4.130", MAC2, pod="default/new"),
    ]
    result = plan(desired, enis(eni1=["10.0.4.130"]), RANGES)
    assert result.assign == {"eni-2": ("10.0.4.130",)}
    assert result.unassign == {}


def test_same_address_claimed_on_two_enis_is_a_conflict_left_in_place():
    desired = [addr("10.0.4.130", MAC1, pod="default/a"), addr("10.0.4.130", MAC2, pod="default/b")]
    result = plan(desired, enis(eni1=["10.0.4.130"]), RANGES)
    assert result.empty
    assert result.skipped[0].pod == "default/a, default/b"
    assert "more than one ENI" in result.skipped[0].reason


def test_an_enis_primary_address_is_never_touched():
    result = plan([addr("10.0.4.12", MAC1)], enis(), parse_ranges(["10.0.4.0/24"]))
    assert result.empty
    assert result.skipped[0].reason == "is the primary address of an ENI"


def test_same_address_twice_on_one_eni_is_one_assignment():
    twice = [addr("10.0.4.130", MAC1, pod="default/a"), addr("10.0.4.130", MAC1, pod="default/a")]
    result = plan(twice, enis(), RANGES)
    assert result.assign == {"eni-1": ("10.0.4.130",)}


def test_plan_output_is_sorted_and_deterministic():
    desired = [addr(f"10.0.4.{i}", MAC1) for i in (200, 129, 150)]
    result = plan(desired, enis(), RANGES)
    assert result.assign == {"eni-1": ("10.0.4.129", "10.0.4.150", "10.0.4.200")}


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("10.0.4.70", "10.0.4.70"),
        ("10.0.4.70/25", "10.0.4.70"),
        (" 10.0.4.70 ", "10.0.4.70"),
        ("fd00::1", None),
        ("x", None),
    ],
)
def test_normalize_ip(raw, expected):
    assert normalize_ip(raw) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("02:AB:cd:00:11:22", "02:ab:cd:00:11:22"),
        ("02-ab-cd-00-11-22", "02:ab:cd:00:11:22"),
        ("0", None),
        ("", None),
        (None, None),
    ],
)
def test_normalize_mac(raw, expected):
    assert normalize_mac(raw) == expected


def test_parse_ranges_rejects_host_bits():
    with pytest.raises(ValueError):
        parse_ranges(["10.0.4.129/25"])
