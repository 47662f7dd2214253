"""Paths and recorded objects for the controller tests (a uniquely named module: several conftest.py exist)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
CONTROLLER_DIR = ROOT / "controller"
DATA = Path(__file__).resolve().parent / "data"


def load_data(name: str) -> Any:
    return json.loads((DATA / name).read_text())
