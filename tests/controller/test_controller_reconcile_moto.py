"""Reconcile end to end against moto's EC2: two nodes, each with two Multus ENIs in the SAME subnet (where "the
first ENI in the subnet" goes wrong) plus one on another network; pods come, move, go; controllers restart; a
node terminates; EC2 throttles and fails. After every scenario EC2 holds exactly the desired pod addresses.

moto 5.2.5 gaps, closed here by patching its EC2 handlers (`moto_ec2_fixes.py`, applied by `moto_fixes`):
- AssignPrivateIpAddresses ignores AllowReassignment: it appends an address another ENI already holds, so two
  ENIs end up with the same address. Real EC2 moves it (AllowReassignment=true) or refuses with
  PrivateIpAddressInUse. It also accepts addresses outside the ENI's subnet (EC2: InvalidParameterValue), and
  any number of addresses (EC2: PrivateIpAddressLimitExceeded beyond the instance type's IPv4 addresses per
  interface, 15 on the c5.xlarge used here, the primary included).
- UnassignPrivateIpAddresses silently ignores addresses the ENI does not hold; EC2 refuses the call
  (InvalidParameterValue), which is what a controller racing a reassignment sees.
- Attachment DeleteOnTermination cannot be set through the API (see DESIGN.md); the test sets the backend flag
  the ENI Lambda would have set, so terminating an instance deletes its Multus ENIs as EC2 does.
"""

from __future__ import annotations

import ipaddress
import json
import logging
from dataclasses import dataclass, field

import pytest
from botocore.awsrequest import AWSResponse
from botocore.exceptions import ClientError
from moto import mock_aws
from moto.core import DEFAULT_ACCOUNT_ID
from moto.ec2.models import ec2_backends
from moto.ec2.responses.elastic_network_interfaces import ElasticNetworkInterfaces
from moto_ec2_fixes import assign_private_ip_addresses, unassign_private_ip_addresses
from multus_ip_controller import ec2 as ec2_mod
from multus_ip_controller.main import Controller
from multus_ip_controller.planning import parse_ranges
from multus_ip_controller.readiness import ADDRESSES_READY_CONDITION as CONDITION

REGION = "us-west-2"
PREFIX = "eks-multus"
OWNER = f"{PREFIX}-ng1"
RANGE_A = "10.0.4.128/25"  # network multus1 and multus2 share subnet 10.0.4.0/24 in this test
RANGE_B = "10.0.6.128/25"  # network multus3, subnet 10.0.6.0/24
RANGES = parse_ranges([RANGE_A, RANGE_B])
ENI_LAYOUT = (("a", 1), ("a", 2), ("b", 3))  # (subnet, device index): two ENIs in the same subnet


# ------------------------------------------------------------------------------------------ moto gaps


def _backend():
    return ec2_backends[DEFAULT_ACCOUNT_ID][REGION]


@pytest.fixture
def moto_fixes(monkeypatch):
    monkeypatch.setattr(ElasticNetworkInterfaces, "assign_private_ip_addresses", assign_private_ip_addresses)
    monkeypatch.setattr(ElasticNetworkInterfaces, "unassign_private_ip_addresses", unassign_private_ip_addresses)


# ------------------------------------------------------------------------------------------ the world


@dataclass
class Node:
    name: str
    instance_id: str
    enis: list[dict] = field(default_factory=list)  # {"id", "mac", "index", "subnet"}

    def eni(self, index: int) -> dict:
        return next(e for e in self.enis if e["index"] == index)


