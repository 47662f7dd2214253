"""The readiness gate: which condition a gated pod gets after a pass (pure), and the patch that sets it."""

from __future__ import annotations

import json

import pytest
from multus_ip_controller import kube, readiness
from multus_ip_controller.planning import Eni, parse_ranges
from multus_ip_controller.readiness import ADDRESSES_READY_CONDITION, Condition, changes, decide, enis_after

from eks_multus_cdk import naming

RANGES = parse_ranges(["10.0.4.128/25", "10.0.6.128/25"])
MAC1, MAC2, MAC3 = "02:00:00:00:00:01", "02:00:00:00:00:02", "02:00:00:00:00:03"
GATE = [{"conditionType": ADDRESSES_READY_CONDITION}]


def test_the_controller_and_the_cdk_app_name_the_same_condition():
    assert readiness.ADDRESSES_READY_CONDITION == naming.ADDRESSES_READY_CONDITION == "eks-multus.io/addresses-assigned"


def enis(**secondaries):
    return [
        Eni("eni-1", MAC1, 1, "10.0.4.11", frozenset(secondaries.get("eni1", ()))),
        Eni("eni-2", MAC2, 2, "10.0.4.12", frozenset(secondaries.get("eni2", ()))),
        Eni("eni-3", MAC3, 3, "10.0.6.13", frozenset(secondaries.get("eni3", ()))),
    ]


def pod(name, *entries, gate=True, conditions=(), **extra):
    """entries: (ip, mac) of the pod's Multus interfaces; None for no network-status annotation at all."""
    meta = {"namespace": "default", "name": name, **extra.pop("meta", {})}
    if entries != (None,):
        status = [{"name": "aws-cni", "interface": "eth0", "ips": ["10.0.2.7"], "default": True}]
        status += [{"name": "default/n", "interface": f"net{i}", "ips": [ip], **({"mac": mac} if mac else {})}
                   for i, (ip, mac) in enumerate(entries, start=1)]
        meta["annotations"] = {kube.NETWORK_STATUS: json.dumps(status)}
    spec = {"nodeName": "node-a", **({"readinessGates": GATE} if gate else {}), **extra.pop("spec", {})}
    return {"metadata": meta, "spec": spec,
            "status": {"phase": "Running", "conditions": list(conditions), **extra.pop("status", {})}}


def decide_for(pods, after):
    desired, _ = kube.desired_addresses(pods, RANGES, lambda name: None)
    return decide(pods, desired, after, RANGES)


def test_true_when_every_pod_range_address_is_on_the_eni_its_mac_names():
    pods = [pod("p", ("10.0.4.130", MAC2), ("10.0.6.140", MAC3), ("10.0.4.70", MAC1))]  # .70: not a pod range
    result = decide_for(pods, enis(eni2=["10.0.4.130"], eni3=["10.0.6.140"]))
    assert result == {"default/p": Condition("True", "AddressesAssigned",
                                             "on the pod interface's ENI: 10.0.4.130, 10.0.6.140")}


def test_false_naming_each_missing_address_and_why():
    pods = [pod("p", ("10.0.4.130", MAC2), ("10.0.6.140", MAC3), ("10.0.4.131", "02:00:00:00:00:99"))]
    # .130 is on the wrong ENI of the same subnet; .140 is fine; .131's MAC is no ENI of this node.
    (condition,) = decide_for(pods, enis(eni1=["10.0.4.130"], eni3=["10.0.6.140"])).values()
    assert (condition.status, condition.reason) == ("False", "AddressesPending")
    assert condition.message == (
        "not on the pod interface's ENI yet: 10.0.4.130 (not yet assigned to eni-2); "
        "10.0.4.131 (no Multus ENI on this instance has MAC 02:00:00:00:00:99)")


