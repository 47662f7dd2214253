"""userdata/setup-multus-interfaces.sh against real links in a network namespace and a fake IMDSv2."""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import pytest

# Not imported from conftest.py: that would break under --import-mode=importlib or with other conftest modules.
SCRIPT = Path(__file__).resolve().parents[2] / "userdata" / "setup-multus-interfaces.sh"
LOG_PREFIX = "multus-interfaces:"

PRIMARY_MAC = "02:00:00:00:00:05"  # device-number 0, "ens5": must never be touched
MAC_IDX1 = "02:00:00:00:01:07"  # device-number 1, on the *higher* ifname ens7
MAC_IDX2 = "02:00:00:00:02:06"  # device-number 2, on the *lower* ifname ens6


def _ens5_ens6_ens7(netns, imds) -> None:
    """The AL2023 picture: primary ens5 up, hot-attached ens6/ens7 down, rp_filter 1 everywhere."""
    netns.add_eni("ens5", PRIMARY_MAC, up=True)
    netns.add_eni("ens6", MAC_IDX2)
    netns.add_eni("ens7", MAC_IDX1)
    imds.set_interface(PRIMARY_MAC, 0)
    imds.set_interface(MAC_IDX2, 2)
    imds.set_interface(MAC_IDX1, 1)


def _assert_logged_with_prefix(result) -> None:
    assert result.stdout == ""
    assert result.log_lines, "the script logged nothing"
    bad = [line for line in result.log_lines if not line.startswith(f"{LOG_PREFIX} ")]
    assert not bad, f"log lines without the '{LOG_PREFIX}' prefix: {bad}"


def _assert_primary_untouched(netns) -> None:
    primary = netns.links()["ens5"]
    assert primary["address"] == PRIMARY_MAC
    assert "UP" in primary["flags"]
    assert primary["mtu"] == 1500
    assert netns.rp_filter("ens5") == "1"


def _files(script) -> dict[str, str]:
    out = {}
    for d in (script.sysctl_dir, script.link_dir):
        if d.exists():
            out.update({p.name: p.read_text() for p in sorted(d.iterdir())})
    return out


def _file_stats(script) -> dict[str, tuple[int, int]]:
    return {
        p.name: (p.stat().st_mtime_ns, p.stat().st_ino)
        for d in (script.sysctl_dir, script.link_dir)
        for p in d.iterdir()
    }


# ------------------------------------------------------------------------------------------------ static checks
def test_shellcheck_clean():
    shellcheck = shutil.which("shellcheck")
    if shellcheck is None:
        pytest.fail("shellcheck is not installed (CI installs it: apt-get install shellcheck)")
    res = subprocess.run([shellcheck, "--shell=bash", str(SCRIPT)], capture_output=True, text=True)
    assert res.returncode == 0, f"shellcheck findings:\n{res.stdout}{res.stderr}"


def test_script_is_strict_bash():
    text = SCRIPT.read_text()
    assert text.startswith("#!/bin/bash\n")
    assert "\nset -euo pipefail\n" in text
    assert "shellcheck disable" not in text
    subprocess.run(["bash", "-n", str(SCRIPT)], check=True)


# ------------------------------------------------------------------------------------------------ behaviour
def test_renames_by_device_index_and_configures(netns, imds, script):
    _ens5_ens6_ens7(netns, imds)

    result = script.run(MULTUS_MTU="9001")

    assert result.returncode == 0, result.stderr
    _assert_logged_with_prefix(result)
    links = netns.links()
    assert {"multus1", "multus2"} <= links.keys()
    assert not {"ens6", "ens7"} & links.keys()
    # Mapping by device index, not by ifname order: ens7 had device-number 1.
    assert links["multus1"]["address"] == MAC_IDX1
    assert links["multus2"]["address"] == MAC_IDX2
    for name in ("multus1", "multus2"):
        assert "UP" in links[name]["flags"], links[name]
        assert links[name]["mtu"] == 9001
        assert netns.rp_filter(name) == "0"
    # The veth peers (not ENIs) are left alone too.
    assert links["ens6p"]["flags"] == links["ens7p"]["flags"]
    assert "UP" not in links["ens6p"]["flags"]
    _assert_primary_untouched(netns)

    files = _files(script)
    assert set(files) == {"90-multus.conf", "10-multus1.link", "10-multus2.link"}
    sysctl_lines = [ln for ln in files["90-multus.conf"].splitlines() if ln and not ln.startswith("#")]
    assert sysctl_lines == ["net.ipv4.conf.multus1.rp_filter = 0", "net.ipv4.conf.multus2.rp_filter = 0"]
    for idx, mac in ((1, MAC_IDX1), (2, MAC_IDX2)):
        body = [ln for ln in files[f"10-multus{idx}.link"].splitlines() if ln and not ln.startswith("#")]
        assert body == ["[Match]", f"PermanentMACAddress={mac}", "[Link]", f"Name=multus{idx}"]
    for path in (*script.sysctl_dir.iterdir(), *script.link_dir.iterdir()):
        assert path.stat().st_mode & 0o777 == 0o644, path
    assert not imds.unauthorized_gets()
    assert "done: multus1=02:00:00:00:01:07 multus2=02:00:00:00:02:06" in result.stderr


