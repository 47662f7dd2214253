"""Runs the real controller process (`python -m multus_ip_controller.main`) against stand-ins on 127.0.0.1:
the fake Kubernetes API server (fake_kube.py), moto's EC2 in server mode (`ThreadedMotoServer`, with the EC2
behaviours of moto_ec2_fixes.py) and a fake IMDSv2 (fake_imds.py) backed by moto's state. Used by the
integration test and by bench/controller_bench.py.

One node (an instance with one Multus ENI per network, tagged as the ENI Lambda tags them) in us-west-2a.
`add_pod` creates a pod without network-status (scheduled, sandbox not set up) and `attach` writes the
network-status Multus would write once the pod's interfaces exist, with the ENI's MAC.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import boto3
from fake_imds import FakeImds
from fake_kube import FakeKube
from moto_ec2_fixes import patched

ROOT = Path(__file__).resolve().parents[2]
REGION = "us-west-2"
AZ = "us-west-2a"
PREFIX = "eks-multus"
OWNER = f"{PREFIX}-ng1"
CONDITION = "eks-multus.io/addresses-assigned"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Harness:
    def __init__(self, workdir: Path, *, instance_type: str = "c5.xlarge", networks: int = 2,
                 env: dict[str, str] | None = None, bookmarks: bool = True) -> None:
        self.workdir = workdir
        self.instance_type = instance_type
        self.networks = networks
        self.extra_env = env or {}
        self.kube = FakeKube(bookmarks=bookmarks, bookmark_interval=1.0)
        self.process: subprocess.Popen | None = None
        self.enis: list[dict[str, Any]] = []  # {"id", "mac", "network", "subnet"}
        self.pod_ranges = [f"10.0.{4 + 2 * n}.128/25" for n in range(networks)]
        self._patch = patched()

    # ---------------------------------------------------------------- set-up

    def start(self) -> Harness:
        from moto.server import ThreadedMotoServer

        self._patch.__enter__()
        os.environ.setdefault("MOTO_EC2_LOAD_DEFAULT_AMIS", "false")
        self.moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        self.moto.start()
        host, port = self.moto.get_host_and_port()
        self.moto_url = f"http://{host}:{port}"
        self.ec2 = boto3.client("ec2", region_name=REGION, endpoint_url=self.moto_url, aws_access_key_id="testing",
                                aws_secret_access_key="testing")
        self._build_ec2()
        self.kube.start()
        self.node_name = "ip-10-0-2-10.us-west-2.compute.internal"
        self.kube.add_node(self.node_name, f"aws:///{AZ}/{self.instance_id}", self.instance_type)
        by_mac = {e["mac"]: e["id"] for e in self.enis}
        self.imds = FakeImds(lambda mac: self._held(by_mac[mac]) if mac in by_mac else None)
        kubeconfig = self.workdir / "kubeconfig.json"
        kubeconfig.write_text(json.dumps(self.kube.kubeconfig()))
        self.health_port = free_port()
        self.log_path = self.workdir / "controller.log"
        env = {
            "PATH": os.environ.get("PATH", ""), "HOME": str(self.workdir), "KUBECONFIG": str(kubeconfig),
            "NODE_NAME": self.node_name, "POD_RANGES": json.dumps(self.pod_ranges), "AWS_REGION": REGION,
            "ENI_OWNER_PREFIX": PREFIX, "IFNAME_PREFIX": "multus",
            "AWS_ENDPOINT_URL": self.moto_url, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_EC2_METADATA_DISABLED": "true", "IMDS_ENDPOINT": self.imds.url,
            "HEALTH_ADDRESS": f"127.0.0.1:{self.health_port}", "PYTHONUNBUFFERED": "1",
            **self.extra_env,
        }
        self._log = self.log_path.open("w")
        self.process = subprocess.Popen([sys.executable, "-m", "multus_ip_controller.main"], cwd=ROOT / "controller",
                                        env=env, stdout=self._log, stderr=subprocess.STDOUT)
        return self

    def _build_ec2(self) -> None:
        ec2 = self.ec2
        vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
        node_subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.0.2.0/24", AvailabilityZone=AZ)["Subnet"]["SubnetId"]
        self.instance_id = ec2.run_instances(ImageId="ami-12c6146b", MinCount=1, MaxCount=1,
                                             InstanceType=self.instance_type, SubnetId=node_subnet,
                                             PrivateIpAddress="10.0.2.10")["Instances"][0]["InstanceId"]
        for n in range(self.networks):
            index = n + 1
            subnet = ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.0.{4 + 2 * n}.0/24",
                                       AvailabilityZone=AZ)["Subnet"]["SubnetId"]
            eni = ec2.create_network_interface(
                SubnetId=subnet, PrivateIpAddress=f"10.0.{4 + 2 * n}.20",
                TagSpecifications=[{"ResourceType": "network-interface", "Tags": [
                    {"Key": "node.k8s.amazonaws.com/no_manage", "Value": "true"},
                    {"Key": "eks-multus/owner", "Value": OWNER},
                    {"Key": "eks-multus/instance-id", "Value": self.instance_id},
                    {"Key": "eks-multus/network", "Value": f"multus{index}"},
                    {"Key": "eks-multus/device-index", "Value": str(index)},
                ]}],
            )["NetworkInterface"]
            ec2.attach_network_interface(NetworkInterfaceId=eni["NetworkInterfaceId"], InstanceId=self.instance_id,
                                         DeviceIndex=index)
            self.enis.append({"id": eni["NetworkInterfaceId"], "mac": eni["MacAddress"], "network": f"multus{index}",
                              "prefix": f"10.0.{4 + 2 * n}"})

    def _held(self, eni_id: str) -> set[str]:
        (eni,) = self.ec2.describe_network_interfaces(NetworkInterfaceIds=[eni_id])["NetworkInterfaces"]
        return {a["PrivateIpAddress"] for a in eni["PrivateIpAddresses"]}

    # ---------------------------------------------------------------- the cluster

    def add_pod(self, name: str, *, network: int = 0, gate: bool = True, request: bool = True) -> str:
        resources = {"requests": {f"eks-multus.io/multus{network + 1}-ips": "1"},
                     "limits": {f"eks-multus.io/multus{network + 1}-ips": "1"}} if request else {}
        return self.kube.add_pod({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"namespace": "default", "name": name, "annotations": {
                "k8s.v1.cni.cncf.io/networks": f"multus{network + 1}-{AZ}",
                "kubectl.kubernetes.io/last-applied-configuration": "{" + "x" * 2000 + "}"},
                "labels": {"app": "bench", "pod-template-hash": "5d9f8c7b6"}},
            "spec": {"nodeName": self.node_name, "containers": [{"name": "app", "image": "public.ecr.aws/x:1",
                                                                 "resources": resources}],
                     **({"readinessGates": [{"conditionType": CONDITION}]} if gate else {})},
            "status": {"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "True"}]},
        })

    def attach(self, uid: str, ip: str, network: int = 0) -> None:
        """Multus has set up the pod's interfaces: network-status with the default network and net1."""
        mac = self.enis[network]["mac"]
        status = [{"name": "aws-cni", "interface": "eth0", "ips": ["10.0.2.77"], "mac": "0a:58:0a:00:02:4d",
                   "default": True, "dns": {}},
                  {"name": f"default/multus{network + 1}-{AZ}", "interface": "net1", "ips": [ip], "mac": mac,
                   "dns": {}}]

        def change(pod):
            pod["metadata"]["annotations"]["k8s.v1.cni.cncf.io/network-status"] = json.dumps(status)
            pod["status"]["phase"] = "Running"

        self.kube.update_pod(uid, change)

    def condition(self, name: str) -> dict[str, Any] | None:
        pod = self.kube.pod("default", name)
        conditions = (pod or {}).get("status", {}).get("conditions", [])
        return next((c for c in conditions if c["type"] == CONDITION), None)

    def held(self) -> dict[str, set[str]]:
        return {e["network"]: self._held(e["id"]) - {f"{e['prefix']}.20"} for e in self.enis}

    # ---------------------------------------------------------------- the controller

    def reports(self) -> list[dict[str, Any]]:
        out = []
        for line in self.log_path.read_text().splitlines():
            try:
                entry = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(entry, dict) and entry.get("msg") == "reconcile":
                out.append(entry)
        return out

    def http(self, path: str) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.health_port}{path}", timeout=5) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as err:
            return err.code, err.read().decode()
        except OSError as err:
            return 0, str(err)

    def wait(self, check, timeout: float = 10.0, what: str = "condition") -> None:
        deadline = time.monotonic() + timeout
        while not check():
            if self.process is not None and self.process.poll() is not None:
                raise AssertionError(f"controller exited with {self.process.returncode}:\n{self.log_tail()}")
            if time.monotonic() > deadline:
                requests = [(round(t, 2), v, r, p) for t, v, r, p in self.kube.requests[-40:] if v in ("watch", "list")]
                raise AssertionError(f"{what} not reached in {timeout} s:\n{self.log_tail()}\nrequests: {requests}\n"
                                     f"rv {self.kube.rv}, oldest {self.kube.oldest_rv}")
            time.sleep(0.05)

    def log_tail(self, lines: int = 15) -> str:
        return "\n".join(self.log_path.read_text().splitlines()[-lines:])

    def peak_rss_kib(self) -> int:
        """The controller's peak resident set (VmHWM), while it runs."""
        assert self.process is not None
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
        return 0

    def stop(self) -> int | None:
        code = None
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                code = self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        elif self.process is not None:
            code = self.process.returncode
        self._log.close()
        self.kube.stop()
        self.imds.stop()
        self.moto.stop()
        self._patch.__exit__(None, None, None)
        return code
