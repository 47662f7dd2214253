"""Names shared by the node group, the ENI Lambda's config, the NADs, the sample pods and `make verify`.

Multus network i (0-based, in config order) is attached at EC2 device index i + 1 and renamed on the node to
`multus<i + 1>`; its NetworkAttachmentDefinition for an AZ is `<network name>-<az>`.
"""

from __future__ import annotations

IFNAME_PREFIX = "multus"
# Multus runs with namespaceIsolation: a pod may only use NADs of its own namespace (or of kube-system, the one
# global namespace). The NADs live in a dedicated namespace, `networkNamespace` in the config (this by default),
# and the sample pods run there (README: "Letting another namespace use a network").
NAD_NAMESPACE = "multus-networks"
SAMPLE_NAMESPACE = NAD_NAMESPACE
# Tag on every Multus ENI naming the Auto Scaling group it belongs to (value: `asg_name`). IAM gates every write
# by the ENI Lambda and the pod-address controller on it; lambda/ and controller/ carry the same literal.
OWNER_TAG = "eks-multus/owner"

# Readiness-gate condition the pod-address controller sets on pods that list it in spec.readinessGates: True once
# every pod-range address of the pod is on its interface's ENI. Equal to the controller's
# multus_ip_controller.readiness.ADDRESSES_READY_CONDITION (a test checks).
ADDRESSES_READY_CONDITION = "eks-multus.io/addresses-assigned"

# NoSchedule taint nodes register with until their Multus interfaces are up and the Multus daemon runs there
# (node_group.STARTUP_TAINT); equal to controller/multus_ip_controller/startup_taint.TAINT_KEY (a test checks).
STARTUP_TAINT_KEY = "eks-multus/not-ready"
# Node label with the number of Multus interfaces the node must have (multus1..N); read by that controller.
INTERFACE_COUNT_LABEL = "eks-multus/multus-interfaces"


def asg_name(stack_prefix: str, node_group: str) -> str:
    """Fixed name of a node group's Auto Scaling group; also the `eks-multus/owner` tag value of its ENIs."""
    return f"{stack_prefix}-{node_group}"


def device_index(network_position: int) -> int:
    """EC2 device index of the ENI for the network at `network_position` (0-based) in the config."""
    return network_position + 1


def interface_name(network_position: int) -> str:
    """Stable host interface name the node gives that network's ENI (the NAD's `master`)."""
    return f"{IFNAME_PREFIX}{device_index(network_position)}"


def nad_name(network_name: str, availability_zone: str) -> str:
    """NetworkAttachmentDefinition name for a network in one AZ (a pod may only use its node's AZ)."""
    return f"{network_name}-{availability_zone}"
