"""Fixtures for the node-side tests of userdata/setup-multus-interfaces.sh.

The script runs for real against kernel links: each test gets its own network namespace (veth pairs with chosen
MAC addresses stand in for ENIs) and a fake IMDSv2 server listening on 127.0.0.1 *inside* that namespace (the
listening socket is created by a thread that has joined the namespace with setns(2)). Nothing outside the
namespaces created here is touched. Needs root; a missing capability makes the tests fail, never skip.
"""

from __future__ import annotations

import ctypes
import json
import os
import re
import secrets
import shutil
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "userdata" / "setup-multus-interfaces.sh"
BASH = shutil.which("bash") or "/bin/bash"

# The script may use only curl, ip, sysctl and coreutils: it runs with a PATH holding nothing else.
COREUTILS = (
    "[ arch b2sum base32 base64 basename basenc cat chcon chgrp chmod chown cksum comm cp csplit cut date dd df dir "
    "dircolors dirname du echo env expand expr factor false fmt fold groups head hostid id install join link ln "
    "logname ls md5sum mkdir mkfifo mknod mktemp mv nice nl nohup nproc numfmt od paste pathchk pinky pr printenv "
    "printf ptx pwd readlink realpath rm rmdir runcon seq sha1sum sha224sum sha256sum sha384sum sha512sum shred shuf "
    "sleep sort split stat stdbuf stty sum sync tac tail tee test timeout touch tr true truncate tsort tty uname "
    "unexpand uniq unlink users vdir wc who whoami yes"
).split()
ALLOWED_TOOLS = ("curl", "ip", "sysctl", *COREUTILS)

CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)


# ------------------------------------------------------------------------------------------------ fake IMDSv2
@dataclass
class FakeImds:
    """IMDSv2 subset: PUT latest/api/token, GET meta-data/network/interfaces/macs/ and macs/<mac>/device-number.

    GETs without the current token get 401, like the real service with IMDSv2 required.
    """

    token: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    interfaces: dict[str, int] = field(default_factory=dict)  # MAC -> device-number
    token_enabled: bool = True
    instance_id: str = "i-0123456789abcdef0"
    requests: list[tuple[str, str, int]] = field(default_factory=list)  # (method, path, status)
    lock: threading.Lock = field(default_factory=threading.Lock)
    url: str = ""

    def set_interface(self, mac: str, device_number: int) -> None:
        with self.lock:
            self.interfaces[mac] = device_number

    def respond(self, method: str, path: str, headers) -> tuple[int, str]:
        with self.lock:
            status, body = self._route(method, path, headers)
            self.requests.append((method, path, status))
            return status, body

    def _route(self, method: str, path: str, headers) -> tuple[int, str]:
        if path == "/latest/api/token":
            if method != "PUT":
                return 405, ""
            if not self.token_enabled:
                return 403, "Forbidden"
            if not headers.get("X-aws-ec2-metadata-token-ttl-seconds", "").isdigit():
                return 400, "Missing or invalid TTL header"
            return 200, self.token
        if method != "GET":
            return 405, ""
        if headers.get("X-aws-ec2-metadata-token") != self.token:
            return 401, "Unauthorized"
        if path == "/latest/meta-data/instance-id":
            return 200, self.instance_id
        prefix = "/latest/meta-data/network/interfaces/macs/"
        if path == prefix:
            return 200, "\n".join(f"{mac}/" for mac in self.interfaces)
        m = re.fullmatch(re.escape(prefix) + r"([0-9a-f:]{17})/device-number", path)
        if m and m.group(1) in self.interfaces:
            return 200, str(self.interfaces[m.group(1)])
        return 404, "Not Found"

    def unauthorized_gets(self) -> list[str]:
        with self.lock:
            return [p for method, p, status in self.requests if method == "GET" and status == 401]


def _make_handler(imds: FakeImds):
    class Handler(BaseHTTPRequestHandler):
        def _serve(self) -> None:
            status, body = imds.respond(self.command, self.path, self.headers)
            data = body.encode()
            self.send_response(status)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = _serve
        do_PUT = _serve

        def log_message(self, format, *args):  # noqa: A002 - signature of the base class
            pass

    return Handler


# ------------------------------------------------------------------------------------------------ namespaces
@dataclass
class Netns:
    name: str
    tmp: Path

    def ip(self, *args: str) -> str:
        return _run(["ip", "-n", self.name, *args]).stdout

    def exec(self, *args: str, **kwargs) -> subprocess.CompletedProcess:
        return _run(["ip", "netns", "exec", self.name, *args], **kwargs)

    def add_eni(self, ifname: str, mac: str, *, up: bool = False, rp_filter: int = 1) -> None:
        """A veth pair stands in for an ENI: `ifname` (with `mac`) plus a peer that is never touched."""
        self.ip("link", "add", ifname, "address", mac, "type", "veth", "peer", "name", f"{ifname}p")
        self.exec("sysctl", "-q", "-w", f"net.ipv4.conf.{ifname}.rp_filter={rp_filter}")
        if up:
            self.ip("link", "set", ifname, "up")

    def links(self) -> dict[str, dict]:
        return {link["ifname"]: link for link in json.loads(self.ip("-j", "link", "show"))}

    def by_mac(self) -> dict[str, dict]:
        return {link["address"]: link for link in self.links().values() if "address" in link}

    def rp_filter(self, ifname: str) -> str:
        return self.exec("cat", f"/proc/sys/net/ipv4/conf/{ifname}/rp_filter").stdout.strip()

    def ifindex(self, ifname: str) -> int:
        return self.links()[ifname]["ifindex"]


