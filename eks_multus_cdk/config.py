"""The app's configuration: one JSON object under the `eksMultus` context key of cdk.json.

`load_config` turns that object (plus any `-c eksMultus.<path>=<value>` overrides) into frozen dataclasses and
validates it completely before any construct is built. Every problem is reported as a `ConfigError` whose
message names the offending key (as a path such as `eksMultus.multusNetworks[1].subnetCidrs[0]`) and value.

Defaults reproduce the aws-samples "Multus CNI on Amazon EKS" walkthrough.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import json
import re
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from eks_multus_cdk import ec2_offerings
from eks_multus_cdk.instance_types import eni_limits
from eks_multus_cdk.multus_manifests import REGISTRY_ACCOUNTS

CONTEXT_KEY = "eksMultus"

_DNS_LABEL = re.compile(r"^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$")
_AZ = re.compile(r"^[a-z]{2,4}(-[a-z]+)+-\d[a-z]$")
_REGION = re.compile(r"^[a-z]{2,4}(-[a-z]+)+-\d$")
_INSTANCE_TYPE = re.compile(r"^[a-z][a-z0-9-]*\.[a-z0-9]+$")
_ROLE_ARN = re.compile(r"^arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]+$")
_LABEL_KEY = re.compile(r"^([a-z0-9]([-a-z0-9.]*[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$")
# kubectl 1.35 (the kubectl layer we ship) supports clusters one minor version either side.
_KUBERNETES_VERSIONS = ("1.34", "1.35", "1.36")
_IPVLAN_MODES = ("l2", "l3", "l3s")
_PLUGINS = ("ipvlan", "host-device")
_TAINT_EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute")
# Graviton: a 'g' after the generation digit (c6g, m7gd, t4g, c7gn) or the a1 family.
_ARM_INSTANCE_TYPE = re.compile(r"^(a1|[a-z]+\d+[a-z]*g[a-z]*)\.")


def architecture(instance_type: str) -> str:
    """`arm64` for Graviton instance types, else `x86_64` (from the name, as EC2 names its families)."""
    return "arm64" if _ARM_INSTANCE_TYPE.match(instance_type) else "x86_64"


class ConfigError(ValueError):
    """A problem in the `eksMultus` configuration; the message names the key and the value."""


def _key(name: str, **kwargs: Any) -> Any:
    """A dataclass field read from the camelCase JSON key `name`."""
    metadata = {"key": name}
    if "default_factory" in kwargs:
        return field(metadata=metadata, default_factory=kwargs["default_factory"])
    return field(metadata=metadata, default=kwargs["default"]) if "default" in kwargs else field(metadata=metadata)


@dataclass(frozen=True)
class Taint:
    key: str = _key("key")
    effect: str = _key("effect")
    value: str = _key("value", default="")


@dataclass(frozen=True)
class NodeGroupConfig:
    """One self-managed node group; every node gets one ENI per Multus network."""

    name: str = _key("name")
    instance_type: str = _key("instanceType", default="c5.large")
    volume_size: int = _key("volumeSize", default=20)
    # No desired capacity: the group starts at minSize and a deploy never resets the size that scaling chose.
    min_size: int = _key("minSize", default=1)
    # 2 > minSize: a rolling update (node_group.rolling_update_policy) adds the new node before draining the old one.
    max_size: int = _key("maxSize", default=2)
    labels: dict[str, str] = _key("labels", default_factory=dict)
    taints: tuple[Taint, ...] = _key("taints", default=())
    # Empty: every configured AZ. Multus ENIs always come from the subnets of each instance's own AZ.
    availability_zones: tuple[str, ...] = _key("availabilityZones", default=())
    max_network_interfaces: int | None = _key("maxNetworkInterfaces", default=None)
    ipv4_per_interface: int | None = _key("ipv4PerInterface", default=None)


@dataclass(frozen=True)
class MultusNetworkConfig:
    """One Multus network: a subnet per AZ, one ENI per node, one NetworkAttachmentDefinition per AZ."""

    name: str = _key("name")
    subnet_cidrs: tuple[str, ...] = _key("subnetCidrs")
    plugin: str = _key("plugin", default="ipvlan")
    # l2: the pod's packets leave through the ENI with the pod's own routes and source (README "ipvlan modes").
    ipvlan_mode: str = _key("ipvlanMode", default="l2")
    pod_range_prefix_length: int = _key("podRangePrefixLength", default=25)
    # CIDRs the pods reach through this network's subnet router (telco peers behind a TGW/VPN...); the network's
    # own subnets in the other AZs are routed that way without being listed.
    routes: tuple[str, ...] = _key("routes", default=())

    def pod_range(self, az_index: int) -> ipaddress.IPv4Network:
        """The block reserved for pod addresses: the last `/podRangePrefixLength` of the AZ's subnet."""
        subnet = ipaddress.IPv4Network(self.subnet_cidrs[az_index])
        return list(subnet.subnets(new_prefix=self.pod_range_prefix_length))[-1]


