"""The controller image's supply chain: a hashed lock of every dependency, a base image pinned by version.

What is not checked here: that the lock is the full transitive closure for the image's Python (3.13); `make
controller-lock` resolves it with the dev venv's Python. Checked once by hand on 2026-11-30 with
`pip install --dry-run --require-hashes --no-deps --python-version 3.13 --only-binary=:all: -r requirements.lock`
(exit 0). A Docker build would show a gap as "hashes are required ... missing from the lock".
"""

from __future__ import annotations

import re

from controller_test_support import CONTROLLER_DIR

_PIN = re.compile(r"^([A-Za-z0-9_.-]+)==([^\s\\;]+)")


def _pins(text: str) -> dict[str, str]:
    return {m[1].lower().replace("_", "-"): m[2] for line in text.splitlines() if (m := _PIN.match(line))}


def _lock_entries(text: str) -> dict[str, list[str]]:
    """name -> its hashes, from a pip-compile --generate-hashes file."""
    entries: dict[str, list[str]] = {}
    current = None
    for line in text.splitlines():
        if m := _PIN.match(line):
            current = m[1].lower()
            entries[current] = []
        elif current and (h := re.search(r"--hash=sha256:([0-9a-f]{64})", line)):
            entries[current].append(h[1])
        elif not line.startswith(" "):
            current = None
    return entries


def test_lock_pins_every_direct_requirement_at_the_same_version():
    direct = _pins((CONTROLLER_DIR / "requirements.txt").read_text())
    locked = _pins((CONTROLLER_DIR / "requirements.lock").read_text())
    assert direct, "requirements.txt names no pinned package"
    mismatched = {name: (version, locked.get(name)) for name, version in direct.items() if locked.get(name) != version}
    assert mismatched == {}, "run `make controller-lock` after changing controller/requirements.txt"
    assert len(locked) > len(direct)  # the transitive dependencies are there too


def test_every_locked_package_carries_hashes():
    entries = _lock_entries((CONTROLLER_DIR / "requirements.lock").read_text())
    assert entries and all(hashes for hashes in entries.values()), [n for n, h in entries.items() if not h]


def test_dockerfile_installs_only_the_lock_with_hashes_on_a_version_pinned_base():
    dockerfile = (CONTROLLER_DIR / "Dockerfile").read_text()
    assert re.search(r"^FROM python:\d+\.\d+\.\d+-slim-\w+(@sha256:[0-9a-f]{64})?$", dockerfile, re.M)
    (install,) = [line for line in dockerfile.splitlines() if "pip install" in line]
    assert "--require-hashes" in install and "--no-deps" in install and "-r requirements.lock" in install
    assert "COPY requirements.lock ." in dockerfile and "COPY requirements.txt" not in dockerfile
