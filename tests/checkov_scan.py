"""Run checkov (its own venv, .venv-scan: checkov pins boto3 1.35) over what the app deploys, and match its
findings against checkov-acknowledgements.yaml. Used by tests/test_checkov.py (`make test`, `make lint`)."""

from __future__ import annotations

import fnmatch
import json
import subprocess
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
CHECKOV = REPO / ".venv-scan" / "bin" / "checkov"
ACKNOWLEDGEMENTS = REPO / "checkov-acknowledgements.yaml"
KUBERNETES_MANIFEST = "Custom::AWSCDK-EKS-KubernetesResource"


def _resolve(value: Any) -> str:
    """A manifest string with CloudFormation tokens (image URI, region...) replaced by a placeholder."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and "Fn::Join" in value:
        separator, parts = value["Fn::Join"]
        return separator.join(_resolve(p) for p in parts)
    return "cfn-token"


def write_scan_tree(templates: dict[str, dict], root: Path) -> int:
    """root/cfn/<stack>.template.json and root/k8s/<stack>-<logical id>.yaml (every kubectl-applied object)."""
    (root / "cfn").mkdir(parents=True)
    (root / "k8s").mkdir()
    objects = 0
    for stack, template in templates.items():
        (root / "cfn" / f"{stack}.template.json").write_text(json.dumps(template))
        for logical_id, resource in template["Resources"].items():
            if resource["Type"] != KUBERNETES_MANIFEST:
                continue
            manifest = json.loads(_resolve(resource["Properties"]["Manifest"]))
            (root / "k8s" / f"{stack}-{logical_id}.yaml").write_text(yaml.safe_dump_all(manifest))
            objects += len(manifest)
    return objects


def run_checkov(root: Path) -> list[dict[str, str]]:
    """checkov's failed checks over `root`: [{check, resource, file, name}]."""
    if not CHECKOV.exists():
        raise RuntimeError(f"{CHECKOV} is missing: run `make deps` (it installs requirements-scan.txt there)")
    run = subprocess.run(
        [str(CHECKOV), "--directory", str(root), "--framework", "cloudformation", "kubernetes", "--output", "json",
         "--quiet", "--skip-download", "--compact"],
        capture_output=True, text=True, timeout=600,
    )
    if run.returncode not in (0, 1):
        raise RuntimeError(f"checkov failed ({run.returncode}): {run.stderr[-2000:]}")
    reports = json.loads(run.stdout)
    reports = reports if isinstance(reports, list) else [reports]
    return [
        {"check": c["check_id"], "resource": c["resource"], "file": Path(c["file_path"]).name, "name": c["check_name"]}
        for report in reports for c in report["results"]["failed_checks"]
    ]


def load_acknowledgements(path: Path = ACKNOWLEDGEMENTS) -> list[dict[str, Any]]:
    entries = yaml.safe_load(path.read_text())
    for entry in entries:
        assert set(entry) == {"check", "resources", "reason"}, entry
        assert len(entry["reason"].split()) >= 8, f"{entry['check']}: say why, specifically"
    return entries


def unacknowledged(findings: list[dict[str, str]], acknowledgements: list[dict[str, Any]]
                   ) -> tuple[list[dict[str, str]], list[str]]:
    """(findings no acknowledgement covers, acknowledgement patterns that match no finding)."""
    used: set[tuple[str, str]] = set()
    open_findings = []
    for finding in findings:
        match = next(((a["check"], pattern) for a in acknowledgements if a["check"] == finding["check"]
                      for pattern in a["resources"] if fnmatch.fnmatchcase(finding["resource"], pattern)), None)
        if match is None:
            open_findings.append(finding)
        else:
            used.add(match)
    stale = [f"{a['check']} {p}" for a in acknowledgements for p in a["resources"] if (a["check"], p) not in used]
    return open_findings, stale
