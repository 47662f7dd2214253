"""eks-multus-cdk: AWS CDK constructs that deploy Multus CNI on Amazon EKS.

The public names below are imported on first use (PEP 562), so `import eks_multus_cdk.verify` on a bastion does
not load aws-cdk-lib. README "Use as a library" lists each construct's props and attributes.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.2.0"

# public name -> module that defines it
_EXPORTS = {
    "MultusNetwork": "model",
    "device_indexes": "model",
    "MultusNodeGroup": "node_group",
    "Taint": "config",
    "EniAttacher": "eni_attacher",
    "NodeDrainer": "node_drainer",
    "MultusCni": "multus",
    "PodAddressSync": "pod_addresses",
    "VpcCniIdentity": "pod_identity",
    "SubnetCidrReservations": "cidr_reservations",
    "PodRangeReservations": "cidr_reservations",
    "MultusSubnetLayout": "network",
    "Network": "network",
    "Cluster": "cluster",
    "Bastion": "bastion",
}

__all__ = [
    "Bastion", "Cluster", "EniAttacher", "MultusCni", "MultusNetwork", "MultusNodeGroup", "MultusSubnetLayout",
    "Network", "NodeDrainer", "PodAddressSync", "PodRangeReservations", "SubnetCidrReservations", "Taint",
    "VpcCniIdentity", "device_indexes",
]

if TYPE_CHECKING:
    from eks_multus_cdk.bastion import Bastion
    from eks_multus_cdk.cidr_reservations import PodRangeReservations, SubnetCidrReservations
    from eks_multus_cdk.cluster import Cluster
    from eks_multus_cdk.config import Taint
    from eks_multus_cdk.eni_attacher import EniAttacher
    from eks_multus_cdk.model import MultusNetwork, device_indexes
    from eks_multus_cdk.multus import MultusCni
    from eks_multus_cdk.network import MultusSubnetLayout, Network
    from eks_multus_cdk.node_drainer import NodeDrainer
    from eks_multus_cdk.node_group import MultusNodeGroup
    from eks_multus_cdk.pod_addresses import PodAddressSync
    from eks_multus_cdk.pod_identity import VpcCniIdentity


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'eks_multus_cdk' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"eks_multus_cdk.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
