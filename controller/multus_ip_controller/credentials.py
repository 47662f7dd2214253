"""Fail closed on AWS credentials: the controller runs only with EKS Pod Identity's container credentials.

The controller runs on the host network, where the instance metadata service answers at hop limit 1. If the
Pod Identity variables are missing (the pod was admitted before its association existed, or the association
was removed), botocore's default chain would end at IMDS and the controller would silently act with the node
role. So it refuses to start instead, naming what is missing, and turns botocore's IMDS provider off for the
process either way (`AWS_EC2_METADATA_DISABLED`), so no later code path can fall back to it.

Static keys in the environment are refused too: they would win over the container provider in botocore's chain.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, MutableMapping

# What the EKS Pod Identity webhook injects into a pod whose service account has an association.
CONTAINER_URI = "AWS_CONTAINER_CREDENTIALS_FULL_URI"
CONTAINER_TOKEN_FILE = "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"
STATIC_KEYS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE",
               "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_ROLE_ARN")
IMDS_OFF = "AWS_EC2_METADATA_DISABLED"


class CredentialsError(RuntimeError):
    pass


def require_container_credentials(env: Mapping[str, str]) -> str:
    """The credentials endpoint, or CredentialsError saying why the controller must not start."""
    missing = [name for name in (CONTAINER_URI, CONTAINER_TOKEN_FILE) if not env.get(name, "").strip()]
    if missing:
        raise CredentialsError(
            f"no EKS Pod Identity credentials ({', '.join(missing)} not set): refusing to start rather than fall "
            "back to the node's instance role. Check the Pod Identity association of this service account and "
            "that the eks-pod-identity-agent add-on runs, then delete this pod so it is admitted again.")
    present = [name for name in STATIC_KEYS if env.get(name, "").strip()]
    if present:
        raise CredentialsError(f"{', '.join(present)} set: they would override Pod Identity; refusing to start")
    return env[CONTAINER_URI]


def disable_instance_metadata(env: MutableMapping[str, str] | None = None) -> None:
    """Switch botocore's IMDS credential and region providers off for this process."""
    (os.environ if env is None else env)[IMDS_OFF] = "true"
