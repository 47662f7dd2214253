#!/usr/bin/env python3
"""Multus CNI on Amazon EKS: read the `eksMultus` config from cdk.json, build the stacks, synthesize."""

import sys

from aws_cdk import App

from eks_multus_cdk.config import ConfigError, load_config
from stacks import build_app

app = App()
try:
    config = load_config(app)
except ConfigError as err:
    sys.exit(f"cdk.json config error: {err}")
build_app(app, config)
app.synth()
