"""Step 4 of the walkthrough: the self-managed node group whose nodes carry the Multus ENIs.

Each node is an AL2023 EKS-optimized instance from a launch template. Its user data has two MIME parts:
a nodeadm `NodeConfig` (cluster name, endpoint, CA, service CIDR, labels, taints, the startup taint, and
kubelet's max pods as a `maxPodsExpression` that leaves out the Multus ENIs) and the shell script
`userdata/setup-multus-interfaces.sh`, which waits for the ENIs the lifecycle Lambda attaches, brings them up and
renames them `multus1..N` by device index. cloud-init runs that script before nodeadm starts kubelet, so the
VPC CNI starts only after the Multus interfaces are in place.
"""

from __future__ import annotations

import base64
import gzip
import json
import shlex
from collections.abc import Mapping, Sequence

from aws_cdk import Duration, Stack, Token
from aws_cdk import aws_autoscaling as autoscaling
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_eks_v2 as eks
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_logs as logs
from constructs import Construct

from eks_multus_cdk.assets import asset_path
from eks_multus_cdk.compliance import acknowledge, managed_policy_finding
from eks_multus_cdk.config import NodeGroupConfig, Taint
from eks_multus_cdk.eni_attacher import EniAttacher
from eks_multus_cdk.model import MultusNetwork
from eks_multus_cdk.multus_manifests import MANIFEST_FILES, load_manifest_file
from eks_multus_cdk.naming import IFNAME_PREFIX, INTERFACE_COUNT_LABEL, STARTUP_TAINT_KEY
from eks_multus_cdk.node_drainer import DRAIN_DEADLINE_SECONDS, PEER_WAIT_SECONDS, NodeDrainer

LAUNCH_HOOK = "multus-eni-launch"
# The group's only terminate hook, served by the node drainer (node_drainer.py). The ENI Lambda has none: attached
# Multus ENIs go with the instance (DeleteOnTermination) and the ENI sweeper deletes unattached leftovers.
DRAIN_HOOK = "multus-node-drain"
# How long an action may go without a heartbeat or completion before the default result applies. The Lambda
# sends a heartbeat every 60 s while it waits for a pending instance (ENI_ATTACHER_HEARTBEAT_SECONDS), so 300 s
# covers a missed heartbeat plus one Lambda retry delay (1-2 min) if an invocation dies.
LAUNCH_HOOK_TIMEOUT_SECONDS = 300
# The drainer heartbeats every 60 s (node_drainer.HEARTBEAT_SECONDS) and completes within its 600 s deadline; 300 s
# covers a missed heartbeat plus one Lambda retry delay. If the drainer dies, the default CONTINUE lets the node go.
DRAIN_HOOK_TIMEOUT_SECONDS = 300
# Rolling replacement (CloudFormation AutoScalingRollingUpdate): one instance at a time, then a pause before the
# next batch. CloudFormation counts an old instance as gone once it enters Terminating:Wait, without waiting for
# the drain hook, so the pause covers the longest drain: the drainer's wait for the new node to lose its startup
# taint plus its eviction deadline, plus a minute. No cfn-signal: nothing on the node knows when the taint is gone
# (see README "Node lifecycle").
ROLLING_BATCH_SIZE = 1
ROLLING_PAUSE = Duration.seconds(PEER_WAIT_SECONDS + DRAIN_DEADLINE_SECONDS + 60)
# Processes that would fight the rolling update (AWS's guidance); Launch and Terminate must stay on.
ROLLING_SUSPENDED = (autoscaling.ScalingProcess.HEALTH_CHECK, autoscaling.ScalingProcess.REPLACE_UNHEALTHY,
                     autoscaling.ScalingProcess.AZ_REBALANCE, autoscaling.ScalingProcess.ALARM_NOTIFICATION,
                     autoscaling.ScalingProcess.SCHEDULED_ACTIONS)
INTERFACE_WAIT_SECONDS = 240
IMDS_HOP_LIMIT = 1


def node_managed_policies(*, ssm: bool) -> list[str]:
    """AWS managed policies of the node role: kubelet's reads and image pulls; Session Manager only when asked."""
    return ["AmazonEKSWorkerNodePolicy", "AmazonEC2ContainerRegistryPullOnly",
            *(["AmazonSSMManagedInstanceCore"] if ssm else [])]