@dataclass(frozen=True)
class AppConfig:
    stack_prefix: str = _key("stackPrefix", default="eks-multus")
    region: str = _key("region", default="us-west-2")
    availability_zones: tuple[str, ...] = _key("availabilityZones", default=("us-west-2a", "us-west-2b"))
    vpc_cidr: str = _key("vpcCidr", default="10.0.0.0/16")
    public_subnet_cidrs: tuple[str, ...] = _key("publicSubnetCidrs", default=("10.0.0.0/24", "10.0.1.0/24"))
    private_subnet_cidrs: tuple[str, ...] = _key("privateSubnetCidrs", default=("10.0.2.0/24", "10.0.3.0/24"))
    nat_gateways: int | None = _key("natGateways", default=None)
    multus_networks: tuple[MultusNetworkConfig, ...] = _key(
        "multusNetworks",
        default=(
            MultusNetworkConfig(name="multus1", subnet_cidrs=("10.0.4.0/24", "10.0.5.0/24")),
            MultusNetworkConfig(name="multus2", subnet_cidrs=("10.0.6.0/24", "10.0.7.0/24")),
        ),
    )
    multus_ingress_from_vpc: bool = _key("multusIngressFromVpc", default=True)
    telco_peer_cidrs: tuple[str, ...] = _key("telcoPeerCidrs", default=())
    kubernetes_version: str = _key("kubernetesVersion", default="1.35")
    service_cidr: str = _key("serviceCidr", default="172.20.0.0/16")
    endpoint_public_access_cidrs: tuple[str, ...] = _key("endpointPublicAccessCidrs", default=())
    admin_role_arns: tuple[str, ...] = _key("adminRoleArns", default=())
    bastion: bool = _key("bastion", default=True)
    bastion_instance_type: str = _key("bastionInstanceType", default="t3.small")
    # Session Manager on worker nodes: off by default (see README, "Security"): the bastion and
    # `kubectl debug node/...` cover debugging without giving every node the SSM agent's rights.
    node_ssm: bool = _key("nodeSsm", default=False)
    log_retention_days: int = _key("logRetentionDays", default=30)
    node_groups: tuple[NodeGroupConfig, ...] = _key("nodeGroups", default=(NodeGroupConfig(name="ng1"),))
    cross_node_traffic: bool = _key("crossNodeTraffic", default=True)
    sample_pods: bool = _key("samplePods", default=True)
    sample_pod_image: str = _key("samplePodImage", default="docker.io/nicolaka/netshoot:v0.13")
    # Namespace of the NADs and the sample pods (created by the app); with Multus' namespaceIsolation only its pods
    # may use the networks.
    network_namespace: str = _key("networkNamespace", default="multus-networks")
    # Added to every taggable resource of both stacks (Tags.of).
    tags: dict[str, str] = _key("tags", default_factory=dict)

    @property
    def nat_gateway_count(self) -> int:
        return len(self.availability_zones) if self.nat_gateways is None else self.nat_gateways


# --------------------------------------------------------------------------------------------- parsing


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin in (tuple, list):
        return f"list of {_type_name(typing.get_args(tp)[0])}"
    if origin is dict:
        return "object of strings"
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(tp) if a is not type(None))
    if dataclasses.is_dataclass(tp):
        return "object"
    return {str: "string", int: "integer", bool: "boolean"}.get(tp, str(tp))


def _fail(path: str, value: Any, problem: str) -> typing.NoReturn:
    raise ConfigError(f"{path} = {json.dumps(value)}: {problem}")


