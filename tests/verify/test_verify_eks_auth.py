"""The EKS bearer token (as `aws eks get-token` makes it) and the client configuration built from DescribeCluster.

Fake credentials only; the clock is frozen so the signature is reproducible, and it is recomputed here from the
SigV4 specification rather than trusted.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import hmac
from urllib.parse import parse_qsl, quote, urlsplit

import boto3
import botocore.auth
import pytest
from botocore.credentials import Credentials
from botocore.stub import Stubber

from eks_multus_cdk.verify import eks_auth
from eks_multus_cdk.verify.eks_auth import EksAuthError, eks_client_configuration, eks_token

ACCESS_KEY = "AKIAIOSFODNN7EXAMPLE"
SECRET_KEY = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
SESSION_TOKEN = "IQoJb3JpZ2luX2VjEXAMPLE//////////wEaCXVzLXdlc3QtMiJHMEUCIQD"
NOW = datetime.datetime(2026, 11, 26, 10, 30, 15)
CLUSTER = "Cluster9F2A1B7C-0d4e8f5a6b7c4d2e9f0a1b2c3d4e5f6a"
# DescribeCluster returns the CA as base64 of its PEM; this one is cut short (nothing here parses it).
CA_PEM = (
    b"-----BEGIN CERTIFICATE-----\nMIIDBTCCAe2gAwIBAgIIQk9vZ0V4YW1wbGUwDQYJKoZIhvcNAQELBQAwFTETMBEG\n"
    b"-----END CERTIFICATE-----\n"
)


@pytest.fixture
def frozen_clock(monkeypatch):
    monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda *a, **k: NOW)


@pytest.fixture
def fake_aws(monkeypatch, tmp_path):
    """Fake credentials in the environment, and nothing else botocore could find or ask for."""
    for var in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE",
                "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_CONTAINER_CREDENTIALS_FULL_URI"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", ACCESS_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
    monkeypatch.setenv("AWS_SESSION_TOKEN", SESSION_TOKEN)


def decode(token: str) -> str:
    assert token.startswith("k8s-aws-v1.")
    body = token[len("k8s-aws-v1."):]
    assert "=" not in body and "+" not in body and "/" not in body  # base64url, no padding
    return base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)).decode()


def sigv4_signature(url: str, headers: dict[str, str], secret: str) -> str:
    """The SigV4 query-string signature of a GET with an empty body, computed from the specification."""
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != "X-Amz-Signature"]
    canonical_query = "&".join(f"{quote(k, safe='-_.~')}={quote(v, safe='-_.~')}" for k, v in sorted(query))
    signed = dict(query)["X-Amz-SignedHeaders"].split(";")
    canonical_headers = "".join(f"{h}:{headers[h].strip()}\n" for h in signed)
    canonical_request = "\n".join([
        "GET", parts.path or "/", canonical_query, canonical_headers, ";".join(signed),
        hashlib.sha256(b"").hexdigest(),
    ])
    amz_date = dict(query)["X-Amz-Date"]
    scope = dict(query)["X-Amz-Credential"].split("/", 1)[1]
    to_sign = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(canonical_request.encode()).hexdigest()])
    key = ("AWS4" + secret).encode()
    for part in scope.split("/"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()


def test_token_is_a_presigned_get_caller_identity(frozen_clock):
    token = eks_token(CLUSTER, "us-west-2", Credentials(ACCESS_KEY, SECRET_KEY, SESSION_TOKEN))
    url = decode(token)
    parts = urlsplit(url)
    assert (parts.scheme, parts.netloc, parts.path) == ("https", "sts.us-west-2.amazonaws.com", "/")
    query = dict(parse_qsl(parts.query))
    assert query["Action"] == "GetCallerIdentity"
    assert query["Version"] == "2011-06-15"
    assert query["X-Amz-Algorithm"] == "AWS4-HMAC-SHA256"
    assert query["X-Amz-Credential"] == f"{ACCESS_KEY}/20261126/us-west-2/sts/aws4_request"
    assert query["X-Amz-Date"] == "20261126T103015Z"
    assert query["X-Amz-Expires"] == "60"
    assert query["X-Amz-SignedHeaders"] == "host;x-k8s-aws-id"
    assert query["X-Amz-Security-Token"] == SESSION_TOKEN
    headers = {"host": parts.netloc, "x-k8s-aws-id": CLUSTER}
    assert query["X-Amz-Signature"] == sigv4_signature(url, headers, SECRET_KEY)
    # frozen clock, same credentials: the same token
    assert eks_token(CLUSTER, "us-west-2", Credentials(ACCESS_KEY, SECRET_KEY, SESSION_TOKEN)) == token


def test_token_signature_covers_the_cluster_name(frozen_clock):
    creds = Credentials(ACCESS_KEY, SECRET_KEY)
    url = decode(eks_token(CLUSTER, "eu-central-1", creds))
    query = dict(parse_qsl(urlsplit(url).query))
    assert "X-Amz-Security-Token" not in query  # long-term keys have none
    assert urlsplit(url).netloc == "sts.eu-central-1.amazonaws.com"
    host = "sts.eu-central-1.amazonaws.com"
    assert query["X-Amz-Signature"] == sigv4_signature(url, {"host": host, "x-k8s-aws-id": CLUSTER}, SECRET_KEY)
    assert query["X-Amz-Signature"] != sigv4_signature(url, {"host": host, "x-k8s-aws-id": "other"}, SECRET_KEY)


def test_china_regions_use_their_partitions_sts():
    url = decode(eks_token(CLUSTER, "cn-north-1", Credentials(ACCESS_KEY, SECRET_KEY)))
    assert urlsplit(url).netloc == "sts.cn-north-1.amazonaws.com.cn"


def _session_with_cluster(response=None, error=None):
    session = boto3.session.Session(region_name="us-west-2")
    eks = session.client("eks", region_name="us-west-2")
    stubber = Stubber(eks)
    if error:
        stubber.add_client_error("describe_cluster", service_error_code=error, http_status_code=404,
                                 service_message=f"No cluster found for name: {CLUSTER}.",
                                 expected_params={"name": CLUSTER})
    else:
        stubber.add_response("describe_cluster", response, {"name": CLUSTER})
    stubber.activate()
    session.client = lambda service, **kwargs: eks  # the stubbed client, whatever the code asks for
    return session, stubber


def test_client_configuration_from_describe_cluster(fake_aws, frozen_clock):
    endpoint = "https://0123456789ABCDEF0123456789ABCDEF.gr7.us-west-2.eks.amazonaws.com"
    session, stubber = _session_with_cluster({"cluster": {
        "name": CLUSTER, "endpoint": endpoint, "status": "ACTIVE", "version": "1.35",
        "certificateAuthority": {"data": base64.b64encode(CA_PEM).decode()},
    }})
    configuration = eks_client_configuration(CLUSTER, "us-west-2", session)
    stubber.assert_no_pending_responses()
    assert configuration.host == endpoint
    with open(configuration.ssl_ca_cert, "rb") as f:
        assert f.read() == CA_PEM
    header = configuration.auth_settings()["BearerToken"]
    assert header["key"] == "authorization"
    assert header["value"].startswith("Bearer k8s-aws-v1.")
    url = decode(header["value"][len("Bearer "):])
    assert dict(parse_qsl(urlsplit(url).query))["X-Amz-Credential"].startswith(ACCESS_KEY + "/")


def test_token_is_renewed_before_eks_stops_accepting_it(fake_aws, monkeypatch):
    session, _ = _session_with_cluster({"cluster": {
        "endpoint": "https://example.eks.amazonaws.com",
        "certificateAuthority": {"data": base64.b64encode(CA_PEM).decode()},
    }})
    clock = [1000.0]
    monkeypatch.setattr(eks_auth.time, "monotonic", lambda: clock[0])
    configuration = eks_client_configuration(CLUSTER, "us-west-2", session)
    first = configuration.auth_settings()["BearerToken"]["value"]
    monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda *a, **k: NOW + datetime.timedelta(minutes=11))
    clock[0] += 5 * 60
    assert configuration.auth_settings()["BearerToken"]["value"] == first
    clock[0] += 6 * 60
    assert configuration.auth_settings()["BearerToken"]["value"] != first


def test_describe_cluster_fails(fake_aws):
    session, _ = _session_with_cluster(error="ResourceNotFoundException")
    with pytest.raises(EksAuthError, match="ResourceNotFoundException"):
        eks_client_configuration(CLUSTER, "us-west-2", session)


def test_no_credentials(monkeypatch, tmp_path, run_cli, cluster):
    """The real connect path: no credentials anywhere -> a FAIL row naming the problem, exit 1, no network."""
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE",
                "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_CONTAINER_CREDENTIALS_FULL_URI",
                "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_ROLE_ARN"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    from eks_multus_cdk.verify.kube import connect

    run = run_cli(cluster, connect=connect, argv=["--cluster-name", CLUSTER])
    assert run.code == 1
    assert run.status("cluster connection") == "FAIL"
    assert "EksAuthError: no AWS credentials found" in run.row("cluster connection")
    assert "aws sts get-caller-identity" in run.output
