"""The walkthrough's sample pods (manifests/samples/), rendered for the config.

- `sample-single`: one Multus interface, net1 on network 1.
- `sample-dual`: net1 on network 1 and net2 on network 2 (rendered only when the config has two networks).
- `sample-cross-a`, `sample-cross-b` (only with `crossNodeTraffic`): net1 on network 1, preferring different nodes,
  to show pod-to-pod traffic across nodes over a Multus network.

The AZ rule: a pod may only name NetworkAttachmentDefinitions of its own node's availability zone. A NAD's
`master` is the node's ENI of that network, and that ENI lives in the network's subnet *of the node's AZ*; a NAD
of another AZ would give the pod an address of a subnet the ENI is not in, and the VPC drops such traffic. So
both samples are pinned with `nodeSelector: topology.kubernetes.io/zone: <AZ 1>` and name the AZ-1 NADs.

With `crossNodeTraffic` every sample also carries the pod-address controller's readiness gate
(`naming.ADDRESSES_READY_CONDITION`): it is Ready only once its Multus addresses are on its ENIs; and it requests
one `eks-multus.io/<network>-ips` per Multus network it attaches, the extended resource the controller publishes
on each node (free address slots on that network's ENI), so the scheduler only places it where its address can
be routed. The YAML files carry neither: without cross-node traffic there is no controller to set the condition
or publish the resource, and the pod would never become Ready nor be scheduled.
"""

from __future__ import annotations

import json
from typing import Any

from eks_multus_cdk import naming
from eks_multus_cdk.assets import asset_path
from eks_multus_cdk.config import AppConfig
from eks_multus_cdk.multus_manifests import load_manifest_file

NETWORKS_ANNOTATION = "k8s.v1.cni.cncf.io/networks"
# The pod-address controller's extended resource per network (controller/multus_ip_controller/capacity.py).
EXTENDED_RESOURCE = "eks-multus.io/{network}-ips"
ZONE_LABEL = "topology.kubernetes.io/zone"
SAMPLE_AZ_INDEX = 0

# file -> the config positions of the networks it attaches, as net1, net2... in order
SAMPLES: dict[str, tuple[int, ...]] = {
    "sample-single.yaml": (0,),
    "sample-dual.yaml": (0, 1),
}
CROSS_NODE_SAMPLES: dict[str, tuple[int, ...]] = {
    "sample-cross-a.yaml": (0,),
    "sample-cross-b.yaml": (0,),
}


def pod_interface_name(index: int) -> str:
    """The name of a pod's Multus interface: net1, net2... (eth0 stays the VPC CNI's)."""
    return f"net{index + 1}"


def networks_annotation(config: AppConfig, positions: tuple[int, ...], az_index: int = SAMPLE_AZ_INDEX) -> str:
    """The JSON value of `k8s.v1.cni.cncf.io/networks` attaching the networks at `positions` in one AZ."""
    az = config.availability_zones[az_index]
    return json.dumps(
        [
            {
                "name": naming.nad_name(config.multus_networks[position].name, az),
                "namespace": naming.NAD_NAMESPACE,
                "interface": pod_interface_name(i),
            }
            for i, position in enumerate(positions)
        ],
        separators=(",", ":"),
    )


def sample_pod_manifests(config: AppConfig) -> list[dict[str, Any]]:
    """The sample pods for `config` ([] when `samplePods` is false)."""
    if not config.sample_pods:
        return []
    pods = []
    samples = {**SAMPLES, **(CROSS_NODE_SAMPLES if config.cross_node_traffic else {})}
    for filename, positions in samples.items():
        if max(positions) >= len(config.multus_networks):
            continue  # sample-dual needs a second network
        (pod,) = load_manifest_file(asset_path("manifests", "samples", filename))
        pod["metadata"]["namespace"] = naming.SAMPLE_NAMESPACE
        pod["metadata"].setdefault("annotations", {})[NETWORKS_ANNOTATION] = networks_annotation(config, positions)
        pod["spec"]["nodeSelector"] = {ZONE_LABEL: config.availability_zones[SAMPLE_AZ_INDEX]}
        for container in pod["spec"]["containers"]:
            container["image"] = config.sample_pod_image
        if config.cross_node_traffic:
            pod["spec"]["readinessGates"] = [{"conditionType": naming.ADDRESSES_READY_CONDITION}]
            wanted = {EXTENDED_RESOURCE.format(network=config.multus_networks[p].name): "1" for p in positions}
            resources = pod["spec"]["containers"][0].setdefault("resources", {})
            for kind in ("requests", "limits"):  # extended resources: requests must equal limits
                resources.setdefault(kind, {}).update(wanted)
        pods.append(pod)
    return pods
