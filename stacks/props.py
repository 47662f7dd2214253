"""The app's config turned into construct props: the only place (with the stacks) that reads AppConfig."""

from __future__ import annotations

from typing import Any

from eks_multus_cdk.config import AppConfig
from eks_multus_cdk.network import MultusSubnetLayout, log_retention


def network_props(config: AppConfig) -> dict[str, Any]:
    """Keyword arguments of `Network` for the config (add `log_key`)."""
    return dict(
        vpc_cidr=config.vpc_cidr, availability_zones=config.availability_zones,
        public_subnet_cidrs=config.public_subnet_cidrs, private_subnet_cidrs=config.private_subnet_cidrs,
        multus=[MultusSubnetLayout(name=n.name, subnet_cidrs=n.subnet_cidrs,
                                   pod_range_prefix_length=n.pod_range_prefix_length) for n in config.multus_networks],
        nat_gateways=config.nat_gateway_count, multus_ingress_from_vpc=config.multus_ingress_from_vpc,
        telco_peer_cidrs=config.telco_peer_cidrs, log_retention=log_retention(config),
    )