class World:
    """A VPC with two nodes in one AZ, their Multus ENIs, foreign ENIs, and a fake pod store."""

    def __init__(self, client) -> None:
        self.client = client
        vpc = client.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
        az = f"{REGION}a"
        self.node_subnet = client.create_subnet(VpcId=vpc, CidrBlock="10.0.2.0/24", AvailabilityZone=az)["Subnet"]
        self.subnets = {
            "a": client.create_subnet(VpcId=vpc, CidrBlock="10.0.4.0/24", AvailabilityZone=az)["Subnet"]["SubnetId"],
            "b": client.create_subnet(VpcId=vpc, CidrBlock="10.0.6.0/24", AvailabilityZone=az)["Subnet"]["SubnetId"],
        }
        self.nodes: dict[str, Node] = {}
        self.pods: dict[str, tuple[str, dict]] = {}  # "ns/name" -> (node name, pod object)
        self.patches: list[tuple[str, dict]] = []  # (pod, condition) of every pods/status PATCH
        self.patch_failures: dict[str, Exception] = {}  # pod -> what its PATCH raises
        for n, name in enumerate(("node-a", "node-b")):
            self._add_node(name, n)

    def _add_node(self, name: str, n: int) -> None:
        instance = self.client.run_instances(
            ImageId="ami-12c6146b", MinCount=1, MaxCount=1, InstanceType="c5.xlarge",
            SubnetId=self.node_subnet["SubnetId"], PrivateIpAddress=f"10.0.2.{10 + n}",
        )["Instances"][0]["InstanceId"]
        node = Node(name, instance)
        for subnet, index in ENI_LAYOUT:
            prefix = "10.0.4" if subnet == "a" else "10.0.6"
            eni = self.client.create_network_interface(
                SubnetId=self.subnets[subnet],
                PrivateIpAddress=f"{prefix}.{20 + 10 * n + index}",  # primaries stay out of the pod ranges
                TagSpecifications=[{
                    "ResourceType": "network-interface",
                    "Tags": [
                        {"Key": "node.k8s.amazonaws.com/no_manage", "Value": "true"},
                        {"Key": "eks-multus/owner", "Value": OWNER},
                        {"Key": "eks-multus/instance-id", "Value": instance},
                        {"Key": "eks-multus/network", "Value": f"multus{index}"},
                        {"Key": "eks-multus/device-index", "Value": str(index)},
                    ],
                }],
            )["NetworkInterface"]
            self.client.attach_network_interface(NetworkInterfaceId=eni["NetworkInterfaceId"], InstanceId=instance,
                                                 DeviceIndex=index)
            _backend().get_network_interface(eni["NetworkInterfaceId"]).delete_on_termination = True  # moto gap
            node.enis.append({"id": eni["NetworkInterfaceId"], "mac": eni["MacAddress"], "index": index,
                              "subnet": subnet})
        # A secondary address outside the pod ranges (someone else's) must survive every reconcile.
        self.client.assign_private_ip_addresses(NetworkInterfaceId=node.eni(1)["id"],
                                                PrivateIpAddresses=[f"10.0.4.{60 + n}"])
        # Foreign ENIs on the same instance, holding pod-range-looking addresses: another stack's Multus ENI and
        # an untagged one. The controller must never touch them.
        for owner, ip, index in ((f"other-{PREFIX}-ng1", f"10.0.4.{250 - n}", 4), (None, f"10.0.6.{250 - n}", 5)):
            tags = [{"Key": "eks-multus/owner", "Value": owner}] if owner else [{"Key": "Name", "Value": "x"}]
            subnet = self.subnets["a" if ip.startswith("10.0.4") else "b"]
            foreign = self.client.create_network_interface(
                SubnetId=subnet, PrivateIpAddress=f"{ip.rsplit('.', 1)[0]}.{40 + n}",
                TagSpecifications=[{"ResourceType": "network-interface", "Tags": tags}],
            )["NetworkInterface"]["NetworkInterfaceId"]
            self.client.assign_private_ip_addresses(NetworkInterfaceId=foreign, PrivateIpAddresses=[ip])
            self.client.attach_network_interface(NetworkInterfaceId=foreign, InstanceId=instance, DeviceIndex=index)
        self.nodes[name] = node

    # ---- pods

    def add_pod(self, name: str, node: str, *interfaces: tuple[int, str], mac: bool = True, gate: bool = False,
                **meta) -> None:
        """interfaces: (device index of the ENI the NAD's master names, address); gate: opt in to the readiness
        gate."""
        status = [{"name": "aws-cni", "interface": "eth0", "ips": ["10.0.2.77"], "mac": "0a:58:0a:00:02:4d",
                   "default": True, "dns": {}}]
        for i, (index, ip) in enumerate(interfaces, start=1):
            entry = {"name": f"default/multus{index}-{REGION}a", "interface": f"net{i}", "ips": [ip], "dns": {}}
            if mac:
                entry["mac"] = self.nodes[node].eni(index)["mac"].upper()  # case must not matter
            status.append(entry)
        pod = {
            "metadata": {"namespace": "default", "name": name, "uid": f"uid-{name}-{node}",
                         "annotations": {"k8s.v1.cni.cncf.io/network-status": json.dumps(status)}, **meta},
            "spec": {"nodeName": node, **({"readinessGates": [{"conditionType": CONDITION}]} if gate else {})},
            "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "False"}]},
        }
        self.pods[f"default/{name}"] = (node, pod)

    # ---- the pods/status subresource (a fake API server: strategic merge of status.conditions by type)

    def patch_pod_condition(self, namespace: str, name: str, condition: dict) -> None:
        self.patches.append((f"{namespace}/{name}", condition))
        failure = self.patch_failures.get(f"{namespace}/{name}")
        if failure is not None:
            raise failure
        _, pod = self.pods[f"{namespace}/{name}"]
        conditions = pod["status"]["conditions"]
        old = next((c for c in conditions if c["type"] == condition["type"]), None)
        if old is None:
            conditions.append(dict(condition))
        else:
            old.update(condition)

    def condition(self, name: str) -> dict | None:
        _, pod = self.pods[f"default/{name}"]
        return next((c for c in pod["status"]["conditions"] if c["type"] == CONDITION), None)

    def delete_pod(self, name: str) -> None:
        del self.pods[f"default/{name}"]

    def pods_on(self, node: str) -> list[dict]:
        return [pod for where, pod in self.pods.values() if where == node]

    def desired(self) -> dict[str, str]:
        """ip -> ENI id, from the live pods on live nodes (what EC2 must hold)."""
        out = {}
        for node_name, pod in self.pods.values():
            if pod["metadata"].get("deletionTimestamp"):
                continue
            for entry in json.loads(pod["metadata"]["annotations"]["k8s.v1.cni.cncf.io/network-status"])[1:]:
                index = int(entry["name"].split("-")[0].removeprefix("default/multus"))
                if any(ipaddress.IPv4Address(entry["ips"][0]) in r for r in RANGES):
                    out[entry["ips"][0]] = self.nodes[node_name].eni(index)["id"]
        return out

    # ---- controllers

    def controller(self, node: str, client=None, emit=None) -> Controller:
        return Controller(
            ec2=ec2_mod.Ec2Adapter(client or self.client, PREFIX),
            instance_id=self.nodes[node].instance_id,
            node_name=node,
            pod_ranges=RANGES,
            list_pods=lambda: self.pods_on(node),
            master_device_index=lambda name: int(name.split("-")[0].removeprefix("default/multus")),
            emit=emit or (lambda report: None),
            patch_pod_condition=self.patch_pod_condition,
        )

    # ---- EC2 truth

    def pod_range_addresses(self) -> dict[str, list[str]]:
        """ip -> ENI ids holding it, over every ENI this stack owns (pod-range secondaries only)."""
        out: dict[str, list[str]] = {}
        for eni in self.client.describe_network_interfaces()["NetworkInterfaces"]:
            tags = {t["Key"]: t["Value"] for t in eni.get("TagSet", [])}
            if tags.get("eks-multus/owner") != OWNER:
                continue
            for a in eni["PrivateIpAddresses"]:
                ip = a["PrivateIpAddress"]
                if not a["Primary"] and any(ipaddress.IPv4Address(ip) in r for r in RANGES):
                    out.setdefault(ip, []).append(eni["NetworkInterfaceId"])
        return out

    def assert_converged(self) -> None:
        """Zero leaked or misplaced addresses; foreign and out-of-range addresses untouched."""
        actual = self.pod_range_addresses()
        assert actual == {ip: [eni] for ip, eni in self.desired().items()}
        all_enis = self.client.describe_network_interfaces()["NetworkInterfaces"]
        everything = {a["PrivateIpAddress"] for e in all_enis for a in e["PrivateIpAddresses"]}
        for n, name in enumerate(("node-a", "node-b")):
            if name in self.nodes:
                assert {f"10.0.4.{60 + n}", f"10.0.4.{250 - n}", f"10.0.6.{250 - n}"} <= everything

    def reconcile_all(self) -> list[dict]:
        return [self.controller(name).reconcile() for name in self.nodes]


