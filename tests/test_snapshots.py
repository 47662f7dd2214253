"""Snapshots of every stack (asset hashes masked): they guard refactors, not correctness."""

from __future__ import annotations

import json
import re

import pytest
from syrupy.extensions.json import JSONSnapshotExtension

_ASSET_HASH = re.compile(r"\b[0-9a-f]{64}\b")


def masked(template: dict) -> dict:
    """The template with content hashes of assets replaced, so code edits do not churn the snapshot."""
    return json.loads(_ASSET_HASH.sub("<asset-hash>", json.dumps(template)))


@pytest.fixture
def snapshot_json(snapshot):
    return snapshot.use_extension(JSONSnapshotExtension)


@pytest.mark.parametrize("stack", ["eks-multus-cluster", "eks-multus-workers"])
def test_stack_matches_snapshot(synth_templates, stack, snapshot_json):
    assert masked(synth_templates[stack]) == snapshot_json


def test_masking_hides_only_hashes():
    template = {"S3Key": "0123456789abcdef" * 4 + ".zip", "Name": "eks-multus-ng1"}
    assert masked(template) == {"S3Key": "<asset-hash>.zip", "Name": "eks-multus-ng1"}
