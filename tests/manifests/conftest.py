"""Session fixtures for the Multus manifest, NAD, sample-pod and construct tests (synthesis is done once)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

# multus_test_app sits beside this file; make it importable whatever pytest's import mode.
sys.path.insert(0, str(Path(__file__).resolve().parent))

from multus_test_app import synthesized_template  # noqa: E402

from eks_multus_cdk.config import AppConfig, parse_config  # noqa: E402


@pytest.fixture(scope="session")
def base_config() -> AppConfig:
    return parse_config(None)


@pytest.fixture(scope="session")
def base_template(base_config: AppConfig) -> dict[str, Any]:
    return synthesized_template(base_config)