SCRIPT_ON_NODE = "/usr/local/sbin/setup-multus-interfaces.sh"
# EC2's limit on user data, in raw form (before base64).
USER_DATA_LIMIT = 16384
# Registered by kubelet; removed by the pod-address controller (controller/multus_ip_controller/startup_taint.py)
# once the node's multus1..N are up and the Multus daemon runs there. DaemonSets that must run first tolerate it.
STARTUP_TAINT = Taint(key=STARTUP_TAINT_KEY, value="interfaces", effect="NoSchedule")
# hostNetwork pods EKS itself runs on every node besides aws-node and kube-proxy (the +2 of its formula): the Pod
# Identity agent add-on, which VpcCniIdentity always installs (the VPC CNI takes its credentials through it).
POD_IDENTITY_AGENT_PODS = 1


def host_network_daemonsets(cross_node_traffic: bool) -> int:
    """hostNetwork DaemonSets this app ships on every node (they take a pod slot but no VPC CNI address)."""
    folders = [("multus", MANIFEST_FILES)]
    if cross_node_traffic:
        from eks_multus_cdk.pod_addresses import CONTROLLER_FILES, WHEREABOUTS_FILES

        folders += [("whereabouts", WHEREABOUTS_FILES), ("pod-address-sync", CONTROLLER_FILES)]
    count = sum(
        1 for folder, files in folders for name in files
        for obj in load_manifest_file(asset_path("manifests", folder, name))
        if obj.get("kind") == "DaemonSet" and obj["spec"]["template"]["spec"].get("hostNetwork")
    )
    return count + POD_IDENTITY_AGENT_PODS


def max_pods_expression(multus_networks: int, host_network_pods: int) -> str:
    """nodeadm's `maxPodsExpression` (CEL over `default_enis` and `ips_per_eni` of the instance type): what the
    VPC CNI can serve once it skips the Multus ENIs, plus the pods that need no address. nodeadm's default counts
    every ENI (29 on c5.large); with 2 Multus ENIs the VPC CNI has one ENI and 9 addresses, and pods past those
    hang in ContainerCreating. Same formula as `instance_types.max_pods`."""
    return f"(default_enis - {multus_networks}) * (ips_per_eni - 1) + 2 + {host_network_pods}"


def node_ami_parameter(kubernetes_version: str, architecture: ec2.InstanceArchitecture) -> str:
    """Public SSM parameter of the recommended AL2023 EKS-optimized AMI (resolved at deploy time)."""
    arch = "arm64" if architecture == ec2.InstanceArchitecture.ARM_64 else "x86_64"
    return f"/aws/service/eks/optimized-ami/{kubernetes_version}/amazon-linux-2023/{arch}/standard/recommended/image_id"


def node_config(
    *, cluster_name: str, endpoint: str, certificate_authority: str, service_cidr: str,
    group: NodeGroupConfig | None = None, labels: Mapping[str, str] | None = None, taints: Sequence[Taint] = (),
    max_pods: str | None = None, startup_taint: bool = False, multus_interfaces: int | None = None,
) -> str:
    """nodeadm NodeConfig document (JSON is valid YAML; CDK tokens stay plain strings inside it). Labels and
    taints come from `group` when given, else from `labels` and `taints`."""
    flags = []
    if group is not None:
        labels, taints = group.labels, group.taints
    labels = dict(labels or {})
    if multus_interfaces is not None:
        labels[INTERFACE_COUNT_LABEL] = str(multus_interfaces)
    if labels:
        flags.append("--node-labels=" + ",".join(f"{k}={v}" for k, v in sorted(labels.items())))
    taints = [*taints, *([STARTUP_TAINT] if startup_taint else [])]
    if taints:
        flags.append("--register-with-taints=" + ",".join(f"{t.key}={t.value}:{t.effect}" for t in taints))
    spec: dict = {
        "cluster": {
            "name": cluster_name,
            "apiServerEndpoint": endpoint,
            "certificateAuthority": certificate_authority,
            "cidr": service_cidr,
        }
    }
    kubelet: dict = {}
    if max_pods:
        kubelet["maxPodsExpression"] = max_pods
    if flags:
        kubelet["flags"] = flags
    if kubelet:
        spec["kubelet"] = kubelet
    return json.dumps({"apiVersion": "node.eks.aws/v1alpha1", "kind": "NodeConfig", "spec": spec}, indent=2)


