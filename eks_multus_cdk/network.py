"""Step 1 of the walkthrough: the VPC with EKS subnets, Multus subnets and the Multus security group."""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass

import jsii
from aws_cdk import CustomResource, Fn, RemovalPolicy, Stack
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_kms as kms
from aws_cdk import aws_logs as logs
from constructs import Construct

from eks_multus_cdk.cidr_reservations import SubnetCidrReservations
from eks_multus_cdk.compliance import PINNED_AZS, acknowledge
from eks_multus_cdk.config import LOG_RETENTION_DAYS, AppConfig
from eks_multus_cdk.model import last_block

PUBLIC = "Public"
PRIVATE = "Private"


def multus_group_name(position: int) -> str:
    """Subnet group name of the Multus network at `position`; by position so renaming a network replaces nothing."""
    return f"Multus{position + 1}"


# The walkthrough's telco ports: GTP-C, GTP-U, PFCP (UDP); Diameter, S1AP/NGAP (SCTP).
TELCO_UDP_PORTS = (2123, 2152, 8805)
TELCO_SCTP_PORTS = (3868, 36412)
_SCTP = 132


@jsii.implements(ec2.IIpAddresses)
class _ConfiguredCidrs:
    """Hands the Vpc construct the subnet CIDRs written in the config instead of carving them itself."""

    def __init__(self, vpc_cidr: str, cidrs: dict[tuple[str, str], str]) -> None:
        self._vpc_cidr = vpc_cidr
        self._cidrs = cidrs

    def allocate_vpc_cidr(self) -> ec2.VpcIpamOptions:
        return ec2.VpcIpamOptions(cidr_block=self._vpc_cidr)

    def allocate_subnets_cidr(self, *, requested_subnets, vpc_cidr) -> ec2.SubnetIpamOptions:  # noqa: ANN001
        allocated = [
            ec2.AllocatedSubnet(cidr=self._cidrs[(s.configuration.name, s.availability_zone)])
            for s in requested_subnets
        ]
        return ec2.SubnetIpamOptions(allocated_subnets=allocated)


@dataclass(frozen=True, kw_only=True)
class MultusSubnetLayout:
    """The subnets `Network` makes for one Multus network: a CIDR per AZ (AZ order) and the size of each
    subnet's pod range (its last `/pod_range_prefix_length`, reserved for pod addresses)."""

    name: str
    subnet_cidrs: Sequence[str]
    pod_range_prefix_length: int = 25

    def pod_range(self, az_index: int) -> ipaddress.IPv4Network:
        return last_block(self.subnet_cidrs[az_index], self.pod_range_prefix_length)


