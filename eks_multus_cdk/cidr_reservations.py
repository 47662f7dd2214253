"""Subnet CIDR reservations that deploy in every region: a small custom resource instead of the native type.

`AWS::EC2::SubnetCidrReservation` is missing from CloudFormation's registry in most regions (cfn-lint's regional
schemas list it for us-east-1, us-west-2 and a few isolated regions only), while the EC2 API it wraps exists in
every region. `SubnetCidrReservations` is one Python Lambda (`lambda/cidr_reservation`) that serves a
`Custom::SubnetCidrReservation` resource per reservation, so every region behaves the same. How the handler
stays idempotent on retries, updates and deletes is written at the top of `lambda/cidr_reservation/handler.py`.
"""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import CustomResource, Duration, Stack
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct

from eks_multus_cdk.assets import lambda_package
from eks_multus_cdk.compliance import acknowledge, nag_partition, nag_region
from eks_multus_cdk.model import MultusNetwork

RESOURCE_TYPE = "Custom::SubnetCidrReservation"
HANDLER = "cidr_reservation.handler.handler"


class SubnetCidrReservations(Construct):
    """The reservation function, allowed to reserve CIDRs in `subnets` only. Call `reserve` once per reservation.

    Attributes: `function`, `role`, `log_group`, `reservations` (the custom resources made by `reserve`).
    """

    def __init__(
        self, scope: Construct, construct_id: str, *, subnets: list[ec2.ISubnet], log_retention: logs.RetentionDays
    ) -> None:
        super().__init__(scope, construct_id)
        stack = Stack.of(self)
        self.reservations: list[CustomResource] = []
        self.log_group = logs.LogGroup(self, "Logs", retention=log_retention)
        self.role = iam.Role(self, "Role", assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
                             description="Creates and deletes the Multus pod-range subnet CIDR reservations")
        # Actions and resource types from the Service Authorization Reference (EC2): CreateSubnetCidrReservation
        # takes a subnet resource; DeleteSubnetCidrReservation and GetSubnetCidrReservations have no resource
        # type (only "*"); tags on create need CreateTags on the reservation with ec2:CreateAction.
        statements = [
            iam.PolicyStatement(sid="Logs", actions=["logs:CreateLogStream", "logs:PutLogEvents"],
                                resources=[self.log_group.log_group_arn, f"{self.log_group.log_group_arn}:*"]),
            iam.PolicyStatement(
                sid="ReserveInMultusSubnets", actions=["ec2:CreateSubnetCidrReservation"],
                resources=[stack.format_arn(service="ec2", resource="subnet", resource_name=s.subnet_id)
                           for s in subnets]),
            iam.PolicyStatement(
                sid="TagOnCreate", actions=["ec2:CreateTags"],
                resources=[stack.format_arn(service="ec2", resource="subnet-cidr-reservation", resource_name="*")],
                conditions={"StringEquals": {"ec2:CreateAction": "CreateSubnetCidrReservation"}}),
            iam.PolicyStatement(
                sid="ReadAndDeleteReservations",
                actions=["ec2:GetSubnetCidrReservations", "ec2:DeleteSubnetCidrReservation"], resources=["*"],
                conditions={"StringEquals": {"ec2:Region": stack.region}}),
        ]
        for statement in statements:
            self.role.add_to_policy(statement)
        self.function = lambda_.Function(
            self, "Function",
            description="Custom::SubnetCidrReservation: reserves the Multus pod ranges (works in every region)",
            handler=HANDLER,
            **lambda_package("cidr_reservation"),
            timeout=Duration.minutes(2),
            memory_size=128,
            log_group=self.log_group,
            role=self.role,
        )
        acknowledge(self.role, {
            "AwsSolutions-IAM5[Resource::*]": "ec2:GetSubnetCidrReservations and ec2:DeleteSubnetCidrReservation "
            "support no resource-level permissions (Service Authorization Reference); limited to this region.",
            f"AwsSolutions-IAM5[Resource::<{stack.get_logical_id(self.log_group.node.default_child)}.Arn>:*]":
            "Log streams of this function's own log group.",
            f"AwsSolutions-IAM5[Resource::{_nag_arn(stack, 'subnet-cidr-reservation/*')}]":
            "Reservation ids do not exist before they are created; tagging is allowed only as part of "
            "CreateSubnetCidrReservation (ec2:CreateAction).",
        })

    def reserve(
        self, construct_id: str, *, subnet: ec2.ISubnet, cidr: str, reservation_type: str, description: str
    ) -> CustomResource:
        """One reservation of `cidr` in `subnet`, created in the scope of this construct's parent."""
        resource = CustomResource(
            self.node.scope, construct_id, service_token=self.function.function_arn, resource_type=RESOURCE_TYPE,
            properties={"SubnetId": subnet.subnet_id, "Cidr": cidr, "ReservationType": reservation_type,
                        "Description": description},
        )
        self.reservations.append(resource)
        return resource


def _nag_arn(stack: Stack, resource: str) -> str:
    """An ARN as cdk-nag prints it in a finding id (pseudo parameters as `<AWS::...>`)."""
    return f"arn:{nag_partition(stack)}:ec2:{nag_region(stack)}:<AWS::AccountId>:{resource}"


class PodRangeReservations(Construct):
    """The pod range of every subnet of `networks` (MultusNetworks, created or imported subnets) reserved
    (explicit) so EC2 never hands those addresses to an ENI itself: use it when you bring your own Multus subnets
    (`Network` reserves the ranges of the subnets it makes). Attributes: `function` (SubnetCidrReservations),
    `reservations` (one Custom::SubnetCidrReservation per network and AZ, ids by position)."""

    def __init__(
        self, scope: Construct, construct_id: str, *, networks: Sequence[MultusNetwork],
        log_retention: logs.RetentionDays = logs.RetentionDays.ONE_MONTH,
    ) -> None:
        super().__init__(scope, construct_id)
        self.function = SubnetCidrReservations(
            self, "Function", subnets=[s for net in networks for s in net.subnets], log_retention=log_retention)
        self.reservations = [
            self.function.reserve(
                f"PodRange{pos + 1}Az{az_index + 1}", subnet=subnet, cidr=str(net.pod_range(az_index)),
                reservation_type="explicit",
                description=f"Multus pod addresses of network {net.name} in {net.availability_zones[az_index]}")
            for pos, net in enumerate(networks) for az_index, subnet in enumerate(net.subnets)
        ]
