"""Fixtures of the CNI data-plane tests: root check, ipvlan probe, namespaces and dirs that are always removed.

How the tests run the plugins, and what they substitute on this machine, is described in cni_harness.py.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from cni_harness import CNI_BIN, NOTES, RUN_ID, note, sh  # noqa: E402


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if NOTES:
        terminalreporter.section("CNI data plane")
        for line in NOTES:
            terminalreporter.write_line(line)


# ------------------------------------------------------------------------------------------------ environment
@pytest.fixture(scope="session")
def host_ready() -> None:
    """Root, iproute2 and the plugins: fail (not skip) without them."""
    if os.geteuid() != 0:
        pytest.fail("the data-plane tests create network namespaces: run them as root")
    missing = [p for p in ("macvlan", "ipvlan", "host-device", "host-local") if not (CNI_BIN / p).is_file()]
    if missing:
        pytest.fail(f"CNI plugins missing in {CNI_BIN}: {missing} (apt-get install containernetworking-plugins)")
    if not shutil.which("ip") or not shutil.which("ping"):
        pytest.fail("iproute2 and ping are needed")


@pytest.fixture(scope="session")
def kernel_has_ipvlan(host_ready: None) -> bool:
    """Try to create an ipvlan link in a scratch namespace."""
    name = f"{RUN_ID}-probe"
    sh("ip", "netns", "add", name)
    try:
        sh("ip", "-n", name, "link", "add", "probe0", "type", "veth", "peer", "name", "probe1")
        proc = sh("ip", "-n", name, "link", "add", "iv0", "link", "probe0", "type", "ipvlan", "mode", "l3", check=False)
    finally:
        sh("ip", "netns", "del", name, check=False)
    if proc.returncode == 0:
        note("kernel has ipvlan: ipvlan NADs run as rendered")
        return True
    note(f"kernel has no ipvlan ({proc.stderr.strip()}): ipvlan NADs run with type macvlan, mode bridge "
         "(same master, same IPAM)")
    return False


@pytest.fixture
def netns(host_ready: None) -> Iterator[Callable[[str], str]]:
    """Factory: `netns("node")` creates a namespace named with this run's prefix; all are deleted afterwards."""
    created: list[str] = []
    prefix = f"{RUN_ID}-{secrets.token_hex(2)}"

    def make(role: str) -> str:
        name = f"{prefix}-{role}"
        sh("ip", "netns", "add", name)
        created.append(name)
        sh("ip", "-n", name, "link", "set", "lo", "up")
        return name

    yield make
    for name in reversed(created):
        subprocess.run(["ip", "netns", "del", name], capture_output=True, timeout=30)


@pytest.fixture
def data_dir() -> Iterator[Path]:
    """A private host-local dataDir (removed afterwards)."""
    path = Path(tempfile.mkdtemp(prefix=f"{RUN_ID}-ipam-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


# ------------------------------------------------------------------------------------------------ templates
@pytest.fixture(scope="session")
def multus_template(synthesized) -> dict[str, Any]:
    """The template whose NADs and sample pods are run: the real app's workers stack, synthesized from cdk.json."""
    return synthesized.templates[synthesized.workers_stack.stack_name]


