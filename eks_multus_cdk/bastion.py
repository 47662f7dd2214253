"""Step 2 of the walkthrough: the bastion, reached with SSM Session Manager instead of SSH.

No key pair, no inbound rule at all; IMDSv2 only; encrypted root volume. At boot it installs kubectl of the
cluster's minor version (checksum-verified) and writes a kubeconfig that every login gets, so `kubectl get nodes`
works in the first session. It is cluster admin through an EKS access entry.
"""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import Stack
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_eks_v2 as eks
from aws_cdk import aws_iam as iam
from constructs import Construct

from eks_multus_cdk.cluster import cluster_admin_policies
from eks_multus_cdk.compliance import PINNED_AZS, acknowledge, managed_policy_finding

_BOOT_SCRIPT = """\
set -euo pipefail
exec > >(tee -a /var/log/bastion-setup.log) 2>&1
minor="{version}"
release="$(curl -fsSL --retry 5 "https://dl.k8s.io/release/stable-${{minor}}.txt")"
curl -fsSL --retry 5 -o /tmp/kubectl "https://dl.k8s.io/release/${{release}}/bin/linux/{arch}/kubectl"
echo "$(curl -fsSL --retry 5 "https://dl.k8s.io/release/${{release}}/bin/linux/{arch}/kubectl.sha256")  /tmp/kubectl" \\
  | sha256sum --check
install -m 0755 /tmp/kubectl /usr/local/bin/kubectl
aws eks wait cluster-active --region "{region}" --name "{cluster}"
install -d -m 0755 /etc/kubernetes
aws eks update-kubeconfig --region "{region}" --name "{cluster}" --kubeconfig /etc/kubernetes/bastion-kubeconfig
chmod 0644 /etc/kubernetes/bastion-kubeconfig
echo 'export KUBECONFIG=/etc/kubernetes/bastion-kubeconfig' > /etc/profile.d/kubeconfig.sh
for home in /etc/skel /root; do
  install -d -m 0700 "$home/.kube"
  cp /etc/kubernetes/bastion-kubeconfig "$home/.kube/config"
done
echo "bastion ready: kubectl ${{release}}"
"""


class Bastion(Construct):
    """An SSM-managed admin host in a private subnet with kubectl and a kubeconfig for `cluster` (cluster-admin
    access entry, HTTPS to the endpoint allowed from its security group).

    Props: `vpc`, `subnets` (it runs in the first), `cluster` (any eks_v2 ICluster), `kubernetes_version` (of
    the kubectl it installs), `instance_type`. Attributes: `instance`, `role`, `security_group`. Session command:
    `aws ssm start-session --target <instance.instance_id>` (the app's stack prints it)."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        vpc: ec2.IVpc,
        subnets: Sequence[ec2.ISubnet],
        cluster: eks.ICluster,
        kubernetes_version: str = "1.35",
        instance_type: str = "t3.small",
    ) -> None:
        super().__init__(scope, construct_id)
        self.security_group = ec2.SecurityGroup(
            self, "SecurityGroup", vpc=vpc, allow_all_outbound=False,
            description="Bastion: no inbound; HTTPS out to SSM, EKS and the kubectl download",
        )
        self.security_group.add_egress_rule(ec2.Peer.any_ipv4(), ec2.Port.tcp(443), "HTTPS to AWS APIs and dl.k8s.io")
        self.role = iam.Role(
            self, "Role", assumed_by=iam.ServicePrincipal("ec2.amazonaws.com"),
            managed_policies=[iam.ManagedPolicy.from_aws_managed_policy_name("AmazonSSMManagedInstanceCore")],
        )
        # update-kubeconfig and `aws eks wait` read the cluster; nothing else is needed.
        self.role.add_to_policy(iam.PolicyStatement(actions=["eks:DescribeCluster"], resources=[cluster.cluster_arn]))

        subnets = list(subnets)
        instance_type_obj = ec2.InstanceType(instance_type)
        # The AMI and the kubectl binary follow the instance type's CPU (a t4g bastion gets arm64 for both).
        arm = instance_type_obj.architecture == ec2.InstanceArchitecture.ARM_64
        user_data = ec2.UserData.for_linux()
        user_data.add_commands(_BOOT_SCRIPT.format(
            version=kubernetes_version, region=Stack.of(self).region, cluster=cluster.cluster_name,
            arch="arm64" if arm else "amd64"))
        self.instance = ec2.Instance(
            self, "Instance",
            vpc=vpc,
            vpc_subnets=ec2.SubnetSelection(subnets=subnets[:1]),
            instance_type=instance_type_obj,
            machine_image=ec2.MachineImage.latest_amazon_linux2023(
                cpu_type=ec2.AmazonLinuxCpuType.ARM_64 if arm else ec2.AmazonLinuxCpuType.X86_64),
            security_group=self.security_group,
            role=self.role,
            user_data=user_data,
            detailed_monitoring=True,
            block_devices=[ec2.BlockDevice(
                device_name="/dev/xvda",
                volume=ec2.BlockDeviceVolume.ebs(20, encrypted=True, volume_type=ec2.EbsDeviceVolumeType.GP3),
            )],
        )
        # IMDSv2 only, hop limit 1, on the instance itself (the construct's require_imdsv2 would add a launch
        # template without a hop limit, leaving it to the account's IMDS defaults).
        self.instance.instance.metadata_options = ec2.CfnInstance.MetadataOptionsProperty(
            http_endpoint="enabled", http_tokens="required", http_put_response_hop_limit=1)
        acknowledge(self.role, {
            managed_policy_finding("AmazonSSMManagedInstanceCore"): "The AWS-maintained policy Session Manager "
            "needs; it replaces SSH keys and port 22.",
        })
        acknowledge(self.instance, {
            "AwsSolutions-EC29": "The bastion holds no state (kubeconfig is rebuilt at boot) and `cdk destroy` must "
            "remove it; termination protection would block that.",
            **PINNED_AZS,
        })
        cluster.connections.allow_default_port_from(self.security_group, "kubectl from the bastion")
        if isinstance(cluster, eks.Cluster):
            # under the cluster, as before 0.2.0's library API: an access entry is never replaced on upgrade
            cluster.grant_access("BastionAdmin", self.role.role_arn, cluster_admin_policies())
        else:
            eks.AccessEntry(self, "AdminAccess", cluster=cluster, principal=self.role.role_arn,
                            access_policies=cluster_admin_policies())
