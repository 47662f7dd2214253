"""Fixtures for the `make verify` tests; the recorded objects and fakes are in verify_fakes.py."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from verify_fakes import CliRun, FakeCluster, healthy_cluster, make_config

from eks_multus_cdk.config import AppConfig, default_config_json


@pytest.fixture
def config() -> AppConfig:
    return make_config()


@pytest.fixture
def cluster(config: AppConfig) -> FakeCluster:
    return healthy_cluster(config)


@pytest.fixture
def run_cli(tmp_path: Path) -> Callable[..., CliRun]:
    """Run `main` with a cdk.json holding the config and a fake cluster in place of the kubernetes client."""
    from eks_multus_cdk.verify.cli import main

    def run(cluster: Any, *, config_overrides: dict[str, Any] | None = None, argv: list[str] | None = None,
            connect: Any = None) -> CliRun:
        cdk_json = tmp_path / "cdk.json"
        context = {**default_config_json(), **(config_overrides or {})}
        cdk_json.write_text(json.dumps({"app": "python app.py", "context": {"eksMultus": context}}))
        seen: dict[str, Any] = {}

        def fake_connect(**kwargs: Any) -> Any:
            seen.update(kwargs)
            return cluster

        out = io.StringIO()
        code = main(["--config", str(cdk_json), *(argv or [])], connect=connect or fake_connect, out=out,
                    subnet_hosts=getattr(cluster, "subnet_hosts", None))
        return CliRun(code, out.getvalue(), seen)

    return run
