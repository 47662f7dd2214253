"""A model of nodeadm's udev-net-manager, as the EKS AL2023 AMI runs it, for the node script's tests.

What the real pieces do (awslabs/amazon-eks-ami: templates/al2023/runtime/rootfs/etc/udev/rules.d/90-eks.rules,
etc/systemd/system/udev-net-manager@.service, nodeadm/cmd/nodeadm-internal/udev/):
- udev, on `add` of an ENA link, runs `systemctl enable --now --no-block udev-net-manager@<name>.service` with the
  name the link has at that moment;
- the unit (Type=oneshot, Restart=on-failure, RestartSec=1; systemd's default start limit: 5 starts in 10 s)
  reads /sys/class/net/<name>/address (fails if the link was renamed meanwhile), asks IMDS for the primary MAC,
  decides the manager ("io.systemd.Network" before nodeadm-run's marker exists, "cni" after) and caches that in
  /etc/eks/nodeadm/udev-net-manager/<instance-id>/<name>, then writes
  /run/systemd/network/70-eks-<name>.network matching the permanent MAC, with route table 10000 + device index.

The model watches the namespace's links (by polling `ip -j link`, instead of udev events), starts the "unit" for
each new ENA-like name (ens*/eth*) after `delay` seconds, and reads sysfs through `ip netns exec` by that name,
as the unit does. Not modelled: networkd itself (DHCP, routes), the IMDS calls' own latency and failures, the
`remove` action. `running_as_cni` models an ENI that appears after nodeadm-run started.
"""

from __future__ import annotations

import json
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

START_LIMIT_BURST = 5
START_LIMIT_INTERVAL = 10.0
RESTART_SEC = 1.0
TABLE_BASE = 10000


@dataclass
class NetManagerModel:
    netns: str
    cache_dir: Path
    networkd_dir: Path
    unit_file: Path
    instance_id: str
    device_index: dict[str, int]  # MAC -> device index (what IMDS reports)
    delay: float = 0.0
    running_as_cni: bool = False
    log: list[str] = field(default_factory=list)
    outcome: dict[str, str] = field(default_factory=dict)  # name -> "managed" | "cni" | "failed"
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)

    def start(self) -> NetManagerModel:
        self.unit_file.parent.mkdir(parents=True, exist_ok=True)
        self.unit_file.write_text("[Service]\nType=oneshot\nRestart=on-failure\nRestartSec=1\n")
        t = threading.Thread(target=self._watch, daemon=True)
        t.start()
        self._threads.append(t)
        return self

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=15)

    def _links(self) -> list[str]:
        out = subprocess.run(["ip", "-n", self.netns, "-j", "link", "show"], capture_output=True, text=True)
        return [link["ifname"] for link in json.loads(out.stdout or "[]")] if out.returncode == 0 else []

    def _watch(self) -> None:
        seen: set[str] = set()
        while not self._stop.is_set():
            for name in self._links():
                if name not in seen and name.startswith(("ens", "eth")) and not name.endswith("p"):
                    seen.add(name)
                    t = threading.Thread(target=self._unit, args=(name,), daemon=True)
                    t.start()
                    self._threads.append(t)
            self._stop.wait(0.05)

    def _unit(self, name: str) -> None:
        if self._stop.wait(self.delay):
            return
        starts: list[float] = []
        while not self._stop.is_set():
            now = time.monotonic()
            starts = [s for s in starts if now - s < START_LIMIT_INTERVAL] + [now]
            if len(starts) > START_LIMIT_BURST:
                self.log.append(f"udev-net-manager@{name}: start request repeated too quickly, refusing to start")
                self.outcome[name] = "failed"
                return
            if self._add_action(name):
                return
            self._stop.wait(RESTART_SEC)

    def _add_action(self, name: str) -> bool:
        read = subprocess.run(["ip", "netns", "exec", self.netns, "cat", f"/sys/class/net/{name}/address"],
                              capture_output=True, text=True)
        if read.returncode != 0:
            self.log.append(f"udev-net-manager@{name}: open /sys/class/net/{name}/address: no such file or directory")
            return False
        mac = read.stdout.strip()
        manager = "cni" if self.running_as_cni else "io.systemd.Network"
        cache = self.cache_dir / self.instance_id / name
        cache.parent.mkdir(parents=True, exist_ok=True)
        cache.write_text(manager)
        if manager == "io.systemd.Network":
            self.networkd_dir.mkdir(parents=True, exist_ok=True)
            (self.networkd_dir / f"70-eks-{name}.network").write_text(
                f"[Match]\nPermanentMACAddress={mac}\n\n[Link]\nMTUBytes=9001\n\n[Network]\nDHCP=yes\n\n"
                f"[Route]\nTable={TABLE_BASE + self.device_index.get(mac, 0)}\nGateway=_dhcp4\n")
            self.outcome[name] = "managed"
        else:
            self.outcome[name] = "cni"
        return True

    def managed_macs(self) -> dict[str, int]:
        """MAC -> route table of every .network file the unit wrote (what networkd would manage)."""
        out = {}
        for path in self.networkd_dir.glob("70-eks-*.network") if self.networkd_dir.exists() else []:
            text = path.read_text()
            mac = text.split("PermanentMACAddress=")[1].split()[0]
            out[mac] = int(text.split("Table=")[1].split()[0])
        return out
