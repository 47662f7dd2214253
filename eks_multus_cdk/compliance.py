"""Acknowledging cdk-nag / CloudFormation-validate findings, each with the reason it is accepted.

Acknowledgements live on the construct that makes the choice, so library users inherit them with the construct.
"""

from __future__ import annotations

from aws_cdk import Acknowledgment, Stack, Token, Validations
from constructs import IConstruct


def acknowledge(scope: IConstruct, reasons: dict[str, str]) -> None:
    """Acknowledge rule ids (e.g. `AwsSolutions-IAM4[Policy::...]`) on `scope` and everything below it."""
    Validations.of(scope).acknowledge(*(Acknowledgment(id=rule, reason=why) for rule, why in reasons.items()))


def managed_policy_finding(name: str) -> str:
    """The IAM4 finding id cdk-nag reports for an AWS managed policy attached by name."""
    return f"AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/{name}]"


def nag_partition(scope: IConstruct) -> str:
    """The partition as cdk-nag prints it inside an ARN finding: a literal such as `aws` when the stack's region is
    concrete (feature flag `@aws-cdk/core:enablePartitionLiterals`), else `<AWS::Partition>`."""
    partition = Stack.of(scope).partition
    return "<AWS::Partition>" if Token.is_unresolved(partition) else partition



def nag_region(scope: IConstruct) -> str:
    """The region as cdk-nag prints it inside an ARN finding: the literal region, or `<AWS::Region>` in an
    environment-agnostic stack (a token must never end up in an acknowledgement id)."""
    region = Stack.of(scope).region
    return "<AWS::Region>" if Token.is_unresolved(region) else region


PINNED_AZS = {
    "CloudFormation-Validate::W3010": "AZ names are pinned in cdk.json on purpose: synth must not ask AWS which AZs "
    "exist, and each Multus subnet must be in a known AZ."
}