@pytest.fixture
def world(aws_credentials, moto_fixes, monkeypatch):
    monkeypatch.setenv("MOTO_EC2_LOAD_DEFAULT_AMIS", "false")  # 0.4 s per test; no test needs an AMI catalogue
    with mock_aws():
        yield World(ec2_mod.make_client(REGION))


# ------------------------------------------------------------------------------------------ scenarios


def test_pods_land_on_the_eni_whose_mac_they_carry(world):
    world.add_pod("p1", "node-a", (2, "10.0.4.130"))  # second ENI of subnet a: the trap
    world.add_pod("p2", "node-a", (1, "10.0.4.131"), (3, "10.0.6.140"))
    world.add_pod("p3", "node-b", (2, "10.0.4.132"), (1, "10.0.4.70"))  # .70: host-local, outside the ranges
    reports = world.reconcile_all()
    assert all(r["ok"] for r in reports)
    a = world.nodes["node-a"]
    assert reports[0]["assigned"] == {a.eni(1)["id"]: ["10.0.4.131"], a.eni(2)["id"]: ["10.0.4.130"],
                                      a.eni(3)["id"]: ["10.0.6.140"]}
    world.assert_converged()
    again = world.reconcile_all()
    assert [r["assigned"] for r in again] == [{}, {}] and [r["unassigned"] for r in again] == [{}, {}]
    assert again[0]["inPlace"] == 3


@pytest.mark.parametrize("order", [("node-b", "node-a"), ("node-a", "node-b")])
def test_pod_moved_to_another_node_takes_its_address_along(world, order):
    world.add_pod("mover", "node-a", (2, "10.0.4.140"))
    world.add_pod("stayer", "node-a", (1, "10.0.4.141"))
    world.reconcile_all()
    world.delete_pod("mover")
    world.add_pod("mover", "node-b", (2, "10.0.4.140"))  # rescheduled, whereabouts gave the same address
    reports = [world.controller(name).reconcile() for name in order]
    assert all(r["ok"] for r in reports), reports
    world.assert_converged()
    assert world.pod_range_addresses()["10.0.4.140"] == [world.nodes["node-b"].eni(2)["id"]]


def test_terminating_pod_does_not_steal_its_address_back(world):
    world.add_pod("old", "node-a", (1, "10.0.4.150"))
    world.reconcile_all()
    # The old pod's sandbox is gone and whereabouts reused its address on node-b; the old Pod object lingers.
    world.pods["default/old"][1]["metadata"]["deletionTimestamp"] = "2026-11-03T10:20:00Z"
    world.add_pod("new", "node-b", (1, "10.0.4.150"))
    world.controller("node-b").reconcile()
    report = world.controller("node-a").reconcile()
    assert report["assigned"] == {} and report["ok"]
    world.assert_converged()
    world.delete_pod("old")
    world.reconcile_all()
    world.assert_converged()