def interface_script(network_count: int) -> str:
    """The Multus interface script with its settings prepended, as the shell MIME part runs it."""
    settings = {
        "MULTUS_INTERFACE_COUNT": str(network_count),
        "MULTUS_IFNAME_PREFIX": IFNAME_PREFIX,
        "MULTUS_WAIT_SECONDS": str(INTERFACE_WAIT_SECONDS),
    }
    script = asset_path("userdata", "setup-multus-interfaces.sh").read_bytes()
    # EC2 takes at most 16 KB of user data, and the commented script alone is larger: it travels gzip-compressed
    # (mtime 0: the same bytes on every synth) and is installed on the node, where it can be re-run by hand.
    packed = base64.encodebytes(gzip.compress(script, compresslevel=9, mtime=0)).decode().strip()
    exports = "\n".join(f"export {k}={shlex.quote(v)}" for k, v in settings.items())
    return (
        f"#!/bin/bash\n{exports}\n"
        f"# userdata/setup-multus-interfaces.sh of eks-multus-cdk, gzip + base64 (EC2 user data is limited to 16 KB)\n"
        f"set -euo pipefail\n"
        f"target=${{MULTUS_SCRIPT_PATH:-{SCRIPT_ON_NODE}}}\n"
        f'mkdir -p "$(dirname "$target")"\n'
        f"base64 -d <<'EKS_MULTUS_SCRIPT' | gunzip >\"$target\"\n{packed}\nEKS_MULTUS_SCRIPT\n"
        f'chmod 0755 "$target"\n'
        f'exec "$target"\n'
    )


def min_instances_in_service(min_size: int, max_size: int) -> int:
    """CloudFormation requires MinInstancesInService < MaxSize. With maxSize > minSize the group keeps minSize
    nodes in service and adds the new node (up to maxSize) before an old one is drained; with minSize == maxSize
    one node at a time is drained and terminated before its replacement launches (the README says so)."""
    return max(0, min(min_size, max_size - 1))


def rolling_update_policy(min_size: int, max_size: int) -> autoscaling.UpdatePolicy:
    """The group's UpdatePolicy: a launch-template change (Kubernetes version, instance type, user data, AMI)
    replaces the nodes ROLLING_BATCH_SIZE at a time; each old node passes the drain hook before it terminates."""
    return autoscaling.UpdatePolicy.rolling_update(
        max_batch_size=ROLLING_BATCH_SIZE, min_instances_in_service=min_instances_in_service(min_size, max_size),
        pause_time=ROLLING_PAUSE, wait_on_resource_signals=False, suspend_processes=list(ROLLING_SUSPENDED))


def check_network_azs(group: str, subnets: Sequence[ec2.ISubnet], networks: Sequence[MultusNetwork]) -> None:
    """Every network carried by the group has a subnet in each AZ its nodes run in (the ENI Lambda attaches the
    ENI from the instance's own AZ), and no network is listed twice; else ValueError naming group and network."""
    if not networks:
        raise ValueError(f"node group {group!r}: networks is empty (a Multus node group carries at least one)")
    names = [n.name for n in networks]
    for name in names:
        if names.count(name) > 1:
            raise ValueError(f"node group {group!r}: Multus network {name!r} is listed twice")
    node_azs = [s.availability_zone for s in subnets]
    if any(Token.is_unresolved(az) for az in node_azs):
        return
    for net in networks:
        missing = sorted(set(node_azs) - set(net.availability_zones))
        if missing:
            raise ValueError(f"node group {group!r}: Multus network {net.name!r} has no subnet in "
                             f"{', '.join(missing)}, where the group's nodes run")