def _parse(tp: Any, value: Any, path: str) -> Any:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in typing.get_args(tp):
            return None
        (inner,) = [a for a in typing.get_args(tp) if a is not type(None)]
        return _parse(inner, value, path)
    if dataclasses.is_dataclass(tp):
        return _parse_dataclass(tp, value, path)
    if origin in (tuple, list):
        if not isinstance(value, list):
            _fail(path, value, f"expected a {_type_name(tp)}")
        item = typing.get_args(tp)[0]
        return tuple(_parse(item, v, f"{path}[{i}]") for i, v in enumerate(value))
    if origin is dict:
        if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
            _fail(path, value, f"expected an {_type_name(tp)}")
        return dict(value)
    # bool is a subclass of int: reject true/false where a number is wanted, and 1/0 where a boolean is.
    if tp is int and (isinstance(value, bool) or not isinstance(value, int)):
        _fail(path, value, "expected an integer")
    if tp is str and isinstance(value, int | float) and not isinstance(value, bool):
        # `-c key=1.36` arrives as the number 1.36 (and 1.30 as 1.3): say how to pass a string.
        _fail(path, value, f"expected a string: write \"{value}\" in cdk.json, or -c '{path}=\"{value}\"'")
    if tp in (str, bool) and not isinstance(value, tp):
        _fail(path, value, f"expected a {_type_name(tp)}")
    return value


# Keys earlier versions accepted, with what to do instead (a plain "unknown key" would not say why).
_REMOVED_KEYS = {
    "NodeGroupConfig": {
        "desiredCapacity": "removed in 0.2.0: a desired capacity in the template resets the group's size on every "
        "deploy; the group starts at minSize, so delete this key (set minSize instead)",
    },
}


def _parse_dataclass(cls: Any, value: Any, path: str) -> Any:
    if not isinstance(value, dict):
        _fail(path, value, "expected an object")
    for key, why in _REMOVED_KEYS.get(cls.__name__, {}).items():
        if key in value:
            _fail(f"{path}.{key}", value[key], why)
    hints = typing.get_type_hints(cls)
    fields = {f.metadata["key"]: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(value) - set(fields))
    if unknown:
        _fail(f"{path}.{unknown[0]}", value[unknown[0]], f"unknown key (known keys: {', '.join(sorted(fields))})")
    kwargs = {}
    for key, f in fields.items():
        if key in value:
            kwargs[f.name] = _parse(hints[f.name], value[key], f"{path}.{key}")
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            _fail(f"{path}.{key}", None, "required key is missing")
    return cls(**kwargs)


def _apply_override(raw: dict[str, Any], dotted: str, value: Any) -> None:
    """Set `a.b.0.c` in `raw` (lists indexed by number), creating objects on the way."""
    parts = dotted.split(".")
    node: Any = raw
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        where = f"{CONTEXT_KEY}.{'.'.join(parts[: i + 1])}"
        if isinstance(node, list):
            if not part.isdigit() or int(part) >= len(node):
                _fail(where, value, f"list index {part!r} is not an index of the {len(node)}-item list")
            if last:
                node[int(part)] = value
            else:
                node = node[int(part)]
        elif isinstance(node, dict):
            if last:
                node[part] = value
            else:
                node = node.setdefault(part, {})
        else:
            _fail(where, value, "cannot set a key inside a non-object value")


def _context_value(value: Any) -> Any:
    """`-c key=value` gives strings: read JSON where it parses (numbers, booleans, lists), else keep the string."""
    if isinstance(value, str):
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value
    return value


def parse_config(raw: Any, overrides: Mapping[str, Any] | None = None) -> AppConfig:
    """Parse and validate the config object; `overrides` maps dotted paths (without the prefix) to values."""
    if raw is None:
        raw = {}
    raw = _context_value(raw)
    if not isinstance(raw, dict):
        _fail(CONTEXT_KEY, raw, "expected an object")
    # Keys the object leaves out take their defaults, so an override can reach into a default list.
    raw = json.loads(json.dumps({**default_config_json(), **raw}))  # private deep copy
    for dotted, value in sorted((overrides or {}).items()):
        _apply_override(raw, dotted, _context_value(value))
    config = _parse_dataclass(AppConfig, raw, CONTEXT_KEY)
    validate(config)
    return config


def load_config(node: Any) -> AppConfig:
    """Read the config from a construct's context (normally the App): the object plus `eksMultus.*` overrides."""
    context = node.node.get_all_context()
    prefix = CONTEXT_KEY + "."
    overrides = {k[len(prefix) :]: v for k, v in context.items() if k.startswith(prefix)}
    return parse_config(context.get(CONTEXT_KEY), overrides)


