"""A Stack whose availability zones come from the config, so synth never asks AWS which AZs exist."""

from __future__ import annotations

from typing import Any

from aws_cdk import Stack
from constructs import Construct

from eks_multus_cdk.config import AppConfig


class PinnedAzStack(Stack):
    def __init__(self, scope: Construct, construct_id: str, *, config: AppConfig, **kwargs: Any) -> None:
        self._pinned_azs = list(config.availability_zones)
        super().__init__(scope, construct_id, **kwargs)

    @property
    def availability_zones(self) -> list[str]:
        return self._pinned_azs
