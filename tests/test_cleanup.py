"""Tags everywhere, log groups with retention, and nothing kept back by `cdk destroy` but what the README lists."""

from __future__ import annotations

import json

import pytest
from aws_cdk import App

from stacks import build_app
from tests.conftest import cdk_json_context

TAGS = {"cost-center": "ran-lab", "owner": "team-5g"}


@pytest.fixture(scope="module")
def tagged_templates(make_config, tmp_path_factory) -> dict[str, dict]:
    config = make_config(tags=json.dumps(TAGS))
    app = App(context=cdk_json_context(), outdir=str(tmp_path_factory.mktemp("tagged")))
    build_app(app, config)
    return {s.stack_name: s.template for s in app.synth().stacks}


def _tag_map(tags) -> dict[str, str]:
    if isinstance(tags, dict):  # AWS::SSM::Parameter, AWS::EKS::Addon style maps, ASG lists below
        return tags
    return {t["Key"]: t["Value"] for t in tags}


def test_every_taggable_resource_carries_the_config_tags(tagged_templates):
    from cfnlint.schema import PROVIDER_SCHEMA_MANAGER

    checked, untagged = 0, []
    for stack, template in tagged_templates.items():
        for logical_id, resource in template["Resources"].items():
            if resource["Type"].startswith("Custom::") or resource["Type"] == "AWS::CDK::Metadata":
                continue
            schema = PROVIDER_SCHEMA_MANAGER.get_resource_schema("us-west-2", resource["Type"]).schema
            tagging = schema.get("tagging", {})
            if not tagging.get("taggable") or "tagProperty" not in tagging:
                continue
            prop = tagging["tagProperty"].rsplit("/", 1)[-1]
            tags = _tag_map(resource.get("Properties", {}).get(prop, []))
            checked += 1
            if any(tags.get(k) != v for k, v in TAGS.items()):
                untagged.append(f"{stack}/{logical_id} ({resource['Type']})")
    assert untagged == []
    assert checked > 40


def test_the_shipped_app_has_no_tags_unless_configured(synth_templates):
    assert "cost-center" not in json.dumps(synth_templates)


def test_every_log_group_has_the_configured_retention_and_goes_with_its_stack(synth_templates):
    groups = {f"{s}/{k}": (v["Properties"].get("RetentionInDays"), v.get("DeletionPolicy"))
              for s, t in synth_templates.items() for k, v in t["Resources"].items()
              if v["Type"] == "AWS::Logs::LogGroup"}
    assert len(groups) >= 6
    assert set(groups.values()) == {(30, "Delete")}


def test_every_lambda_function_writes_to_a_log_group_of_the_stack(synth_templates):
    for template in synth_templates.values():
        groups = {k: v for k, v in template["Resources"].items() if v["Type"] == "AWS::Logs::LogGroup"}
        named = json.dumps([g["Properties"].get("LogGroupName") for g in groups.values()])
        for logical_id, function in template["Resources"].items():
            if function["Type"] != "AWS::Lambda::Function":
                continue
            explicit = function["Properties"].get("LoggingConfig", {}).get("LogGroup")
            # Either the function names its group, or a group is named /aws/lambda/<this function>.
            assert explicit in [{"Ref": k} for k in groups] or f'{{"Ref": "{logical_id}"}}' in named, logical_id


def test_nothing_is_retained_on_delete(synth_templates):
    retained = [f"{s}/{k}" for s, t in synth_templates.items() for k, v in t["Resources"].items()
                if v.get("DeletionPolicy") in ("Retain", "RetainExceptOnCreate", "Snapshot")]
    assert retained == []
    keys = [v for t in synth_templates.values() for v in t["Resources"].values() if v["Type"] == "AWS::KMS::Key"]
    assert keys and all(k["Properties"]["PendingWindowInDays"] == 7 for k in keys)


def test_two_copies_of_the_app_share_no_physical_name(make_config, tmp_path_factory, synth_templates):
    other = make_config(stackPrefix="copy-b")
    app = App(context=cdk_json_context(), outdir=str(tmp_path_factory.mktemp("copy-b")))
    build_app(app, other)
    copy = {s.stack_name: s.template for s in app.synth().stacks}

    def names(templates):
        # Physical names are account-and-region wide; inline policy names are per role, add-on names per cluster,
        # and an alarm's MetricName names the metric it watches, not the alarm.
        return {v for t in templates.values() for r in t["Resources"].values()
                if r["Type"] not in ("AWS::IAM::Policy", "AWS::EKS::Addon")
                for k, v in r.get("Properties", {}).items()
                if k.endswith("Name") and k != "MetricName" and isinstance(v, str)}

    assert names(synth_templates) and names(copy)
    assert names(synth_templates) & names(copy) == set()