# --------------------------------------------------------------------------------------------- validation


def _network(path: str, value: str) -> ipaddress.IPv4Network:
    try:
        return ipaddress.IPv4Network(value, strict=True)
    except ValueError as err:
        _fail(path, value, f"not an IPv4 CIDR block ({err})")


# The widest peer range accepted where the internet can reach us (API endpoint, telco ports): a /8 is already
# 16.7 million addresses; anything wider is "everyone" in practice.
WIDEST_PEER_PREFIX = 8


def _peer_cidr(path: str, value: str, what: str) -> None:
    net = _network(path, value)
    if net.prefixlen == 0:
        _fail(path, value, f"{what} is not allowed")
    if net.prefixlen < WIDEST_PEER_PREFIX:
        _fail(path, value, f"wider than /{WIDEST_PEER_PREFIX} ({net.num_addresses} addresses): name the networks "
              "that need access")


def validate(c: AppConfig) -> None:
    p = CONTEXT_KEY
    if not _DNS_LABEL.match(c.stack_prefix) or len(c.stack_prefix) > 40:
        _fail(f"{p}.stackPrefix", c.stack_prefix, "use lowercase letters, digits and '-', at most 40 characters")
    if not _REGION.match(c.region):
        _fail(f"{p}.region", c.region, "not an AWS region name such as us-west-2")
    if c.region not in REGISTRY_ACCOUNTS:
        _fail(f"{p}.region", c.region, "no EKS image registry is known for this region (see multus_manifests.py)")
    n_az = len(c.availability_zones)
    if n_az < 2:
        _fail(f"{p}.availabilityZones", list(c.availability_zones), "EKS needs subnets in at least 2 AZs")
    for i, az in enumerate(c.availability_zones):
        if not _AZ.match(az) or not az.startswith(c.region):
            _fail(f"{p}.availabilityZones[{i}]", az, f"not an availability zone of region {c.region}")
    if len(set(c.availability_zones)) != n_az:
        _fail(f"{p}.availabilityZones", list(c.availability_zones), "lists an AZ twice")

    vpc = _network(f"{p}.vpcCidr", c.vpc_cidr)
    if not 16 <= vpc.prefixlen <= 28:
        _fail(f"{p}.vpcCidr", c.vpc_cidr, "a VPC CIDR block must be between /16 and /28")
    if vpc.overlaps(_network(f"{p}.serviceCidr", c.service_cidr)):
        _fail(f"{p}.serviceCidr", c.service_cidr, f"overlaps vpcCidr {c.vpc_cidr}")

    subnets: list[tuple[str, ipaddress.IPv4Network]] = []

    def add_subnets(path: str, cidrs: tuple[str, ...]) -> None:
        if len(cidrs) != n_az:
            _fail(path, list(cidrs), f"needs one CIDR per availability zone ({n_az}), got {len(cidrs)}")
        for i, cidr in enumerate(cidrs):
            where = f"{path}[{i}]"
            net = _network(where, cidr)
            if not net.subnet_of(vpc):
                _fail(where, cidr, f"is outside vpcCidr {c.vpc_cidr}")
            if not 16 <= net.prefixlen <= 28:
                _fail(where, cidr, "a subnet must be between /16 and /28")
            for other_path, other in subnets:
                if net.overlaps(other):
                    _fail(where, cidr, f"overlaps {other_path} = {other}")
            subnets.append((where, net))

    add_subnets(f"{p}.publicSubnetCidrs", c.public_subnet_cidrs)
    add_subnets(f"{p}.privateSubnetCidrs", c.private_subnet_cidrs)

    if not c.multus_networks:
        _fail(f"{p}.multusNetworks", [], "declare at least one Multus network")
    # No fixed cap on the number of networks: each node group's instance type bounds it (its ENI limit, checked
    # per group below). nodeadm numbers the Multus ENIs' route tables 10000 + device index and the primary ENI uses
    # the main table, so no number of networks makes two interfaces share a table (README, step 7).
    names: set[str] = set()
    for i, net in enumerate(c.multus_networks):
        path = f"{p}.multusNetworks[{i}]"
        if not _DNS_LABEL.match(net.name) or len(net.name) > 40:
            _fail(f"{path}.name", net.name, "use lowercase letters, digits and '-', at most 40 characters")
        if net.name in names:
            _fail(f"{path}.name", net.name, "two Multus networks have this name")
        names.add(net.name)
        if net.plugin not in _PLUGINS:
            _fail(f"{path}.plugin", net.plugin, f"must be one of {', '.join(_PLUGINS)}")
        if net.ipvlan_mode not in _IPVLAN_MODES:
            _fail(f"{path}.ipvlanMode", net.ipvlan_mode, f"must be one of {', '.join(_IPVLAN_MODES)}")
        add_subnets(f"{path}.subnetCidrs", net.subnet_cidrs)
        smallest = max(ipaddress.IPv4Network(s).prefixlen for s in net.subnet_cidrs)
        if not smallest < net.pod_range_prefix_length <= 28:
            _fail(
                f"{path}.podRangePrefixLength",
                net.pod_range_prefix_length,
                f"must be longer than the subnet prefix (/{smallest}) and at most 28",
            )

    _validate_routes(c, subnets)
    for i, net in enumerate(c.multus_networks):
        if net.plugin == "host-device" and not c.cross_node_traffic:
            _fail(f"{p}.multusNetworks[{i}].plugin", net.plugin,
                  "host-device needs crossNodeTraffic: true (with host-local IPAM the pod's address is never "
                  "assigned to the ENI in EC2, so the VPC delivers nothing to the pod)")

    if c.nat_gateways is not None and not 1 <= c.nat_gateways <= n_az:
        _fail(f"{p}.natGateways", c.nat_gateways, f"must be between 1 and the number of AZs ({n_az})")
    for i, cidr in enumerate(c.telco_peer_cidrs):
        _peer_cidr(f"{p}.telcoPeerCidrs[{i}]", cidr, "opening telco ports to the whole internet")
    for i, cidr in enumerate(c.endpoint_public_access_cidrs):
        _peer_cidr(f"{p}.endpointPublicAccessCidrs[{i}]", cidr, "opening the Kubernetes API to the whole internet")
    for i, arn in enumerate(c.admin_role_arns):
        if not _ROLE_ARN.match(arn):
            _fail(f"{p}.adminRoleArns[{i}]", arn, "not an IAM role ARN")
    if c.kubernetes_version not in _KUBERNETES_VERSIONS:
        _fail(f"{p}.kubernetesVersion", c.kubernetes_version, f"must be one of {', '.join(_KUBERNETES_VERSIONS)}")
    if not _INSTANCE_TYPE.match(c.bastion_instance_type):
        _fail(f"{p}.bastionInstanceType", c.bastion_instance_type, "not an EC2 instance type such as t3.small")
    _check_offered(f"{p}.bastionInstanceType", c.bastion_instance_type, c.region)
    if c.log_retention_days not in LOG_RETENTION_DAYS:
        _fail(f"{p}.logRetentionDays", c.log_retention_days,
              f"not a CloudWatch Logs retention period; use one of {', '.join(map(str, LOG_RETENTION_DAYS))}")
    if not _DNS_LABEL.match(c.network_namespace) or c.network_namespace.startswith("kube-"):
        _fail(f"{p}.networkNamespace", c.network_namespace,
              "a namespace name of lowercase letters, digits and '-', not a kube-* system namespace")
    if not c.sample_pod_image or ":" not in c.sample_pod_image.rsplit("/", 1)[-1]:
        _fail(f"{p}.samplePodImage", c.sample_pod_image, "pin the image with a tag (name:tag)")

    for key, value in c.tags.items():
        if not 1 <= len(key) <= 128 or len(value) > 256 or key.lower().startswith("aws:"):
            _fail(f"{p}.tags.{key}", value, "tag keys are 1-128 characters and not aws:..., values at most 256")
    if not c.node_groups:
        _fail(f"{p}.nodeGroups", [], "declare at least one node group")
    group_names: set[str] = set()
    for i, ng in enumerate(c.node_groups):
        _validate_node_group(ng, f"{p}.nodeGroups[{i}]", len(c.multus_networks), group_names)
        _check_offered(f"{p}.nodeGroups[{i}].instanceType", ng.instance_type, c.region)
        first = c.node_groups[0].instance_type
        if architecture(ng.instance_type) != architecture(first):
            _fail(f"{p}.nodeGroups[{i}].instanceType", ng.instance_type,
                  f"is {architecture(ng.instance_type)} but nodeGroups[0].instanceType {first} is "
                  f"{architecture(first)}: all node groups must share one CPU architecture")
        for j, az in enumerate(ng.availability_zones):
            if az not in c.availability_zones:
                _fail(f"{p}.nodeGroups[{i}].availabilityZones[{j}]", az,
                      f"not one of availabilityZones ({', '.join(c.availability_zones)})")
        if len(set(ng.availability_zones)) != len(ng.availability_zones):
            _fail(f"{p}.nodeGroups[{i}].availabilityZones", list(ng.availability_zones), "lists an AZ twice")