def test_deleted_pods_lose_their_addresses(world):
    world.add_pod("p1", "node-a", (1, "10.0.4.160"), (3, "10.0.6.160"))
    world.add_pod("p2", "node-b", (2, "10.0.4.161"))
    world.reconcile_all()
    world.delete_pod("p1")
    world.delete_pod("p2")
    reports = world.reconcile_all()
    assert reports[0]["unassigned"] == {world.nodes["node-a"].eni(1)["id"]: ["10.0.4.160"],
                                        world.nodes["node-a"].eni(3)["id"]: ["10.0.6.160"]}
    world.assert_converged()
    assert world.pod_range_addresses() == {}


class Crash(BaseException):
    """A process kill in the middle of a pass (not an API error the controller would catch)."""


def test_controller_restarted_mid_apply_converges_from_current_state(world):
    world.add_pod("gone", "node-a", (1, "10.0.4.170"))
    world.reconcile_all()
    world.delete_pod("gone")
    for i in range(4):
        world.add_pod(f"p{i}", "node-a", (1 + i % 3, f"10.0.{4 if i % 3 < 2 else 6}.{171 + i}"))
    writes = []

    def crash_after_first_write(params, **kwargs):
        writes.append(params["NetworkInterfaceId"])
        if len(writes) == 2:
            raise Crash()

    events = ["before-parameter-build.ec2.AssignPrivateIpAddresses",
              "before-parameter-build.ec2.UnassignPrivateIpAddresses"]
    for event in events:
        world.client.meta.events.register(event, crash_after_first_write)
    with pytest.raises(Crash):
        world.controller("node-a").reconcile()
    for event in events:
        world.client.meta.events.unregister(event, crash_after_first_write)
    assert world.pod_range_addresses() != {ip: [eni] for ip, eni in world.desired().items()}  # really half done

    fresh = world.controller("node-a")  # a new process: no memory of the previous one
    report = fresh.reconcile()
    assert report["ok"]
    world.assert_converged()  # every address exactly once: no duplicates from the half-done pass
    assert fresh.reconcile()["assigned"] == {}


def test_terminated_node_takes_its_enis_along_and_the_other_node_converges(world):
    world.add_pod("a1", "node-a", (2, "10.0.4.180"), (3, "10.0.6.180"))
    world.add_pod("b1", "node-b", (1, "10.0.4.181"))
    world.reconcile_all()
    node_a = world.nodes.pop("node-a")
    world.client.terminate_instances(InstanceIds=[node_a.instance_id])
    left = world.client.describe_network_interfaces(
        Filters=[{"Name": "network-interface-id", "Values": [e["id"] for e in node_a.enis]}]
    )["NetworkInterfaces"]
    assert left == []  # DeleteOnTermination: their addresses went with them
    world.delete_pod("a1")
    world.add_pod("a1", "node-b", (2, "10.0.4.180"), (3, "10.0.6.180"))  # rescheduled with the same addresses
    report = world.controller("node-b").reconcile()
    assert report["ok"]
    world.assert_converged()


def test_throttling_raised_once_is_reported_and_the_next_pass_converges(world):
    world.add_pod("p1", "node-a", (1, "10.0.4.190"), (2, "10.0.4.191"))
    calls = []

    def throttle_once(params, **kwargs):
        calls.append(params["body"]["NetworkInterfaceId"])
        if len(calls) == 1:
            raise ClientError({"Error": {"Code": "RequestLimitExceeded", "Message": "Request limit exceeded."}},
                              "AssignPrivateIpAddresses")

    world.client.meta.events.register("before-call.ec2.AssignPrivateIpAddresses", throttle_once)
    first = world.controller("node-a").reconcile()
    assert not first["ok"] and [e["code"] for e in first["errors"]] == ["RequestLimitExceeded"]
    assert len(first["assigned"]) == 1  # the other ENI still got its address
    second = world.controller("node-a").reconcile(trigger="retry")
    assert second["ok"]
    world.assert_converged()


def test_throttled_http_response_is_retried_by_botocore_within_the_same_pass(world, monkeypatch):
    from botocore.retries import bucket, standard

    # No real waiting: neither the retry backoff nor the adaptive mode's client-side token bucket.
    monkeypatch.setattr(standard.ExponentialBackoff, "delay_amount", lambda self, context: 0.0)
    monkeypatch.setattr(bucket.TokenBucket, "acquire", lambda self, amount=1, block=True: True)
    world.add_pod("p1", "node-a", (1, "10.0.4.195"))
    sent = []

    def throttled_response(request, **kwargs):
        sent.append(request.url)
        if len(sent) == 1:
            body = (b"<Response><Errors><Error><Code>RequestLimitExceeded</Code><Message>Request limit exceeded."
                    b"</Message></Error></Errors><RequestID>r-1</RequestID></Response>")
            return AWSResponse(request.url, 503, {}, _Raw(body))
        return None  # let moto answer

    world.client.meta.events.register_first("before-send.ec2.AssignPrivateIpAddresses", throttled_response)
    report = world.controller("node-a").reconcile()
    assert report["ok"], report["errors"]
    assert len(sent) == 2  # throttled once, retried once (adaptive retry mode)
    world.assert_converged()


