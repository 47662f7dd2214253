"""A Kubernetes client configuration for an EKS cluster from AWS credentials alone, as `aws eks get-token` does.

The token is a presigned STS GetCallerIdentity URL whose signature covers the header `x-k8s-aws-id: <cluster>`;
the API server replays it to STS to learn who we are. botocore signs; this module only arranges the request.
"""

from __future__ import annotations

import atexit
import base64
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from botocore.auth import SigV4QueryAuth
from botocore.awsrequest import AWSRequest

TOKEN_PREFIX = "k8s-aws-v1."
CLUSTER_ID_HEADER = "x-k8s-aws-id"
# What aws-cli and aws-iam-authenticator use; EKS accepts the token for 15 minutes whatever this says.
PRESIGN_EXPIRES = 60
# Refresh well before EKS stops accepting the token.
TOKEN_LIFETIME = 10 * 60


def sts_host(region: str) -> str:
    suffix = "amazonaws.com.cn" if region.startswith("cn-") else "amazonaws.com"
    return f"sts.{region}.{suffix}"


def eks_token(cluster_name: str, region: str, credentials: Any) -> str:
    """A bearer token for `cluster_name`; `credentials` has access_key, secret_key and token (botocore's)."""
    request = AWSRequest(
        method="GET",
        url=f"https://{sts_host(region)}/?Action=GetCallerIdentity&Version=2011-06-15",
        headers={CLUSTER_ID_HEADER: cluster_name},
    )
    SigV4QueryAuth(credentials, "sts", region, expires=PRESIGN_EXPIRES).add_auth(request)
    url = request.prepare().url
    return TOKEN_PREFIX + base64.urlsafe_b64encode(url.encode()).decode().rstrip("=")


class EksAuthError(RuntimeError):
    """No credentials, or DescribeCluster failed: we cannot even try to connect."""


def eks_client_configuration(cluster_name: str, region: str, session: Any = None) -> Any:
    """A kubernetes.client.Configuration for the cluster: endpoint and CA from eks:DescribeCluster, a bearer
    token that renews itself before EKS would refuse it."""
    import boto3
    from kubernetes import client

    session = session or boto3.session.Session(region_name=region)
    credentials = session.get_credentials()
    if credentials is None:
        raise EksAuthError("no AWS credentials found (environment, ~/.aws, or instance profile)")
    try:
        cluster = session.client("eks", region_name=region).describe_cluster(name=cluster_name)["cluster"]
    except Exception as err:  # botocore's ClientError, EndpointConnectionError...
        raise EksAuthError(f"eks:DescribeCluster {cluster_name} in {region}: {err}") from err

    ca_dir = Path(tempfile.mkdtemp(prefix="eks-multus-verify-"))
    atexit.register(shutil.rmtree, ca_dir, ignore_errors=True)
    ca_file = ca_dir / "ca.crt"
    ca_file.write_bytes(base64.b64decode(cluster["certificateAuthority"]["data"]))

    configuration = client.Configuration(host=cluster["endpoint"])
    configuration.ssl_ca_cert = str(ca_file)
    configuration.api_key_prefix = {"BearerToken": "Bearer"}
    issued = [0.0]

    def refresh(conf: Any) -> None:
        if time.monotonic() - issued[0] > TOKEN_LIFETIME or "BearerToken" not in conf.api_key:
            frozen = credentials.get_frozen_credentials()
            conf.api_key = {"BearerToken": eks_token(cluster_name, region, frozen)}
            issued[0] = time.monotonic()

    refresh(configuration)  # fail here, not on the first request, when the credentials cannot sign
    configuration.refresh_api_key_hook = refresh
    return configuration