# Destinations a Multus route must never cover: the link-local range holds IMDS and the EKS Pod Identity agent
# (169.254.170.23) and the VPC CNI's gateway inside pods (169.254.1.1); the others are not unicast destinations.
_NOT_ROUTABLE_VIA_MULTUS = (
    (ipaddress.IPv4Network("0.0.0.0/8"), "'this network'"),
    (ipaddress.IPv4Network("127.0.0.0/8"), "loopback"),
    (ipaddress.IPv4Network("169.254.0.0/16"), "link-local: instance metadata, the Pod Identity agent"),
    (ipaddress.IPv4Network("224.0.0.0/4"), "multicast"),
    (ipaddress.IPv4Network("240.0.0.0/4"), "reserved"),
)


def _validate_routes(c: AppConfig, subnets: list[tuple[str, ipaddress.IPv4Network]]) -> None:
    """Each network's `routes`: IPv4 CIDRs, no default route, nothing that would pull other traffic off eth0.

    `subnets` holds every subnet of the config with its key path (public, private, Multus).
    """
    service = ipaddress.IPv4Network(c.service_cidr)
    for i, net in enumerate(c.multus_networks):
        own = {ipaddress.IPv4Network(cidr) for cidr in net.subnet_cidrs}
        seen: list[tuple[str, ipaddress.IPv4Network]] = []
        for j, cidr in enumerate(net.routes):
            where = f"{CONTEXT_KEY}.multusNetworks[{i}].routes[{j}]"
            route = _network(where, cidr)
            if route.prefixlen == 0:
                _fail(where, cidr, "a default route through a Multus network would take the pod's cluster "
                      "traffic off eth0 and collides with eth0's default route; write out the destination "
                      "ranges you mean instead (they may not cover the VPC's subnets or serviceCidr)")
            for other_where, other in seen:
                if route.overlaps(other):
                    _fail(where, cidr, f"overlaps {other_where} = {other}")
            if service.overlaps(route):
                _fail(where, cidr, f"overlaps serviceCidr {c.service_cidr}")
            for special, what in _NOT_ROUTABLE_VIA_MULTUS:
                if route.overlaps(special):
                    _fail(where, cidr, f"overlaps {special} ({what}): that traffic must stay on the pod's own path")
            for other_where, other in subnets:
                if not route.overlaps(other):
                    continue
                if other in own:
                    _fail(where, cidr, f"overlaps this network's own subnet {other_where} = {other} (its other "
                          "AZs are routed through the router without being listed)")
                _fail(where, cidr, f"overlaps {other_where} = {other}: that traffic must not leave through "
                      f"{net.name}")
            seen.append((where, route))


