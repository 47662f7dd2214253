"""Which instance types of the ENI table (`instance_types.ENI_LIMITS`) EC2 really offers, and where.

The ENI table gives every size to every family, so it also names types that do not exist (m5.9xlarge), and EC2
does not offer every type in every region (no c5 in ap-east-2, ap-southeast-5/6/7 or mx-central-1). The data in
`ec2_offerings.json` comes from cfn-lint's per-region instance-type lists (cfn-lint 1.58, which derives them
from EC2's offerings): `nowhere` = table types no region offers; `missing` = region -> table types that region
does not offer. Regions without data (eusc-de-east-1) are not checked. `tests/test_regions.py` re-derives the
file from the installed cfn-lint, so it cannot drift from its source unnoticed; regenerate it with
`.venv/bin/python -m tests.test_regions`.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

DATA = Path(__file__).with_name("ec2_offerings.json")


@cache
def _data() -> dict:
    return json.loads(DATA.read_text())


def exists(instance_type: str) -> bool:
    """False for a type of the ENI table that no region offers."""
    return instance_type not in _data()["nowhere"]


def offered_in(instance_type: str, region: str) -> bool:
    """False when `region` is known not to offer this type of the ENI table (unknown regions: True)."""
    return instance_type not in _data()["missing"].get(region, ())


def regions_with_data() -> list[str]:
    return list(_data()["regions"])
