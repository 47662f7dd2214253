"""Every region the config accepts (the Multus image map) synthesizes cleanly and passes cfn-lint with its schema.

Each region is synthesized in-process (one jsii kernel, ~0.5 s a region after the first) with AZs `<region>a` and
`<region>b`. Two checks per region:
- aws-cdk-lib's own synth-time validation (the "CloudFormation Validate" plugin, with that region's registry
  schema) reports no violation, and no construct warning is attached: what `cdk synth` would print.
- cfn-lint with that region's schema finds no error. cfn-lint costs ~2 s a template, too slow for 39 x 2
  templates, so templates are grouped: a region's template with its own literals (region name, ECR registry
  account) replaced by placeholders is compared with the others; regions whose templates are then identical are
  linted in one call on one of those templates with all their regions (`regions=[...]` checks the template against
  every listed region's schema). The grouping is exact, so every region's template content is linted against its
  own schema; only the literal region strings inside it come from the group's first region.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import pytest
from aws_cdk import App

from eks_multus_cdk.config import parse_config
from eks_multus_cdk.multus_manifests import REGISTRY_ACCOUNTS
from stacks import build_app
from tests.conftest import cdk_json_context
from tests.test_compliance import CFN_LINT_IGNORED

REGIONS = sorted(REGISTRY_ACCOUNTS)


# cdk.json's c5.large is not offered everywhere (the config refuses it there, see ec2_offerings): the first of
# these that the region offers.
NODE_TYPES = ("c5.large", "c6i.large", "m6i.large", "t3.large")


def region_config(region: str):
    from eks_multus_cdk.ec2_offerings import offered_in

    raw = cdk_json_context()["eksMultus"]
    raw.update(region=region, availabilityZones=[f"{region}a", f"{region}b"])
    node_type = next(t for t in NODE_TYPES if offered_in(t, region))
    raw["nodeGroups"] = [{**g, "availabilityZones": [f"{region}a"], "instanceType": node_type}
                         for g in raw["nodeGroups"]]
    return parse_config(raw)


# cfn-lint 1.58 has no schema for the European Sovereign Cloud (partition aws-eusc): it checks the ARNs there
# (W1032, e.g. the KMS key policy's `arn:aws-eusc:iam::<account>:root`) against the patterns of other partitions.
UNKNOWN_PARTITION = ("W1032", "eusc-")


class RegionSynth:
    def __init__(self, region: str, outdir: Path) -> None:
        app = App(context=cdk_json_context(), outdir=str(outdir))
        build_app(app, region_config(region))
        assembly = app.synth()
        self.templates = {s.stack_name: s.template for s in assembly.stacks}
        self.warnings = [f"{s.stack_name}: {m.id} {m.entry.data}" for s in assembly.stacks for m in s.messages
                         if str(m.level).endswith("WARNING") or str(m.level).endswith("ERROR")]
        report = json.loads((outdir / "validation-report.json").read_text())
        self.violations = [f"{p['pluginName']}: {v['ruleName']} {v['description']}"
                           for p in report["pluginReports"] for v in p["violations"]]


@pytest.fixture(scope="module")
def region_synths(tmp_path_factory) -> dict[str, RegionSynth]:
    return {region: RegionSynth(region, tmp_path_factory.mktemp(region)) for region in REGIONS}


def normalized(template: dict, region: str) -> str:
    text = json.dumps(template, sort_keys=True)
    return text.replace(REGISTRY_ACCOUNTS[region], "<ecr-account>").replace(region, "<region>")


@pytest.fixture(scope="module")
def lint_groups(region_synths) -> dict[str, dict[str, list[str]]]:
    """stack suffix -> {normalized template: regions}."""
    groups: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    for region, synth in region_synths.items():
        for name, template in synth.templates.items():
            groups[name.rsplit("-", 1)[-1]][normalized(template, region)].append(region)
    return groups


@pytest.fixture(scope="module")
def cfn_lint_findings(region_synths, lint_groups) -> dict[str, list[str]]:
    """region -> cfn-lint findings (errors and unaccepted warnings) for the templates of that region."""
    import cfnlint.api

    findings: dict[str, list[str]] = {region: [] for region in REGIONS}
    for stack, groups in lint_groups.items():
        for regions in groups.values():
            template = region_synths[regions[0]].templates[f"eks-multus-{stack}"]
            for m in cfnlint.api.lint(json.dumps(template), regions=regions):
                if m.rule.id in CFN_LINT_IGNORED or m.rule.severity not in ("error", "warning"):
                    continue
                if m.rule.id == UNKNOWN_PARTITION[0] and all(r.startswith(UNKNOWN_PARTITION[1]) for r in regions):
                    continue
                named = [r for r in regions if f"'{r}'" in m.message] or regions
                for region in named:
                    findings[region].append(f"{stack}: {m.rule.id} {m.message} at {'/'.join(map(str, m.path))}")
    return findings


def test_the_config_accepts_every_region_of_the_image_map_and_there_are_many():
    assert len(REGIONS) >= 30 and {"us-west-2", "eu-west-1", "us-east-2", "ap-southeast-1", "eu-central-1",
                                   "cn-north-1"} <= set(REGIONS)


@pytest.mark.parametrize("region", REGIONS)
def test_cdk_synth_validation_and_annotations_are_silent(region_synths, region):
    synth = region_synths[region]
    assert synth.violations == []
    assert synth.warnings == []


@pytest.mark.parametrize("region", REGIONS)
def test_cfn_lint_with_the_regions_schema_finds_nothing(cfn_lint_findings, region):
    assert cfn_lint_findings[region] == []


def test_the_lint_groups_cover_every_region_once_per_stack(lint_groups):
    for stack in ("cluster", "workers"):
        covered = [r for regions in lint_groups[stack].values() for r in regions]
        assert sorted(covered) == REGIONS


def test_the_native_reservation_type_would_fail_here(region_synths):
    # Control: the check above can fail. cfn-lint's eu-west-1 schema has no AWS::EC2::SubnetCidrReservation.
    import cfnlint.api

    template = region_synths["eu-west-1"].templates["eks-multus-cluster"]
    broken = json.loads(json.dumps(template))
    broken["Resources"]["NativeReservation"] = {"Type": "AWS::EC2::SubnetCidrReservation", "Properties": {
        "SubnetId": "subnet-0123456789abcdef0", "Cidr": "10.0.4.128/25", "ReservationType": "explicit"}}
    assert any(m.rule.id == "E3006" for m in cfnlint.api.lint(json.dumps(broken), regions=["eu-west-1"]))


def offerings_from_cfn_lint() -> dict:
    """`eks_multus_cdk/ec2_offerings.json` as derived from the installed cfn-lint's instance-type lists."""
    from pathlib import Path as _Path

    import cfnlint

    from eks_multus_cdk.instance_types import ENI_LIMITS

    enum = json.loads((_Path(cfnlint.__file__).parent / "data" / "schemas" / "extensions" / "aws_ec2_instance" /
                       "instancetype_enum.json").read_text())
    regions = sorted(r for r in REGISTRY_ACCOUNTS if r in enum)
    anywhere = set().union(*(set(v.get("enum", [])) for k, v in enum.items() if isinstance(v, dict) and k != "all"))
    missing = {}
    for region in regions:
        offered = set(enum[region]["enum"])
        gaps = sorted(t for t in ENI_LIMITS if t in anywhere and t not in offered)
        if gaps:
            missing[region] = gaps
    return {"source": f"cfn-lint {cfnlint.version.__version__} aws_ec2_instance/instancetype_enum.json",
            "regions": regions, "nowhere": sorted(t for t in ENI_LIMITS if t not in anywhere), "missing": missing}


def test_offering_data_is_what_cfn_lint_says():
    from eks_multus_cdk.ec2_offerings import DATA

    assert json.loads(DATA.read_text()) == offerings_from_cfn_lint(), "regenerate: python -m tests.test_regions"


if __name__ == "__main__":
    from eks_multus_cdk.ec2_offerings import DATA

    DATA.write_text(json.dumps(offerings_from_cfn_lint(), indent=1, sort_keys=True) + "\n")
    print(f"wrote {DATA}")