def test_rerun_is_idempotent(netns, imds, script):
    _ens5_ens6_ens7(netns, imds)
    first = script.run(MULTUS_MTU="9001")
    assert first.returncode == 0, first.stderr
    links_before = netns.links()
    files_before, stats_before = _files(script), _file_stats(script)

    second = script.run(MULTUS_MTU="9001")

    assert second.returncode == 0, second.stderr
    _assert_logged_with_prefix(second)
    assert "already configured" in second.stderr
    assert "renamed" not in second.stderr
    assert "wrote" not in second.stderr
    links_after = netns.links()
    for name in ("multus1", "multus2", "ens5"):
        for key in ("ifindex", "address", "flags", "mtu"):
            assert links_after[name][key] == links_before[name][key], (name, key)
    assert netns.rp_filter("multus1") == netns.rp_filter("multus2") == "0"
    assert _files(script) == files_before
    assert _file_stats(script) == stats_before  # not rewritten
    _assert_primary_untouched(netns)


def test_rerun_fixes_a_link_taken_down(netns, imds, script):
    _ens5_ens6_ens7(netns, imds)
    assert script.run().returncode == 0
    netns.ip("link", "set", "multus2", "down")

    result = script.run()

    assert result.returncode == 0, result.stderr
    assert "UP" in netns.links()["multus2"]["flags"]


@pytest.mark.parametrize("case", ["not-in-imds", "in-imds-without-link"])
def test_timeout_names_missing_index(netns, imds, script, case):
    netns.add_eni("ens5", PRIMARY_MAC, up=True)
    netns.add_eni("ens6", MAC_IDX1)
    imds.set_interface(PRIMARY_MAC, 0)
    imds.set_interface(MAC_IDX1, 1)
    if case == "in-imds-without-link":
        imds.set_interface(MAC_IDX2, 2)

    result = script.run(MULTUS_WAIT_SECONDS="2")

    assert result.returncode == 1
    assert 1.8 <= result.elapsed < 4.5, result.elapsed
    _assert_logged_with_prefix(result)
    timeout_lines = [ln for ln in result.log_lines if "timed out" in ln]
    assert len(timeout_lines) == 1, result.stderr
    assert "missing device index(es): 2 (" in timeout_lines[0]
    assert "1 (" not in timeout_lines[0]
    if case == "not-in-imds":
        assert "IMDS reports no ENI at this device index" in timeout_lines[0]
    else:
        assert f"IMDS reports MAC {MAC_IDX2} but no link with that MAC" in timeout_lines[0]
    # What did arrive is configured and persisted; the primary is untouched.
    links = netns.links()
    assert links["multus1"]["address"] == MAC_IDX1 and "UP" in links["multus1"]["flags"]
    assert "multus2" not in links
    assert set(_files(script)) == {"90-multus.conf", "10-multus1.link"}
    _assert_primary_untouched(netns)


def test_delayed_eni_is_picked_up(netns, imds, script):
    netns.add_eni("ens5", PRIMARY_MAC, up=True)
    netns.add_eni("ens6", MAC_IDX2)
    imds.set_interface(PRIMARY_MAC, 0)
    imds.set_interface(MAC_IDX2, 2)

    proc, started = script.start(MULTUS_WAIT_SECONDS="10")
    try:
        time.sleep(1.0)
        assert proc.poll() is None, "the script must still be waiting for device index 1"
        # The ENI shows up: link first, and IMDS reports device-number 0 until the attachment has propagated...
        netns.add_eni("ens7", MAC_IDX1)
        imds.set_interface(MAC_IDX1, 0)
        time.sleep(1.0)
        assert proc.poll() is None
        # ...then its real device index.
        imds.set_interface(MAC_IDX1, 1)
    finally:
        result = script.finish(proc, started, timeout=15)

    assert result.returncode == 0, result.stderr
    assert 2.0 <= result.elapsed < 5, result.elapsed
    _assert_logged_with_prefix(result)
    assert "device index 1: waiting: IMDS reports no ENI at this device index yet" in result.stderr
    links = netns.links()
    assert links["multus1"]["address"] == MAC_IDX1 and "UP" in links["multus1"]["flags"]
    assert links["multus2"]["address"] == MAC_IDX2 and "UP" in links["multus2"]["flags"]
    _assert_primary_untouched(netns)