class MultusNodeGroup(Construct):
    """A self-managed Auto Scaling group of EKS nodes, each with one ENI per Multus network it carries.

    Props (keyword-only): `cluster` (any eks_v2 ICluster, created or imported), `vpc`, `subnets` (where the nodes
    run; every network must have a subnet in each of their AZs), `networks` (the MultusNetworks the nodes carry,
    in device order: the first gets device index 1, interface multus1), `multus_security_group` (on the Multus
    ENIs), `kubernetes_version`, `instance_type`, `min_size`, `max_size`, `volume_size` (GiB), `labels`, `taints`,
    `service_cidr` (the cluster's), `asg_name` (default: `<stack name>-<construct id>`), `node_ssm` (Session
    Manager on the nodes), `pod_address_sync` (the cluster runs PodAddressSync: its host-network pods count in
    max pods), `startup_taint`, `log_retention`, `log_key`, `drainer_subnets` (where the drain Lambda runs;
    default: `subnets`).

    Attributes: `auto_scaling_group`, `launch_template`, `role`, `eni_attacher`, `node_drainer`, `access_entry`,
    `asg_name`, `networks`, `instance_type`, `max_pods_expression`.

    `startup_taint=True` registers every node with the NoSchedule taint `STARTUP_TAINT`; only do that where
    something removes it (PodAddressSync's controller; the app sets it with `crossNodeTraffic`): otherwise no pod
    without a toleration would ever schedule on the group.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        cluster: eks.ICluster,
        vpc: ec2.IVpc,
        subnets: Sequence[ec2.ISubnet],
        networks: Sequence[MultusNetwork],
        multus_security_group: ec2.ISecurityGroup,
        kubernetes_version: str,
        instance_type: str = "c5.large",
        min_size: int = 1,
        max_size: int = 2,
        volume_size: int = 20,
        labels: Mapping[str, str] | None = None,
        taints: Sequence[Taint] = (),
        service_cidr: str = "172.20.0.0/16",
        asg_name: str | None = None,
        node_ssm: bool = False,
        pod_address_sync: bool = False,
        startup_taint: bool = False,
        log_retention: logs.RetentionDays = logs.RetentionDays.ONE_MONTH,
        log_key: kms.IKey | None = None,
        drainer_subnets: Sequence[ec2.ISubnet] | None = None,
    ) -> None:
        check_network_azs(construct_id, subnets, networks)
        super().__init__(scope, construct_id)
        self.networks: tuple[MultusNetwork, ...] = tuple(networks)
        self.instance_type = instance_type
        # A fixed name lets the EventBridge rule and the IAM policy name the group without a dependency cycle.
        self.asg_name = asg_name or f"{Stack.of(self).stack_name}-{construct_id}"
        node_subnets = list(subnets)
        instance_type_obj = ec2.InstanceType(instance_type)

        self.role = iam.Role(
            self, "Role",
            assumed_by=iam.ServicePrincipal("ec2.amazonaws.com"),
            description=f"EKS worker nodes of {self.asg_name}",
            # No AmazonEKS_CNI_Policy: the VPC CNI has its own Pod Identity role (pod_identity.VpcCniIdentity).
            managed_policies=[iam.ManagedPolicy.from_aws_managed_policy_name(name) for name in node_managed_policies(
                ssm=node_ssm)],
        )
        acknowledge(self.role, {
            managed_policy_finding("AmazonEKSWorkerNodePolicy"): "EKS's documented node policy for self-managed "
            "nodes (kubelet's EKS/EC2 reads). Pods cannot use it: the launch template's IMDS hop limit is 1, so "
            "only host-network processes reach the instance role.",
            managed_policy_finding("AmazonEC2ContainerRegistryPullOnly"): "Pull-only ECR access for the EKS add-on "
            "and Multus images; no push or delete. Host-network processes only (IMDS hop limit 1).",
            **({managed_policy_finding("AmazonSSMManagedInstanceCore"): "nodeSsm is on: Session Manager access to "
                "nodes instead of SSH keys. Host-network processes only (IMDS hop limit 1)."} if node_ssm
               else {}),
        })
        self.access_entry = eks.AccessEntry(
            self, "AccessEntry", cluster=cluster, principal=self.role.role_arn,
            access_entry_type=eks.AccessEntryType.EC2_LINUX, access_policies=[],
        )

        self.max_pods_expression = max_pods_expression(
            len(self.networks), host_network_daemonsets(pod_address_sync))
        user_data = ec2.MultipartUserData()
        user_data.add_part(ec2.MultipartBody.from_raw_body(
            content_type="application/node.eks.aws",
            body=node_config(
                cluster_name=cluster.cluster_name, endpoint=cluster.cluster_endpoint,
                certificate_authority=cluster.cluster_certificate_authority_data,
                service_cidr=service_cidr, labels=labels, taints=taints, max_pods=self.max_pods_expression,
                startup_taint=startup_taint, multus_interfaces=len(self.networks),
            ),
        ))
        user_data.add_part(ec2.MultipartBody.from_raw_body(
            content_type='text/x-shellscript; charset="utf-8"', body=interface_script(len(self.networks))))

        self.launch_template = ec2.LaunchTemplate(
            self, "LaunchTemplate",
            instance_type=instance_type_obj,
            machine_image=ec2.MachineImage.from_ssm_parameter(
                node_ami_parameter(kubernetes_version, instance_type_obj.architecture)),
            role=self.role,
            security_group=cluster.cluster_security_group,
            user_data=user_data,
            require_imdsv2=True,
            # 1: a pod off the host network is one hop further and never reaches the node role's credentials.
            http_put_response_hop_limit=IMDS_HOP_LIMIT,
            detailed_monitoring=True,
            block_devices=[ec2.BlockDevice(
                device_name="/dev/xvda",
                volume=ec2.BlockDeviceVolume.ebs(volume_size, encrypted=True,
                                                 volume_type=ec2.EbsDeviceVolumeType.GP3),
            )],
        )

        self.eni_attacher = EniAttacher(
            self, "EniAttacher", asg_name=self.asg_name, networks=self.networks,
            multus_subnets=[list(net.subnets) for net in self.networks], security_group=multus_security_group,
            log_retention=log_retention,
            log_key=log_key,
            launch_hook_name=LAUNCH_HOOK,
        )
        self.node_drainer = NodeDrainer(
            self, "Drainer", asg_name=self.asg_name, hook_name=DRAIN_HOOK, cluster=cluster, vpc=vpc,
            subnets=list(drainer_subnets or node_subnets), log_retention=log_retention, log_key=log_key,
            startup_taint_key=STARTUP_TAINT.key if startup_taint else None,
        )
        self.auto_scaling_group = autoscaling.AutoScalingGroup(
            self, "Group",
            auto_scaling_group_name=self.asg_name,
            vpc=vpc,
            vpc_subnets=ec2.SubnetSelection(subnets=node_subnets),
            launch_template=self.launch_template,
            # min/max only (no desired capacity): a deploy never resets the size scaling chose.
            min_capacity=min_size,
            max_capacity=max_size,
            update_policy=rolling_update_policy(min_size, max_size),
        )
        self.auto_scaling_group.node.default_child.lifecycle_hook_specification_list = [
            autoscaling.CfnAutoScalingGroup.LifecycleHookSpecificationProperty(
                lifecycle_hook_name=LAUNCH_HOOK, lifecycle_transition="autoscaling:EC2_INSTANCE_LAUNCHING",
                default_result="ABANDON", heartbeat_timeout=LAUNCH_HOOK_TIMEOUT_SECONDS),
            autoscaling.CfnAutoScalingGroup.LifecycleHookSpecificationProperty(
                lifecycle_hook_name=DRAIN_HOOK, lifecycle_transition="autoscaling:EC2_INSTANCE_TERMINATING",
                default_result="CONTINUE", heartbeat_timeout=DRAIN_HOOK_TIMEOUT_SECONDS),
        ]
        acknowledge(self.auto_scaling_group, {
            "AwsSolutions-AS3": "Instance launches and terminations go to EventBridge lifecycle actions that the ENI "
            "Lambda handles; an SNS topic for scaling notifications would have no subscriber.",
        })
        # The rule, the function and its invoke permission exist before the first instance launches.
        self.auto_scaling_group.node.add_dependency(self.eni_attacher)
        # The drainer, its rule and its Kubernetes identity exist before any node can terminate; on `cdk destroy`
        # the group goes first, so its last nodes are still drained.
        self.auto_scaling_group.node.add_dependency(self.node_drainer)
        # Nodes must be able to join: the access entry exists before any node boots.
        self.auto_scaling_group.node.add_dependency(self.access_entry)
