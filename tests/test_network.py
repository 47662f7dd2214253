"""Network construct: subnets where the config says, tags, isolation, flow logs, Multus SG, pod-range reservations."""

from __future__ import annotations

import json

import pytest
from aws_cdk import App
from aws_cdk.assertions import Match, Template

from eks_multus_cdk.network import Network
from stacks.base import PinnedAzStack
from stacks.props import network_props
from tests.conftest import resources


def _subnets(template: dict) -> dict[str, tuple[str, str]]:
    return {
        v["Properties"]["CidrBlock"]: (v["Properties"]["AvailabilityZone"], k)
        for k, v in resources(template, "AWS::EC2::Subnet").items()
    }


def test_subnets_have_the_configured_cidrs_in_the_configured_azs(synthesized):
    subnets = _subnets(synthesized.templates["eks-multus-cluster"])
    assert {cidr: az for cidr, (az, _) in subnets.items()} == {
        "10.0.0.0/24": "us-west-2a", "10.0.1.0/24": "us-west-2b",
        "10.0.2.0/24": "us-west-2a", "10.0.3.0/24": "us-west-2b",
        "10.0.4.0/24": "us-west-2a", "10.0.5.0/24": "us-west-2b",
        "10.0.6.0/24": "us-west-2a", "10.0.7.0/24": "us-west-2b",
    }


def test_load_balancer_role_tags(synthesized):
    template = synthesized.templates["eks-multus-cluster"]
    tagged = {
        v["Properties"]["CidrBlock"]: {t["Key"]: t["Value"] for t in v["Properties"]["Tags"]}
        for v in resources(template, "AWS::EC2::Subnet").values()
    }
    assert all(tagged[c]["kubernetes.io/role/elb"] == "1" for c in ("10.0.0.0/24", "10.0.1.0/24"))
    assert all(tagged[c]["kubernetes.io/role/internal-elb"] == "1" for c in ("10.0.2.0/24", "10.0.3.0/24"))
    assert not any("kubernetes.io/role/elb" in tagged[c] or "kubernetes.io/role/internal-elb" in tagged[c]
                   for c in ("10.0.4.0/24", "10.0.5.0/24", "10.0.6.0/24", "10.0.7.0/24"))


def test_multus_subnets_have_their_own_route_tables_without_internet_routes(synthesized):
    template = synthesized.templates["eks-multus-cluster"]
    subnets = _subnets(template)
    associations = resources(template, "AWS::EC2::SubnetRouteTableAssociation").values()
    table_of = {a["Properties"]["SubnetId"]["Ref"]: a["Properties"]["RouteTableId"]["Ref"] for a in associations}
    multus_tables = [table_of[subnets[c][1]] for c in ("10.0.4.0/24", "10.0.5.0/24", "10.0.6.0/24", "10.0.7.0/24")]
    assert len(set(multus_tables)) == 4
    routed_tables = {r["Properties"]["RouteTableId"]["Ref"] for r in resources(template, "AWS::EC2::Route").values()}
    assert not routed_tables & set(multus_tables)


def test_one_nat_gateway_per_az_by_default(synthesized):
    synthesized.cluster.resource_count_is("AWS::EC2::NatGateway", 2)


def test_flow_logs_go_to_a_log_group_with_retention(synthesized):
    synthesized.cluster.has_resource_properties("AWS::EC2::FlowLog", {
        "ResourceType": "VPC", "TrafficType": "ALL", "LogDestinationType": "cloud-watch-logs"})
    synthesized.cluster.has_resource_properties("AWS::Logs::LogGroup", {"RetentionInDays": 30})


def test_multus_security_group_admits_only_the_vpc_by_default(synthesized):
    sgs = resources(synthesized.templates["eks-multus-cluster"], "AWS::EC2::SecurityGroup")
    (multus,) = [v for k, v in sgs.items() if k.startswith("NetworkMultusSecurityGroup")]
    assert multus["Properties"]["SecurityGroupIngress"] == [
        {"CidrIp": "10.0.0.0/16", "Description": "Multus traffic from the VPC", "IpProtocol": "-1"}]


def test_nothing_is_open_to_the_internet(synthesized):
    for template in synthesized.templates.values():
        text = str(template)
        for rule in resources(template, "AWS::EC2::SecurityGroupIngress").values():
            assert rule["Properties"].get("CidrIp") != "0.0.0.0/0"
        for sg in resources(template, "AWS::EC2::SecurityGroup").values():
            for rule in sg["Properties"].get("SecurityGroupIngress", []):
                assert rule.get("CidrIp") != "0.0.0.0/0" and rule.get("CidrIpv6") != "::/0"
        assert "'FromPort': 22" not in text