class _Raw:
    def __init__(self, body: bytes) -> None:
        self.body = body

    def stream(self, **kwargs):
        yield self.body


def test_api_error_on_one_eni_does_not_stop_the_others(world):
    a = world.nodes["node-a"]
    world.add_pod("p1", "node-a", (1, "10.0.4.200"), (2, "10.0.4.201"), (3, "10.0.6.202"))
    broken = a.eni(2)["id"]

    def fail_for_one_eni(params, **kwargs):
        if params["body"]["NetworkInterfaceId"] == broken:
            raise ClientError({"Error": {"Code": "UnauthorizedOperation", "Message": "no"}}, "AssignPrivateIpAddresses")

    world.client.meta.events.register("before-call.ec2.AssignPrivateIpAddresses", fail_for_one_eni)
    report = world.controller("node-a").reconcile()
    assert [(e["eni"], e["code"]) for e in report["errors"]] == [(broken, "UnauthorizedOperation")]
    assert report["assigned"] == {a.eni(1)["id"]: ["10.0.4.200"], a.eni(3)["id"]: ["10.0.6.202"]}
    world.client.meta.events.unregister("before-call.ec2.AssignPrivateIpAddresses", fail_for_one_eni)
    assert world.controller("node-a").reconcile()["ok"]
    world.assert_converged()


def test_one_bad_address_in_a_batch_does_not_block_the_rest(world):
    # 10.0.6.210 is in a pod range but not in subnet a: EC2 refuses it on eni 1; the batch is split.
    world.add_pod("p1", "node-a", (1, "10.0.4.210"), (1, "10.0.4.211"))
    node = world.nodes["node-a"]
    world.pods["default/bad"] = ("node-a", {
        "metadata": {"namespace": "default", "name": "bad", "annotations": {
            "k8s.v1.cni.cncf.io/network-status":
                f'[{{"name": "default/multus1-{REGION}a", "interface": "net1", "ips": ["10.0.6.210"], '
                f'"mac": "{node.eni(1)["mac"]}"}}]'}},
        "spec": {"nodeName": "node-a"}, "status": {"phase": "Running"}})
    report = world.controller("node-a").reconcile()
    assert [(e["ips"], e["code"]) for e in report["errors"]] == [(["10.0.6.210"], "InvalidParameterValue")]
    assert sorted(report["assigned"][node.eni(1)["id"]]) == ["10.0.4.210", "10.0.4.211"]


def test_unassign_racing_a_reassignment_is_harmless(world):
    world.add_pod("p1", "node-a", (1, "10.0.4.220"))
    world.reconcile_all()
    node_a = world.controller("node-a")
    stale = node_a.ec2.multus_enis(node_a.instance_id)  # node-a read EC2 before node-b moved the address
    world.delete_pod("p1")
    world.add_pod("p1", "node-b", (1, "10.0.4.220"))
    assert world.controller("node-b").reconcile()["ok"]
    node_a.ec2.multus_enis = lambda instance_id: stale
    report = node_a.reconcile()
    assert [e["code"] for e in report["errors"]] == ["InvalidParameterValue"]  # EC2 refuses; nothing lost
    world.assert_converged()


def test_mac_less_interface_is_placed_by_the_nad_masters_device_index(world):
    world.add_pod("p1", "node-a", (2, "10.0.4.230"), mac=False)
    report = world.controller("node-a").reconcile()
    assert report["byDeviceIndex"] == ["10.0.4.230"]
    world.assert_converged()


def test_every_reconcile_logs_one_json_line(world, caplog):
    world.add_pod("p1", "node-a", (1, "10.0.4.240"))
    caplog.set_level(logging.INFO, logger="multus_ip_controller")
    controller = world.controller("node-a")
    real = Controller(  # the default sink: the module's logger
        ec2=controller.ec2, instance_id=controller.instance_id, node_name="node-a",
                      pod_ranges=RANGES, list_pods=controller.list_pods)
    real.reconcile()
    lines = [json.loads(r.getMessage()) for r in caplog.records if r.name == "multus_ip_controller"]
    assert len(lines) == 1
    assert lines[0]["msg"] == "reconcile" and lines[0]["assigned"] and lines[0]["ok"] is True