class Network(Construct):
    """VPC, IGW, NAT gateways, public/private/Multus subnets, flow logs and the Multus security group.

    Props: `vpc_cidr`, `availability_zones` (concrete names), `public_subnet_cidrs` and `private_subnet_cidrs`
    (one per AZ), `multus` (a MultusSubnetLayout per Multus network, in network order), `nat_gateways`,
    `multus_ingress_from_vpc` (all traffic from the VPC CIDR into the Multus ENIs), `telco_peer_cidrs` (GTP/PFCP
    UDP and Diameter/S1AP SCTP in from those CIDRs), `log_retention`, `log_key` (flow logs).

    Attributes: `vpc`, `private_subnets`, `public_subnets`, `multus_subnets` (one list per Multus network,
    in AZ order), `multus_security_group`, `flow_log_group`, `cidr_reservations` (the reservation function),
    `pod_range_reservations` (one `Custom::SubnetCidrReservation` per Multus network and AZ).
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        vpc_cidr: str,
        availability_zones: Sequence[str],
        public_subnet_cidrs: Sequence[str],
        private_subnet_cidrs: Sequence[str],
        multus: Sequence[MultusSubnetLayout],
        nat_gateways: int = 1,
        multus_ingress_from_vpc: bool = True,
        telco_peer_cidrs: Sequence[str] = (),
        log_retention: logs.RetentionDays = logs.RetentionDays.ONE_MONTH,
        log_key: kms.IKey | None = None,
    ) -> None:
        super().__init__(scope, construct_id)
        azs = list(availability_zones)
        for what, cidrs_of in [("public_subnet_cidrs", public_subnet_cidrs),
                               ("private_subnet_cidrs", private_subnet_cidrs),
                               *((f"multus[{layout.name!r}].subnet_cidrs", layout.subnet_cidrs)
                                 for layout in multus)]:
            if len(cidrs_of) != len(azs):
                raise ValueError(f"Network: {what} has {len(cidrs_of)} CIDRs for {len(azs)} availability zones")
        cidrs: dict[tuple[str, str], str] = {}
        for i, az in enumerate(azs):
            cidrs[(PUBLIC, az)] = public_subnet_cidrs[i]
            cidrs[(PRIVATE, az)] = private_subnet_cidrs[i]
            for pos, net in enumerate(multus):
                cidrs[(multus_group_name(pos), az)] = net.subnet_cidrs[i]

        def mask(cidr: str) -> int:
            return ipaddress.IPv4Network(cidr).prefixlen

        subnet_configuration = [
            ec2.SubnetConfiguration(name=PUBLIC, subnet_type=ec2.SubnetType.PUBLIC,
                                    cidr_mask=mask(public_subnet_cidrs[0])),
            ec2.SubnetConfiguration(name=PRIVATE, subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS,
                                    cidr_mask=mask(private_subnet_cidrs[0])),
        ] + [
            # Multus subnets carry pod traffic between nodes inside the VPC: no internet route.
            ec2.SubnetConfiguration(name=multus_group_name(pos), subnet_type=ec2.SubnetType.PRIVATE_ISOLATED,
                                    cidr_mask=mask(net.subnet_cidrs[0]))
            for pos, net in enumerate(multus)
        ]
        self.flow_log_group = logs.LogGroup(
            self, "FlowLogs", retention=log_retention, removal_policy=RemovalPolicy.DESTROY,
            encryption_key=log_key,
        )
        self.vpc = ec2.Vpc(
            self,
            "Vpc",
            ip_addresses=_ConfiguredCidrs(vpc_cidr, cidrs),
            availability_zones=azs,
            nat_gateways=nat_gateways,
            subnet_configuration=subnet_configuration,
            restrict_default_security_group=True,
            flow_logs={"All": ec2.FlowLogOptions(destination=ec2.FlowLogDestination.to_cloud_watch_logs(
                self.flow_log_group))},
        )
        acknowledge(self.vpc, PINNED_AZS)
        self.restrict_default_sg_log_group = _restrict_default_sg_log_group(self, self.vpc, log_retention)
        self.public_subnets = list(self.vpc.public_subnets)
        self.private_subnets = list(self.vpc.private_subnets)
        for subnet in self.public_subnets:
            subnet.node.default_child.tags.set_tag("kubernetes.io/role/elb", "1")
        for subnet in self.private_subnets:
            subnet.node.default_child.tags.set_tag("kubernetes.io/role/internal-elb", "1")
        self.multus_subnets: list[list[ec2.ISubnet]] = [
            list(self.vpc.select_subnets(subnet_group_name=multus_group_name(pos)).subnets)
            for pos in range(len(multus))
        ]

        self.multus_security_group = ec2.SecurityGroup(
            self, "MultusSecurityGroup", vpc=self.vpc, allow_all_outbound=False,
            description="Multus ENIs: traffic between Multus pods inside the VPC",
        )
        sg = self.multus_security_group
        if multus_ingress_from_vpc:
            sg.add_ingress_rule(ec2.Peer.ipv4(vpc_cidr), ec2.Port.all_traffic(), "Multus traffic from the VPC")
        sg.add_egress_rule(ec2.Peer.ipv4(vpc_cidr), ec2.Port.all_traffic(), "Multus traffic inside the VPC")
        for cidr in telco_peer_cidrs:
            for port in TELCO_UDP_PORTS:
                sg.add_ingress_rule(ec2.Peer.ipv4(cidr), ec2.Port.udp(port), f"telco UDP {port}")
            for port in TELCO_SCTP_PORTS:
                sg.add_ingress_rule(
                    ec2.Peer.ipv4(cidr),
                    ec2.Port(protocol=ec2.Protocol.SCTP, string_representation=f"sctp {port}",
                             from_port=port, to_port=port),
                    f"telco SCTP {port}",
                )

        # Pod addresses come from a block of each Multus subnet that EC2 never hands to an ENI by itself. A custom
        # resource, not AWS::EC2::SubnetCidrReservation: that type is missing in most regions' CloudFormation.
        self.cidr_reservations = SubnetCidrReservations(
            self, "CidrReservations", subnets=[s for subnets in self.multus_subnets for s in subnets],
            log_retention=log_retention)
        self.pod_range_reservations: list[CustomResource] = [
            self.cidr_reservations.reserve(
                f"PodRangeReservation{pos + 1}Az{az_index + 1}",
                subnet=self.multus_subnets[pos][az_index], cidr=str(net.pod_range(az_index)),
                reservation_type="explicit", description=f"Multus pod addresses of network {net.name} in {az}",
            )
            for pos, net in enumerate(multus) for az_index, az in enumerate(azs)
        ]


def _restrict_default_sg_log_group(scope: Construct, vpc: ec2.Vpc, retention: logs.RetentionDays) -> logs.LogGroup:
    """The log group of aws-cdk-lib's restrict-default-security-group function, with retention.

    That function is a stack-wide singleton the Vpc construct adds, with no log group of its own: Lambda would
    create `/aws/lambda/<name>` itself, kept forever and left behind by `cdk destroy`. This group takes that exact
    name before the custom resource first runs the function.
    """
    stack = Stack.of(scope)
    provider = stack.node.find_child("Custom::VpcRestrictDefaultSGCustomResourceProvider")
    handler = provider.node.find_child("Handler")
    group = logs.LogGroup(scope, "RestrictDefaultSecurityGroupLogs", retention=retention,
                          log_group_name=Fn.join("", ["/aws/lambda/", handler.ref]),
                          removal_policy=RemovalPolicy.DESTROY)
    vpc.node.find_child("RestrictDefaultSecurityGroupCustomResource").node.add_dependency(group)
    return group


def log_retention(config: AppConfig) -> logs.RetentionDays:
    """The configured retention as the CDK enum (config validation guarantees the key exists)."""
    return getattr(logs.RetentionDays, LOG_RETENTION_DAYS[config.log_retention_days])
