"""A fresh machine: system packages, a supported Node for the CLI and jsii, and cdk.json as `cdk init` writes it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tarfile
from pathlib import Path

from tests.conftest import CDK_JSON, PINNED_NODE, REPO


def _children_exe(pid: int) -> list[str]:
    exes = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[1]) == pid:
                exes.append(os.readlink(stat.parent / "exe"))
        except (OSError, IndexError, ValueError):
            continue
    return exes


def test_jsii_runs_on_the_pinned_supported_node(synthesized):
    # The jsii kernel is a child `node` process of this interpreter: check which binary it really is.
    nodes = [exe for exe in _children_exe(os.getpid()) if Path(exe).name == "node"]
    assert nodes, "the jsii kernel process was not found"
    pinned = str(PINNED_NODE.resolve())
    assert nodes == [pinned] * len(nodes)
    version = subprocess.run([pinned, "--version"], capture_output=True, text=True, check=True).stdout.strip()
    assert int(version.lstrip("v").split(".")[0]) in (22, 24)


def test_node_is_pinned_in_package_json_and_the_notice_is_not_hidden():
    package = json.loads((REPO / "package.json").read_text())
    assert package["devDependencies"]["node"].split(".")[0] in ("22", "24")
    for name in ("Makefile", "tests/conftest.py", ".ci/run"):
        assert "JSII_SILENCE_WARNING" not in (REPO / name).read_text(), name
    assert "Node.js 22 or 24" in (REPO / "README.md").read_text()


def test_cdk_json_carries_exactly_the_recommended_feature_flags_of_the_installed_aws_cdk_lib():
    import aws_cdk

    (tgz,) = (Path(aws_cdk.__file__).parent / "_jsii").glob("aws-cdk-lib@*.jsii.tgz")
    with tarfile.open(tgz) as archive:
        recommended = json.load(archive.extractfile("package/recommended-feature-flags.json"))
    flags = {k: v for k, v in CDK_JSON["context"].items() if k != "eksMultus"}
    assert flags == recommended
    assert len(flags) > 80


def test_system_deps_prints_the_exact_command_when_it_cannot_install():
    import tempfile

    with tempfile.TemporaryDirectory(dir="/tmp") as top:  # pytest's tmp_path is not readable by nobody
        _check_system_deps_as_nobody(Path(top))


def _check_system_deps_as_nobody(tmp_path: Path) -> None:
    ci = tmp_path / ".ci"
    ci.mkdir()
    shutil.copy(REPO / ".ci" / "system-deps", ci / "system-deps")
    (ci / "debian-packages").write_text("iproute2 test\neks-multus-no-such-package test\nshellcheck synth shellcheck\n")
    tmp_path.chmod(0o755)
    ci.chmod(0o755)
    as_nobody = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
    run = subprocess.run([*as_nobody, str(ci / "system-deps"), "test"], capture_output=True, text=True, timeout=60)
    assert run.returncode == 1
    assert ("sudo apt-get update && sudo apt-get install -y --no-install-recommends eks-multus-no-such-package"
            in run.stderr)
    synth_only = subprocess.run([*as_nobody, str(ci / "system-deps"), "synth"], capture_output=True, text=True,
                                timeout=60)
    assert (synth_only.returncode, synth_only.stderr) == (0, "")


def test_ci_run_calls_the_readmes_test_command():
    script = (REPO / ".ci" / "run").read_text()
    assert script.rstrip().splitlines()[-1] == "make test"
    assert "make test" in (REPO / "README.md").read_text()