def test_moto_gap_allow_reassignment_is_still_there(aws_credentials, monkeypatch):
    """Guards the patch above: when moto learns AllowReassignment this fails, and `moto_fixes` can go."""
    monkeypatch.setenv("MOTO_EC2_LOAD_DEFAULT_AMIS", "false")
    with mock_aws():
        client = ec2_mod.make_client(REGION)
        vpc = client.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
        subnet = client.create_subnet(VpcId=vpc, CidrBlock="10.0.4.0/24")["Subnet"]["SubnetId"]
        one, two = (client.create_network_interface(SubnetId=subnet, PrivateIpAddress=f"10.0.4.{i}")
                    ["NetworkInterface"]["NetworkInterfaceId"] for i in (10, 11))
        client.assign_private_ip_addresses(NetworkInterfaceId=one, PrivateIpAddresses=["10.0.4.130"])
        client.assign_private_ip_addresses(NetworkInterfaceId=two, PrivateIpAddresses=["10.0.4.130"],
                                           AllowReassignment=True)
        holders = [e["NetworkInterfaceId"] for e in client.describe_network_interfaces()["NetworkInterfaces"]
                   if any(a["PrivateIpAddress"] == "10.0.4.130" for a in e["PrivateIpAddresses"])]
        assert sorted(holders) == sorted([one, two])  # EC2 would have moved it: only `two` holds it
        client.unassign_private_ip_addresses(NetworkInterfaceId=one, PrivateIpAddresses=["10.0.4.99"])  # EC2 refuses


# ------------------------------------------------------------------------------------------ readiness gate


def test_gated_pod_becomes_ready_once_the_pass_assigned_its_addresses(world):
    world.add_pod("gated", "node-a", (2, "10.0.4.130"), (3, "10.0.6.130"), gate=True)
    world.add_pod("ungated", "node-a", (1, "10.0.4.131"))
    world.add_pod("hostlocal", "node-a", (1, "10.0.4.70"), gate=True)  # no pod-range address
    report = world.controller("node-a").reconcile()
    assert report["ok"] and report["assigned"]
    world.assert_converged()
    assert world.condition("gated") == {
        "type": CONDITION, "status": "True", "reason": "AddressesAssigned",
        "message": "on the pod interface's ENI: 10.0.4.130, 10.0.6.130",
        "lastTransitionTime": world.condition("gated")["lastTransitionTime"],
    }
    assert world.condition("hostlocal")["reason"] == "NoPodRangeAddresses"
    assert world.condition("ungated") is None
    assert sorted(p for p, _ in world.patches) == ["default/gated", "default/hostlocal"]
    assert report["readiness"] == {"gated": 2, "notReady": [],
                                   "patched": {"default/gated": "True/AddressesAssigned",
                                               "default/hostlocal": "True/NoPodRangeAddresses"}}
    # The kubelet's conditions are untouched.
    assert world.pods["default/gated"][1]["status"]["conditions"][0] == {"type": "Ready", "status": "False"}


def test_no_patch_when_the_condition_is_unchanged(world):
    world.add_pod("gated", "node-a", (1, "10.0.4.132"), gate=True)
    controller = world.controller("node-a")
    controller.reconcile()
    assert len(world.patches) == 1
    for _ in range(3):
        report = controller.reconcile()
        assert report["ok"] and report["readiness"]["patched"] == {}
    world.controller("node-a").reconcile()  # a restarted controller reads the condition from the pod
    assert len(world.patches) == 1


def test_gated_pod_stays_not_ready_naming_the_address_ec2_refused_then_becomes_ready(world):
    a = world.nodes["node-a"]
    world.add_pod("stuck", "node-a", (2, "10.0.4.133"), (1, "10.0.4.134"), gate=True)
    world.add_pod("fine", "node-a", (3, "10.0.6.135"), gate=True)
    broken = a.eni(2)["id"]

    def fail_for_one_eni(params, **kwargs):
        if params["body"]["NetworkInterfaceId"] == broken:
            raise ClientError({"Error": {"Code": "UnauthorizedOperation", "Message": "no"}}, "AssignPrivateIpAddresses")

    world.client.meta.events.register("before-call.ec2.AssignPrivateIpAddresses", fail_for_one_eni)
    controller = world.controller("node-a")
    report = controller.reconcile()
    assert not report["ok"] and report["readiness"]["notReady"] == ["default/stuck"]
    stuck = world.condition("stuck")
    assert (stuck["status"], stuck["reason"]) == ("False", "AddressesPending")
    assert stuck["message"] == f"not on the pod interface's ENI yet: 10.0.4.133 (not yet assigned to {broken})"
    assert world.condition("fine")["status"] == "True"
    patches = len(world.patches)
    assert controller.reconcile()["readiness"]["patched"] == {}  # still failing, same message: no patch
    assert len(world.patches) == patches

    world.client.meta.events.unregister("before-call.ec2.AssignPrivateIpAddresses", fail_for_one_eni)
    report = controller.reconcile(trigger="retry")
    assert report["ok"] and report["readiness"]["patched"] == {"default/stuck": "True/AddressesAssigned"}
    world.assert_converged()
    assert world.condition("stuck")["status"] == "True"


def test_gated_pod_whose_address_is_refused_by_ec2_names_it(world):
    """10.0.6.210 is in a pod range but not in the ENI's subnet: EC2 refuses it, the pod stays not Ready."""
    world.add_pod("p1", "node-a", (1, "10.0.4.210"), (1, "10.0.6.210"), gate=True)
    report = world.controller("node-a").reconcile()
    assert [(e["ips"], e["code"]) for e in report["errors"]] == [(["10.0.6.210"], "InvalidParameterValue")]
    condition = world.condition("p1")
    assert condition["status"] == "False" and "10.0.6.210" in condition["message"]
    assert "10.0.4.210" not in condition["message"]