def test_waits_for_udev_then_proceeds(netns, imds, script):
    """With a udev database present, a link is renamed only once udev has recorded it (or after a grace period)."""
    _ens5_ens6_ens7(netns, imds)
    udev = netns.tmp / "udev-data"
    udev.mkdir()
    (udev / f"n{netns.ifindex('ens6')}").touch()  # ens6 (device index 2) already processed by udev; ens7 is not

    proc, started = script.start(UDEV_DATA_DIR=str(udev))
    try:
        time.sleep(0.7)
        links = netns.links()
        assert "multus2" in links and "ens7" in links, "index 2 must be done, index 1 must wait for udev"
        (udev / f"n{netns.ifindex('ens7')}").touch()
    finally:
        result = script.finish(proc, started)

    assert result.returncode == 0, result.stderr
    assert "device index 1: waiting: link ens7" in result.stderr and "not yet processed by udev" in result.stderr
    assert "udev never recorded" not in result.stderr
    assert netns.links()["multus1"]["address"] == MAC_IDX1


def test_udev_grace_period(netns, imds, script):
    _ens5_ens6_ens7(netns, imds)
    udev = netns.tmp / "udev-data"
    udev.mkdir()  # empty: udev never records the links

    result = script.run(UDEV_DATA_DIR=str(udev), MULTUS_POLL_SECONDS="0.1")

    assert result.returncode == 0, result.stderr
    assert result.elapsed < 4, result.elapsed
    assert "udev never recorded ens7" in result.stderr and "udev never recorded ens6" in result.stderr
    assert {"multus1", "multus2"} <= netns.links().keys()


def test_name_taken_by_another_link_fails_fast(netns, imds, script):
    netns.add_eni("ens5", PRIMARY_MAC, up=True)
    netns.add_eni("multus1", "02:00:00:00:09:09")  # not an ENI we know
    netns.add_eni("ens6", MAC_IDX1)
    imds.set_interface(PRIMARY_MAC, 0)
    imds.set_interface(MAC_IDX1, 1)

    result = script.run(MULTUS_INTERFACE_COUNT="1", MULTUS_WAIT_SECONDS="30")

    assert result.returncode == 1
    assert result.elapsed < 5
    assert "multus1 already exists and is not the ENI with MAC 02:00:00:00:01:07" in result.stderr
    links = netns.links()
    assert links["multus1"]["address"] == "02:00:00:00:09:09"
    assert links["ens6"]["address"] == MAC_IDX1
    assert netns.rp_filter("ens6") == "1"


def test_custom_prefix(netns, imds, script):
    _ens5_ens6_ens7(netns, imds)

    result = script.run(MULTUS_IFNAME_PREFIX="net")

    assert result.returncode == 0, result.stderr
    links = netns.links()
    assert links["net1"]["address"] == MAC_IDX1 and links["net2"]["address"] == MAC_IDX2
    assert "Name=net1" in (script.link_dir / "10-net1.link").read_text()


