"""Step 4b of the walkthrough: every node is drained before it (and its Multus ENIs) goes.

The node group's terminate lifecycle hook (`hook_name`) holds each terminating instance in Terminating:Wait. An
EventBridge rule sends that hook's events (only that hook's) to the function in `lambda/node_drainer`, which cordons
the node and evicts its pods through the Eviction API (PodDisruptionBudgets honoured, 429 retried every 5 s,
heartbeats every minute, a deadline well inside both the function timeout and the hook), then completes the action
with CONTINUE. The instance terminates and its Multus ENIs go with it (DeleteOnTermination).

Why our own small drainer and not aws-node-termination-handler (NTH) in queue-processing mode: NTH is a Deployment
that runs on the group's own nodes, so the last node of a one-node group (the demo) drains the drainer itself, and
every node carries the Multus startup taint NTH would have to tolerate; it needs its own SQS queue, EventBridge
rules, Helm-rendered manifests, a Pod Identity role and an image to pin and patch, and its drain logic could not be
tested here. This function is ~200 lines, runs outside the nodes it drains, and is tested against a fake API server.

Its identity in the cluster: an EKS access entry (type STANDARD, no access policy) mapping its role to the
Kubernetes group `eks-multus:node-drainer:<group>`, bound to a ClusterRole of exactly: get/patch nodes, get/list
pods, create pods/eviction (manifests/node-drainer/rbac.yaml). It runs in the private subnets (the API endpoint may
be private) with a security group whose only egress is HTTPS, admitted by the cluster security group on 443.
"""

from __future__ import annotations

import copy

from aws_cdk import ArnFormat, Duration, RemovalPolicy, Stack
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_eks_v2 as eks
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sqs as sqs
from aws_cdk.aws_lambda_destinations import SqsDestination
from constructs import Construct

from eks_multus_cdk.assets import asset_path, lambda_package
from eks_multus_cdk.compliance import acknowledge, managed_policy_finding, nag_partition, nag_region
from eks_multus_cdk.multus_manifests import load_manifest_file

HANDLER = "node_drainer.handler.handler"
TERMINATE_DETAIL_TYPE = "EC2 Instance-terminate Lifecycle Action"
# Lambda's maximum. The drain stops at DRAIN_DEADLINE (or 30 s before the invocation ends) and completes then.
FUNCTION_TIMEOUT = Duration.minutes(15)
DRAIN_DEADLINE_SECONDS = 600
# RecordLifecycleActionHeartbeat period while draining; the hook's HeartbeatTimeout (node_group.py) is 5x this.
HEARTBEAT_SECONDS = 60
RBAC_GROUP_PREFIX = "eks-multus:node-drainer"
# Before evicting, wait at most this long for the group's other in-service nodes to be Ready without the startup
# taint (the new node of a rolling-update batch): evicted pods would only wait Pending. Half the drain deadline.
PEER_WAIT_SECONDS = 300


def drainer_rbac(asg_name: str) -> list[dict]:
    """manifests/node-drainer/rbac.yaml for one group: names and the bound group carry the group's name, so each
    node group's drainer has its own objects (deleting one group never removes another's binding)."""
    objects = copy.deepcopy(load_manifest_file(asset_path("manifests", "node-drainer", "rbac.yaml")))
    for obj in objects:
        obj["metadata"]["name"] = f"{obj['metadata']['name']}-{asg_name}"
        if obj["kind"] == "ClusterRoleBinding":
            obj["roleRef"]["name"] = f"{obj['roleRef']['name']}-{asg_name}"
            (subject,) = obj["subjects"]
            subject["name"] = rbac_group(asg_name)
    return objects


def rbac_group(asg_name: str) -> str:
    return f"{RBAC_GROUP_PREFIX}:{asg_name}"


