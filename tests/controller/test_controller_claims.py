"""The claim check's pure parts (whereabouts' IPPool record, ownership) and its Kubernetes calls on the wire."""

from __future__ import annotations

import json

from multus_ip_controller import claims
from multus_ip_controller.planning import Eni, PodAddress

# Shape of whereabouts v0.9.4 IPPool objects: spec.range is the range CIDR, allocations map the offset from the
# range's network address to the holder.
POOLS = [
    {"metadata": {"name": "10.0.4.0-24", "namespace": "kube-system"},
     "spec": {"range": "10.0.4.0/24", "allocations": {
         "130": {"id": "a1", "podref": "team-a/web", "ifname": "net1"},
         "131": {"id": "b2", "podref": "team-b/db", "ifname": "net1"},
         "junk": {"podref": "x/y"}, "132": "not an object", "133": {"id": "c3"}}}},
    {"spec": {"range": "10.0.6.128-10.0.6.254/24", "allocations": {"200": {"id": "d4", "podref": "team-a/web"}}}},
    {"spec": {"range": "not a cidr", "allocations": {"1": {"podref": "x/y"}}}},
]


def test_allocations_turn_offsets_into_addresses_and_skip_junk():
    assert claims.allocations(POOLS) == {"10.0.4.130": "team-a/web", "10.0.4.131": "team-b/db",
                                         "10.0.6.200": "team-a/web"}


def test_only_claims_the_record_gives_to_the_same_pod_pass():
    desired = [PodAddress("team-a/web", "net1", "10.0.4.130", "02:00:00:00:00:01"),
               PodAddress("team-a/web", "net2", "10.0.4.131", "02:00:00:00:00:01"),  # team-b's
               PodAddress("team-a/web", "net3", "10.0.4.140", "02:00:00:00:00:01")]  # nobody's
    accepted, refused = claims.check_ipam(desired, claims.allocations(POOLS))
    assert [a.ip for a in accepted] == ["10.0.4.130"]
    assert [(r.ip, r.reason) for r in refused] == [("10.0.4.131", claims.ALLOCATED_TO_OTHER),
                                                   ("10.0.4.140", claims.NOT_ALLOCATED)]
    assert "team-b/db" in refused[0].detail


def test_ownership_is_the_adapters_rule():
    owned = claims.owned_by("eks-multus")
    assert owned("eks-multus-ng1") and not owned("eks-multus2-ng1") and not owned(None) and not owned("other")
    assert claims.owned_by(None)("anything") and not claims.owned_by(None)(None)


def test_addresses_already_on_this_nodes_enis_are_not_looked_up_again():
    asked = []
    checker = claims.ClaimChecker(list_ippools=lambda: POOLS, describe_holders=lambda ips: asked.append(ips) or [],
                                  owned=claims.owned_by("eks-multus"))
    eni = Eni("eni-1", "02:00:00:00:00:01", 1, "10.0.4.20", frozenset({"10.0.4.130"}))
    accepted, _ = checker.vet([PodAddress("team-a/web", "net1", "10.0.4.130", None),
                               PodAddress("team-a/web", "net2", "10.0.6.200", None)], [eni])
    assert asked == [["10.0.6.200"]] and len(accepted) == 2


def test_an_event_failure_is_logged_and_retried_on_the_next_pass(caplog):
    calls = []

    def flaky(*event):
        calls.append(event)
        if len(calls) == 1:
            raise RuntimeError("events: 403")

    checker = claims.ClaimChecker(list_ippools=lambda: [], describe_holders=lambda ips: [],
                                  owned=claims.owned_by("eks-multus"), emit_event=flaky)
    claim = [PodAddress("team-a/web", "net1", "10.0.4.130", None)]
    for _ in range(3):
        checker.vet(claim, [])
    assert len(calls) == 2  # failed once, recorded on the second pass, not repeated after
    assert any("event not recorded" in r.getMessage() for r in caplog.records)


class _Sent:
    def __init__(self, body: dict):
        self.requests = []
        self.body = json.dumps(body).encode()

    def request(self, method, url, **kwargs):
        self.requests.append({"method": method, "url": url, **kwargs})
        return type("R", (), {"status": 200, "reason": "OK", "data": self.body,
                              "headers": {"content-type": "application/json"},
                              "getheaders": lambda self: self.headers,
                              "getheader": lambda self, name, default=None: self.headers.get(name, default)})()


def _records(sent):
    from kubernetes import client

    configuration = client.Configuration()
    configuration.host = "https://kube.example"
    api = client.ApiClient(configuration)
    api.rest_client.pool_manager = sent
    return claims.KubeRecords(api)


def test_ippools_are_listed_in_whereabouts_namespace():
    sent = _Sent({"items": POOLS})
    assert _records(sent).list_ippools() == POOLS
    (request,) = sent.requests
    assert (request["method"], request["url"]) == (
        "GET", "https://kube.example/apis/whereabouts.cni.cncf.io/v1alpha1/namespaces/kube-system/ippools")


def test_refusal_event_is_a_warning_on_the_pod():
    sent = _Sent({"kind": "Event", "apiVersion": "v1", "metadata": {"name": "web.1"},
                  "involvedObject": {"kind": "Pod", "name": "web"}})
    _records(sent).emit_event("team-a", "web", claims.EVENT_REASON, "address 10.0.4.131 not assigned")
    (request,) = sent.requests
    assert (request["method"], request["url"]) == ("POST", "https://kube.example/api/v1/namespaces/team-a/events")
    body = json.loads(request["body"])
    assert body["involvedObject"] == {"apiVersion": "v1", "kind": "Pod", "name": "web", "namespace": "team-a"}
    assert (body["type"], body["reason"]) == ("Warning", claims.EVENT_REASON)
    assert body["metadata"]["generateName"] == "web."


def test_holder_lookup_goes_in_chunks_ec2_accepts():
    """EC2 refuses more than 200 values in one filter (FilterLimitExceeded): 450 addresses take 3 calls."""
    from multus_ip_controller.claims import MAX_FILTER_VALUES, ec2_holders

    calls = []

    class Paginator:
        def paginate(self, Filters):  # noqa: N803 - boto3's parameter name
            (f,) = Filters
            assert len(f["Values"]) <= 200, "EC2 would answer FilterLimitExceeded"
            calls.append(len(f["Values"]))
            return [{"NetworkInterfaces": [{"NetworkInterfaceId": f"eni-{v}"} for v in f["Values"][:1]]}]

    class Client:
        def get_paginator(self, name):
            assert name == "describe_network_interfaces"
            return Paginator()

    found = ec2_holders(Client())([f"10.0.{i // 250}.{i % 250}" for i in range(450)])
    assert MAX_FILTER_VALUES == 200 and calls == [200, 200, 50]
    assert len(found) == 3
