"""moto 5.2.5 EC2 handlers with EC2's behaviour where the controller depends on it (see the gaps listed in
test_controller_reconcile_moto.py): AllowReassignment moves an address, an address outside the ENI's subnet is
refused, the instance type's per-interface address limit is enforced, and unassigning an address the ENI does
not hold is refused. `patched()` installs them (also for moto in server mode, which runs in this process).
"""

from __future__ import annotations

import contextlib
import ipaddress

from moto.core.responses import ActionResult, EmptyResult
from moto.ec2.exceptions import EC2ClientError
from moto.ec2.responses.elastic_network_interfaces import ElasticNetworkInterfaces


def assign_private_ip_addresses(self):
    """AssignPrivateIpAddresses with EC2's AllowReassignment semantics (moto ignores the flag)."""
    eni = self.ec2_backend.get_network_interface(self._get_param("NetworkInterfaceId"))
    ips = self._get_param("PrivateIpAddresses", [])
    allow = self._get_bool_param("AllowReassignment", False)
    subnet = ipaddress.IPv4Network(eni.subnet.cidr_block)
    for ip in ips:
        if ipaddress.IPv4Address(ip) not in subnet:
            raise EC2ClientError("InvalidParameterValue", f"Address {ip} is not in subnet {subnet}")
        for other in self.ec2_backend.enis.values():
            held = [a for a in other.private_ip_addresses if a["PrivateIpAddress"] == ip]
            if not held or other is eni:
                continue
            if held[0].get("Primary") or not allow:
                raise EC2ClientError("PrivateIpAddressInUse", f"Address {ip} is in use on {other.id}")
    limit = _ipv4_per_interface(eni)
    held = {a["PrivateIpAddress"] for a in eni.private_ip_addresses}
    if limit is not None and len(held | set(ips)) > limit:
        raise EC2ClientError("PrivateIpAddressLimitExceeded",
                             f"Number of private addresses will exceed limit of {limit} for {eni.id}")
    for ip in ips:
        for other in self.ec2_backend.enis.values():
            if other is not eni:
                other.private_ip_addresses = [a for a in other.private_ip_addresses if a["PrivateIpAddress"] != ip]
        if ip not in {a["PrivateIpAddress"] for a in eni.private_ip_addresses}:
            eni.private_ip_addresses.append({"Primary": False, "PrivateIpAddress": ip})
    return ActionResult({"NetworkInterfaceId": eni.id, "AssignedPrivateIpAddresses": eni.private_ip_addresses})


def _ipv4_per_interface(eni) -> int | None:
    """EC2's per-interface address limit of the instance the ENI is attached to (moto enforces none)."""
    from moto.ec2.models.instance_types import INSTANCE_TYPES

    instance = getattr(eni, "instance", None)
    if instance is None:
        return None
    return INSTANCE_TYPES[instance.instance_type]["NetworkInfo"]["Ipv4AddressesPerInterface"]


def unassign_private_ip_addresses(self):
    """UnassignPrivateIpAddresses that refuses addresses the ENI does not hold, as EC2 does."""
    eni = self.ec2_backend.get_network_interface(self._get_param("NetworkInterfaceId"))
    ips = self._get_param("PrivateIpAddresses", [])
    secondary = {a["PrivateIpAddress"] for a in eni.private_ip_addresses if not a.get("Primary")}
    missing = [ip for ip in ips if ip not in secondary]
    if missing:
        raise EC2ClientError(
            "InvalidParameterValue", f"Some of the specified addresses are not assigned to interface {eni.id}"
        )
    eni.private_ip_addresses = [a for a in eni.private_ip_addresses if a["PrivateIpAddress"] not in ips]
    return EmptyResult()


@contextlib.contextmanager
def patched():
    saved = (ElasticNetworkInterfaces.assign_private_ip_addresses,
             ElasticNetworkInterfaces.unassign_private_ip_addresses)
    ElasticNetworkInterfaces.assign_private_ip_addresses = assign_private_ip_addresses
    ElasticNetworkInterfaces.unassign_private_ip_addresses = unassign_private_ip_addresses
    try:
        yield
    finally:
        (ElasticNetworkInterfaces.assign_private_ip_addresses,
         ElasticNetworkInterfaces.unassign_private_ip_addresses) = saved