def test_pod_ranges_are_reserved_explicitly_in_every_multus_subnet(synthesized):
    # Through the custom resource (every region), never the native type (missing in most regions).
    template = synthesized.templates["eks-multus-cluster"]
    subnets = _subnets(template)
    assert resources(template, "AWS::EC2::SubnetCidrReservation") == {}
    (function_arn,) = {json.dumps(r["Properties"]["ServiceToken"])
                       for r in resources(template, "Custom::SubnetCidrReservation").values()}
    reservations = {
        (r["Properties"]["SubnetId"]["Ref"], r["Properties"]["Cidr"], r["Properties"]["ReservationType"])
        for r in resources(template, "Custom::SubnetCidrReservation").values()
    }
    assert "NetworkCidrReservationsFunction" in function_arn
    assert reservations == {
        (subnets["10.0.4.0/24"][1], "10.0.4.128/25", "explicit"),
        (subnets["10.0.5.0/24"][1], "10.0.5.128/25", "explicit"),
        (subnets["10.0.6.0/24"][1], "10.0.6.128/25", "explicit"),
        (subnets["10.0.7.0/24"][1], "10.0.7.128/25", "explicit"),
    }


def test_reservation_function_may_touch_only_reservations_of_the_multus_subnets(synthesized):
    template = synthesized.templates["eks-multus-cluster"]
    subnets = _subnets(template)
    (policy,) = [p for p in resources(template, "AWS::IAM::Policy").values()
                 if p["Properties"]["Roles"] == [{"Ref": _logical_id(template, "NetworkCidrReservationsRole")}]]
    statements = {s["Sid"]: s for s in policy["Properties"]["PolicyDocument"]["Statement"]}
    assert set(statements) == {"Logs", "ReserveInMultusSubnets", "TagOnCreate", "ReadAndDeleteReservations"}
    reserve = statements["ReserveInMultusSubnets"]
    assert reserve["Action"] == "ec2:CreateSubnetCidrReservation"
    reserved_in = {part["Ref"] for arn in reserve["Resource"] for part in arn["Fn::Join"][1] if isinstance(part, dict)
                   and "Ref" in part and part["Ref"] != "AWS::AccountId"}
    assert reserved_in == {subnets[c][1] for c in ("10.0.4.0/24", "10.0.5.0/24", "10.0.6.0/24", "10.0.7.0/24")}
    assert statements["TagOnCreate"]["Condition"] == {
        "StringEquals": {"ec2:CreateAction": "CreateSubnetCidrReservation"}}
    # Delete and Get have no resource type in IAM: "*" in this region only, nothing else on "*".
    wide = statements["ReadAndDeleteReservations"]
    assert (sorted(wide["Action"]), wide["Resource"], wide["Condition"]) == (
        ["ec2:DeleteSubnetCidrReservation", "ec2:GetSubnetCidrReservations"], "*",
        {"StringEquals": {"ec2:Region": "us-west-2"}})
    (function,) = [r for k, r in resources(template, "AWS::Lambda::Function").items()
                   if k.startswith("NetworkCidrReservationsFunction")]
    assert function["Properties"]["LoggingConfig"]["LogGroup"] == {"Ref": _logical_id(template,
                                                                                       "NetworkCidrReservationsLogs")}


def _logical_id(template: dict, prefix: str) -> str:
    (found,) = [k for k in template["Resources"] if k.startswith(prefix) and len(k) == len(prefix) + 8]
    return found


@pytest.fixture(scope="module")
def variant_network(make_config):
    config = make_config(natGateways=1, telcoPeerCidrs='["192.0.2.0/24"]', multusIngressFromVpc="false")
    stack = PinnedAzStack(App(), "Variant", config=config)
    Network(stack, "Network", **network_props(config))
    return Template.from_stack(stack)


def test_nat_gateway_count_follows_config(variant_network):
    variant_network.resource_count_is("AWS::EC2::NatGateway", 1)


def test_telco_ports_open_only_to_the_named_peers(variant_network):
    sgs = variant_network.find_resources("AWS::EC2::SecurityGroup", {"Properties": {
        "GroupDescription": Match.string_like_regexp("Multus ENIs")}})
    (multus,) = sgs.values()
    ingress = {(r["IpProtocol"], r.get("FromPort"), r["CidrIp"]) for r in multus["Properties"]["SecurityGroupIngress"]}
    assert ingress == {
        ("udp", 2123, "192.0.2.0/24"), ("udp", 2152, "192.0.2.0/24"), ("udp", 8805, "192.0.2.0/24"),
        ("132", 3868, "192.0.2.0/24"), ("132", 36412, "192.0.2.0/24"),
    }
