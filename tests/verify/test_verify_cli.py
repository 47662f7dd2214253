"""`python -m eks_multus_cdk.verify` end to end, with a fake cluster injected in place of the kubernetes client."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from kubernetes.client.exceptions import ApiException
from urllib3.exceptions import MaxRetryError, NewConnectionError
from verify_fakes import NODE_A, NODE_B, net1_ip, set_network_status

REPO = Path(__file__).resolve().parents[2]

ALL_GREEN_ROWS = [
    ("cluster connection", "PASS"),
    ("nodes Ready", "PASS"),
    ("daemonset kube-system/kube-multus-ds", "PASS"),
    ("NAD multus-networks/multus1-us-west-2a", "PASS"),
    ("NAD multus-networks/multus1-us-west-2b", "PASS"),
    ("NAD multus-networks/multus2-us-west-2a", "PASS"),
    ("NAD multus-networks/multus2-us-west-2b", "PASS"),
    ("pod sample-single Running", "PASS"),
    ("pod sample-single networks", "PASS"),
    ("pod sample-dual Running", "PASS"),
    ("pod sample-dual networks", "PASS"),
    ("ping sample-single -> sample-dual (net1)", "PASS"),
    ("ping sample-dual -> sample-single (net1)", "PASS"),
    ("subnet sample-single -> 10.0.4.1 (subnet router, net1)", "PASS"),
    ("subnet sample-single -> 10.0.4.21 (i-07e2b1d94c3a5f608's ENI, net1)", "PASS"),
    ("subnet sample-dual -> 10.0.4.1 (subnet router, net1)", "PASS"),
    ("subnet sample-dual -> 10.0.4.21 (i-07e2b1d94c3a5f608's ENI, net1)", "PASS"),
    ("pod sample-cross-a Running", "PASS"),
    ("pod sample-cross-a networks", "PASS"),
    ("pod sample-cross-b Running", "PASS"),
    ("pod sample-cross-b networks", "PASS"),
    ("cross-node pods on 2 nodes", "PASS"),
    ("ping sample-cross-a -> sample-cross-b (net1)", "PASS"),
    ("ping sample-cross-b -> sample-cross-a (net1)", "PASS"),
]


def test_all_green(run_cli, cluster):
    run = run_cli(cluster)
    assert run.code == 0, run.output
    assert [(check, run.status(check)) for check, _ in ALL_GREEN_ROWS] == ALL_GREEN_ROWS
    assert "24 passed, 0 failed, 0 skipped" in run.output
    assert "What to look at" not in run.output
    # progress lines come first, then the table with its header
    assert "[PASS] nodes Ready: 2/2 Ready in us-west-2a" in run.output
    assert "\ncheck " in run.output and " result  detail\n" in run.output
    assert cluster.execs == [
        ("multus-networks", "sample-single", ["ping", "-c", "3", "-W", "2", "10.0.4.130"]),
        ("multus-networks", "sample-dual", ["ping", "-c", "3", "-W", "2", "10.0.4.129"]),
        *(("multus-networks", pod, cmd) for pod in ("sample-single", "sample-dual")
          for target in ("10.0.4.1", "10.0.4.21")
          for cmd in (["ip", "-o", "route", "get", target], ["ping", "-c", "3", "-W", "2", target])),
        ("multus-networks", "sample-cross-a", ["ping", "-c", "3", "-W", "2", "10.0.4.132"]),
        ("multus-networks", "sample-cross-b", ["ping", "-c", "3", "-W", "2", "10.0.4.131"]),
    ]
    assert not [c for _, _, c in cluster.execs if "-I" in c], "plain pings only: -I makes any target on-link"
    # the route the pod used is printed
    assert "route: 10.0.4.21 dev net1 src 10.0.4.129" in run.row(
        "subnet sample-single -> 10.0.4.21 (i-07e2b1d94c3a5f608's ENI, net1)")
    assert run.connect_kwargs == {"kubeconfig": None, "context": None, "cluster_name": None, "region": None}


def assert_failed(run, check, *hint_words):
    assert run.code == 1, run.output
    assert run.status(check) == "FAIL", run.output
    hints = run.output.split("What to look at:\n", 1)[1]
    line = next(line for line in hints.splitlines() if line.startswith(f"- {check}: "))
    for word in hint_words:
        assert word in line, line


def test_node_not_ready(run_cli, cluster):
    ready = next(c for c in cluster.node(NODE_B)["status"]["conditions"] if c["type"] == "Ready")
    ready.update(status="Unknown", reason="NodeStatusUnknown", message="Kubelet stopped posting node status.")
    run = run_cli(cluster)
    assert_failed(run, "nodes Ready", "journalctl -u kubelet", "multus-interfaces:")
    assert run.status("pod sample-single networks") == "PASS"  # the other checks still run


def test_daemonset_not_ready(run_cli, cluster):
    cluster.daemonsets[("kube-system", "kube-multus-ds")]["status"]["numberReady"] = 1
    run = run_cli(cluster)
    assert_failed(run, "daemonset kube-system/kube-multus-ds", "kubectl -n kube-system logs ds/kube-multus-ds")


def test_nad_missing(run_cli, cluster):
    nads = cluster.nads["multus-networks"]
    cluster.nads["multus-networks"] = [n for n in nads if n["metadata"]["name"] != "multus1-us-west-2b"]
    run = run_cli(cluster)
    assert_failed(run, "NAD multus-networks/multus1-us-west-2b", "get network-attachment-definitions")
    assert "failed" in run.output and "1 failed" in run.output


def test_nad_config_drift(run_cli, cluster):
    nad = cluster.nads["multus-networks"][2]
    nad["spec"]["config"] = nad["spec"]["config"].replace('"mode":"l2"', '"mode":"l3"')
    run = run_cli(cluster)
    assert_failed(run, "NAD multus-networks/multus2-us-west-2a", "re-run cdk deploy")
    assert 'mode: expected "l2", got "l3"' in run.row("NAD multus-networks/multus2-us-west-2a")


def test_a_nad_with_only_the_pod_block_cannot_reach_the_subnet(run_cli, cluster):
    """The old defect, served by the cluster: ipam.range = the /25 pod block. The pod then routes the rest of its
    subnet by eth0, and the subnet rows fail naming the route it took."""
    nad = cluster.nads["multus-networks"][0]
    nad["spec"]["config"] = nad["spec"]["config"].replace('"range":"10.0.4.0/24"', '"range":"10.0.4.128/25"')
    run = run_cli(cluster)
    row = "subnet sample-single -> 10.0.4.21 (i-07e2b1d94c3a5f608's ENI, net1)"
    assert_failed(run, row, "whole subnet's prefix")
    assert "routes 10.0.4.21 as `10.0.4.21 via 169.254.1.1 dev eth0 src 10.0.2.187" in run.row(row)
    assert run.status("subnet sample-single -> 10.0.4.1 (subnet router, net1)") == "FAIL"


def test_subnet_host_on_one_node_only_is_skipped_with_the_reason(run_cli, cluster):
    cluster.nodes = [n for n in cluster.nodes if n["metadata"]["name"] == NODE_A]
    run = run_cli(cluster)
    assert run.status("subnet sample-single -> another node's multus1 ENI") == "SKIP"
    assert "cannot reach its own node's ENI" in run.row("subnet sample-single -> another node's multus1 ENI")
    assert run.status("subnet sample-single -> 10.0.4.1 (subnet router, net1)") == "PASS"


def test_subnet_host_lookup_denied_fails_with_the_permission(run_cli, cluster):
    cluster.errors["subnet_hosts"] = RuntimeError("UnauthorizedOperation: ec2:DescribeNetworkInterfaces")
    run = run_cli(cluster)
    assert_failed(run, "subnet sample-single -> another node's multus1 ENI", "ec2:DescribeNetworkInterfaces")


def test_subnet_ping_lost_fails(run_cli, cluster):
    cluster.ping_fails.add(("sample-dual", "10.0.4.1"))
    run = run_cli(cluster)
    assert_failed(run, "subnet sample-dual -> 10.0.4.1 (subnet router, net1)", "security group")
    assert "route: 10.0.4.1 dev net1 src 10.0.4.130" in run.row("subnet sample-dual -> 10.0.4.1 (subnet router, net1)")


def test_nads_rendered_for_another_config_are_drift(run_cli, cluster):
    # The cluster runs the default (whereabouts) NADs; cdk.json now says crossNodeTraffic false (host-local).
    run = run_cli(cluster, config_overrides={"crossNodeTraffic": False})
    assert_failed(run, "NAD multus-networks/multus1-us-west-2a", "cdk deploy")
    assert 'ipam.type: expected "host-local", got "whereabouts"' in run.row("NAD multus-networks/multus1-us-west-2a")


def test_pod_pending(run_cli, cluster):
    pod = cluster.pod("sample-dual")
    pod["status"] = {"phase": "Pending", "conditions": [
        {"type": "PodScheduled", "status": "True"}], "containerStatuses": [
        {"name": "sample", "ready": False, "restartCount": 0, "state": {"waiting": {"reason": "ContainerCreating"}}}]}
    del pod["metadata"]["annotations"]["k8s.v1.cni.cncf.io/network-status"]
    run = run_cli(cluster)
    assert_failed(run, "pod sample-dual Running", "describe pod sample-dual", "logs ds/kube-multus-ds")
    assert_failed(run, "pod sample-dual networks", "logs ds/kube-multus-ds")
    assert_failed(run, "ping sample-single -> sample-dual (net1)", "rows above")
    assert "not run: sample-dual failed an earlier check" in run.row("ping sample-single -> sample-dual (net1)")
    assert ("multus-networks", "sample-single", ["ping", "-c", "3", "-W", "2", "10.0.4.130"]) not in cluster.execs


def test_net1_address_outside_the_pod_range(run_cli, cluster):
    set_network_status(cluster.pod("sample-single"), lambda entries: entries[1].update(ips=["10.0.5.140"]))
    run = run_cli(cluster)
    assert_failed(run, "pod sample-single networks", "cloud-init-output.log", "ENI Lambda's log group")
    assert "net1 address 10.0.5.140 is outside the pod range 10.0.4.128/25" in run.row("pod sample-single networks")


def test_net2_missing_on_the_dual_pod(run_cli, cluster):
    set_network_status(cluster.pod("sample-dual"), lambda entries: entries.pop())
    run = run_cli(cluster)
    assert_failed(run, "pod sample-dual networks", "multus-interfaces:")
    assert "net2 missing" in run.row("pod sample-dual networks")


def test_ping_fails(run_cli, cluster):
    cluster.ping_fails.add(("sample-single", net1_ip(cluster.pod("sample-dual"))))
    run = run_cli(cluster)
    assert_failed(run, "ping sample-single -> sample-dual (net1)", "one node", "ip addr show net1")
    assert "100% packet loss" in run.row("ping sample-single -> sample-dual (net1)")
    assert run.status("ping sample-dual -> sample-single (net1)") == "PASS"


def test_cross_node_ping_fails(run_cli, cluster):
    cluster.ping_fails.add(("sample-cross-a", net1_ip(cluster.pod("sample-cross-b"))))
    assert_failed(run_cli(cluster), "ping sample-cross-a -> sample-cross-b (net1)", "security group", "secondary IP")


def test_sample_pods_on_two_nodes_get_the_cross_node_hint(run_cli, cluster):
    cluster.pod("sample-dual")["spec"]["nodeName"] = NODE_B
    cluster.ping_fails.add(("sample-single", net1_ip(cluster.pod("sample-dual"))))
    assert_failed(run_cli(cluster), "ping sample-single -> sample-dual (net1)", "security group", "rp_filter")


def test_exec_refused(run_cli, cluster):
    cluster.errors["exec"] = ApiException(status=403, reason="Forbidden")
    assert_failed(run_cli(cluster), "ping sample-single -> sample-dual (net1)", "pods/exec")


def test_cross_node_skipped_with_one_node_in_the_az(run_cli, cluster):
    cluster.node(NODE_B)["metadata"]["labels"]["topology.kubernetes.io/zone"] = "us-west-2b"
    del cluster.pods[("multus-networks", "sample-cross-b")]  # Pending in real life: nowhere to go
    run = run_cli(cluster)
    assert run.code == 0, run.output
    assert run.status("cross-node ping") == "SKIP"
    assert f"skipped: fewer than 2 nodes in AZ us-west-2a (1: {NODE_A})" in run.row("cross-node ping")
    # ... and the subnet checks have no other node's ENI in the AZ to ping (one row per sample pod)
    assert run.status("subnet sample-single -> another node's multus1 ENI") == "SKIP"
    assert "0 failed, 3 skipped" in run.output


def test_cross_node_pods_missing_with_two_nodes_in_the_az_is_a_failure(run_cli, cluster):
    del cluster.pods[("multus-networks", "sample-cross-a")]
    del cluster.pods[("multus-networks", "sample-cross-b")]
    run = run_cli(cluster)
    assert_failed(run, "pod sample-cross-a Running")
    assert_failed(run, "ping sample-cross-a -> sample-cross-b (net1)")
    assert "SKIP" not in run.output


def test_cross_node_pods_on_one_node(run_cli, cluster):
    cluster.pod("sample-cross-b")["spec"]["nodeName"] = NODE_A
    run = run_cli(cluster)
    assert_failed(run, "cross-node pods on 2 nodes", "anti-affinity")
    assert_failed(run, "ping sample-cross-a -> sample-cross-b (net1)")


def test_without_cross_node_traffic_there_is_no_cross_node_check(run_cli, cluster, config):
    from verify_fakes import make_config, served_nads

    cluster.nads["multus-networks"] = served_nads(make_config(crossNodeTraffic=False))
    run = run_cli(cluster, config_overrides={"crossNodeTraffic": False})
    assert run.code == 0, run.output
    assert "sample-cross" not in run.output and "cross-node" not in run.output


def test_without_sample_pods(run_cli, cluster):
    run = run_cli(cluster, config_overrides={"samplePods": False})
    assert run.code == 0, run.output
    assert run.status("sample pods") == "SKIP"
    assert not cluster.execs


def test_connection_refused(run_cli, cluster):
    cluster.errors["list_nodes"] = MaxRetryError(
        None, "/api/v1/nodes", NewConnectionError(None, "Failed to establish a new connection: [Errno 111]"))
    run = run_cli(cluster)
    assert_failed(run, "cluster connection", "bastion", "endpointPublicAccessCidrs")
    assert "0 passed, 1 failed" in run.output


def test_token_refused(run_cli, cluster):
    cluster.errors["list_nodes"] = ApiException(status=401, reason="Unauthorized")
    assert_failed(run_cli(cluster), "cluster connection", "access entry", "adminRoleArns")


def test_connect_fails(run_cli, cluster):
    def connect(**kwargs):
        raise RuntimeError("eks:DescribeCluster eks-multus in us-west-2: ResourceNotFoundException")

    run = run_cli(cluster, connect=connect, argv=["--cluster-name", "eks-multus"])
    assert_failed(run, "cluster connection", "aws sts get-caller-identity")
    assert "ResourceNotFoundException" in run.row("cluster connection")


def test_cluster_name_defaults_region_to_the_config(run_cli, cluster):
    run = run_cli(cluster, argv=["--cluster-name", "Cluster9F2A"])
    assert run.connect_kwargs == {"kubeconfig": None, "context": None, "cluster_name": "Cluster9F2A",
                                  "region": "us-west-2"}
    run = run_cli(cluster, argv=["--cluster-name", "Cluster9F2A", "--region", "eu-west-1"])
    assert run.connect_kwargs["region"] == "eu-west-1"
    run = run_cli(cluster, argv=["--kubeconfig", "/k", "--context", "bastion"])
    assert run.connect_kwargs["kubeconfig"] == "/k" and run.connect_kwargs["context"] == "bastion"


def test_bad_config_is_a_usage_error(run_cli, cluster):
    run = run_cli(cluster, config_overrides={"crossNodeTraffic": "yes"})
    assert run.code == 2
    assert "eksMultus.crossNodeTraffic" in run.output


def test_python_dash_m_without_a_cluster():
    """The real module, real client, a kubeconfig naming a closed local port: a FAIL row, exit 1."""
    kubeconfig = REPO / "tests" / "verify" / "fixtures" / "kubeconfig-closed-port.yaml"
    proc = subprocess.run(
        [sys.executable, "-m", "eks_multus_cdk.verify", "--kubeconfig", str(kubeconfig), "--config",
         str(REPO / "cdk.json")],
        cwd=REPO, capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "cluster connection" in proc.stdout and "FAIL" in proc.stdout
    assert "What to look at:" in proc.stdout


def test_the_same_context_overrides_as_synth_select_the_expectations(run_cli):
    """A deploy made with `cdk deploy -c eksMultus.crossNodeTraffic=false` runs host-local NADs: checked against
    cdk.json alone they are drift; with the same `-c` they pass."""
    from verify_fakes import healthy_cluster

    from eks_multus_cdk.config import parse_config

    deployed = healthy_cluster(parse_config(None, {"crossNodeTraffic": "false"}))
    assert run_cli(deployed).code == 1
    run = run_cli(deployed, argv=["-c", "eksMultus.crossNodeTraffic=false"])
    assert run.code == 0, run.output
    assert "-c eksMultus.crossNodeTraffic=false" in run.output.splitlines()[0]


def test_outside_the_repo_without_cdk_json_it_checks_the_default_config(tmp_path, monkeypatch, cluster):
    import io

    from eks_multus_cdk.verify.cli import main

    monkeypatch.chdir(tmp_path)
    out = io.StringIO()
    code = main([], connect=lambda **_: cluster, out=out, subnet_hosts=getattr(cluster, "subnet_hosts", None))
    assert code == 0, out.getvalue()
    assert "against the package's default config" in out.getvalue()


def test_a_context_value_without_equals_is_refused(run_cli, cluster):
    with pytest.raises(SystemExit) as err:
        run_cli(cluster, argv=["-c", "eksMultus.crossNodeTraffic"])
    assert err.value.code == 2


def test_verify_never_imports_aws_cdk_so_it_runs_on_a_host_without_node():
    """The bastion has Python but no Node: jsii (aws-cdk-lib) would fail there, so verify must not load it."""
    code = ("import sys, eks_multus_cdk.verify.cli, eks_multus_cdk.verify.expected, eks_multus_cdk.verify.runner; "
            "print(sorted(m for m in ('aws_cdk', 'jsii', 'constructs') if m in sys.modules))")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parents[2])
    assert run.stdout.strip() == "[]"
