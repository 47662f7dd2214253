"""cfn-lint (CloudFormation spec) and cdk-nag AwsSolutions over the whole synthesized app."""

from __future__ import annotations

import json

import pytest
from aws_cdk import App, Validations
from cdk_nag import AwsSolutionsChecks

from stacks import build_app
from tests.conftest import cdk_json_context

# Rules we accept by design, each with its reason (cfn-lint ids).
CFN_LINT_IGNORED = {
    "W3010": "AZ names are pinned in cdk.json so synth needs no AWS lookup.",
    "W3005": "aws-cdk-lib writes explicit DependsOn next to Ref/GetAtt (roles before functions, subnets before the "
    "cluster); redundant, not wrong.",
}


@pytest.mark.parametrize("stack", ["eks-multus-cluster", "eks-multus-workers"])
def test_cfn_lint_finds_no_errors_and_only_accepted_warnings(synth_templates, stack):
    import cfnlint.api

    matches = cfnlint.api.lint(json.dumps(synth_templates[stack]), regions=["us-west-2"])
    findings = [f"{m.rule.id} {m.message} at {'/'.join(map(str, m.path))}" for m in matches
                if m.rule.id not in CFN_LINT_IGNORED and m.rule.severity in ("error", "warning")]
    assert findings == []


@pytest.fixture(scope="module")
def nag_report(default_config, tmp_path_factory):
    outdir = tmp_path_factory.mktemp("nag")
    app = App(context=cdk_json_context(), outdir=str(outdir))
    build_app(app, default_config)
    Validations.of(app).add_plugins(AwsSolutionsChecks(app))
    return app, _synth_with_nag(app, outdir)


def _synth_with_nag(app: App, outdir) -> list[str]:
    """Synthesize with the plugin; return the AwsSolutions findings (the synth fails when there are any)."""
    try:
        app.synth()
    except Exception as err:  # noqa: BLE001 - the report says which rules failed
        if "ValidationFailed" not in str(err) and "Validation failed" not in str(err):
            raise
    report = json.loads((outdir / "validation-report.json").read_text())
    return [f"{v['ruleName']} at {[c.get('constructPath') for c in v.get('violatingConstructs', [])]}"
            for p in report["pluginReports"] for v in p["violations"] if v["ruleName"].startswith("AwsSolutions")]


def test_cdk_nag_aws_solutions_has_no_unacknowledged_findings(nag_report):
    _, findings = nag_report
    assert findings == []


def test_cdk_nag_really_runs_here(tmp_path):
    # Control: the same plugin setup reports an SSH-open security group, so the check above can fail.
    from aws_cdk import Stack
    from aws_cdk import aws_ec2 as ec2

    app = App(outdir=str(tmp_path))
    stack = Stack(app, "Control")
    sg = ec2.SecurityGroup(stack, "Open", vpc=ec2.Vpc(stack, "Vpc", max_azs=1, nat_gateways=0))
    sg.add_ingress_rule(ec2.Peer.any_ipv4(), ec2.Port.tcp(22))
    Validations.of(app).add_plugins(AwsSolutionsChecks(app))
    assert any(f.startswith("AwsSolutions-EC23") for f in _synth_with_nag(app, tmp_path))


def test_every_acknowledgement_gives_a_specific_reason(nag_report):
    app, _ = nag_report
    reasons = {}
    for construct in app.node.find_all():
        for entry in construct.node.metadata:
            if entry.type == Validations.ACKNOWLEDGED_RULES_METADATA_KEY:
                reasons.update({f"{construct.node.path}: {rule}": why for rule, why in entry.data.items()})
    assert reasons, "expected the acknowledgements the constructs make"
    short = {k: v for k, v in reasons.items() if len(v) < 40}
    assert short == {}


def test_endpoint_logging_and_encryption_are_checked_here_because_nag_cannot(synth_templates):
    # cdk-nag's EKS1/EKS2 rules inspect the aws_eks (v1) class only; test_cluster.py asserts these for
    # aws_eks_v2. This test guards that the cluster really is the v2 native resource nag skips.
    cluster = [r for r in synth_templates["eks-multus-cluster"]["Resources"].values() if r["Type"] ==
               "AWS::EKS::Cluster"]
    assert len(cluster) == 1
    assert not [r for r in synth_templates["eks-multus-cluster"]["Resources"].values()
                if r["Type"] == "Custom::AWSCDK-EKS-Cluster"]
