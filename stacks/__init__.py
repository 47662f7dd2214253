"""This app's deployment units: they only compose the eks_multus_cdk constructs."""

from __future__ import annotations

from aws_cdk import App, Environment

from eks_multus_cdk.config import AppConfig
from stacks.cluster_stack import ClusterStack
from stacks.workers_stack import WorkersStack


def build_app(app: App, config: AppConfig) -> tuple[ClusterStack, WorkersStack]:
    """Add the app's two stacks: network + bastion + cluster, then node groups + Multus (deployed in that order).

    The region is concrete (it decides the Multus image registry) and the account is left to the CLI's
    credentials, so synth needs neither AWS access nor a lookup.
    """
    env = Environment(region=config.region)
    cluster_stack = ClusterStack(app, f"{config.stack_prefix}-cluster", config=config, env=env)
    workers = WorkersStack(app, f"{config.stack_prefix}-workers", config=config, cluster_stack=cluster_stack, env=env)
    workers.add_stack_dependency(cluster_stack)
    return cluster_stack, workers
