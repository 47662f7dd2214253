"""checkov over the synthesized CloudFormation templates and every Kubernetes object the app applies.

Every finding must be acknowledged in checkov-acknowledgements.yaml with a specific reason, and every
acknowledgement must still match a finding (so none outlives the choice it explains).
"""

from __future__ import annotations

import json

import pytest

from tests.checkov_scan import load_acknowledgements, run_checkov, unacknowledged, write_scan_tree


@pytest.fixture(scope="module")
def scan(synthesized, tmp_path_factory):
    root = tmp_path_factory.mktemp("checkov")
    objects = write_scan_tree(synthesized.templates, root)
    return objects, run_checkov(root)


def test_scan_covers_both_templates_and_every_kubernetes_manifest(scan, synthesized):
    objects, findings = scan
    applied = sum(len(json.loads(r["Properties"]["Manifest"])) if isinstance(r["Properties"]["Manifest"], str)
                  else 1 for t in synthesized.templates.values() for r in t["Resources"].values()
                  if r["Type"] == "Custom::AWSCDK-EKS-KubernetesResource")
    assert objects >= applied > 20
    assert {f["file"].split(".")[-1] for f in findings} == {"json", "yaml"}  # both frameworks found something


def test_no_unacknowledged_findings_and_no_stale_acknowledgements(scan):
    _, findings = scan
    open_findings, stale = unacknowledged(findings, load_acknowledgements())
    assert open_findings == [], "acknowledge with a specific reason in checkov-acknowledgements.yaml, or fix"
    assert stale == [], "these acknowledgements match no finding any more: remove them"


def test_the_scan_can_fail(tmp_path):
    """A privileged pod and an unencrypted queue that nothing acknowledges are reported."""
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "bad", "namespace": "x"},
           "spec": {"containers": [{"name": "c", "image": "busybox", "securityContext": {"privileged": True}}]}}
    template = {"Resources": {"Queue": {"Type": "AWS::SQS::Queue", "Properties": {}}}}
    templates = {"control": {**template, "Resources": {**template["Resources"], "Manifest": {
        "Type": "Custom::AWSCDK-EKS-KubernetesResource", "Properties": {"Manifest": json.dumps([pod])}}}}}
    write_scan_tree(templates, tmp_path / "scan")
    open_findings, _ = unacknowledged(run_checkov(tmp_path / "scan"), load_acknowledgements())
    found = {(f["check"], f["resource"]) for f in open_findings}
    assert ("CKV_K8S_16", "Pod.x.bad") in found  # privileged
    assert ("CKV_AWS_27", "AWS::SQS::Queue.Queue") in found  # unencrypted queue