# CloudWatch Logs retention periods, as the names of aws_cdk.aws_logs.RetentionDays members.
LOG_RETENTION_DAYS = {
    1: "ONE_DAY", 3: "THREE_DAYS", 5: "FIVE_DAYS", 7: "ONE_WEEK", 14: "TWO_WEEKS", 30: "ONE_MONTH",
    60: "TWO_MONTHS", 90: "THREE_MONTHS", 120: "FOUR_MONTHS", 150: "FIVE_MONTHS", 180: "SIX_MONTHS",
    365: "ONE_YEAR", 400: "THIRTEEN_MONTHS", 545: "EIGHTEEN_MONTHS", 731: "TWO_YEARS", 1096: "THREE_YEARS",
    1827: "FIVE_YEARS", 2192: "SIX_YEARS", 2557: "SEVEN_YEARS",
}


def _validate_node_group(ng: NodeGroupConfig, path: str, n_networks: int, names: set[str]) -> None:
    if not _DNS_LABEL.match(ng.name) or len(ng.name) > 20:
        _fail(f"{path}.name", ng.name, "use lowercase letters, digits and '-', at most 20 characters")
    if ng.name in names:
        _fail(f"{path}.name", ng.name, "two node groups have this name")
    names.add(ng.name)
    if not _INSTANCE_TYPE.match(ng.instance_type):
        _fail(f"{path}.instanceType", ng.instance_type, "not an EC2 instance type such as c5.large")
    limits = eni_limits(ng.instance_type)
    _check_overrides(ng, path, limits)
    max_enis = ng.max_network_interfaces if ng.max_network_interfaces is not None else (
        limits.max_interfaces if limits else None)
    if max_enis is None:
        _fail(
            f"{path}.instanceType",
            ng.instance_type,
            "unknown ENI limit for this instance type: set maxNetworkInterfaces and ipv4PerInterface",
        )
    if n_networks + 1 > max_enis:
        _fail(
            f"{path}.instanceType",
            ng.instance_type,
            f"takes at most {max_enis} network interfaces, but the primary ENI plus {n_networks} Multus "
            f"networks need {n_networks + 1}",
        )
    # The VPC CNI keeps at least one address: the check above leaves it an ENI, and ipv4PerInterface >= 2 (see
    # _check_overrides; every known type has more). tests/test_node_group.py proves it for the whole table.
    if not 20 <= ng.volume_size <= 16384:
        _fail(f"{path}.volumeSize", ng.volume_size, "must be between 20 and 16384 GiB (the EKS AMI needs 20)")
    if not 0 <= ng.min_size <= ng.max_size or ng.max_size < 1:
        _fail(f"{path}.minSize", ng.min_size, f"needs 0 <= minSize <= maxSize ({ng.max_size}) and maxSize >= 1")
    for key in ng.labels:
        if not _LABEL_KEY.match(key):
            _fail(f"{path}.labels.{key}", ng.labels[key], "not a valid Kubernetes label key")
    for j, taint in enumerate(ng.taints):
        if not _LABEL_KEY.match(taint.key):
            _fail(f"{path}.taints[{j}].key", taint.key, "not a valid Kubernetes taint key")
        if taint.effect not in _TAINT_EFFECTS:
            _fail(f"{path}.taints[{j}].effect", taint.effect, f"must be one of {', '.join(_TAINT_EFFECTS)}")


