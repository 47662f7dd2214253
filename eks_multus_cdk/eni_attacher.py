"""Step 5 of the walkthrough: the Lambda that gives each new node its Multus ENIs.

An EventBridge rule sends this group's launch/terminate lifecycle actions *of its own two hooks* (other tools'
hooks on the same group never reach it) to the function in `lambda/eni_attacher`. It waits (with heartbeats)
while the instance is pending, creates one ENI per Multus network in the instance's own AZ (tagged at creation),
attaches it at the network's device index and completes the action. On terminate it detaches nothing (attached
ENIs go with the instance through DeleteOnTermination) and deletes only unattached leftovers. A scheduled rule runs
the same function as a sweeper for ENIs left when every attempt failed. Alarms watch the dead-letter queue, the
function's errors and the ABANDON metric the function writes in embedded metric format.
"""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import ArnFormat, Duration, RemovalPolicy, Stack
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sqs as sqs
from aws_cdk.aws_lambda_destinations import SqsDestination
from constructs import Construct

from eks_multus_cdk.assets import lambda_package
from eks_multus_cdk.compliance import acknowledge, nag_partition, nag_region
from eks_multus_cdk.config import MultusNetworkConfig
from eks_multus_cdk.model import MultusNetwork
from eks_multus_cdk.naming import OWNER_TAG, device_index

LAUNCH_DETAIL_TYPE = "EC2 Instance-launch Lifecycle Action"
TERMINATE_DETAIL_TYPE = "EC2 Instance-terminate Lifecycle Action"
HANDLER = "eni_attacher.handler.handler"
# The function waits for pending instances inside one invocation (metal types take minutes), keeping
# ENI_ATTACHER_MARGIN_SECONDS for cleanup and completion. The launch hook's HeartbeatTimeout (node_group.py) is
# longer than the heartbeat period and than one Lambda retry delay (1-2 min).
FUNCTION_TIMEOUT = Duration.minutes(10)
SWEEP_EVERY = Duration.minutes(15)
SWEEP_EVENT = {"eksMultusAction": "sweep"}
METRIC_NAMESPACE = "EksMultus/EniAttacher"  # lambda/eni_attacher/handler.py METRIC_NAMESPACE (a test checks)