# ------------------------------------------------------------------------------------------------ IMDSv2
def test_fake_imds_rejects_requests_without_token(netns, imds):
    url = f"{imds.url}/latest/meta-data/network/interfaces/macs/"
    res = netns.exec("curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", url)
    assert res.stdout == "401"
    res = netns.exec("curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "-H", "X-aws-ec2-metadata-token: x", url)
    assert res.stdout == "401"


def test_uses_imdsv2_token(netns, imds, script):
    _ens5_ens6_ens7(netns, imds)

    result = script.run()

    assert result.returncode == 0, result.stderr
    puts = [r for r in imds.requests if r[0] == "PUT"]
    gets = [r for r in imds.requests if r[0] == "GET"]
    assert puts and all(status == 200 for _, _, status in puts)
    assert gets and all(status == 200 for _, _, status in gets), imds.requests
    assert {path for _, path, _ in gets} >= {
        "/latest/meta-data/network/interfaces/macs/",
        f"/latest/meta-data/network/interfaces/macs/{MAC_IDX1}/device-number",
    }


def test_no_token_means_no_interfaces(netns, imds, script):
    _ens5_ens6_ens7(netns, imds)
    imds.token_enabled = False

    result = script.run(MULTUS_WAIT_SECONDS="1")

    assert result.returncode == 1
    _assert_logged_with_prefix(result)
    assert "could not get an IMDSv2 token" in result.stderr
    assert "missing device index(es): 1 (" in result.stderr and "2 (" in result.stderr
    assert not any(r[0] == "GET" for r in imds.requests), "no metadata GET without a token"
    assert {"ens6", "ens7"} <= netns.links().keys()
    assert not script.sysctl_dir.exists() and not script.link_dir.exists()


def test_token_refreshed_after_401(netns, imds, script):
    _ens5_ens6_ens7(netns, imds)
    proc, started = script.start(MULTUS_INTERFACE_COUNT="3", MULTUS_WAIT_SECONDS="10")
    try:
        time.sleep(0.6)
        with imds.lock:
            imds.token = "rotated-token"  # the script's token is now rejected (as after expiry)
        time.sleep(0.6)
        third = "02:00:00:00:03:08"
        netns.add_eni("ens8", third)
        imds.set_interface(third, 3)
    finally:
        result = script.finish(proc, started)

    assert result.returncode == 0, result.stderr
    assert imds.unauthorized_gets(), "the test expected the old token to be rejected at least once"
    assert netns.links()["multus3"]["address"] == third


# ------------------------------------------------------------------------------------------------ configuration
@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"MULTUS_INTERFACE_COUNT": None}, "MULTUS_INTERFACE_COUNT is required"),
        ({"MULTUS_INTERFACE_COUNT": ""}, "MULTUS_INTERFACE_COUNT is required"),
        ({"MULTUS_INTERFACE_COUNT": "0"}, "MULTUS_INTERFACE_COUNT must be an integer between 1 and 999, got '0'"),
        ({"MULTUS_INTERFACE_COUNT": "-1"}, "MULTUS_INTERFACE_COUNT must be an integer between 1 and 999, got '-1'"),
        ({"MULTUS_INTERFACE_COUNT": "two"}, "MULTUS_INTERFACE_COUNT must be an integer between 1 and 999, got 'two'"),
        ({"MULTUS_INTERFACE_COUNT": "1.5"}, "MULTUS_INTERFACE_COUNT must be an integer"),
        ({"MULTUS_INTERFACE_COUNT": "08"}, "MULTUS_INTERFACE_COUNT must be an integer"),
        ({"MULTUS_INTERFACE_COUNT": "2 "}, "MULTUS_INTERFACE_COUNT must be an integer"),
        ({"MULTUS_WAIT_SECONDS": "5m"}, "MULTUS_WAIT_SECONDS must be an integer"),
        ({"MULTUS_POLL_SECONDS": "0"}, "MULTUS_POLL_SECONDS must be a positive number"),
        ({"MULTUS_MTU": "jumbo"}, "MULTUS_MTU must be empty or an integer between 68 and 65535"),
        ({"MULTUS_MTU": "50"}, "MULTUS_MTU must be empty or an integer between 68 and 65535"),
        ({"MULTUS_IFNAME_PREFIX": "1net"}, "MULTUS_IFNAME_PREFIX must start with a letter"),
        ({"MULTUS_IFNAME_PREFIX": "net.x"}, "MULTUS_IFNAME_PREFIX must start with a letter"),
        ({"MULTUS_IFNAME_PREFIX": "averylongprefix"}, "MULTUS_IFNAME_PREFIX 'averylongprefix' is too long"),
    ],
)
def test_invalid_configuration(netns, imds, script, overrides, message):
    _ens5_ens6_ens7(netns, imds)

    result = script.run(**overrides)

    assert result.returncode == 2, result.stderr
    _assert_logged_with_prefix(result)
    assert f"{LOG_PREFIX} ERROR: invalid configuration: {message}" in result.stderr
    assert imds.requests == [], "nothing may happen before the configuration is validated"
    assert {"ens6", "ens7"} <= netns.links().keys()


# ------------------------------------------------------------------------------------------------ as user data ships it
def test_the_user_data_part_unpacks_and_runs_the_script(netns, imds, script, tmp_path):
    """The shell MIME part exactly as node_group.interface_script renders it (settings, gzip + base64 script)."""
    from eks_multus_cdk.node_group import interface_script

    _ens5_ens6_ens7(netns, imds)
    part = tmp_path / "part.sh"
    part.write_text(interface_script(2))
    bindir = tmp_path / "bin"
    bindir.mkdir()
    for tool in (*script.bindir.iterdir(),):
        (bindir / tool.name).symlink_to(tool.resolve())
    for tool in ("gunzip", "gzip", "dirname", "base64"):  # the unpacking step's tools
        found = shutil.which(tool)
        if found and not (bindir / tool).exists():
            (bindir / tool).symlink_to(found)
    installed = tmp_path / "sbin" / "setup-multus-interfaces.sh"
    env = script.env(MULTUS_SCRIPT_PATH=str(installed), PATH=str(bindir))
    for key in ("MULTUS_INTERFACE_COUNT", "MULTUS_IFNAME_PREFIX", "MULTUS_WAIT_SECONDS"):
        env.pop(key, None)  # the part sets them itself
    res = subprocess.run(["ip", "netns", "exec", netns.name, shutil.which("bash"), str(part)], env=env,
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    assert installed.read_bytes() == SCRIPT.read_bytes() and installed.stat().st_mode & 0o777 == 0o755
    links = netns.links()
    assert links["multus1"]["address"] == MAC_IDX1 and links["multus2"]["address"] == MAC_IDX2