def test_an_address_two_pods_claim_on_two_enis_is_pending_for_both():
    pods = [pod("a", ("10.0.4.130", MAC1)), pod("b", ("10.0.4.130", MAC2))]
    result = decide_for(pods, enis(eni1=["10.0.4.130"]))
    assert {k: (c.status, c.reason) for k, c in result.items()} == {
        "default/a": ("False", "AddressesPending"), "default/b": ("False", "AddressesPending")}
    assert "claimed on more than one ENI" in result["default/a"].message


def test_pods_without_pod_range_addresses_and_host_network_pods_are_true():
    pods = [pod("hostlocal", ("10.0.4.70", MAC1)), pod("plain"),
            pod("hostnet", None, spec={"hostNetwork": True})]
    result = decide_for(pods, enis())
    assert {k: (c.status, c.reason) for k, c in result.items()} == {
        "default/hostlocal": ("True", "NoPodRangeAddresses"),
        "default/plain": ("True", "NoPodRangeAddresses"),
        "default/hostnet": ("True", "NoPodRangeAddresses"),
    }


def test_before_multus_reports_the_pods_networks_it_is_not_ready():
    """Without network-status the addresses are unknown: True here would let the containers turn the pod Ready
    before the controller has even seen its address."""
    broken = pod("broken")
    broken["metadata"]["annotations"][kube.NETWORK_STATUS] = '[{"name": "default/n", "ips": ['
    result = decide_for([pod("new", None), broken], enis())
    assert {k: (c.status, c.reason) for k, c in result.items()} == {
        "default/new": ("False", "NetworkStatusPending"), "default/broken": ("False", "NetworkStatusPending")}
    assert "not JSON" in result["default/broken"].message


def test_ungated_terminating_and_finished_pods_get_nothing():
    pods = [
        pod("ungated", ("10.0.4.130", MAC1), gate=False),
        pod("leaving", ("10.0.4.131", MAC1), meta={"deletionTimestamp": "2026-11-03T10:20:00Z"}),
        pod("done", ("10.0.4.132", MAC1), status={"phase": "Succeeded"}),
        pod("other-gate", ("10.0.4.133", MAC1), gate=False, spec={"readinessGates": [{"conditionType": "x/y"}]}),
    ]
    assert decide_for(pods, enis()) == {}


def test_mac_less_address_is_judged_on_the_eni_of_the_nads_master():
    pods = [pod("p", ("10.0.4.130", None))]
    desired, _ = kube.desired_addresses(pods, RANGES, lambda name: 2)
    assert decide(pods, desired, enis(eni2=["10.0.4.130"]), RANGES)["default/p"].ready
    assert not decide(pods, desired, enis(eni1=["10.0.4.130"]), RANGES)["default/p"].ready


def test_enis_after_applies_what_ec2_accepted_and_moves_reassigned_addresses():
    before = enis(eni1=["10.0.4.130", "10.0.4.131", "10.0.4.60"], eni3=["10.0.6.140"])
    after = {e.eni_id: e for e in enis_after(before, {"eni-2": ["10.0.4.130", "10.0.4.132"]},
                                            {"eni-3": ["10.0.6.140"]})}
    assert after["eni-1"].secondary_ips == {"10.0.4.131", "10.0.4.60"}  # .130 moved away (AllowReassignment)
    assert after["eni-2"].secondary_ips == {"10.0.4.130", "10.0.4.132"}
    assert after["eni-3"].secondary_ips == frozenset()
    assert [(e.mac, e.device_index, e.primary_ip) for e in after.values()] == [
        (e.mac, e.device_index, e.primary_ip) for e in before]


def condition(status, reason, message, when="2026-11-03T10:00:00Z"):
    return {"type": ADDRESSES_READY_CONDITION, "status": status, "reason": reason, "message": message,
            "lastTransitionTime": when}