def _run(cmd: list[str], **kwargs) -> subprocess.CompletedProcess:
    kwargs.setdefault("check", True)
    kwargs.setdefault("capture_output", True)
    kwargs.setdefault("text", True)
    kwargs.setdefault("timeout", 30)
    return subprocess.run(cmd, **kwargs)


@pytest.fixture
def netns(request: pytest.FixtureRequest, tmp_path: Path) -> Netns:
    if os.geteuid() != 0:
        pytest.fail("tests/node must run as root: they create network namespaces (ip netns add)")
    if shutil.which("ip") is None:
        pytest.fail("tests/node need iproute2 ('ip' not found on PATH)")
    name = f"mcdk-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    res = subprocess.run(["ip", "netns", "add", name], capture_output=True, text=True)
    if res.returncode != 0:
        pytest.fail(
            f"cannot create a network namespace (`ip netns add {name}` -> {res.returncode}: {res.stderr.strip()}); "
            "tests/node need root and network-namespace support"
        )
    # Registered right after creation: runs even when the test (or a later fixture step) fails.
    request.addfinalizer(lambda: subprocess.run(["ip", "netns", "del", name], capture_output=True))
    ns = Netns(name, tmp_path)
    ns.ip("link", "set", "lo", "up")
    return ns


def _setns_thread(ns_name: str, fn):
    """Run fn() in a short-lived thread that has joined the namespace; sockets it creates stay in that namespace."""
    result: dict = {}

    def target() -> None:
        try:
            with open(f"/run/netns/{ns_name}") as f:
                if _libc.setns(f.fileno(), CLONE_NEWNET) != 0:
                    err = ctypes.get_errno()
                    raise OSError(err, f"setns({ns_name}): {os.strerror(err)}")
            result["value"] = fn()
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
            result["error"] = exc

    t = threading.Thread(target=target)
    t.start()
    t.join()
    if "error" in result:
        raise result["error"]
    return result["value"]


@pytest.fixture
def imds(netns: Netns) -> Iterator[FakeImds]:
    fake = FakeImds()
    server = _setns_thread(netns.name, lambda: ThreadingHTTPServer(("127.0.0.1", 0), _make_handler(fake)))
    server.daemon_threads = True
    fake.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()


# ------------------------------------------------------------------------------------------------ running the script
@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str
    elapsed: float

    @property
    def log_lines(self) -> list[str]:
        return [line for line in self.stderr.splitlines() if line.strip()]


@dataclass
class ScriptRunner:
    netns: Netns
    imds: FakeImds | None
    bindir: Path

    @property
    def sysctl_dir(self) -> Path:
        return self.netns.tmp / "sysctl.d"

    @property
    def link_dir(self) -> Path:
        return self.netns.tmp / "network"

    def env(self, **overrides: str | None) -> dict[str, str]:
        env = {
            "PATH": str(self.bindir),
            "LC_ALL": "C",
            "MULTUS_INTERFACE_COUNT": "2",
            "MULTUS_WAIT_SECONDS": "5",
            "MULTUS_POLL_SECONDS": "0.2",
            "IMDS_ENDPOINT": self.imds.url if self.imds else "http://127.0.0.1:9",
            "SYSCTL_DIR": str(self.sysctl_dir),
            "NETWORK_LINK_DIR": str(self.link_dir),
            # No udev in the namespace: point the udev check at a directory that does not exist (skips it).
            "UDEV_DATA_DIR": str(self.netns.tmp / "no-udev"),
            # Not the EKS AMI unless a test says so: no nodeadm udev-net-manager unit (tests/node/net_manager.py).
            "NET_MANAGER_UNIT": str(self.netns.tmp / "no-unit"),
            "NET_MANAGER_CACHE_DIR": str(self.netns.tmp / "nodeadm-cache"),
            "NETWORKD_RUNTIME_DIR": str(self.netns.tmp / "run-systemd-network"),
            # The relink rule and unit (host-device ENIs coming back under another name) stay in the test's folder.
            "UDEV_RULES_DIR": str(self.netns.tmp / "udev-rules"),
            "SYSTEMD_UNIT_DIR": str(self.netns.tmp / "systemd-system"),
        }
        for key, value in overrides.items():
            if value is None:
                env.pop(key, None)
            else:
                env[key] = value
        return env

    def command(self) -> list[str]:
        return ["ip", "netns", "exec", self.netns.name, BASH, str(SCRIPT)]

    def run(self, timeout: float = 30, **overrides: str | None) -> Result:
        start = time.monotonic()
        res = subprocess.run(self.command(), env=self.env(**overrides), capture_output=True, text=True, timeout=timeout)
        return Result(res.returncode, res.stdout, res.stderr, time.monotonic() - start)

    def start(self, **overrides: str | None) -> tuple[subprocess.Popen, float]:
        proc = subprocess.Popen(
            self.command(), env=self.env(**overrides), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        return proc, time.monotonic()

    @staticmethod
    def finish(proc: subprocess.Popen, started: float, timeout: float = 30) -> Result:
        try:
            out, err = proc.communicate(timeout=timeout)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
        return Result(proc.returncode, out, err, time.monotonic() - started)


@pytest.fixture(scope="session")
def restricted_bin(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A PATH directory with symlinks to the only tools the script may use."""
    bindir = tmp_path_factory.mktemp("allowed-bin")
    for tool in ALLOWED_TOOLS:
        found = shutil.which(tool)
        if found:
            (bindir / tool).symlink_to(found)
    for tool in ("curl", "ip", "sysctl"):
        if not (bindir / tool).exists():
            pytest.fail(f"tests/node need '{tool}' installed")
    return bindir


@pytest.fixture
def script(netns: Netns, imds: FakeImds, restricted_bin: Path) -> ScriptRunner:
    return ScriptRunner(netns, imds, restricted_bin)
