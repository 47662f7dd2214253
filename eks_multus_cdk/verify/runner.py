"""Runs the checks in order: fetch objects through a `ClusterReader`, hand them to the pure checks.

A failing fetch becomes a FAIL row (with what to look at), never a traceback; a failed connection ends the run.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

from eks_multus_cdk.verify import checks
from eks_multus_cdk.verify.checks import CheckResult, ExecResult, failed, skipped
from eks_multus_cdk.verify.expected import Expectations, ExpectedPod

Progress = Callable[[CheckResult], None]
# (network name, AZ, owner tag values) -> [(primary address, instance id)] of this app's in-use Multus ENIs there.
SubnetHosts = Callable[[str, str, Sequence[str]], list[tuple[str, str]]]


class ClusterReader(Protocol):
    """The few reads and execs the checks need; objects are plain dicts as the API server returns them."""

    def describe(self) -> str: ...
    def list_nodes(self) -> list[dict[str, Any]]: ...
    def read_daemonset(self, namespace: str, name: str) -> dict[str, Any] | None: ...
    def list_nads(self, namespace: str) -> list[dict[str, Any]] | None: ...  # None: CRD not installed
    def read_pod(self, namespace: str, name: str) -> dict[str, Any] | None: ...
    def exec(self, namespace: str, pod: str, command: list[str]) -> ExecResult: ...


def connection_hint(error: BaseException) -> str:
    """What to look at when the cluster cannot be reached or refuses us."""
    status = getattr(error, "status", None)
    if status in (401, 403):
        return (
            "the API server refused the token: your IAM principal needs an EKS access entry (adminRoleArns in "
            "cdk.json, or run from the bastion); check `aws sts get-caller-identity` and the kubeconfig context"
        )
    return (
        "the endpoint is private unless endpointPublicAccessCidrs allows you: run from the bastion, or check the "
        "kubeconfig (aws eks update-kubeconfig), --context, and AWS credentials (aws sts get-caller-identity)"
    )


def connection_failed(error: BaseException) -> CheckResult:
    return failed("cluster connection", f"{type(error).__name__}: {_short(error)}", connection_hint(error))


def _short(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0][:300] if text else repr(error)


def _read_failed(row: str, error: BaseException, hint: str) -> CheckResult:
    return failed(row, f"could not read: {type(error).__name__}: {_short(error)}", hint)


def run_checks(reader: ClusterReader, exp: Expectations, progress: Progress = lambda r: None,
               subnet_hosts: SubnetHosts | None = None) -> list[CheckResult]:
    results: list[CheckResult] = []

    def emit(*rows: CheckResult) -> None:
        for row in rows:
            results.append(row)
            progress(row)

    # 0/1. connection and nodes
    try:
        nodes = reader.list_nodes()
    except Exception as err:  # noqa: BLE001 - any failure here means we are not talking to the cluster
        emit(connection_failed(err))
        return results
    emit(checks.passed("cluster connection", reader.describe()))
    emit(checks.check_nodes(nodes))
    nodes_by_name = {n.get("metadata", {}).get("name"): n for n in nodes}

    # 2. Multus daemonset
    ds_row = f"daemonset {exp.daemonset_namespace}/{exp.daemonset}"
    try:
        daemonset = reader.read_daemonset(exp.daemonset_namespace, exp.daemonset)
        emit(checks.check_daemonset(daemonset, len(nodes), exp.daemonset_namespace, exp.daemonset))
    except Exception as err:  # noqa: BLE001
        emit(_read_failed(ds_row, err, f"kubectl -n {exp.daemonset_namespace} get ds {exp.daemonset}"))

    # 3. NADs, read once per namespace
    for namespace in sorted({n.namespace for n in exp.nads}):
        wanted = [n for n in exp.nads if n.namespace == namespace]
        try:
            emit(*checks.check_nads(reader.list_nads(namespace), wanted))
        except Exception as err:  # noqa: BLE001
            emit(*(_read_failed(f"NAD {n.namespace}/{n.name}", err, "kubectl get network-attachment-definitions -A")
                   for n in wanted))

    if not exp.sample_pods:
        emit(skipped("sample pods", "skipped: samplePods is false"))
        return results

    # 4/5. sample pods Running, and their network-status
    pods = {p.name: _check_pod(reader, p, nodes_by_name, exp.daemonset, emit) for p in exp.sample_pods}

    # 6. ping over net1 between the sample pods that share net1's network
    with_net1 = [p for p in exp.sample_pods if p.attachment("net1")]
    for src in with_net1:
        for dst in with_net1:
            if src is dst or dst.attachment("net1").nad != src.attachment("net1").nad:  # type: ignore[union-attr]
                continue
            hint = checks.ping_hint(cross_node=_node(pods, src) != _node(pods, dst))
            emit(_ping(reader, src, dst, pods, "net1", hint))

    # 7. each sample pod's net1 reaches its Multus subnet outside the pod range: the router, another node's ENI
    for pod in (p for p in exp.sample_pods if p.attachment("net1")):
        emit(*_subnet_reach(reader, pod, pods.get(pod.name), nodes_by_name, exp.eni_owners, subnet_hosts))

    # 8. cross-node ping (crossNodeTraffic)
    if exp.cross_node_pods is not None:
        emit(*_cross_node(reader, exp, nodes, nodes_by_name, emit))
    return results


def _instance_id(node: Mapping[str, Any] | None) -> str | None:
    """The EC2 instance of a node, from spec.providerID (aws:///<az>/<instance id>)."""
    provider = ((node or {}).get("spec") or {}).get("providerID") or ""
    return provider.rsplit("/", 1)[-1] or None


def _subnet_reach(
    reader: ClusterReader,
    expected: ExpectedPod,
    pod: Mapping[str, Any] | None,
    nodes_by_name: Mapping[str, Mapping[str, Any]],
    owners: Sequence[str],
    subnet_hosts: SubnetHosts | None,
) -> list[CheckResult]:
    att = expected.attachment("net1")
    assert att is not None
    nad = att.nad
    prefix = f"subnet {expected.name}"
    if pod is None:
        return [failed(prefix, "not run: the pod failed an earlier check", "fix the rows above first")]
    source = checks.interface_ips(pod)["net1"][0].split("/")[0]
    targets: list[tuple[str, str]] = [(nad.router or "", "subnet router")]
    rows: list[CheckResult] = []
    if subnet_hosts is None:
        rows.append(skipped(f"{prefix} -> another node's {nad.network} ENI", "skipped: no EC2 access was given"))
    else:
        own = _instance_id(nodes_by_name.get((pod.get("spec") or {}).get("nodeName")))
        try:
            hosts = [h for h in subnet_hosts(nad.network, nad.availability_zone, owners) if h[1] != own]
        except Exception as err:  # noqa: BLE001 - no credentials, access denied...
            rows.append(failed(
                f"{prefix} -> another node's {nad.network} ENI",
                f"could not list the Multus ENIs: {type(err).__name__}: {_short(err)}",
                "needs ec2:DescribeNetworkInterfaces in the config's region (AWS credentials of the caller)",
            ))
            hosts = None
        if hosts == []:
            rows.append(skipped(
                f"{prefix} -> another node's {nad.network} ENI",
                f"skipped: no other node in {nad.availability_zone} carries a {nad.network} ENI (a pod cannot "
                "reach its own node's ENI through ipvlan or host-device)",
            ))
        elif hosts:
            targets.append((sorted(hosts)[0][0], f"{sorted(hosts)[0][1]}'s ENI"))
    for address, what in targets:
        try:
            route = reader.exec(expected.namespace, expected.name, checks.route_command(address))
            ping = reader.exec(expected.namespace, expected.name, checks.ping_command(address))
        except Exception as err:  # noqa: BLE001
            rows.append(failed(f"{prefix} -> {address} ({what}, net1)", f"exec failed: {type(err).__name__}: "
                               f"{_short(err)}", "exec needs pods/exec permission and a container with ip and ping"))
            continue
        rows.append(checks.check_subnet_ping(expected.name, "net1", source, address, what, route, ping))
    return rows


def _node(pods: Mapping[str, Mapping[str, Any] | None], expected: ExpectedPod) -> str | None:
    return ((pods.get(expected.name) or {}).get("spec") or {}).get("nodeName")


def _check_pod(
    reader: ClusterReader,
    expected: ExpectedPod,
    nodes_by_name: Mapping[str, Mapping[str, Any]],
    daemonset: str,
    emit: Callable[..., None],
) -> dict[str, Any] | None:
    """Emit the Running and networks rows of one pod; return the pod when both passed (it can be pinged)."""
    try:
        pod = reader.read_pod(expected.namespace, expected.name)
    except Exception as err:  # noqa: BLE001
        emit(_read_failed(f"pod {expected.name} Running", err, f"kubectl -n {expected.namespace} get pods"))
        return None
    running = checks.check_pod_running(pod, expected, daemonset)
    emit(running)
    if pod is None:
        return None
    node = nodes_by_name.get((pod.get("spec") or {}).get("nodeName"))
    networks = checks.check_pod_networks(pod, node, expected, daemonset)
    emit(networks)
    ok = running.status is checks.Status.PASS and networks.status is checks.Status.PASS
    return pod if ok else None


def _ping(
    reader: ClusterReader,
    src: ExpectedPod,
    dst: ExpectedPod,
    pods: Mapping[str, Mapping[str, Any] | None],
    interface: str,
    hint: str,
) -> CheckResult:
    row = f"ping {src.name} -> {dst.name} ({interface})"
    blocked = [p.name for p in (src, dst) if pods.get(p.name) is None]
    if blocked:
        return failed(row, f"not run: {' and '.join(blocked)} failed an earlier check", "fix the rows above first")
    address = checks.interface_ips(pods[dst.name])[interface][0]  # type: ignore[arg-type]
    address = address.split("/")[0]
    try:
        result = reader.exec(src.namespace, src.name, checks.ping_command(address))
    except Exception as err:  # noqa: BLE001
        return failed(
            row, f"exec failed: {type(err).__name__}: {_short(err)}",
            f"kubectl -n {src.namespace} exec {src.name} -- ping -c 3 {address}; exec needs "
            "pods/exec permission and a container with ping",
        )
    return checks.check_ping(src.name, dst.name, interface, address, result, hint)


def _cross_node(
    reader: ClusterReader,
    exp: Expectations,
    nodes: Sequence[Mapping[str, Any]],
    nodes_by_name: Mapping[str, Mapping[str, Any]],
    emit: Callable[..., None],
) -> list[CheckResult]:
    assert exp.cross_node_pods is not None
    a, b = exp.cross_node_pods
    zone = a.availability_zone or exp.availability_zones[0]
    in_zone = sorted(n.get("metadata", {}).get("name", "?") for n in nodes if checks.node_zone(n) == zone)
    if len(in_zone) < 2:
        return [checks.skip_cross_node(zone, in_zone)]
    pods = {p.name: _check_pod(reader, p, nodes_by_name, exp.daemonset, emit) for p in (a, b)}
    rows = []
    if all(pods.values()):
        placement = checks.check_cross_node_placement([pods[a.name], pods[b.name]], zone)  # type: ignore[list-item]
        rows.append(placement)
        if placement.status is not checks.Status.PASS:
            pods = {}  # pinging two pods of one node proves nothing about cross-node traffic
    hint = checks.ping_hint(cross_node=True)
    rows.append(_ping(reader, a, b, pods, "net1", hint))
    rows.append(_ping(reader, b, a, pods, "net1", hint))
    return rows
