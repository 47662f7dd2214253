"""`make verify`'s one EC2 read, against moto: this app's attached Multus ENIs of a network in one AZ.

moto applies the tag, availability-zone and status filters of DescribeNetworkInterfaces like EC2 (for these
filters); it evaluates no IAM, so the permission the caller needs is stated in the CLI's hint, not tested here.
"""

from __future__ import annotations

import boto3
import pytest
from moto import mock_aws

from eks_multus_cdk.verify.ec2 import subnet_hosts_reader

REGION = "us-west-2"


@pytest.fixture
def ec2():
    with mock_aws():
        yield boto3.client("ec2", region_name=REGION)


def _eni(ec2, subnet: str, address: str, tags: dict[str, str], instance: str | None) -> None:
    eni = ec2.create_network_interface(
        SubnetId=subnet, PrivateIpAddress=address,
        TagSpecifications=[{"ResourceType": "network-interface",
                            "Tags": [{"Key": k, "Value": v} for k, v in tags.items()]}],
    )["NetworkInterface"]
    if instance:
        ec2.attach_network_interface(NetworkInterfaceId=eni["NetworkInterfaceId"], InstanceId=instance, DeviceIndex=1)


def test_lists_only_this_apps_attached_enis_of_the_network_and_az(ec2):
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    a = ec2.create_subnet(VpcId=vpc, CidrBlock="10.0.4.0/24", AvailabilityZone="us-west-2a")["Subnet"]["SubnetId"]
    b = ec2.create_subnet(VpcId=vpc, CidrBlock="10.0.5.0/24", AvailabilityZone="us-west-2b")["Subnet"]["SubnetId"]
    image = "ami-12c6146b"  # any id: moto does not require the AMI to exist for run_instances
    inst_a1, inst_a2 = (i["InstanceId"] for i in ec2.run_instances(
        ImageId=image, MinCount=2, MaxCount=2, SubnetId=a)["Instances"])
    (inst_b,) = (i["InstanceId"] for i in ec2.run_instances(ImageId=image, MinCount=1, MaxCount=1,
                                                             SubnetId=b)["Instances"])
    ours = {"eks-multus/owner": "eks-multus-ng1", "eks-multus/network": "multus1"}
    _eni(ec2, a, "10.0.4.20", ours, inst_a1)
    _eni(ec2, a, "10.0.4.21", ours, inst_a2)
    _eni(ec2, a, "10.0.4.22", ours, None)  # left over, not attached: no host answers there
    _eni(ec2, a, "10.0.4.23", {**ours, "eks-multus/owner": "someone-else-ng1"}, inst_a2)  # another copy of the app
    _eni(ec2, a, "10.0.4.24", {**ours, "eks-multus/network": "multus2"}, inst_a1)
    _eni(ec2, b, "10.0.5.20", ours, inst_b)  # the other AZ

    hosts = subnet_hosts_reader(REGION)("multus1", "us-west-2a", ["eks-multus-ng1", "eks-multus-ng2"])
    assert hosts == sorted([("10.0.4.20", inst_a1), ("10.0.4.21", inst_a2)])
    assert subnet_hosts_reader(REGION)("multus1", "us-west-2c", ["eks-multus-ng1"]) == []
