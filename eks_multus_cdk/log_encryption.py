"""One customer-managed KMS key for the app's CloudWatch log groups (control plane, flow logs, Lambda logs).

CloudWatch Logs encrypts a log group with a KMS key only if the key policy lets the regional Logs service use it;
the grant below is limited, through the encryption context Logs always sends, to log groups of this account and
region. The key rotates yearly; `cdk destroy` schedules its deletion after 7 days (the stacks' clean-up aspect),
together with the log groups it encrypts, which are deleted with their stacks.
"""

from __future__ import annotations

from aws_cdk import ArnFormat, RemovalPolicy, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from constructs import Construct


def logs_key(scope: Construct, construct_id: str) -> kms.Key:
    stack = Stack.of(scope)
    key = kms.Key(
        scope, construct_id, enable_key_rotation=True, removal_policy=RemovalPolicy.DESTROY,
        description="CloudWatch Logs encryption: EKS control plane, VPC flow logs, Lambda logs",
    )
    key.add_to_resource_policy(iam.PolicyStatement(
        sid="CloudWatchLogsOfThisAccountAndRegion",
        principals=[iam.ServicePrincipal(f"logs.{stack.region}.amazonaws.com")],
        actions=["kms:Encrypt*", "kms:Decrypt*", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:Describe*"],
        resources=["*"],  # in a key policy, "*" is this key
        conditions={"ArnLike": {"kms:EncryptionContext:aws:logs:arn": stack.format_arn(
            service="logs", resource="log-group", resource_name="*", arn_format=ArnFormat.COLON_RESOURCE_NAME)}},
    ))
    return key

