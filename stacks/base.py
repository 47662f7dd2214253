"""A Stack whose availability zones come from the config, so synth never asks AWS which AZs exist."""

from __future__ import annotations

from typing import Any

import jsii
from aws_cdk import Aspects, CfnResource, IAspect, RemovalPolicy, Stack, TagManager, Tags
from aws_cdk import aws_kms as kms
from aws_cdk import aws_logs as logs
from constructs import Construct, IConstruct

from eks_multus_cdk.config import AppConfig

# KMS keeps a deleted key for 7 to 30 days; the shortest wait, since nothing outlives the stacks that uses it.
KEY_DELETION_WINDOW_DAYS = 7


@jsii.implements(IAspect)
class CleanUpOnDestroy:
    """Every log group of the stack: the configured retention, deleted with the stack. Every KMS key: scheduled for
    deletion with the stack. Covers the groups and keys aws-cdk-lib makes itself (kubectl provider, EKS secrets),
    so `cdk destroy` leaves only what the README's Cleanup section lists."""

    def __init__(self, retention_days: int) -> None:
        self.retention_days = retention_days

    def visit(self, node: IConstruct) -> None:
        if isinstance(node, logs.CfnLogGroup):
            node.retention_in_days = self.retention_days
            node.apply_removal_policy(RemovalPolicy.DESTROY)
        elif isinstance(node, kms.CfnKey):
            node.pending_window_in_days = KEY_DELETION_WINDOW_DAYS
            node.apply_removal_policy(RemovalPolicy.DESTROY)


@jsii.implements(IAspect)
class EncryptLogGroups:
    """Every log group of the stack that names no key is encrypted with the app's logs key, including the groups
    made for aws-cdk-lib's own functions (kubectl provider, restrict-default-SG) and the reservation Lambda."""

    def __init__(self, key: kms.IKey) -> None:
        self.key = key

    def visit(self, node: IConstruct) -> None:
        if isinstance(node, logs.CfnLogGroup) and node.kms_key_id is None:
            node.kms_key_id = self.key.key_arn


# Resources aws-cdk-lib writes as raw CfnResource (so Tags.of cannot reach them) whose CloudFormation type takes
# tags: the custom-resource provider's role and function, the kubectl-ready SSM parameter. Value: tag format.
_RAW_TAGGABLE = {"AWS::IAM::Role": "list", "AWS::Lambda::Function": "list", "AWS::SSM::Parameter": "map"}


@jsii.implements(IAspect)
class TagRawResources:
    """The config's tags on the raw resources above, through a property override."""

    def __init__(self, tags: dict[str, str]) -> None:
        self.tags = dict(sorted(tags.items()))

    def visit(self, node: IConstruct) -> None:
        if not isinstance(node, CfnResource) or TagManager.is_taggable(node):
            return
        shape = _RAW_TAGGABLE.get(node.cfn_resource_type)
        if shape == "list":
            node.add_property_override("Tags", [{"Key": k, "Value": v} for k, v in self.tags.items()])
        elif shape == "map":
            node.add_property_override("Tags", self.tags)


class PinnedAzStack(Stack):
    """Pinned AZs, the config's `tags` on every taggable resource, and the clean-up policy above."""

    def __init__(self, scope: Construct, construct_id: str, *, config: AppConfig, **kwargs: Any) -> None:
        self._pinned_azs = list(config.availability_zones)
        super().__init__(scope, construct_id, **kwargs)
        for key, value in sorted(config.tags.items()):
            Tags.of(self).add(key, value)
        if config.tags:
            Aspects.of(self).add(TagRawResources(config.tags))
        Aspects.of(self).add(CleanUpOnDestroy(config.log_retention_days))

    def encrypt_logs_with(self, key: kms.IKey) -> None:
        """Encrypt every log group of this stack that names no key of its own with `key`."""
        Aspects.of(self).add(EncryptLogGroups(key))

    @property
    def availability_zones(self) -> list[str]:
        return self._pinned_azs