class NodeDrainer(Construct):
    """Drains the nodes of one Auto Scaling group before they terminate.

    Attributes: `function`, `role`, `rule`, `dead_letter_queue`, `security_group`, `access_entry`, `rbac_manifest`,
    `alarms`. `startup_taint_key`: the taint new nodes register with, if any (a peer that still carries it is
    joining, and evictions wait for it). The group must declare a terminate lifecycle hook named `hook_name`
    (default result CONTINUE) and depend on this construct.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        asg_name: str,
        hook_name: str,
        cluster: eks.ICluster,
        vpc: ec2.IVpc,
        subnets: list[ec2.ISubnet],
        log_retention: logs.RetentionDays,
        log_key: kms.IKey | None = None,
        startup_taint_key: str | None = None,
    ) -> None:
        super().__init__(scope, construct_id)
        stack = Stack.of(self)
        self.log_group = logs.LogGroup(self, "Logs", retention=log_retention, encryption_key=log_key,
                                       removal_policy=RemovalPolicy.DESTROY)
        self.dead_letter_queue = sqs.Queue(self, "DeadLetters", encryption=sqs.QueueEncryption.SQS_MANAGED,
                                           enforce_ssl=True, retention_period=Duration.days(14))
        acknowledge(self.dead_letter_queue, {
            "AwsSolutions-SQS3": "This queue is the dead-letter queue of the drainer function and its rule target."})
        self.security_group = ec2.SecurityGroup(
            self, "SecurityGroup", vpc=vpc, allow_all_outbound=False,
            description=f"Node drainer of {asg_name}: HTTPS out only (EKS API, Auto Scaling and EC2 APIs)")
        # The AWS APIs are reached through the NAT gateway: their addresses are not known in advance.
        self.security_group.add_egress_rule(ec2.Peer.any_ipv4(), ec2.Port.tcp(443), "AWS APIs and the EKS endpoint")
        ec2.CfnSecurityGroupIngress(
            self, "ApiIngress", group_id=cluster.cluster_security_group_id, ip_protocol="tcp", from_port=443,
            to_port=443, source_security_group_id=self.security_group.security_group_id,
            description=f"EKS API from the node drainer of {asg_name}")
        self.role = iam.Role(
            self, "Role", assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description=f"Node drainer of {asg_name}",
            # What Lambda needs to place the function's ENIs in the VPC (aws-cdk-lib adds it only to roles it makes).
            managed_policies=[iam.ManagedPolicy.from_aws_managed_policy_name(
                "service-role/AWSLambdaVPCAccessExecutionRole")])
        self.role.add_to_policy(iam.PolicyStatement(
            sid="Logs", actions=["logs:CreateLogStream", "logs:PutLogEvents"],
            resources=[self.log_group.log_group_arn, f"{self.log_group.log_group_arn}:*"]))
        # Node names (private DNS names) and the group's in-service peers; neither has resource-level permissions.
        self.role.add_to_policy(iam.PolicyStatement(
            sid="Describe", actions=["ec2:DescribeInstances", "autoscaling:DescribeAutoScalingGroups"],
            resources=["*"]))
        group_arn = stack.format_arn(service="autoscaling", resource="autoScalingGroup",
                                     arn_format=ArnFormat.COLON_RESOURCE_NAME,
                                     resource_name=f"*:autoScalingGroupName/{asg_name}")
        self.role.add_to_policy(iam.PolicyStatement(
            sid="CompleteLifecycle", resources=[group_arn],
            actions=["autoscaling:CompleteLifecycleAction", "autoscaling:RecordLifecycleActionHeartbeat"]))
        self.function = lambda_.Function(
            self, "Function",
            description=f"Cordons and drains nodes of {asg_name} before they terminate",
            handler=HANDLER,
            **lambda_package("node_drainer"),
            timeout=FUNCTION_TIMEOUT,
            memory_size=256,
            log_group=self.log_group,
            role=self.role,
            vpc=vpc,
            vpc_subnets=ec2.SubnetSelection(subnets=subnets),
            security_groups=[self.security_group],
            environment={
                "ASG_NAME": asg_name,
                "DRAIN_HOOK_NAME": hook_name,
                "CLUSTER_NAME": cluster.cluster_name,
                "CLUSTER_ENDPOINT": cluster.cluster_endpoint,
                "CLUSTER_CA": cluster.cluster_certificate_authority_data,
                "DRAIN_DEADLINE_SECONDS": str(DRAIN_DEADLINE_SECONDS),
                "HEARTBEAT_SECONDS": str(HEARTBEAT_SECONDS),
                "PEER_WAIT_SECONDS": str(PEER_WAIT_SECONDS),
                # Only where nodes register with it: a peer carrying it is still joining.
                **({"STARTUP_TAINT_KEY": startup_taint_key} if startup_taint_key else {}),
            },
            retry_attempts=2,
            max_event_age=Duration.hours(1),
            on_failure=SqsDestination(self.dead_letter_queue),
        )
        acknowledge(self.role, {
            managed_policy_finding("service-role/AWSLambdaVPCAccessExecutionRole"): "AWS's documented policy for "
            "a function in a VPC: the ENI calls Lambda makes on the function's behalf to place it in the private "
            "subnets (the EKS endpoint may be private). The function's own code makes no EC2 write call.",
            "AwsSolutions-IAM5[Resource::*]": "ec2:DescribeInstances and autoscaling:DescribeAutoScalingGroups support "
            "no resource-level permissions.",
            f"AwsSolutions-IAM5[Resource::<{stack.get_logical_id(self.log_group.node.default_child)}.Arn>:*]":
            "Log streams of this function's own log group.",
            f"AwsSolutions-IAM5[Resource::arn:{nag_partition(self)}:autoscaling:{nag_region(self)}:<AWS::AccountId>:"
            f"autoScalingGroup:*:autoScalingGroupName/{asg_name}]":
            "The group's ARN contains a UUID assigned at creation; the name part pins this one group.",
        })
        self.rule = events.Rule(
            self, "TerminateRule",
            description=f"Terminate lifecycle actions of the drain hook of {asg_name}",
            event_pattern=events.EventPattern(
                source=["aws.autoscaling"], detail_type=[TERMINATE_DETAIL_TYPE],
                detail={"AutoScalingGroupName": [asg_name], "LifecycleHookName": [hook_name]}),
            targets=[targets.LambdaFunction(self.function, retry_attempts=4, max_event_age=Duration.hours(1),
                                            dead_letter_queue=self.dead_letter_queue)],
        )
        # Kubernetes identity: access entry (no access policy) -> group -> ClusterRoleBinding -> exact ClusterRole.
        self.access_entry = eks.CfnAccessEntry(
            self, "AccessEntry", cluster_name=cluster.cluster_name, principal_arn=self.role.role_arn,
            type="STANDARD", kubernetes_groups=[rbac_group(asg_name)])
        self.rbac_manifest = eks.KubernetesManifest(self, "Rbac", cluster=cluster, manifest=drainer_rbac(asg_name),
                                                    overwrite=True)
        self.alarms = self._alarms(asg_name)

    def _alarms(self, asg_name: str) -> dict[str, cloudwatch.Alarm]:
        """Dead letters (a terminate action never handled: the hook's timeout CONTINUEs it undrained) and function
        errors (a failed completion) alarm on their first occurrence."""
        period = Duration.minutes(5)
        specs = {
            "dead_letters": ("DeadLetterAlarm", self.dead_letter_queue.metric_approximate_number_of_messages_visible(
                period=period, statistic="Maximum"), "terminations the drainer never handled"),
            "errors": ("ErrorAlarm", self.function.metric_errors(period=period, statistic="Sum"),
                       "drainer invocations that failed"),
        }
        return {key: cloudwatch.Alarm(
            self, cid, metric=metric, threshold=1, evaluation_periods=1,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING, alarm_description=f"{asg_name}: {why}")
            for key, (cid, metric, why) in specs.items()}