def test_changes_only_for_pods_whose_condition_differs():
    ready = Condition("True", "AddressesAssigned", "on the pod interface's ENI: 10.0.4.130")
    pending = Condition("False", "AddressesPending", "not on the pod interface's ENI yet: 10.0.4.131 (x)")
    kubelet = {"type": "Ready", "status": "False"}
    pods = [
        pod("same", conditions=[kubelet, condition("True", ready.reason, ready.message)]),
        pod("new", conditions=[kubelet]),
        pod("flips", conditions=[condition("False", pending.reason, pending.message)]),
        pod("reworded", conditions=[condition("False", pending.reason, "not on the pod interface's ENI yet: x")]),
        pod("undecided"),
    ]
    decided = {"default/same": ready, "default/new": pending, "default/flips": ready, "default/reworded": pending}
    out = changes(pods, decided, "2026-11-03T11:00:00Z")
    assert [(ns, name) for ns, name, _ in out] == [("default", "new"), ("default", "flips"), ("default", "reworded")]
    new, flips, reworded = (entry for _, _, entry in out)
    assert new == {"type": ADDRESSES_READY_CONDITION, "status": "False", "reason": "AddressesPending",
                   "message": pending.message, "lastTransitionTime": "2026-11-03T11:00:00Z"}
    assert flips["status"] == "True" and flips["lastTransitionTime"] == "2026-11-03T11:00:00Z"
    assert "lastTransitionTime" not in reworded  # same status: the server keeps the old transition time


# ------------------------------------------------------------------------------------------ the patch on the wire


class _Sent:
    """Stands in for urllib3's pool manager: records the request, answers 200 (or `status`) with a Pod."""

    def __init__(self, status=200):
        self.requests = []
        self.status = status

    def request(self, method, url, **kwargs):
        self.requests.append({"method": method, "url": url, **kwargs})
        body = b'{"kind": "Pod", "apiVersion": "v1", "metadata": {"name": "p"}}'
        return type("R", (), {"status": self.status, "reason": "X", "data": body,
                              "headers": {"content-type": "application/json"},
                              "getheaders": lambda self: self.headers,
                              "getheader": lambda self, name, default=None: self.headers.get(name, default)})()


def _client(sent):
    from kubernetes import client

    configuration = client.Configuration()
    configuration.host = "https://kube.example"
    kc = kube.KubeClient(client.ApiClient(configuration))
    kc._api.rest_client.pool_manager = sent
    return kc


def test_patch_goes_to_the_status_subresource_as_a_strategic_merge_patch_of_one_condition():
    sent = _Sent()
    entry = condition("True", "AddressesAssigned", "on the pod interface's ENI: 10.0.4.130")
    _client(sent).patch_pod_condition("team-a", "p", entry)
    (request,) = sent.requests
    assert request["method"] == "PATCH"
    assert request["url"] == "https://kube.example/api/v1/namespaces/team-a/pods/p/status"
    # Strategic merge: status.conditions merges by type, so the kubelet's conditions are kept.
    assert request["headers"]["Content-Type"] == "application/strategic-merge-patch+json"
    assert json.loads(request["body"]) == {"status": {"conditions": [entry]}}


def test_what_the_client_would_pick_without_being_told():
    """The generated API chooses json-patch for a dict body; kubernetes 36's REST layer rewrites it. The
    controller does not rely on that rewrite (it names the type); this records why."""
    from kubernetes import client

    api = client.ApiClient()
    assert api.select_header_content_type(
        ["application/json-patch+json", "application/merge-patch+json", "application/strategic-merge-patch+json"],
        "PATCH", {"status": {}}) == "application/json-patch+json"


def test_patch_errors_surface_as_api_exceptions_with_a_readable_code():
    from kubernetes.client.exceptions import ApiException

    with pytest.raises(ApiException) as raised:
        _client(_Sent(status=403)).patch_pod_condition("default", "p", condition("True", "A", "m"))
    assert kube.api_error_code(raised.value) == "HTTP 403 X"
    assert kube.api_error_code(RuntimeError("boom")) == "RuntimeError"
