"""The node script and nodeadm's udev-net-manager (modelled in tests/node/net_manager.py): the Multus ENIs end
up managed by systemd-networkd whichever runs first, never depending on a race.

On the first build the script renamed a link as soon as it saw it: when the unit came later than that, it failed
to read /sys/class/net/<old name>/address, retried until systemd's start limit, and the ENI stayed unmanaged
(`test_slow_unit_*` fails on that script). Real links (veth standing in for ENIs) in a network namespace.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from net_manager import TABLE_BASE, NetManagerModel  # noqa: E402

PRIMARY_MAC = "02:00:00:00:00:05"
MAC_IDX1 = "02:00:00:00:01:07"
MAC_IDX2 = "02:00:00:00:02:06"


@pytest.fixture
def nodeadm(netns, imds, script):
    models = []

    def make(**kw) -> NetManagerModel:
        env = script.env()
        model = NetManagerModel(
            netns=netns.name, cache_dir=Path(env["NET_MANAGER_CACHE_DIR"]),
            networkd_dir=Path(env["NETWORKD_RUNTIME_DIR"]), unit_file=netns.tmp / "udev-net-manager@.service",
            instance_id=imds.instance_id, device_index={PRIMARY_MAC: 0, MAC_IDX1: 1, MAC_IDX2: 2}, **kw)
        models.append(model.start())
        return model

    yield make
    for model in models:
        model.stop()


def _enis(netns, imds):
    netns.add_eni("ens5", PRIMARY_MAC, up=True)
    imds.set_interface(PRIMARY_MAC, 0)
    netns.add_eni("ens6", MAC_IDX2)
    netns.add_eni("ens7", MAC_IDX1)
    imds.set_interface(MAC_IDX2, 2)
    imds.set_interface(MAC_IDX1, 1)


def _settle(model, n, timeout=12.0):
    deadline = time.monotonic() + timeout
    while len(model.outcome) < n and time.monotonic() < deadline:
        time.sleep(0.1)


def _run(script, model, **env):
    return script.run(NET_MANAGER_UNIT=str(model.unit_file), MULTUS_WAIT_SECONDS="20", **env)


def test_slow_unit_is_waited_for_and_both_enis_end_managed(netns, imds, script, nodeadm):
    model = nodeadm(delay=1.5)  # the unit starts 1.5 s after the links appear
    _enis(netns, imds)
    result = _run(script, model)
    assert result.returncode == 0, result.stderr
    _settle(model, 3)  # every unit has succeeded or hit its start limit (~6 s when it cannot read sysfs)
    assert model.outcome == {"ens5": "managed", "ens6": "managed", "ens7": "managed"}, model.log
    assert "waiting for nodeadm's udev-net-manager@ens6" in result.stderr
    assert result.elapsed >= 1.4
    assert model.managed_macs() == {PRIMARY_MAC: TABLE_BASE, MAC_IDX1: TABLE_BASE + 1, MAC_IDX2: TABLE_BASE + 2}
    links = netns.links()
    assert links["multus1"]["address"] == MAC_IDX1 and links["multus2"]["address"] == MAC_IDX2
    assert "multus1 managed by systemd-networkd" in result.stderr


def test_fast_unit_costs_no_wait(netns, imds, script, nodeadm):
    model = nodeadm(delay=0)
    _enis(netns, imds)
    deadline = time.monotonic() + 5
    while len(model.outcome) < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    result = _run(script, model)
    assert result.returncode == 0, result.stderr
    assert "waiting for" not in result.stderr and result.elapsed < 2
    assert set(model.managed_macs()) == {PRIMARY_MAC, MAC_IDX1, MAC_IDX2}


def test_unit_that_never_comes_is_given_a_bounded_grace_then_the_link_is_renamed_with_a_warning(
        netns, imds, script, nodeadm):
    model = nodeadm(delay=3600)
    _enis(netns, imds)
    result = _run(script, model, MULTUS_NET_MANAGER_GRACE_SECONDS="1")
    assert result.returncode == 0, result.stderr
    assert 1 <= result.elapsed < 4
    assert "did not handle ens6 within 1s; renaming it anyway" in result.stderr
    assert "NOT managed by systemd-networkd" in result.stderr
    assert {"multus1", "multus2"} <= netns.links().keys()


def test_enis_that_nodeadm_gives_to_the_cni_are_renamed_at_once(netns, imds, script, nodeadm):
    model = nodeadm(running_as_cni=True)
    _enis(netns, imds)
    result = _run(script, model)
    assert result.returncode == 0, result.stderr
    assert "udev-net-manager chose 'cni'" in result.stderr and model.managed_macs() == {}


def test_without_the_unit_nothing_is_waited_for(netns, imds, script):
    _enis(netns, imds)
    result = script.run()
    assert result.returncode == 0, result.stderr
    assert "udev-net-manager" not in result.stderr


def test_rerun_after_the_rename_waits_for_nothing(netns, imds, script, nodeadm):
    model = nodeadm(delay=0.3)
    _enis(netns, imds)
    assert _run(script, model).returncode == 0
    again = _run(script, model)
    assert again.returncode == 0 and "waiting for" not in again.stderr and "already configured" in again.stderr
