"""Fixtures for the node drainer: `lambda/` and this folder on sys.path, a fake Kubernetes API on loopback."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
LAMBDA_DIR = HERE.parents[1] / "lambda"
for path in (LAMBDA_DIR, HERE):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

from fake_eviction_api import FakeCluster, SimClock, serve  # noqa: E402


@pytest.fixture
def clock():
    return SimClock()


@pytest.fixture
def cluster(clock):
    return FakeCluster(clock)


@pytest.fixture
def api(cluster):
    """The fake cluster behind a real HTTP server on 127.0.0.1 (the drainer's own urllib client talks to it)."""
    with serve(cluster) as url:
        yield url