def test_a_patch_error_on_one_pod_does_not_stop_the_others(world):
    from kubernetes.client.exceptions import ApiException

    world.add_pod("refused", "node-a", (1, "10.0.4.140"), gate=True)
    world.add_pod("gone", "node-a", (1, "10.0.4.141"), gate=True)
    world.add_pod("other", "node-a", (2, "10.0.4.142"), gate=True)
    world.patch_failures["default/refused"] = ApiException(status=403, reason="Forbidden")
    world.patch_failures["default/gone"] = ApiException(status=404, reason="Not Found")  # deleted since the list
    report = world.controller("node-a").reconcile()
    assert world.condition("other")["status"] == "True"
    assert [(e["op"], e["pod"], e["code"]) for e in report["errors"]] == [
        ("readiness", "default/refused", "HTTP 403 Forbidden")]
    assert not report["ok"]  # the loop retries soon
    assert report["readiness"]["patched"] == {"default/other": "True/AddressesAssigned"}
    world.assert_converged()
    del world.patch_failures["default/refused"]
    assert world.controller("node-a").reconcile()["readiness"]["patched"] == {
        "default/refused": "True/AddressesAssigned"}


def test_gated_pod_before_multus_reported_it_and_a_moved_pod(world):
    world.add_pod("mover", "node-a", (1, "10.0.4.150"), gate=True)
    world.reconcile_all()
    assert world.condition("mover")["status"] == "True"
    # Rescheduled to node-b: a new Pod object, first without network-status (sandbox not set up yet)...
    world.delete_pod("mover")
    world.add_pod("mover", "node-b", (1, "10.0.4.150"), gate=True)
    pod = world.pods["default/mover"][1]
    annotation = pod["metadata"]["annotations"].pop("k8s.v1.cni.cncf.io/network-status")
    world.controller("node-b").reconcile()
    assert (world.condition("mover")["status"], world.condition("mover")["reason"]) == (
        "False", "NetworkStatusPending")
    # ...then Multus writes it; the pass moves the address from node-a's ENI and the pod becomes Ready.
    pod["metadata"]["annotations"]["k8s.v1.cni.cncf.io/network-status"] = annotation
    report = world.controller("node-b").reconcile()
    assert report["assigned"] == {world.nodes["node-b"].eni(1)["id"]: ["10.0.4.150"]}
    assert world.condition("mover")["status"] == "True"
    world.assert_converged()


# ------------------------------------------------------------------------------------------ a full ENI


def _count_calls(client, operation: str) -> list[dict]:
    calls: list[dict] = []
    client.meta.events.register(f"before-call.ec2.{operation}", lambda params, **kw: calls.append(params["body"]))
    return calls


def test_a_full_eni_serves_the_oldest_pods_first_and_stops_sending_what_cannot_fit(world):
    """c5.xlarge: 15 IPv4 addresses per interface, so 14 pod addresses per Multus ENI; 20 gated pods want ENI 2.
    The youngest pods hold the lowest addresses, so address order and age order disagree. Before the capacity
    rules (verified against that commit) every pass sent all 20, EC2 refused, the batch was split and the same
    6 failing calls were sent on every pass; which pods got a slot followed address order."""
    eni2 = world.nodes["node-a"].eni(2)["id"]
    for i in range(20):  # pod i holds 10.0.4.(130+i) and was created (59-i) s past 10:00: higher address, older
        world.add_pod(f"p{i:02d}", "node-a", (2, f"10.0.4.{130 + i}"), gate=True,
                      creationTimestamp=f"2026-11-30T10:00:{59 - i:02d}Z")
    assigns = _count_calls(world.client, "AssignPrivateIpAddresses")
    published: list[dict] = []
    controller = world.controller("node-a")
    controller.publish_resources = published.append
    first = controller.reconcile()
    oldest = [f"10.0.4.{130 + i}" for i in range(6, 20)]
    assert first["assigned"] == {eni2: oldest}
    assert len(assigns) == 1  # one batched call, no refused batch to split
    assert sorted(r["ip"] for r in first["refused"]) == [f"10.0.4.{130 + i}" for i in range(6)]
    assert first["ok"]  # a full ENI is a state to report, not an error to retry quickly
    young = world.condition("p00")
    assert young["status"] == "False" and f"{eni2} (network multus2) is full: 14 pod addresses" in young["message"]
    assert world.condition("p19")["status"] == "True"
    # multus1's ENI holds one foreign secondary (10.0.4.60): 13 slots; multus2 is full of pods that do not
    # request the resource (the scheduler cannot see them): 0; multus3: 14.
    assert published == [{"eks-multus.io/multus1-ips": 13, "eks-multus.io/multus2-ips": 0,
                          "eks-multus.io/multus3-ips": 14}]

    second = controller.reconcile()
    assert len(assigns) == 1 and second["assigned"] == {}  # nothing is sent that cannot fit
    assert len(published) == 1  # unchanged: not published again

    world.delete_pod("p19")
    world.delete_pod("p18")  # two of the oldest go: the two oldest waiting pods get their slots
    third = controller.reconcile()
    assert third["unassigned"] == {eni2: ["10.0.4.148", "10.0.4.149"]}
    assert third["assigned"] == {eni2: ["10.0.4.134", "10.0.4.135"]} and len(assigns) == 2
    assert world.condition("p05")["status"] == "True" and world.condition("p03")["status"] == "False"
    assert len(world.pod_range_addresses()) == 14


