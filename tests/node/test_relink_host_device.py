"""A host-device ENI that comes back to the node under its pod-side name gets its stable name back.

host-device moves the node's ENI into one pod (renamed net1 there). CNI DEL gives it back as multus<N>
(tests/dataplane shows that with the real plugin). If the pod's network namespace is removed without a DEL, the
kernel returns a *physical* NIC to the host namespace under its pod-side name, net1, and no NAD naming multus<N>
finds it any more. The boot run therefore installs a udev rule and a oneshot unit that re-run the script with
MULTUS_RELINK=1.

What the stand-ins cannot show, and what stands in: a veth in a deleted namespace is destroyed, not returned, so
the test moves the link back to the node under its pod-side name itself, as the kernel does for an ENA device;
there is no udev or systemd in the namespace, so the test checks the rule and unit files the script writes and
then runs the script exactly as the unit's ExecStart and Environment say.
"""

from __future__ import annotations

import os
import re
import subprocess
import uuid

import pytest
from test_setup_multus_interfaces import MAC_IDX1, MAC_IDX2, _ens5_ens6_ens7, _file_stats


@pytest.fixture
def pod_ns(request):
    """A second namespace standing in for a host-device pod."""
    name = f"mcdk-pod-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    subprocess.run(["ip", "netns", "add", name], check=True, capture_output=True)
    request.addfinalizer(lambda: subprocess.run(["ip", "netns", "del", name], capture_output=True))
    return name


def _unit_env(script) -> tuple[dict[str, str], str]:
    unit = (script.netns.tmp / "systemd-system" / "eks-multus-relink.service").read_text()
    (line,) = [x for x in unit.splitlines() if x.startswith("Environment=")]
    (exec_start,) = [x.split("=", 1)[1] for x in unit.splitlines() if x.startswith("ExecStart=")]
    return dict(item.split("=", 1) for item in line.split("=", 1)[1].split()), exec_start


def _into_pod(netns, pod: str, ifname: str) -> None:
    """What host-device's ADD does: the ENI moves into the pod and is renamed net1 there, up."""
    netns.ip("link", "set", ifname, "netns", pod)
    subprocess.run(["ip", "-n", pod, "link", "set", ifname, "name", "net1"], check=True, capture_output=True)
    subprocess.run(["ip", "-n", pod, "link", "set", "net1", "up"], check=True, capture_output=True)


def test_boot_run_installs_the_relink_rule_and_unit(netns, imds, script):
    _ens5_ens6_ens7(netns, imds)
    assert script.run().returncode == 0
    rules = (netns.tmp / "udev-rules" / "90-eks-multus-relink.rules").read_text()
    for mac, name in ((MAC_IDX1, "multus1"), (MAC_IDX2, "multus2")):
        assert (f'ACTION=="add", SUBSYSTEM=="net", ATTR{{address}}=="{mac}", KERNEL!="{name}", TAG+="systemd", '
                'ENV{SYSTEMD_WANTS}+="eks-multus-relink.service"') in rules
    env, exec_start = _unit_env(script)
    assert env == {"MULTUS_RELINK": "1", "MULTUS_INTERFACE_COUNT": "2", "MULTUS_IFNAME_PREFIX": "multus"}
    assert exec_start.endswith("/userdata/setup-multus-interfaces.sh") and os.path.isabs(exec_start)
    unit = (netns.tmp / "systemd-system" / "eks-multus-relink.service").read_text()
    assert "Type=oneshot" in unit and "After=network-online.target" in unit


def test_an_eni_returned_as_net1_gets_its_stable_name_back_while_another_stays_in_its_pod(
        netns, imds, script, pod_ns):
    _ens5_ens6_ens7(netns, imds)
    assert script.run().returncode == 0
    before = _file_stats(script)
    # multus2 is in a host-device pod right now; multus1's pod namespace went away without a DEL.
    _into_pod(netns, pod_ns, "multus2")
    other = f"{pod_ns}-b"
    subprocess.run(["ip", "netns", "add", other], check=True, capture_output=True)
    try:
        _into_pod(netns, other, "multus1")
        subprocess.run(["ip", "-n", other, "link", "set", "net1", "netns", netns.name], check=True,
                       capture_output=True)  # the kernel's refund of a physical NIC: pod-side name, DOWN
    finally:
        subprocess.run(["ip", "netns", "del", other], capture_output=True)
    links = netns.links()
    assert "multus1" not in links and "net1" in links, "the defect: no NAD naming multus1 matches any more"
    assert "UP" not in links["net1"]["flags"]

    env, _ = _unit_env(script)
    result = script.run(**env)
    assert result.returncode == 0, result.stderr
    links = netns.links()
    assert "net1" not in links and links["multus1"]["address"] == MAC_IDX1
    assert "UP" in links["multus1"]["flags"] and netns.rp_filter("multus1") == "0"
    assert any(re.search(r"device index 2: MAC .* is not in the host's namespace", line) for line in result.log_lines)
    assert _file_stats(script) == before, "the relink run writes nothing (multus2's files stay as the boot wrote them)"


def test_relink_with_everything_in_place_changes_nothing(netns, imds, script):
    _ens5_ens6_ens7(netns, imds)
    assert script.run().returncode == 0
    before, links = _file_stats(script), netns.links()
    env, _ = _unit_env(script)
    result = script.run(**env)
    assert result.returncode == 0
    assert _file_stats(script) == before
    assert {k: (v["ifindex"], v["flags"]) for k, v in netns.links().items()} == {
        k: (v["ifindex"], v["flags"]) for k, v in links.items()}


def test_bad_relink_value_is_a_configuration_error(netns, imds, script):
    result = script.run(MULTUS_RELINK="yes")
    assert result.returncode == 2 and "MULTUS_RELINK must be 0 or 1, got 'yes'" in result.stderr