class EniAttacher(Construct):
    """ENI lifecycle Lambda, its EventBridge rule and its dead-letter queue, for one Auto Scaling group.

    Attributes: `function`, `role`, `rule`, `sweep_rule`, `dead_letter_queue`, `log_group`, `alarms` (dict:
    `dead_letters`, `errors`, `abandoned`; no actions: add your SNS topic with `alarm.add_alarm_action`).
    The Auto Scaling group must be named `asg_name`, declare a launch hook named `launch_hook_name` (and a terminate
    hook `terminate_hook_name` only if one is given), and depend on this construct, so the rule and the function
    exist before its first instance launches. MultusNodeGroup gives no terminate hook: attached ENIs go with the
    instance (DeleteOnTermination) and the scheduled sweeper deletes unattached leftovers, which is all the
    terminate path did; the group's terminate hook belongs to the node drainer.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        asg_name: str,
        networks: Sequence[MultusNetwork | MultusNetworkConfig],
        multus_subnets: list[list[ec2.ISubnet]],
        security_group: ec2.ISecurityGroup,
        log_retention: logs.RetentionDays,
        launch_hook_name: str,
        terminate_hook_name: str | None = None,
        log_key: kms.IKey | None = None,
    ) -> None:
        super().__init__(scope, construct_id)
        stack = Stack.of(self)
        env_networks = [
            {
                "name": net.name,
                "deviceIndex": device_index(pos),
                "subnets": {s.availability_zone: s.subnet_id for s in multus_subnets[pos]},
                "securityGroupIds": [security_group.security_group_id],
            }
            for pos, net in enumerate(networks)
        ]
        # Deleted with the stack (the CDK default would keep it); encrypted with the app's logs key when given.
        self.log_group = logs.LogGroup(self, "Logs", retention=log_retention, encryption_key=log_key,
                                       removal_policy=RemovalPolicy.DESTROY)
        self.dead_letter_queue = sqs.Queue(
            self, "DeadLetters", encryption=sqs.QueueEncryption.SQS_MANAGED, enforce_ssl=True,
            retention_period=Duration.days(14),
        )
        acknowledge(self.dead_letter_queue, {
            "AwsSolutions-SQS3": "This queue is the dead-letter queue of the function and of the rule target."})
        # Its own role: write only to its log group (the basic execution managed policy would allow every group).
        self.role = iam.Role(self, "Role", assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
                             description=f"Multus ENI Lambda of {asg_name}")
        self.role.add_to_policy(iam.PolicyStatement(
            sid="Logs", actions=["logs:CreateLogStream", "logs:PutLogEvents"],
            resources=[self.log_group.log_group_arn, f"{self.log_group.log_group_arn}:*"]))
        self.function = lambda_.Function(
            self, "Function",
            description="Attaches Multus ENIs to new nodes; as a sweeper, deletes leftover ENIs of its group",
            handler=HANDLER,
            **lambda_package("eni_attacher"),
            timeout=FUNCTION_TIMEOUT,
            memory_size=256,
            log_group=self.log_group,
            role=self.role,
            environment={
                "MULTUS_NETWORKS": stack.to_json_string(env_networks),
                "ASG_NAME": asg_name,
                "OWNER_TAG_VALUE": asg_name,
                "LAUNCH_HOOK_NAME": launch_hook_name,
                **({"TERMINATE_HOOK_NAME": terminate_hook_name} if terminate_hook_name else {}),
            },
            retry_attempts=2,
            max_event_age=Duration.minutes(10),
            on_failure=SqsDestination(self.dead_letter_queue),
        )
        self._grant(stack, asg_name, multus_subnets, security_group)
        self.rule = events.Rule(
            self, "LifecycleRule",
            description=f"Lifecycle actions of the Auto Scaling group {asg_name}",
            event_pattern=events.EventPattern(
                source=["aws.autoscaling"],
                detail_type=[LAUNCH_DETAIL_TYPE, *([TERMINATE_DETAIL_TYPE] if terminate_hook_name else [])],
                # Only this construct's hooks: Auto Scaling sends one event per hook, and other tools add their own.
                detail={"AutoScalingGroupName": [asg_name], "LifecycleHookName": [
                    launch_hook_name, *([terminate_hook_name] if terminate_hook_name else [])]},
            ),
            targets=[targets.LambdaFunction(
                self.function, retry_attempts=4, max_event_age=Duration.minutes(10),
                dead_letter_queue=self.dead_letter_queue)],
        )
        self.sweep_rule = events.Rule(
            self, "SweepSchedule",
            description=f"Deletes available Multus ENIs of {asg_name} that no launch can use any more",
            schedule=events.Schedule.rate(SWEEP_EVERY),
            targets=[targets.LambdaFunction(
                self.function, event=events.RuleTargetInput.from_object(SWEEP_EVENT), retry_attempts=2,
                max_event_age=Duration.minutes(10), dead_letter_queue=self.dead_letter_queue)],
        )
        self.alarms = self._alarms(asg_name)

    def _grant(
        self, stack: Stack, asg_name: str, multus_subnets: list[list[ec2.ISubnet]], sg: ec2.ISecurityGroup
    ) -> None:
        def arn(resource: str, name: str) -> str:
            return stack.format_arn(service="ec2", resource=resource, resource_name=name)

        eni_arn = arn("network-interface", "*")
        # ec2:Subnet (listed for these actions on network-interface in the Service Authorization Reference): only
        # ENIs in the Multus subnets, whatever their tags say.
        in_multus_subnets = {"ArnEquals": {"ec2:Subnet": [
            arn("subnet", s.subnet_id) for subnets in multus_subnets for s in subnets]}}
        owned = {"StringEquals": {f"ec2:ResourceTag/{OWNER_TAG}": asg_name}, **in_multus_subnets}
        in_group = {"StringEquals": {"ec2:ResourceTag/aws:autoscaling:groupName": asg_name}}
        statements = [
            iam.PolicyStatement(  # EC2 has no resource-level permissions for Describe*.
                sid="Describe", actions=["ec2:DescribeInstances", "ec2:DescribeNetworkInterfaces"], resources=["*"]),
            iam.PolicyStatement(
                sid="CreateOwnedEni", actions=["ec2:CreateNetworkInterface"], resources=[eni_arn],
                conditions={"StringEquals": {f"aws:RequestTag/{OWNER_TAG}": asg_name}}),
            iam.PolicyStatement(
                sid="CreateEniInMultusSubnets", actions=["ec2:CreateNetworkInterface"],
                resources=[arn("subnet", s.subnet_id) for subnets in multus_subnets for s in subnets]
                + [arn("security-group", sg.security_group_id)]),
            # Tag-on-create is authorized as CreateTags with ec2:CreateAction; the ENI being created is already
            # pinned to the Multus subnets by CreateEniInMultusSubnets (the subnet is a required resource of
            # CreateNetworkInterface). No ec2:Subnet condition on the new ENI, here or in CreateOwnedEni: whether
            # IAM fills resource keys of a resource that does not exist yet is not documented, and an absent key
            # would refuse every launch (the per-call test's evaluator supplies none for a new ENI).
            iam.PolicyStatement(
                sid="TagOnCreate", actions=["ec2:CreateTags"], resources=[eni_arn],
                conditions={"StringEquals": {"ec2:CreateAction": "CreateNetworkInterface"}}),
            iam.PolicyStatement(
                sid="ManageOwnedEni", resources=[eni_arn], conditions=owned,
                actions=["ec2:AttachNetworkInterface", "ec2:DetachNetworkInterface",
                         "ec2:ModifyNetworkInterfaceAttribute", "ec2:DeleteNetworkInterface"]),
            # The Service Authorization Reference lists `instance` as a resource of all three: attaching,
            # detaching and changing an attachment's DeleteOnTermination involve the instance (proven per call
            # in tests/lambda/test_iam_per_call.py).
            iam.PolicyStatement(
                sid="AttachToGroupInstances", resources=[arn("instance", "*")], conditions=in_group,
                actions=["ec2:AttachNetworkInterface", "ec2:DetachNetworkInterface",
                         "ec2:ModifyNetworkInterfaceAttribute"]),
            iam.PolicyStatement(
                sid="CompleteLifecycle",
                actions=["autoscaling:CompleteLifecycleAction", "autoscaling:RecordLifecycleActionHeartbeat"],
                # arn:aws:autoscaling:<region>:<account>:autoScalingGroup:<uuid>:autoScalingGroupName/<name>
                resources=[stack.format_arn(
                    service="autoscaling", resource="autoScalingGroup", arn_format=ArnFormat.COLON_RESOURCE_NAME,
                    resource_name=f"*:autoScalingGroupName/{asg_name}")]),
        ]
        for statement in statements:
            self.role.add_to_policy(statement)
        # As cdk-nag prints them: never a token (an environment-agnostic stack's region is `<AWS::Region>`).
        partition, region = nag_partition(self), nag_region(self)
        acknowledge(self.role, {
            "AwsSolutions-IAM5[Resource::*]": "ec2:DescribeInstances and ec2:DescribeNetworkInterfaces support no "
            "resource-level permissions.",
            f"AwsSolutions-IAM5[Resource::<{stack.get_logical_id(self.log_group.node.default_child)}.Arn>:*]":
            "Log streams of this function's own log group.",
            f"AwsSolutions-IAM5[Resource::arn:{partition}:ec2:{region}:<AWS::AccountId>:network-interface/*]":
            "ENI ids do not exist before the Lambda creates them. Every statement on network-interface/* requires "
            "the ENI to be in a Multus subnet (ec2:Subnet); create requires the owner tag as a request tag, "
            "attach/detach/modify/delete require it as a resource tag, and CreateTags is allowed only inside "
            "CreateNetworkInterface (ec2:CreateAction), so the function cannot tag an existing ENI as its own.",
            f"AwsSolutions-IAM5[Resource::arn:{partition}:ec2:{region}:<AWS::AccountId>:instance/*]":
            "Instance ids are unknown at deploy time; attach/detach is limited to instances tagged with this "
            "Auto Scaling group's name.",
            f"AwsSolutions-IAM5[Resource::arn:{partition}:autoscaling:{region}:<AWS::AccountId>:"
            f"autoScalingGroup:*:autoScalingGroupName/{asg_name}]":
            "The group's ARN contains a UUID assigned at creation; the name part pins this one group.",
        })

    def _alarms(self, asg_name: str) -> dict[str, cloudwatch.Alarm]:
        """Nothing fails silently: dead letters, function errors (a raised CompleteLifecycleAction failure
        included) and ABANDONed launches each raise an alarm on their first occurrence."""
        period = Duration.minutes(5)
        abandoned = cloudwatch.Metric(
            namespace=METRIC_NAMESPACE, metric_name="LaunchAbandoned",
            dimensions_map={"AutoScalingGroupName": asg_name}, statistic="Sum", period=period)
        specs = {
            "dead_letters": ("DeadLetterAlarm", self.dead_letter_queue.metric_approximate_number_of_messages_visible(
                period=period, statistic="Maximum"), "lifecycle or sweep events the ENI function never handled"),
            "errors": ("ErrorAlarm", self.function.metric_errors(period=period, statistic="Sum"),
                       "ENI function invocations that failed (for example CompleteLifecycleAction)"),
            "abandoned": ("AbandonAlarm", abandoned, "launches ABANDONed because a node could not get its ENIs"),
        }
        return {
            key: cloudwatch.Alarm(
                self, construct_id, metric=metric, threshold=1, evaluation_periods=1,
                comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
                treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
                alarm_description=f"{asg_name}: {why}")
            for key, (construct_id, metric, why) in specs.items()
        }