def test_pods_that_request_the_extended_resource_are_left_to_the_scheduler(world):
    world.add_pod("plain", "node-a", (3, "10.0.6.130"))
    world.add_pod("asks", "node-a", (3, "10.0.6.131"))
    world.pods["default/asks"][1]["spec"]["containers"] = [
        {"name": "c", "resources": {"requests": {"eks-multus.io/multus3-ips": "1"}}}]
    published: list[dict] = []
    controller = world.controller("node-a")
    controller.publish_resources = published.append
    controller.reconcile()
    assert published[-1]["eks-multus.io/multus3-ips"] == 13  # 14 slots minus the pod the scheduler cannot see


# ------------------------------------------------------------------------------------------ ready means routable


@pytest.fixture
def imds_for(world):
    from fake_imds import FakeImds

    servers = []

    def make(node: str, lag_reads: int):
        macs = {e["mac"]: e["id"] for e in world.nodes[node].enis}

        def addresses(mac):
            if mac not in macs:
                return None
            (eni,) = world.client.describe_network_interfaces(NetworkInterfaceIds=[macs[mac]])["NetworkInterfaces"]
            return {a["PrivateIpAddress"] for a in eni["PrivateIpAddresses"]}

        server = FakeImds(addresses, lag_reads=lag_reads)
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.stop()


def test_gated_pod_is_ready_only_once_the_instance_metadata_lists_its_address(world, imds_for):
    from multus_ip_controller.imds import Imds, ImdsConfirmer

    world.add_pod("moved", "node-a", (1, "10.0.4.150"), gate=True)
    imds = imds_for("node-a", lag_reads=1_000)  # the move has not completed: IMDS does not list it yet
    controller = world.controller("node-a")
    controller.confirm = ImdsConfirmer(Imds(imds.url, timeout=1), wait_seconds=0.3, interval=0.05)
    first = controller.reconcile()
    eni1 = world.nodes["node-a"].eni(1)["id"]
    assert first["assigned"] == {eni1: ["10.0.4.150"]} and first["unconfirmed"] == {eni1: ["10.0.4.150"]}
    condition = world.condition("moved")
    assert (condition["status"], condition["reason"]) == ("False", "AddressesPending")
    assert "not yet listed on it by the instance metadata" in condition["message"]
    assert imds.reads >= 2 and imds.unauthorized == 0  # polled, with an IMDSv2 token

    imds.lag_reads = 0  # the move completed
    second = world.controller("node-a")
    second.confirm = ImdsConfirmer(Imds(imds.url, timeout=1), wait_seconds=0.3)
    report = second.reconcile()
    assert report["assigned"] == {} and world.condition("moved")["status"] == "True"  # in place per EC2 and IMDS


def test_gated_pod_is_ready_in_the_same_pass_when_imds_lists_the_address_at_once(world, imds_for):
    from multus_ip_controller.imds import Imds, ImdsConfirmer

    world.add_pod("quick", "node-a", (2, "10.0.4.151"), gate=True)
    imds = imds_for("node-a", lag_reads=0)
    controller = world.controller("node-a")
    controller.confirm = ImdsConfirmer(Imds(imds.url, timeout=1), wait_seconds=1)
    report = controller.reconcile()
    assert report["unconfirmed"] == {} and world.condition("quick")["status"] == "True"


def test_without_imds_a_describe_after_the_assignment_confirms_it(world):
    world.add_pod("p1", "node-a", (1, "10.0.4.152"), gate=True)
    describes = _count_calls(world.client, "DescribeNetworkInterfaces")
    report = world.controller("node-a").reconcile()
    assert len(describes) == 2  # the pass's read, then the confirmation after AssignPrivateIpAddresses
    assert report["unconfirmed"] == {} and world.condition("p1")["status"] == "True"


def test_an_assignment_ec2_accepts_but_does_not_show_is_not_ready(world):
    """EC2 accepted the call but the describe after it does not list the address yet (eventual consistency)."""
    world.add_pod("p1", "node-a", (1, "10.0.4.153"), gate=True)
    controller = world.controller("node-a")
    controller.confirm = lambda assigned, enis: {eni: set() for eni in assigned}
    report = controller.reconcile()
    assert report["unconfirmed"] and world.condition("p1")["status"] == "False"


def test_extended_resources_are_published_again_when_the_node_lost_them(world):
    """A kubelet that re-registers its Node can drop extended resources: the Node's watched values decide."""
    node_values: dict = {}
    published: list[dict] = []
    controller = world.controller("node-a")
    controller.publish_resources = lambda values: published.append(values) or node_values.update(values)
    controller.published_resources = lambda: dict(node_values)
    controller.reconcile()
    controller.reconcile()
    assert len(published) == 1  # the Node carries them: nothing to send
    node_values.clear()  # the kubelet reset them
    controller.reconcile()
    assert len(published) == 2 and node_values == published[0]