def _check_offered(path: str, instance_type: str, region: str) -> None:
    """Types the ENI table names but EC2 does not have, or does not offer in `region` (ec2_offerings)."""
    if not ec2_offerings.exists(instance_type):
        _fail(path, instance_type, "no such EC2 instance type (no region offers it)")
    if not ec2_offerings.offered_in(instance_type, region):
        _fail(path, instance_type, f"EC2 does not offer this instance type in {region}")


def _check_overrides(ng: NodeGroupConfig, path: str, limits: Any) -> None:
    """maxNetworkInterfaces / ipv4PerInterface: positive, never above a limit the table knows, and set together."""
    for key, value, floor, known in (
        ("maxNetworkInterfaces", ng.max_network_interfaces, 2, limits.max_interfaces if limits else None),
        ("ipv4PerInterface", ng.ipv4_per_interface, 2, limits.ipv4_per_interface if limits else None),
    ):
        if value is None:
            continue
        if value < floor:
            _fail(f"{path}.{key}", value, f"must be at least {floor}")
        if known is not None and value > known:
            _fail(f"{path}.{key}", value,
                  f"{ng.instance_type} has at most {known} (EC2's published limit); leave {key} unset")
    if limits is None and (ng.max_network_interfaces is None) != (ng.ipv4_per_interface is None):
        missing = "ipv4PerInterface" if ng.ipv4_per_interface is None else "maxNetworkInterfaces"
        _fail(f"{path}.{missing}", None,
              f"{ng.instance_type} is not in the built-in table: set both maxNetworkInterfaces and ipv4PerInterface")


def default_config_json() -> dict[str, Any]:
    """The defaults as the JSON object cdk.json carries (used to keep cdk.json and the README honest)."""

    def dump(obj: Any) -> Any:
        if dataclasses.is_dataclass(obj):
            return {f.metadata["key"]: dump(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
        if isinstance(obj, tuple):
            return [dump(v) for v in obj]
        return obj

    return dump(AppConfig())
