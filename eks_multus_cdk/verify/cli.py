"""`python -m eks_multus_cdk.verify`: run the checks against a deployed cluster, print progress and a table.

Exit status: 0 when nothing failed (SKIP rows are fine), 1 when a check failed, 2 for a bad command line or
config.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

from eks_multus_cdk.config import CONTEXT_KEY, AppConfig, ConfigError, parse_config
from eks_multus_cdk.verify.checks import CheckResult, Status
from eks_multus_cdk.verify.expected import expectations
from eks_multus_cdk.verify.runner import ClusterReader, SubnetHosts, connection_failed, run_checks

Connect = Callable[..., ClusterReader]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m eks_multus_cdk.verify",
        description="Check a deployed eks-multus cluster: nodes, Multus daemonset, NADs, sample pods, pings.",
    )
    parser.add_argument("--config", default=None,
                        help="the app's cdk.json (default: ./cdk.json if present, else the package's defaults)")
    parser.add_argument(
        "-c", "--cdk-context", action="append", default=[], metavar="KEY=VALUE", dest="overrides",
        help="the same context values the deploy was synthesized with, e.g. -c eksMultus.region=eu-west-1 "
             "(repeatable; as `cdk synth -c`, they win over cdk.json)")
    parser.add_argument("--kubeconfig", help="kubeconfig file (default: $KUBECONFIG or ~/.kube/config)")
    parser.add_argument("--context", help="kubeconfig context (default: the current one)")
    parser.add_argument(
        "--cluster-name", help="connect through the EKS API with AWS credentials instead of a kubeconfig"
    )
    parser.add_argument("--region", help="the cluster's region with --cluster-name (default: the config's region)")
    parser.add_argument(
        "--no-ec2", action="store_true",
        help="do not look up other nodes' Multus ENIs through EC2 (the subnet checks then ping the router only)",
    )
    args = parser.parse_args(argv)
    for item in args.overrides:
        if "=" not in item:
            parser.error(f"-c {item}: expected KEY=VALUE (as for cdk synth -c)")
    if args.cluster_name and (args.kubeconfig or args.context):
        parser.error("--cluster-name connects without a kubeconfig: drop --kubeconfig/--context")
    if args.region and not args.cluster_name:
        parser.error("--region needs --cluster-name")
    return args


def load_app_config(path: Path | None, cli_context: list[str] | tuple[str, ...] = ()) -> AppConfig:
    """The config as `cdk synth -c KEY=VALUE...` would read it: cdk.json's context (none without `path`: the
    defaults), then the `-c` values on top, then the object plus any `eksMultus.*` keys."""
    context = json.loads(path.read_text()).get("context", {}) if path is not None else {}
    for item in cli_context:
        key, _, value = item.partition("=")
        context[key] = value
    prefix = CONTEXT_KEY + "."
    overrides = {k[len(prefix):]: v for k, v in context.items() if k.startswith(prefix)}
    return parse_config(context.get(CONTEXT_KEY), overrides)


def format_table(results: list[CheckResult]) -> str:
    headers = ("check", "result", "detail")
    rows = [(r.name, r.status.value, r.detail) for r in results]
    widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(headers[:2])]

    def line(cells: tuple[str, str, str]) -> str:
        return f"{cells[0]:<{widths[0]}}  {cells[1]:<{widths[1]}}  {cells[2]}".rstrip()

    return "\n".join([line(headers), line(("-" * widths[0], "-" * widths[1], "-" * 6)), *map(line, rows)])


def progress_line(result: CheckResult) -> str:
    return f"[{result.status.value}] {result.name}: {result.detail}"


def main(argv: list[str] | None = None, *, connect: Connect | None = None, out: TextIO | None = None,
         subnet_hosts: SubnetHosts | None = None) -> int:
    out = out or sys.stdout
    args = parse_args(argv)
    path = Path(args.config) if args.config else (Path("cdk.json") if Path("cdk.json").is_file() else None)
    source = " ".join([str(path) if path else "the package's default config", *(f"-c {o}" for o in args.overrides)])
    try:
        config = load_app_config(path, args.overrides)
        exp = expectations(config)
    except (OSError, json.JSONDecodeError, ConfigError) as err:
        print(f"error: cannot read the config {args.config}: {err}", file=out)
        return 2
    if connect is None:
        try:
            import kubernetes  # noqa: F401 - only to tell a missing extra apart from a broken cluster
        except ImportError:
            print('error: verify needs its extra: pip install "eks-multus-cdk[verify]" (boto3, kubernetes)', file=out)
            return 2
        from eks_multus_cdk.verify.kube import connect

    where = f"EKS cluster {args.cluster_name} in {args.region or config.region}" if args.cluster_name else (
        f"kubeconfig {args.kubeconfig or '(default)'}, context {args.context or '(current)'}"
    )
    print(f"verifying {where} against {source}", file=out)

    def progress(result: CheckResult) -> None:
        print(progress_line(result), file=out, flush=True)

    try:
        reader = connect(
            kubeconfig=args.kubeconfig, context=args.context, cluster_name=args.cluster_name,
            region=(args.region or config.region) if args.cluster_name else None,
        )
    except Exception as err:  # noqa: BLE001 - no credentials, no kubeconfig, DescribeCluster refused...
        results = [connection_failed(err)]
        progress(results[0])
    else:
        if subnet_hosts is None and not args.no_ec2:
            from eks_multus_cdk.verify.ec2 import subnet_hosts_reader

            try:
                subnet_hosts = subnet_hosts_reader(args.region or config.region)
            except Exception as err:  # noqa: BLE001 - boto3 missing or no region: the EC2 rows say so
                print(f"note: no EC2 access ({type(err).__name__}: {err}); subnet checks skip other nodes' ENIs",
                      file=out)
        results = run_checks(reader, exp, progress, subnet_hosts)
    return report(results, out)


def report(results: list[CheckResult], out: TextIO) -> int:
    print("", file=out)
    print(format_table(results), file=out)
    failures = [r for r in results if r.status is Status.FAIL]
    counts = {s: sum(r.status is s for r in results) for s in Status}
    print(f"\n{counts[Status.PASS]} passed, {counts[Status.FAIL]} failed, {counts[Status.SKIP]} skipped", file=out)
    if failures:
        print("\nWhat to look at:", file=out)
        for r in failures:
            print(f"- {r.name}: {r.hint}", file=out)
    return 1 if failures else 0
